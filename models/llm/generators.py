"""MotionLLM as a ``MotionGenerator`` of the evaluation protocol: engine + batched VQ decoding.

``LLMMotionGenerator(engine, vq, task)`` answers ``generate(captions, lengths)`` with one motion per
caption (the ground-truth lengths are ignored: the LLM decides the length, as upstream). Every
motion-producing task of ``models.llm.inference.MOTION_TASKS`` is available: single-pass ``t2m``, the
stage-1 IRMoGen loops, the CoT family (final or initial generation), analysis-guided generation. The
random-flip tasks need a foreign motion per item and are served by :class:`RandomFlipGenerator`, which
reads the test items themselves (``generate_items``); use :func:`make_llm_generator` to get the right
class.

Feature space of the returned motions (``GeneratedBatch.normalization``):

* ``"evaluator"`` when the VQ-VAE was trained with the evaluator's statistics (the released VQ uses the
  evaluator's ``meta`` mean/std; ours stores its statistics in the checkpoint and they are compared) —
  the decoder output is passed through unchanged, as upstream;
* ``"raw"`` otherwise: the decoder output is de-normalised with the VQ's own statistics and the protocol
  normalises it for its evaluator (e.g. MARDM's 67-d one).

Per-sample ``info`` (logged to ``samples_repeat0.jsonl``; numbers/booleans aggregated by the protocol):
``num_gens``, ``rounds`` / ``stopped`` (loops), ``codes``, ``parse_fallback`` and the texts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from data_engine.datasets.spec import get_dataset_spec
from evaluators.generators import GeneratedBatch
from models.common.errors import DataError
from models.llm.inference import (
    MOTION_TASKS,
    NEGATIVE_MOTION_TASKS,
    REFINEMENT_LOOP_TASKS,
    MotionLLMEngine,
    MotionResult,
    RefinementInstructor,
    check_task,
)

if TYPE_CHECKING:
    from evaluators.protocol import TestBatch
    from models.vqvae import MotionVQVAE

logger = logging.getLogger(__name__)

Stats = tuple[np.ndarray, np.ndarray]


def same_statistics(a: Stats | None, b: Stats | None, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """True when two (mean, std) pairs have equal shapes and values (within float tolerance)."""
    if a is None or b is None:
        return False
    return all(
        np.shape(x) == np.shape(y) and np.allclose(x, y, rtol=rtol, atol=atol)
        for x, y in zip(a, b, strict=True)
    )


class LLMMotionGenerator:
    """``generate(captions, lengths) -> GeneratedBatch`` for one evaluation task (see module docstring).

    ``vq_stats``: the (mean, std) the VQ-VAE was trained with (``stored_normalization`` of our
    checkpoints); None for the released VQ, which was trained with the evaluator's statistics.
    ``evaluator_stats``: the (mean, std) of the protocol's evaluator space (``test_set.space``).
    """

    def __init__(
        self,
        engine: MotionLLMEngine,
        vq: MotionVQVAE,
        task: str = "t2m",
        *,
        vq_stats: Stats | None = None,
        evaluator_stats: Stats | None = None,
        max_refine_round: int = 5,
        max_frames: int = 196,
        instructor: RefinementInstructor | None = None,
        keep_trace: bool = True,
    ) -> None:
        check_task(task, MOTION_TASKS)
        if engine.vocab.nb_code != vq.nb_code:
            raise ValueError(
                f"the LLM has {engine.vocab.nb_code} motion codes but the VQ-VAE codebook has {vq.nb_code}"
            )
        self.engine, self.vq, self.task = engine, vq, task
        self.max_refine_round, self.max_frames = max_refine_round, max_frames
        self.instructor, self.keep_trace = instructor, keep_trace
        self.vq_stats = None if vq_stats is None else tuple(np.asarray(s, np.float32) for s in vq_stats)
        self.normalization = self._choose_normalization(evaluator_stats)

    def _choose_normalization(self, evaluator_stats: Stats | None) -> str:
        dim = self.vq.config.input_dim
        if self.vq_stats is None:
            if evaluator_stats is not None and np.shape(evaluator_stats[0]) != (dim,):
                raise ValueError(
                    f"the evaluator works on {np.shape(evaluator_stats[0])[0]}-d features, the VQ decodes "
                    f"{dim}-d features normalised with unknown statistics; give the VQ's mean/std "
                    "(vq_stats) so that its output can be de-normalised"
                )
            logger.info("VQ-VAE without stored statistics: assuming it uses the evaluator's normalisation")
            return "evaluator"
        if same_statistics(self.vq_stats, evaluator_stats):
            return "evaluator"
        logger.info("VQ-VAE statistics differ from the evaluator's: returning de-normalised (raw) motions")
        return "raw"

    # ------------------------------------------------------------------ decoding
    def decode(self, code_lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Batched VQ decoding -> ``[T_i, D]`` float32 motions (cropped to ``max_frames``, de-normalised
        when this generator returns ``raw`` features)."""
        codes = [torch.as_tensor(list(c), dtype=torch.long) for c in code_lists]
        decoded = self.vq.decode(codes)
        motions = [m[: self.max_frames].float().cpu().numpy() for m in decoded.unpad()]
        if self.normalization == "raw":
            mean, std = self.vq_stats  # type: ignore[misc]
            motions = [(m * std + mean).astype(np.float32) for m in motions]
        return motions

    def _info(self, result: MotionResult) -> dict[str, Any]:
        info: dict[str, Any] = {
            "num_gens": result.num_gens,
            "codes": len(result.codes),
            "parse_fallback": result.fallback is not None,
            "fallback_reason": result.fallback,
            "input_text": result.prompt,
            "best_beam_text": result.text,
            "extracted_motion": list(result.codes),
        }
        if self.task in REFINEMENT_LOOP_TASKS:
            info.update(rounds=result.rounds, stopped=result.stopped)
        if self.keep_trace and result.trace:
            info["trace"] = result.trace
        return info

    def _batch(self, results: Sequence[MotionResult]) -> GeneratedBatch:
        motions = self.decode([r.codes for r in results])
        return GeneratedBatch(motions, self.normalization, [self._info(r) for r in results])

    def generate(self, captions: Sequence[str], lengths: np.ndarray | None = None) -> GeneratedBatch:
        results = self.engine.run(
            self.task, list(captions), max_refine_round=self.max_refine_round, instructor=self.instructor
        )
        return self._batch(results)


class RandomFlipGenerator(LLMMotionGenerator):
    """``unified_mogen_cot_v3_random_flip`` / ``pure_random_flip``: each item gets the motion of a
    uniformly drawn test item (possibly itself, as upstream), VQ-encoded, as the foreign motion.

    The partner of item ``i`` in repeat ``r`` comes from ``default_rng([seed, r, i])`` (independent of
    batching and sharding); its crop is the partner's crop of that repeat.
    """

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.task not in NEGATIVE_MOTION_TASKS:
            raise ValueError(f"RandomFlipGenerator serves {sorted(NEGATIVE_MOTION_TASKS)}, not {self.task!r}")
        self.seed = seed
        self._features: dict[str, np.ndarray] = {}

    def _vq_input(self, batch: TestBatch, partners: np.ndarray) -> list[np.ndarray]:
        """The partners' crops in the VQ's input normalisation, read from the dataset (full feature width)."""
        repeat = batch.repeat
        test_set = repeat.test_set
        motions = []
        for item in partners.tolist():
            clip = test_set.clips[item]
            if clip.motion_id not in self._features:
                self._features[clip.motion_id] = test_set.dataset.load_features(clip.motion_id)
            start = clip.start + int(repeat.starts[item])
            raw = self._features[clip.motion_id][start : start + int(repeat.lengths[item])]
            if self.vq_stats is not None:
                mean, std = self.vq_stats
            else:
                mean, std = test_set.space.mean, test_set.space.std
            motions.append(((raw - mean) / std).astype(np.float32))
        return motions

    def generate_items(self, batch: TestBatch) -> GeneratedBatch:
        size = len(batch.repeat.test_set)
        partners = np.array(
            [
                np.random.default_rng([self.seed, batch.repeat.index, int(i)]).integers(size)
                for i in batch.indices
            ]
        )
        codes = [c.tolist() for c in self.vq.encode(self._vq_input(batch, partners))]
        results = self.engine.run(
            self.task, list(batch.captions), max_refine_round=self.max_refine_round, negative_codes=codes
        )
        generated = self._batch(results)
        for info, partner in zip(generated.info or [], partners.tolist(), strict=True):
            info["partner"] = batch.repeat.test_set.names[partner]
        return generated

    def generate(self, captions: Sequence[str], lengths: np.ndarray | None = None) -> GeneratedBatch:
        raise TypeError(f"{self.task} needs the test items (foreign motions); run it through run_protocol")


def make_llm_generator(
    engine: MotionLLMEngine, vq: MotionVQVAE, task: str, **kwargs: Any
) -> LLMMotionGenerator:
    """The generator class serving ``task`` (random-flip tasks read the test items)."""
    check_task(task, MOTION_TASKS)
    if task in NEGATIVE_MOTION_TASKS:
        return RandomFlipGenerator(engine, vq, task, **kwargs)
    kwargs.pop("seed", None)
    return LLMMotionGenerator(engine, vq, task, **kwargs)


# ----------------------------------------------------------------------------------------------------
# Loading what the evaluation drivers need

EVALUATORS = ("guo", "mardm")


def load_vq_with_statistics(
    vq_ckpt: str | Path, meta_dir: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[MotionVQVAE, Stats | None, str]:
    """``(vq, stats, source)``: the VQ-VAE and the (mean, std) it was trained with — stored in our
    checkpoints, else read from ``meta_dir``, else None (the released VQ: the evaluator's statistics)."""
    from evaluators.assets import load_stats
    from models.vqvae import load_vqvae
    from models.vqvae.training import stored_normalization

    vq = load_vqvae(vq_ckpt, map_location=device)
    stored = stored_normalization(vq_ckpt)
    if stored is not None:
        return vq, (stored.mean, stored.std), f"checkpoint ({stored.source})"
    if meta_dir:
        return vq, load_stats(meta_dir, vq.config.input_dim), str(meta_dir)
    return vq, None, "evaluator statistics (released VQ)"


def _first_file(candidates: Sequence[Path], what: str) -> Path:
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DataError(f"no {what}; looked for " + ", ".join(str(c) for c in candidates))
    return found


def load_evaluator_bundle(
    kind: str,
    evaluator_dir: str | Path,
    dataset: str = "humanml3d",
    *,
    meta_dir: str | Path | None = None,
    glove_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[Any, Any, np.ndarray, np.ndarray, dict[str, str]]:
    """``(evaluator, word_vectorizer, mean, std, sources)`` of a ``guo`` or ``mardm`` evaluator.

    ``guo``: a flat folder with ``finest.tar`` (+ ``meta/{mean,std}.npy``, ``glove/``), Guo's
    ``checkpoints/<dataname>`` folder (``Comp_v6_KLD005/opt.txt``...), or the working root holding
    ``checkpoints/`` and ``glove/`` (``evaluators.assets.EvaluatorAssets``). ``mardm``: a folder with
    ``finest.tar`` or ``text_mot_match/model/finest.tar`` and MARDM's ``eval_mean.npy``/``eval_std.npy``.
    ``meta_dir``/``glove_dir`` override where statistics / word vectors are read.
    """
    from evaluators.assets import EvaluatorAssets, load_stats
    from evaluators.mardm import MARDMEvaluator, MARDMNormalizer
    from evaluators.t2m_extractor import T2MEvaluator
    from evaluators.word_vectors import WordVectorizer

    if kind not in EVALUATORS:
        raise ValueError(f"evaluator must be one of {EVALUATORS}, got {kind!r}")
    spec = get_dataset_spec(dataset)
    folder = Path(evaluator_dir)
    meta = Path(meta_dir) if meta_dir else None
    glove = Path(glove_dir) if glove_dir else folder / "glove"
    if kind == "mardm":
        weights = _first_file(
            [
                folder / "finest.tar",
                folder / "text_mot_match" / "model" / "finest.tar",
                folder / "checkpoints" / spec.dataname / "text_mot_match" / "model" / "finest.tar",
            ],
            "MARDM evaluator weights",
        )
        evaluator = MARDMEvaluator.load(weights, dataset=spec.dataname, device=device)
        normalizer = MARDMNormalizer.load(meta or folder)
        sources = {"weights": str(weights), "stats": str(meta or folder), "word_vectors": str(glove)}
        return evaluator, WordVectorizer.load_our_vab(glove), normalizer.mean, normalizer.std, sources
    if (folder / "finest.tar").is_file():
        evaluator = T2MEvaluator.load(folder / "finest.tar", device=device)
        stats_dir = meta or (folder / "meta" if (folder / "meta" / "mean.npy").is_file() else folder)
        mean, std = load_stats(stats_dir, evaluator.config.dim_pose)
        sources = {"weights": str(folder / "finest.tar"), "stats": str(stats_dir), "word_vectors": str(glove)}
        return evaluator, WordVectorizer.load_our_vab(glove), mean, std, sources
    if (folder / "Comp_v6_KLD005" / "opt.txt").is_file() or (folder / "text_mot_match").is_dir():
        folder = folder.parent.parent  # Guo's checkpoints/<dataname> -> the working root
    assets = EvaluatorAssets.load(folder, spec, meta_dir=meta, glove_dir=glove_dir or None, device=device)
    return assets.evaluator, assets.word_vectorizer, assets.mean, assets.std, assets.sources

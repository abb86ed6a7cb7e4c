"""The text-to-motion evaluation protocol: test-set sampling, the repeat loop, aggregation, the report.

Semantics of upstream's ``Text2MotionDataset`` + ``test_unified.py`` (spec §1.4–1.8, §4), per repeat:

1. every test item (whole clips and sub-clips, lengths in ``[min_len, 200)``) gets a random caption, a
   length-rounding coin (single, single, double: ``m = (L // 4 - [double]) * 4``), a random crop of ``m``
   frames, evaluator normalisation and zero padding to 196 frames (:meth:`T2MTestSet.sample`);
2. the items are shuffled; the generator makes one motion per item; text, real and generated motions
   are embedded (the text once — upstream embeds it twice);
3. R-precision top-1/2/3 and MM-Dist over pools of 32 consecutive items (a trailing partial pool is left
   out of R-precision only), FID between the real and generated embeddings of this repeat, Diversity of
   both, optionally MultiModality;
4. over repeats: the mean, upstream's ``± std`` (population) and the 95% confidence interval
   ``1.96 · std / sqrt(repeats)`` that papers report.

Fixes over upstream (spec §8): runs with or without ``torch.distributed``; with a process group every
item is generated exactly once per repeat (contiguous shards of the shuffled order, gathered back in
order — no ``DistributedSampler`` duplicates, results independent of the number of processes); the
sampling stream of repeat ``r`` is ``default_rng([seed, r, ·])`` so repeats differ and are reproducible;
too few items, too short motions, empty captions and mismatched evaluators are clear errors; the
aggregate is saved (JSON + markdown) with both intervals.

With ``reference_row=True`` each repeat also embeds a second, independently cropped copy of the ground
truth, giving the "Real motion" row's FID (the ~0.002 of Guo et al.'s table); its other entries are the
``*_real`` metrics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_engine.datasets.reader import Clip, MotionDataset
from evaluators.generators import (
    EvaluatorSpace,
    GeneratedBatch,
    MotionGenerator,
    prepare_generated,
)
from evaluators.metrics import FID_METHODS, default_diversity_times, fid, multimodality, upstream_eval_results
from evaluators.word_vectors import DEFAULT_MAX_TEXT_LEN, WordVectorizer
from models.common.errors import DataError
from models.common.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

CI95_Z = 1.96
RESULTS_FILE = "eval_results.json"
MARKDOWN_FILE = "eval_results.md"
SAMPLES_FILE = "samples_repeat0.jsonl"

# Random streams of one repeat: default_rng([seed, repeat, stream]).
_STREAM_SAMPLE, _STREAM_METRICS, _STREAM_MM_TEXTS, _STREAM_REFERENCE = 0, 1, 2, 3


@dataclass
class ProtocolSettings:
    """Settings of one evaluation run (upstream: 20 repeats, pools of 32, diversity 300/100)."""

    repeats: int = 20
    seed: int = 42
    batch_size: int = 32  # captions per generator call; does not affect pooling
    pool_size: int = 32
    diversity_times: int | None = None  # None -> 300 if N > 300 else 100
    mm_num_texts: int = 0  # > 0: MultiModality over that many texts x mm_repeats generations
    mm_repeats: int = 30
    mm_times: int = 10
    unit_length: int = 4
    max_frames: int = 196
    fid_method: str = "sqrtm"  # "sqrtm" as upstream, or "eigen": same value, ~3x faster at 512-d

    def __post_init__(self) -> None:
        positive = (
            "repeats",
            "batch_size",
            "pool_size",
            "mm_repeats",
            "mm_times",
            "unit_length",
            "max_frames",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"ProtocolSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.pool_size < 2:
            raise ValueError(f"pool_size must be >= 2, got {self.pool_size}")
        if self.diversity_times is not None and self.diversity_times < 1:
            raise ValueError(f"diversity_times must be >= 1 or None, got {self.diversity_times}")
        if self.mm_num_texts < 0:
            raise ValueError(f"mm_num_texts must be >= 0, got {self.mm_num_texts}")
        if self.mm_num_texts and self.mm_repeats <= self.mm_times:
            raise ValueError(
                f"MultiModality needs mm_repeats ({self.mm_repeats}) > mm_times ({self.mm_times})"
            )
        if self.max_frames < self.unit_length:
            raise ValueError(f"max_frames ({self.max_frames}) must be >= unit_length ({self.unit_length})")
        if self.fid_method not in FID_METHODS:
            raise ValueError(f"fid_method must be one of {FID_METHODS}, got {self.fid_method!r}")

    def diversity_draws(self, num_items: int) -> int:
        return default_diversity_times(num_items) if self.diversity_times is None else self.diversity_times


# ---------------------------------------------------------------------------------------------- test set
@dataclass(eq=False)
class TestBatch:
    """Items ``indices`` of one repeat, ready for the evaluator and for generators.

    ``motions [B, max_frames, D]`` are evaluator-normalised and zero padded after ``lengths`` (frames).
    """

    indices: np.ndarray
    names: list[str]
    captions: list[str]
    tokens: list[tuple[str, ...]]
    word_embs: np.ndarray
    pos_ohot: np.ndarray
    sent_lens: np.ndarray
    motions: np.ndarray
    lengths: np.ndarray
    repeat: TestRepeat


@dataclass(eq=False)
class TestRepeat:
    """One repeat's random draws: pooling ``order``, caption per item, rounded length and crop start."""

    test_set: T2MTestSet
    index: int
    order: np.ndarray
    caption_choice: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray

    @property
    def captions(self) -> list[str]:
        return [self.test_set.captions_of(i)[c].text for i, c in enumerate(self.caption_choice)]

    @property
    def tokens(self) -> list[tuple[str, ...]]:
        return [self.test_set.captions_of(i)[c].tokens for i, c in enumerate(self.caption_choice)]

    @property
    def names(self) -> list[str]:
        return self.test_set.names

    def motions(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(motions [B, max_frames, D], lengths [B])`` of items ``indices``."""
        indices = np.asarray(indices, np.int64)
        lengths = self.lengths[indices]
        return self.test_set.frames(indices, self.starts[indices], lengths), lengths

    def batch(self, indices: Sequence[int] | np.ndarray) -> TestBatch:
        """Everything about items ``indices`` (in that order)."""
        indices = np.asarray(indices, np.int64)
        chosen = [self.test_set.captions_of(int(i))[int(self.caption_choice[i])] for i in indices]
        tokens = [c.tokens for c in chosen]
        text = self.test_set.word_vectorizer.batch(tokens, self.test_set.max_text_len)
        motions, lengths = self.motions(indices)
        return TestBatch(
            indices=indices,
            names=[self.test_set.names[i] for i in indices],
            captions=[c.text for c in chosen],
            tokens=tokens,
            word_embs=text.word_embs,
            pos_ohot=text.pos_ohot,
            sent_lens=text.sent_lens,
            motions=motions,
            lengths=lengths,
            repeat=self,
        )

    def resampled(self, rng: np.random.Generator) -> TestRepeat:
        """Same order and captions, independently drawn length coins and crops (the reference FID)."""
        lengths, starts = self.test_set.draw_crops(rng)
        return dataclasses.replace(self, lengths=lengths, starts=starts)


class T2MTestSet:
    """Upstream ``Text2MotionDataset`` semantics over ``MotionDataset.clips(split)``.

    Features are read once (``preload=True``: all clips of the split normalised in one flat array, so a
    batch is one vectorised gather) and normalised with the *evaluator's* statistics ``eval_mean`` /
    ``eval_std`` (spec §2.6; an evaluator over the first ``k`` channels, e.g. MARDM's 67, takes those).
    Captions are checked at construction (an empty token list is a ``DataError`` naming the texts file
    and line), and words missing from the vocabulary are counted in :attr:`unknown_words`.
    """

    def __init__(
        self,
        dataset: MotionDataset,
        split: str,
        word_vectorizer: WordVectorizer,
        eval_mean: np.ndarray,
        eval_std: np.ndarray,
        *,
        unit_length: int = 4,
        max_frames: int = 196,
        min_len: int | None = None,
        max_len: int | None = None,
        preload: bool = True,
        max_text_len: int = DEFAULT_MAX_TEXT_LEN,
    ) -> None:
        self.dataset = dataset
        self.split = split
        self.word_vectorizer = word_vectorizer
        self.space = EvaluatorSpace(eval_mean, eval_std)
        self.unit_length = unit_length
        self.max_frames = max_frames
        self.max_text_len = max_text_len
        if self.space.dim > dataset.spec.feature_dim:
            raise DataError(
                f"evaluator statistics are {self.space.dim}-d, the dataset's features "
                f"{dataset.spec.feature_dim}-d",
                path=dataset.root,
            )
        self.index = dataset.clips(split, min_len=min_len, max_len=max_len)
        self.clips: list[Clip] = list(self.index.clips)
        self.names = [clip.name for clip in self.clips]
        self.clip_lengths = np.array([clip.length for clip in self.clips], np.int64)
        too_short = [c.name for c in self.clips if c.length < 2 * unit_length]
        if too_short:
            raise DataError(
                f"{len(too_short)} item(s) shorter than {2 * unit_length} frames (two units), "
                f"e.g. {too_short[:3]}; raise min_len",
                path=dataset.split_path(split),
            )
        self.unknown_words, self.word_lookups = self._check_captions()
        self._frames: np.ndarray | None = None
        self._offsets: np.ndarray | None = None
        if preload:
            self._preload()

    @classmethod
    def from_assets(cls, dataset: MotionDataset, split: str, assets: Any, **kwargs: Any) -> T2MTestSet:
        """Build with an :class:`~evaluators.assets.EvaluatorAssets`' word vectors and statistics."""
        kwargs.setdefault("max_text_len", assets.evaluator.config.max_text_len)
        return cls(dataset, split, assets.word_vectorizer, assets.mean, assets.std, **kwargs)

    def __len__(self) -> int:
        return len(self.clips)

    def __repr__(self) -> str:
        return f"T2MTestSet({self.dataset!r}, split={self.split!r}, items={len(self)})"

    def captions_of(self, item: int) -> tuple:
        return self.clips[item].captions

    # ---- construction helpers -------------------------------------------------------------------
    def _check_captions(self) -> tuple[Counter[str], int]:
        vectorizer = self.word_vectorizer
        before, lookups_before = Counter(vectorizer.unknown_counts), vectorizer.num_lookups
        for clip in self.clips:
            for caption in clip.captions:
                try:
                    vectorizer.caption_arrays(caption.tokens, self.max_text_len)
                except DataError as err:
                    raise DataError(
                        f"caption {caption.text!r}: {err.message}",
                        path=self.dataset.texts_path(clip.motion_id),
                        line=caption.line,
                        field="tokens",
                    ) from err
        unknown = Counter(vectorizer.unknown_counts)
        unknown.subtract(before)
        unknown = +unknown
        lookups = vectorizer.num_lookups - lookups_before
        if unknown:
            logger.warning(
                "%s split %r: %d of %d caption words not in the vocabulary (%s)",
                self.dataset.root,
                self.split,
                sum(unknown.values()),
                lookups,
                ", ".join(f"{w}×{n}" for w, n in unknown.most_common(8)),
            )
        return unknown, lookups

    def _load_normalised(self, motion_id: str) -> np.ndarray:
        return self.space.normalize(self.dataset.load_features(motion_id))

    def _preload(self) -> None:
        first_row: dict[str, int] = {}
        arrays, total = [], 0
        for clip in self.clips:
            if clip.motion_id not in first_row:
                array = self._load_normalised(clip.motion_id)
                first_row[clip.motion_id] = total
                arrays.append(array)
                total += len(array)
        self._frames = np.concatenate(arrays) if arrays else np.zeros((0, self.space.dim), np.float32)
        self._offsets = np.array([first_row[c.motion_id] + c.start for c in self.clips], np.int64)

    # ---- sampling ---------------------------------------------------------------------------------
    def draw_crops(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per item: the rounded length (single/single/double coin) and a uniform crop start."""
        n, unit = len(self), self.unit_length
        if unit < 10:  # upstream: the double coin only for small units
            double = rng.integers(0, 3, n) == 2
        else:
            double = np.zeros(n, bool)
        lengths = (self.clip_lengths // unit - double) * unit
        lengths = np.minimum(lengths, self.max_frames // unit * unit)
        starts = np.floor(rng.random(n) * (self.clip_lengths - lengths + 1)).astype(np.int64)
        return lengths.astype(np.int64), starts

    def sample(self, rng: np.random.Generator, index: int = 0) -> TestRepeat:
        """One repeat: shuffled order, a random caption per item, random length rounding and crop."""
        n = len(self)
        order = rng.permutation(n)
        num_captions = np.array([len(c.captions) for c in self.clips], np.int64)
        caption_choice = np.floor(rng.random(n) * num_captions).astype(np.int64)
        lengths, starts = self.draw_crops(rng)
        return TestRepeat(self, index, order, caption_choice, lengths, starts)

    def frames(self, indices: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """``[B, max_frames, D]``: frames ``[start, start + length)`` of each item, zero padded."""
        steps = np.arange(self.max_frames)
        valid = steps[None, :] < lengths[:, None]  # (B, max_frames)
        if self._frames is not None:
            rows = np.where(valid, self._offsets[indices, None] + starts[:, None] + steps[None, :], 0)
            out = self._frames[rows]
            out[~valid] = 0.0
            return out
        out = np.zeros((len(indices), self.max_frames, self.space.dim), np.float32)
        for row, (item, start, length) in enumerate(zip(indices, starts, lengths, strict=True)):
            clip = self.clips[item]
            motion = self._load_normalised(clip.motion_id)[clip.start : clip.end]
            out[row, :length] = motion[start : start + length]
        return out

    def counts(self, pool_size: int = 32) -> dict[str, Any]:
        """Item, pool and skip counts plus unknown-word statistics, for the report."""
        n = len(self)
        return {
            "split": self.split,
            "items": n,
            "pools": n // pool_size,
            "items_outside_pools": n % pool_size,
            "clips_skipped": {k: v for k, v in self.index.skipped.items() if v},
            "caption_words": self.word_lookups,
            "unknown_words": sum(self.unknown_words.values()),
            "unknown_word_types": dict(self.unknown_words.most_common(20)),
        }


def sample_repeat(test_set: T2MTestSet, settings: ProtocolSettings, repeat: int) -> TestRepeat:
    """Repeat ``repeat``'s draws, the same in every process."""
    return test_set.sample(np.random.default_rng([settings.seed, repeat, _STREAM_SAMPLE]), index=repeat)


# ---------------------------------------------------------------------------------------------- sharding
def shard_positions(num_items: int, rank: int, world_size: int) -> np.ndarray:
    """Positions ``0..num_items-1`` of process ``rank``: contiguous, sizes differing by at most one."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return np.array_split(np.arange(num_items), world_size)[rank]


class InfoStats:
    """Sums over the generators' per-sample ``info``: booleans counted, numbers averaged."""

    def __init__(self) -> None:
        self.present: Counter[str] = Counter()
        self.sums: dict[str, float] = {}
        self.booleans: set[str] = set()

    def add(self, infos: Sequence[dict[str, Any]] | None) -> None:
        for info in infos or ():
            for key, value in info.items():
                if isinstance(value, (bool, np.bool_)):
                    self.booleans.add(key)
                elif not isinstance(value, (int, float, np.integer, np.floating)):
                    continue
                self.present[key] += 1
                self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def merge(self, other: InfoStats) -> None:
        self.present.update(other.present)
        self.booleans |= other.booleans
        for key, value in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def to_dict(self) -> dict[str, dict[str, float]]:
        out = {}
        for key in sorted(self.present):
            count = self.present[key]
            if key in self.booleans:
                out[key] = {"count": count, "true": int(self.sums[key]), "rate": self.sums[key] / count}
            else:
                out[key] = {"count": count, "mean": self.sums[key] / count}
        return out


@dataclass
class ShardEmbeddings:
    """Embeddings of the items at ``positions`` of a repeat's order (one process's share, or all)."""

    positions: np.ndarray
    text: np.ndarray
    real: np.ndarray
    generated: np.ndarray
    reference: np.ndarray | None = None
    generated_frames: int = 0
    cropped: int = 0
    info: InfoStats = field(default_factory=InfoStats)
    samples: list[dict[str, Any]] = field(default_factory=list)
    seconds_generation: float = 0.0
    seconds_evaluator: float = 0.0


def _embeddings(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _generate(generator: Any, batch: TestBatch) -> GeneratedBatch:
    if hasattr(generator, "generate_items"):
        return generator.generate_items(batch)
    return generator.generate(list(batch.captions), batch.lengths.copy())


def _chunks(positions: np.ndarray, size: int) -> list[np.ndarray]:
    return [positions[i : i + size] for i in range(0, len(positions), size)]


def embed_shard(
    generator: MotionGenerator | Any,
    repeat: TestRepeat,
    evaluator: Any,
    settings: ProtocolSettings,
    positions: np.ndarray,
    *,
    reference_repeat: TestRepeat | None = None,
    keep_samples: bool = False,
    progress: bool = False,
) -> ShardEmbeddings:
    """Generate and embed the items at ``positions`` of ``repeat.order``, ``batch_size`` at a time."""
    test_set = repeat.test_set
    parts: dict[str, list[np.ndarray]] = {"text": [], "real": [], "generated": [], "reference": []}
    empty = np.zeros((0, 0), np.float32)
    out = ShardEmbeddings(positions, text=empty, real=empty, generated=empty)
    chunks = _chunks(positions, settings.batch_size)
    for chunk in tqdm(
        chunks,
        desc=f"repeat {repeat.index + 1}/{settings.repeats}",
        unit="batch",
        disable=not progress,
        leave=False,
    ):
        batch = repeat.batch(repeat.order[chunk])
        started = time.perf_counter()
        generated = _generate(generator, batch)
        out.seconds_generation += time.perf_counter() - started
        prepared = prepare_generated(
            generated,
            test_set.space,
            batch.names,
            batch.captions,
            max_frames=settings.max_frames,
            unit_length=settings.unit_length,
        )
        started = time.perf_counter()
        parts["text"].append(
            _embeddings(evaluator.text_embeddings(batch.word_embs, batch.pos_ohot, batch.sent_lens))
        )
        parts["real"].append(_embeddings(evaluator.motion_embeddings(batch.motions, batch.lengths)))
        if np.array_equal(prepared.lengths, batch.lengths) and np.array_equal(
            prepared.motions, batch.motions
        ):
            parts["generated"].append(parts["real"][-1])  # the ground truth itself: same embeddings
        else:
            parts["generated"].append(
                _embeddings(evaluator.motion_embeddings(prepared.motions, prepared.lengths))
            )
        if reference_repeat is not None:
            parts["reference"].append(
                _embeddings(evaluator.motion_embeddings(*reference_repeat.motions(batch.indices)))
            )
        out.seconds_evaluator += time.perf_counter() - started
        out.generated_frames += int(prepared.lengths.sum())
        out.cropped += prepared.cropped
        out.info.add(generated.info)
        if keep_samples:
            for row in range(len(chunk)):
                out.samples.append(
                    {
                        "name": batch.names[row],
                        "caption": batch.captions[row],
                        "gt_frames": int(batch.lengths[row]),
                        "generated_frames": len(generated.motions[row]),
                        **({"info": generated.info[row]} if generated.info else {}),
                    }
                )
    for key in ("text", "real", "generated"):
        setattr(out, key, np.concatenate(parts[key]) if parts[key] else np.zeros((0, 0), np.float32))
    out.reference = np.concatenate(parts["reference"]) if parts["reference"] else None
    return out


def assemble_shards(shards: Sequence[ShardEmbeddings], num_items: int) -> ShardEmbeddings:
    """Concatenate processes' shards back into position order; every position must occur exactly once."""
    positions = np.concatenate([s.positions for s in shards])
    if not np.array_equal(np.sort(positions), np.arange(num_items)):
        raise RuntimeError(
            f"shards cover {len(positions)} positions, expected each of 0..{num_items - 1} once"
        )
    order = np.argsort(positions, kind="stable")
    nonempty = [s for s in shards if len(s.positions)]

    def stack(name: str) -> np.ndarray:
        return np.concatenate([getattr(s, name) for s in nonempty])[order]

    merged = ShardEmbeddings(
        positions=np.arange(num_items),
        text=stack("text"),
        real=stack("real"),
        generated=stack("generated"),
        reference=stack("reference") if nonempty and nonempty[0].reference is not None else None,
    )
    for shard in shards:
        merged.generated_frames += shard.generated_frames
        merged.cropped += shard.cropped
        merged.info.merge(shard.info)
        merged.samples.extend(shard.samples)
        merged.seconds_generation = max(merged.seconds_generation, shard.seconds_generation)
        merged.seconds_evaluator = max(merged.seconds_evaluator, shard.seconds_evaluator)
    return merged


def multimodality_items(test_set: T2MTestSet, settings: ProtocolSettings, repeat: int) -> np.ndarray:
    """The ``mm_num_texts`` items of repeat ``repeat`` used for MultiModality (same in every process)."""
    rng = np.random.default_rng([settings.seed, repeat, _STREAM_MM_TEXTS])
    return np.sort(rng.choice(len(test_set), settings.mm_num_texts, replace=False))


def embed_multimodality_shard(
    generator: Any,
    repeat: TestRepeat,
    evaluator: Any,
    settings: ProtocolSettings,
    items: np.ndarray,
    positions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of jobs ``positions`` of the flat (text-major) list ``items x mm_repeats``."""
    jobs = np.repeat(items, settings.mm_repeats)
    parts = []
    for chunk in _chunks(positions, settings.batch_size):
        batch = repeat.batch(jobs[chunk])
        generated = _generate(generator, batch)
        prepared = prepare_generated(
            generated,
            repeat.test_set.space,
            batch.names,
            batch.captions,
            max_frames=settings.max_frames,
            unit_length=settings.unit_length,
        )
        parts.append(_embeddings(evaluator.motion_embeddings(prepared.motions, prepared.lengths)))
    return positions, (np.concatenate(parts) if parts else np.zeros((0, 0), np.float32))


def repeat_metrics(
    embeddings: ShardEmbeddings,
    settings: ProtocolSettings,
    repeat: int,
    mm_embeddings: np.ndarray | None = None,
) -> dict[str, float]:
    """Upstream's 11 metrics of one repeat (+ ``eval_fid_real``, ``eval_multimodality`` when available)."""
    rng = np.random.default_rng([settings.seed, repeat, _STREAM_METRICS])
    results = upstream_eval_results(
        embeddings.text,
        embeddings.real,
        embeddings.generated,
        pool_size=settings.pool_size,
        diversity_times=settings.diversity_draws(len(embeddings.real)),
        rng=rng,
        fid_method=settings.fid_method,
    )
    if embeddings.reference is not None:
        results["eval_fid_real"] = fid(embeddings.real, embeddings.reference, method=settings.fid_method)
    if mm_embeddings is not None:
        results["eval_multimodality"] = multimodality(mm_embeddings, settings.mm_times, rng)
    return {key: float(value) for key, value in results.items()}


# ---------------------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class _Processes:
    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> _Processes:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


# ---------------------------------------------------------------------------------------------- report
# (column, real/reference key, generated key); lower is better for FID and MM-Dist, Diversity should match.
TABLE_COLUMNS: tuple[tuple[str, str | None, str], ...] = (
    ("R-Precision Top-1 ↑", "eval_R_precision_real_top1", "eval_R_precision_top1"),
    ("Top-2 ↑", "eval_R_precision_real_top2", "eval_R_precision_top2"),
    ("Top-3 ↑", "eval_R_precision_real_top3", "eval_R_precision_top3"),
    ("FID ↓", "eval_fid_real", "eval_fid"),
    ("MM-Dist ↓", "eval_matching_score_real", "eval_matching_score_pred"),
    ("Diversity →", "eval_diversity_real", "eval_diversity"),
    ("MModality ↑", None, "eval_multimodality"),
)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """``mean``, population ``std`` (upstream's ``±``) and ``ci95 = 1.96 · std / sqrt(n)``."""
    array = np.asarray(values, np.float64)
    if array.size == 0:
        raise ValueError("no values to summarize")
    std = float(array.std())
    return {"mean": float(array.mean()), "std": std, "ci95": CI95_Z * std / math.sqrt(array.size)}


def format_interval(mean: float, spread: float, digits: int = 3) -> str:
    """Paper style: ``0.522±.003``, ``9.503±.065``, ``12.345±1.234`` (no ``-0.000``)."""
    head = f"{mean:.{digits}f}"
    if float(head) == 0:
        head = f"{0:.{digits}f}"
    tail = f"{abs(spread):.{digits}f}"
    if tail.startswith("0."):
        tail = tail[1:]
    return f"{head}±{tail}"


@dataclass
class EvalReport:
    """Per-repeat metrics (upstream key names), counts, generator statistics and the aggregate."""

    per_repeat: list[dict[str, float]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    generator_stats: dict[str, Any] = field(default_factory=dict)
    label: str = "generated"

    def summary(self) -> dict[str, dict[str, float]]:
        """``{metric: {"mean", "std", "ci95"}}`` over the repeats done so far."""
        if not self.per_repeat:
            return {}
        keys = [k for k in self.per_repeat[0] if all(k in r for r in self.per_repeat)]
        return {key: summarize([r[key] for r in self.per_repeat]) for key in keys}

    def reference_row(self) -> dict[str, dict[str, float]]:
        """The "Real motion" row: ``{column: summary}`` of the ``*_real`` metrics present."""
        summary = self.summary()
        return {col: summary[real] for col, real, _ in TABLE_COLUMNS if real is not None and real in summary}

    def generated_row(self) -> dict[str, dict[str, float]]:
        summary = self.summary()
        return {col: summary[gen] for col, _, gen in TABLE_COLUMNS if gen in summary}

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "settings": self.settings,
            "counts": self.counts,
            "generator_stats": self.generator_stats,
            "summary": self.summary(),
            "per_repeat": {f"Repeat-{i}": r for i, r in enumerate(self.per_repeat)},
        }

    def to_json(self, path: str | Path) -> Path:
        """Every repeat plus the aggregate (mean, std, 95% CI), written atomically."""
        return atomic_write_json(self.to_dict(), path)

    @classmethod
    def from_json(cls, path: str | Path) -> EvalReport:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        repeats = data.get("per_repeat", {})
        return cls(
            per_repeat=[repeats[k] for k in sorted(repeats, key=lambda k: int(k.split("-")[1]))],
            counts=data.get("counts", {}),
            settings=data.get("settings", {}),
            generator_stats=data.get("generator_stats", {}),
            label=data.get("label", "generated"),
        )

    def to_markdown(self, label: str | None = None, interval: str = "ci95", reference: bool = True) -> str:
        """A paper-style table (``mean±interval``; ``interval`` is ``ci95`` or upstream's ``std``)."""
        if interval not in ("ci95", "std"):
            raise ValueError(f"interval must be 'ci95' or 'std', got {interval!r}")
        summary = self.summary()
        columns = [c for c in TABLE_COLUMNS if c[2] in summary or (c[1] is not None and c[1] in summary)]
        rows = []
        if reference:
            rows.append(("Real motion", [c[1] for c in columns]))
        rows.append((label or self.label, [c[2] for c in columns]))
        lines = ["| Method | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---|" * len(columns)]
        for name, keys in rows:
            cells = [
                format_interval(summary[k]["mean"], summary[k][interval]) if k in summary else "-"
                for k in keys
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        repeats = len(self.per_repeat)
        what = "95% confidence interval 1.96·σ/√R" if interval == "ci95" else "population std σ (upstream)"
        lines.append("")
        lines.append(
            f"{repeats} repeat(s), ± = {what}; {self.counts.get('items', '?')} test items, "
            f"{self.counts.get('pools', '?')} R-precision pools of {self.settings.get('pool_size', 32)}."
        )
        return "\n".join(lines)

    def format_upstream(self) -> str:
        """Upstream's console block: ``- metric: mean ± std`` plus the CI."""
        lines = ["Avg Results"]
        for key, value in self.summary().items():
            lines.append(f"- {key}: {value['mean']:.4f} ± {value['std']:.4f} (95% CI ± {value['ci95']:.4f})")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- driver
def _evaluator_config(evaluator: Any) -> Any:
    return getattr(evaluator, "config", None) or getattr(getattr(evaluator, "guo", None), "config", None)


def check_protocol_inputs(test_set: T2MTestSet, evaluator: Any, settings: ProtocolSettings) -> None:
    """Fail before any generation when the run cannot produce valid numbers."""
    n = len(test_set)
    where = test_set.dataset.split_path(test_set.split)
    if n < settings.pool_size:
        raise DataError(
            f"{n} evaluation item(s) in split {test_set.split!r} ({test_set.index.summary()}); R-precision "
            f"needs at least one pool of {settings.pool_size}",
            path=where,
        )
    draws = settings.diversity_draws(n)
    if n <= draws:
        raise DataError(
            f"Diversity draws {draws} pairs without replacement and needs more than {draws} items, "
            f"the split has {n}; set diversity_times below {n}",
            path=where,
        )
    if settings.mm_num_texts > n:
        raise DataError(f"mm_num_texts={settings.mm_num_texts} exceeds the {n} test items", path=where)
    if (test_set.unit_length, test_set.max_frames) != (settings.unit_length, settings.max_frames):
        raise ValueError(
            f"test set uses unit_length/max_frames {test_set.unit_length}/{test_set.max_frames}, "
            f"settings {settings.unit_length}/{settings.max_frames}"
        )
    config = _evaluator_config(evaluator)
    if config is None:
        return
    problems = []
    if config.dim_pose != test_set.space.dim:
        problems.append(
            f"evaluator expects {config.dim_pose}-d motions, the statistics are {test_set.space.dim}-d"
        )
    if config.dim_word != test_set.word_vectorizer.dim:
        problems.append(
            f"evaluator expects {config.dim_word}-d word vectors, got {test_set.word_vectorizer.dim}-d"
        )
    if config.unit_length != settings.unit_length:
        problems.append(f"evaluator unit_length {config.unit_length} != settings {settings.unit_length}")
    if problems:
        raise DataError("evaluator does not fit the test set: " + "; ".join(problems))


def run_protocol(
    generator: MotionGenerator | Any,
    test_set: T2MTestSet,
    evaluator: Any,
    settings: ProtocolSettings | None = None,
    *,
    reference_row: bool = True,
    progress: bool = True,
    log_dir: str | Path | None = None,
    label: str = "generated",
) -> EvalReport:
    """Run ``settings.repeats`` evaluation repeats; every process returns the same report.

    ``evaluator`` needs ``text_embeddings(word_embs, pos_ohot, cap_lens)`` and ``motion_embeddings(motions,
    m_lens)`` (``T2MEvaluator``, ``MARDMEvaluator``) and must be in eval mode. With ``log_dir`` the main
    process rewrites ``eval_results.json`` after every repeat, writes ``eval_results.md`` at the end and the
    first repeat's per-sample records (caption, lengths, generator info) to ``samples_repeat0.jsonl``.
    """
    settings = settings or ProtocolSettings()
    procs = _Processes.current()
    check_protocol_inputs(test_set, evaluator, settings)
    n = len(test_set)
    log_path = Path(log_dir) if log_dir is not None else None
    report = EvalReport(
        counts=test_set.counts(settings.pool_size), settings=dataclasses.asdict(settings), label=label
    )
    report.counts.update(world_size=procs.world_size, generated_cropped=0, generated_frames_mean=0.0)
    info = InfoStats()
    total_frames = total_generated = 0
    seconds = {"generation": 0.0, "evaluator": 0.0, "metrics": 0.0}
    positions = shard_positions(n, procs.rank, procs.world_size)
    for r in range(settings.repeats):
        repeat = sample_repeat(test_set, settings, r)
        reference = (
            repeat.resampled(np.random.default_rng([settings.seed, r, _STREAM_REFERENCE]))
            if reference_row
            else None
        )
        shard = embed_shard(
            generator,
            repeat,
            evaluator,
            settings,
            positions,
            reference_repeat=reference,
            keep_samples=log_path is not None and r == 0,
            progress=progress and procs.main,
        )
        mm_part = None
        if settings.mm_num_texts:
            items = multimodality_items(test_set, settings, r)
            jobs = shard_positions(len(items) * settings.mm_repeats, procs.rank, procs.world_size)
            mm_part = embed_multimodality_shard(generator, repeat, evaluator, settings, items, jobs)
        shards = procs.all_gather(shard)
        mm_parts = procs.all_gather(mm_part) if mm_part is not None else None
        metrics = None
        if procs.main:
            started = time.perf_counter()
            merged = assemble_shards(shards, n)
            mm_embeddings = None
            if mm_parts is not None:
                order = np.argsort(np.concatenate([p[0] for p in mm_parts]), kind="stable")
                flat = np.concatenate([p[1] for p in mm_parts if len(p[0])])[order]
                mm_embeddings = flat.reshape(settings.mm_num_texts, settings.mm_repeats, -1)
            metrics = repeat_metrics(merged, settings, r, mm_embeddings)
            seconds["metrics"] += time.perf_counter() - started
            info.merge(merged.info)
            total_frames += merged.generated_frames
            total_generated += n
            report.counts["generated_cropped"] += merged.cropped
            seconds["generation"] += merged.seconds_generation
            seconds["evaluator"] += merged.seconds_evaluator
            logger.info(
                "repeat %d/%d: R@1 %.4f (real %.4f), FID %.4f, MM-Dist %.4f, Diversity %.4f",
                r + 1,
                settings.repeats,
                metrics["eval_R_precision_top1"],
                metrics["eval_R_precision_real_top1"],
                metrics["eval_fid"],
                metrics["eval_matching_score_pred"],
                metrics["eval_diversity"],
            )
            logger.debug("repeat %d metrics: %s", r + 1, metrics)
            if log_path is not None and r == 0:
                atomic_write_text(
                    "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in merged.samples),
                    log_path / SAMPLES_FILE,
                )
        report.per_repeat.append(procs.broadcast(metrics))
        if procs.main:
            report.counts["generated_frames_mean"] = total_frames / max(total_generated, 1)
            report.counts["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
            report.generator_stats = info.to_dict()
            if log_path is not None:
                report.to_json(log_path / RESULTS_FILE)
    report.counts = procs.broadcast(report.counts)
    report.generator_stats = procs.broadcast(report.generator_stats)
    if procs.main and log_path is not None:
        atomic_write_text(report.to_markdown() + "\n", log_path / MARKDOWN_FILE)
    if report.counts.get("generated_cropped"):
        logger.warning(
            "%d generated motion(s) longer than %d frames were cropped",
            report.counts["generated_cropped"],
            settings.max_frames,
        )
    return report


__all__ = [
    "EvalReport",
    "InfoStats",
    "ProtocolSettings",
    "ShardEmbeddings",
    "T2MTestSet",
    "TestBatch",
    "TestRepeat",
    "assemble_shards",
    "check_protocol_inputs",
    "embed_multimodality_shard",
    "embed_shard",
    "format_interval",
    "multimodality_items",
    "repeat_metrics",
    "run_protocol",
    "sample_repeat",
    "shard_positions",
    "summarize",
]

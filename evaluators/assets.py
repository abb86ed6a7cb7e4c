"""Where a T2M evaluator's files live, and loading them as one checked bundle.

Upstream runs from a working folder holding the extractor zip and GloVe (``prepare/download_extractor.sh``,
``prepare/download_glove.sh``); evaluators we train (``prepare/train_evaluator.py``) are written in the same
layout, so one loader serves both::

    <root>/checkpoints/<dataname>/text_mot_match/model/finest.tar   weights (keys movement_encoder, ...)
    <root>/checkpoints/<dataname>/text_mot_match/meta/{mean,std}.npy  normalisation (trained evaluators)
    <root>/checkpoints/<dataname>/text_mot_match/opt.txt           options dump (trained evaluators)
    <root>/checkpoints/<dataname>/VQVAEV3_CB1024_CMT_H1024_NRES3/meta/{mean,std}.npy   (released zip)
    <root>/checkpoints/<dataname>/Comp_v6_KLD005/{opt.txt,meta/}                        (released zip)
    <root>/glove/our_vab_{data.npy,words.pkl,idx.pkl}                word vectors

``dataname`` is ``t2m`` (HumanML3D) or ``kit``. The normalisation statistics are looked up in that order:
an explicit ``meta_dir``, the evaluator's own ``text_mot_match/meta`` (ours), the released
``VQVAEV3_CB1024_CMT_H1024_NRES3/meta`` (what IRG/T2M-GPT/Motion-Agent use, spec §2.6), then
``Comp_v6_KLD005/meta``. The sizes come from an explicit config, else the config stored in the checkpoint
(ours), else the released ``Comp_v6_KLD005/opt.txt``, else the dataset's preset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data_engine.datasets.spec import DatasetSpec, get_dataset_spec
from evaluators.t2m_extractor import T2MEvaluator, T2MEvaluatorConfig, load_checkpoint_safely
from evaluators.word_vectors import WordVectorizer
from models.common.errors import DataError

logger = logging.getLogger(__name__)

MATCH_FOLDER = "text_mot_match"
MODEL_FILE = "finest.tar"
LATEST_FILE = "latest.tar"
OPT_FILE = "opt.txt"
GLOVE_FOLDER = "glove"
RELEASED_META_FOLDERS = ("VQVAEV3_CB1024_CMT_H1024_NRES3", "Comp_v6_KLD005")
RELEASED_OPT_FOLDER = "Comp_v6_KLD005"


@dataclass(frozen=True)
class EvaluatorLayout:
    """Paths of one evaluator under a working-folder ``root`` (see the module docstring)."""

    root: Path
    dataname: str

    @classmethod
    def locate(cls, path: str | Path, dataset: str | DatasetSpec = "humanml3d") -> EvaluatorLayout:
        """Accept the working-folder root, the ``text_mot_match`` folder or its ``model/finest.tar``."""
        spec = get_dataset_spec(dataset) if isinstance(dataset, str) else dataset
        path = Path(path)
        if path.is_file() and path.name == MODEL_FILE:
            path = path.parent.parent
        if (path / "model" / MODEL_FILE).is_file() and path.name == MATCH_FOLDER:
            # <root>/checkpoints/<dataname>/text_mot_match
            return cls(path.parents[2], path.parent.name)
        return cls(path, spec.dataname)

    @property
    def dataset_dir(self) -> Path:
        return self.root / "checkpoints" / self.dataname

    @property
    def match_dir(self) -> Path:
        return self.dataset_dir / MATCH_FOLDER

    @property
    def model_path(self) -> Path:
        return self.match_dir / "model" / MODEL_FILE

    @property
    def latest_path(self) -> Path:
        return self.match_dir / "model" / LATEST_FILE

    @property
    def meta_dir(self) -> Path:
        return self.match_dir / "meta"

    @property
    def opt_path(self) -> Path:
        return self.match_dir / OPT_FILE

    @property
    def glove_dir(self) -> Path:
        return self.root / GLOVE_FOLDER

    def stats_candidates(self) -> list[Path]:
        """Folders searched for ``mean.npy``/``std.npy``, in order."""
        return [self.meta_dir] + [self.dataset_dir / name / "meta" for name in RELEASED_META_FOLDERS]

    def released_opt_path(self) -> Path:
        return self.dataset_dir / RELEASED_OPT_FOLDER / OPT_FILE


def load_stats(meta_dir: str | Path, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``meta_dir/mean.npy`` and ``meta_dir/std.npy`` as float32 ``[D]``, checked (finite, std > 0)."""
    meta_dir = Path(meta_dir)
    arrays = []
    for name in ("mean.npy", "std.npy"):
        path = meta_dir / name
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot load normalisation statistics ({err})", path=path) from err
        if array.ndim != 1 or (dim is not None and array.shape[0] != dim):
            raise DataError(f"expected shape [{dim or 'D'}], got {list(array.shape)}", path=path)
        arrays.append(array.astype(np.float32))
    mean, std = arrays
    if mean.shape != std.shape:
        raise DataError(f"mean {mean.shape} and std {std.shape} differ", path=meta_dir)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
        raise DataError("statistics must be finite with std > 0", path=meta_dir / "std.npy")
    return mean, std


def _resolve_config(
    layout: EvaluatorLayout, checkpoint: dict, spec: DatasetSpec, config: T2MEvaluatorConfig | str | None
) -> tuple[T2MEvaluatorConfig, str]:
    if isinstance(config, T2MEvaluatorConfig):
        return config, "argument"
    if isinstance(config, str):
        return T2MEvaluatorConfig.preset(config), f"preset {config}"
    stored = checkpoint.get("config")
    if isinstance(stored, dict):
        try:
            return T2MEvaluatorConfig(**stored), "checkpoint"
        except (TypeError, ValueError) as err:
            raise DataError(f"stored evaluator config is invalid ({err})", path=layout.model_path) from err
    if layout.released_opt_path().is_file():
        return T2MEvaluatorConfig.from_opt_file(layout.released_opt_path(), spec.dataname), "opt.txt"
    return T2MEvaluatorConfig.preset(spec.name), f"preset {spec.name}"


@dataclass
class EvaluatorAssets:
    """A loaded evaluator with the word vectors and statistics it must be used with."""

    evaluator: T2MEvaluator
    word_vectorizer: WordVectorizer
    mean: np.ndarray
    std: np.ndarray
    layout: EvaluatorLayout
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        path: str | Path,
        dataset: str | DatasetSpec = "humanml3d",
        *,
        meta_dir: str | Path | None = None,
        glove_dir: str | Path | None = None,
        config: T2MEvaluatorConfig | str | None = None,
        device: str | torch.device = "cpu",
    ) -> EvaluatorAssets:
        """Load weights (strictly), word vectors and statistics; raise ``DataError`` if they disagree."""
        spec = get_dataset_spec(dataset) if isinstance(dataset, str) else dataset
        layout = EvaluatorLayout.locate(path, spec)
        if not layout.model_path.is_file():
            raise DataError(
                f"no evaluator weights; expected {MATCH_FOLDER}/model/{MODEL_FILE} under "
                f"checkpoints/{layout.dataname}/ (run prepare/download_extractor.sh or "
                "prepare/train_evaluator.py)",
                path=layout.model_path,
            )
        checkpoint = load_checkpoint_safely(layout.model_path)
        evaluator_config, config_source = _resolve_config(layout, checkpoint, spec, config)
        evaluator = T2MEvaluator(evaluator_config)
        evaluator.load_checkpoint_dict(checkpoint, path=layout.model_path)
        evaluator = evaluator.to(device).eval().requires_grad_(False)

        candidates = [Path(meta_dir)] if meta_dir is not None else layout.stats_candidates()
        found = next((c for c in candidates if (c / "mean.npy").is_file()), None)
        if found is None:
            raise DataError(
                "no normalisation statistics (mean.npy/std.npy) in any of: "
                + ", ".join(str(c) for c in candidates),
                path=layout.match_dir,
            )
        mean, std = load_stats(found)
        glove = Path(glove_dir) if glove_dir is not None else layout.glove_dir
        vectorizer = WordVectorizer.load_our_vab(glove)
        assets = cls(
            evaluator,
            vectorizer,
            mean,
            std,
            layout,
            sources={
                "weights": str(layout.model_path),
                "config": config_source,
                "stats": str(found),
                "word_vectors": str(glove),
                "epoch": str(checkpoint.get("epoch", "?")),
            },
        )
        assets.check_compatible(spec)
        logger.info(
            "evaluator %s (config from %s, stats %s, epoch %s)",
            layout.model_path,
            config_source,
            found,
            assets.sources["epoch"],
        )
        return assets

    def check_compatible(self, spec: DatasetSpec | None = None) -> None:
        """Raise ``DataError`` listing every size disagreement between weights, vectors, stats and data."""
        config = self.evaluator.config
        problems = []
        if self.word_vectorizer.dim != config.dim_word:
            problems.append(
                f"word vectors are {self.word_vectorizer.dim}-d ({self.word_vectorizer.source}) but the text "
                f"encoder expects dim_word={config.dim_word}"
            )
        if self.mean.shape[0] != config.dim_pose:
            problems.append(
                f"statistics are {self.mean.shape[0]}-d but the evaluator expects dim_pose={config.dim_pose}"
            )
        if spec is not None and spec.feature_dim < config.dim_pose:
            problems.append(
                f"dataset {spec.name} has {spec.feature_dim}-d features, the evaluator expects "
                f"{config.dim_pose}"
            )
        if problems:
            raise DataError(
                "evaluator assets do not fit together:\n  " + "\n  ".join(problems),
                path=self.layout.match_dir,
            )


__all__ = ["EvaluatorAssets", "EvaluatorLayout", "load_stats"]

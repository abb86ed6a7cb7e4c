"""Motion encoders for negative retrieval: one ``embed(clips) -> [N, d]`` protocol, two implementations.

* :class:`T2MMotionEncoder` (default): the motion side of the T2M evaluator of Guo et al. (the reward
  model of stage 3), so "far" and "near" mean what the evaluator means. Clips are normalised with the
  evaluator's mean/std, cropped to a multiple of 4 frames and at most 196 (from the clip start, so the
  embedding is deterministic), zero-padded to 196 and embedded in batches.
* :class:`FeaturePoolingEncoder`: a trivial deterministic encoder — per-channel mean and standard
  deviation over time of the features normalised with the dataset's ``Mean.npy``/``Std.npy``. Each
  clip's embedding depends on that clip only. No checkpoint needed (tests, the toy world before its
  evaluator is trained).

The paper used a pretrained TMR motion encoder; any model fits by implementing :class:`MotionEncoder`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from data_engine.datasets.reader import Clip, MotionDataset
from models.common.errors import DataError

logger = logging.getLogger(__name__)


@runtime_checkable
class MotionEncoder(Protocol):
    """Anything that maps dataset clips to fixed-size embeddings (rows in clip order)."""

    def embed(self, clips: Sequence[Clip]) -> np.ndarray:
        """``[len(clips), d]`` float32 embeddings."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings recorded in the negatives file (kind, checkpoint, ...)."""
        ...


class _FeatureLoader:
    """Features of clips; keeps the last motion file, so consecutive sub-clips of a motion load it once."""

    def __init__(self, dataset: MotionDataset) -> None:
        self.dataset = dataset
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, clip: Clip) -> np.ndarray:
        if clip.motion_id not in self._cache:
            self._cache = {clip.motion_id: self.dataset.load_features(clip.motion_id)}
        features = self._cache[clip.motion_id][clip.start : clip.end]
        if features.shape[0] == 0:
            raise DataError(
                f"clip {clip.name!r} selects no frames [{clip.start}, {clip.end})",
                path=self.dataset.features_path(clip.motion_id),
            )
        return features


class FeaturePoolingEncoder:
    """Mean and std over time of each normalised feature channel (``[N, 2 D]``); without the dataset's
    statistics the raw features are pooled."""

    def __init__(self, dataset: MotionDataset, progress: bool = False) -> None:
        self.dataset = dataset
        self.progress = progress
        try:
            self.mean, self.std = dataset.mean_std()
        except DataError:
            logger.warning("%s has no Mean.npy/Std.npy: pooling unnormalised features", dataset.root)
            dim = dataset.spec.feature_dim
            self.mean, self.std = np.zeros(dim, np.float32), np.ones(dim, np.float32)

    def embed(self, clips: Sequence[Clip]) -> np.ndarray:
        load = _FeatureLoader(self.dataset)
        pooled = np.empty((len(clips), 2 * self.dataset.spec.feature_dim), dtype=np.float32)
        for i, clip in enumerate(tqdm(clips, desc="pool features", unit="clip", disable=not self.progress)):
            features = (load(clip).astype(np.float64) - self.mean) / self.std
            pooled[i] = np.concatenate([features.mean(axis=0), features.std(axis=0)])
        return pooled

    def describe(self) -> dict[str, Any]:
        return {"kind": "features", "description": "mean and std over time of the normalised features"}


class T2MMotionEncoder:
    """The T2M evaluator's motion encoder (movement conv + BiGRU co-embedding)."""

    def __init__(
        self,
        dataset: MotionDataset,
        evaluator: Any,
        mean: np.ndarray,
        std: np.ndarray,
        *,
        batch_size: int = 256,
        checkpoint: str | None = None,
        progress: bool = False,
    ) -> None:
        config = evaluator.config
        if mean.shape != (config.dim_pose,) or std.shape != (config.dim_pose,):
            raise ValueError(
                f"mean/std must have shape [{config.dim_pose}], got {mean.shape} and {std.shape}"
            )
        self.dataset = dataset
        self.evaluator = evaluator.eval()
        self.mean = mean.astype(np.float32)
        self.std = std.astype(np.float32)
        self.batch_size = batch_size
        self.max_frames = config.max_motion_length
        self.unit = config.unit_length
        self.checkpoint = checkpoint
        self.progress = progress

    @classmethod
    def from_checkpoint(
        cls,
        dataset: MotionDataset,
        checkpoint: str | Path,
        meta_dir: str | Path | None = None,
        *,
        batch_size: int = 256,
        device: str = "cpu",
        progress: bool = False,
    ) -> T2MMotionEncoder:
        """Load ``finest.tar`` (or a checkpoint saved by ``T2MEvaluator.save``, whose stored config wins)
        and the normalisation statistics of ``meta_dir`` (the evaluator's ``meta`` folder; default: the
        dataset root's ``Mean.npy``/``Std.npy``)."""
        from evaluators.t2m_extractor import T2MEvaluator, T2MEvaluatorConfig, load_checkpoint_safely

        state = load_checkpoint_safely(checkpoint)
        stored = state.get("config")
        config = (
            T2MEvaluatorConfig(**stored)
            if isinstance(stored, dict)
            else T2MEvaluatorConfig.preset(dataset.spec.name)
        )
        evaluator = T2MEvaluator(config)
        evaluator.load_checkpoint_dict(state, path=checkpoint)
        evaluator = evaluator.to(device).eval().requires_grad_(False)
        mean, std = dataset.mean_std(meta_dir)
        return cls(
            dataset,
            evaluator,
            mean,
            std,
            batch_size=batch_size,
            checkpoint=str(checkpoint),
            progress=progress,
        )

    def _window(self, features: np.ndarray, clip: Clip) -> np.ndarray:
        length = min(features.shape[0], self.max_frames) // self.unit * self.unit
        if length < self.unit:
            raise DataError(
                f"clip {clip.name!r} has {features.shape[0]} frames; the evaluator needs {self.unit} or more",
                path=self.dataset.features_path(clip.motion_id),
            )
        return (features[:length] - self.mean) / self.std

    def embed(self, clips: Sequence[Clip]) -> np.ndarray:
        load = _FeatureLoader(self.dataset)
        dim = self.evaluator.config.dim_coemb_hidden
        out = np.empty((len(clips), dim), dtype=np.float32)
        starts = range(0, len(clips), self.batch_size)
        for start in tqdm(starts, desc="embed motions", unit="batch", disable=not self.progress):
            batch = clips[start : start + self.batch_size]
            windows = [self._window(load(clip), clip) for clip in batch]
            padded = np.zeros((len(batch), self.max_frames, self.mean.shape[0]), dtype=np.float32)
            for i, window in enumerate(windows):
                padded[i, : window.shape[0]] = window
            lengths = [w.shape[0] for w in windows]
            out[start : start + len(batch)] = self.evaluator.motion_embeddings(padded, lengths).cpu().numpy()
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "t2m",
            "checkpoint": self.checkpoint,
            "max_frames": self.max_frames,
            "crop": "clip start, length floored to a multiple of 4",
        }


ENCODER_KINDS = ("t2m", "features")


def build_encoder(
    kind: str,
    dataset: MotionDataset,
    *,
    checkpoint: str | None = None,
    meta_dir: str | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = False,
) -> MotionEncoder:
    """``t2m`` (needs ``checkpoint``; ``meta_dir`` = the evaluator's mean/std) or ``features``."""
    if kind == "features":
        return FeaturePoolingEncoder(dataset, progress=progress)
    if kind == "t2m":
        if not checkpoint:
            raise ValueError("encoder 't2m' needs an evaluator checkpoint (finest.tar); or use 'features'")
        return T2MMotionEncoder.from_checkpoint(
            dataset, checkpoint, meta_dir or None, batch_size=batch_size, device=device, progress=progress
        )
    raise ValueError(f"unknown encoder {kind!r}; choose one of {ENCODER_KINDS}")

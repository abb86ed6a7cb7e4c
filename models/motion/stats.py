"""Feature normalisation statistics as HumanML3D's ``cal_mean_variance`` computes them, streamed.

``Mean`` is the per-dimension mean over every frame of every clip; ``Std`` the per-dimension population
std, after which each of the seven feature segments (see ``layout``) gets the average std of its
dimensions, so e.g. all 63 RIC coordinates share one scale. Clips containing NaN are skipped (as upstream)
and counted. Arrays are folded in one at a time with Chan's parallel update in float64, so a whole dataset
is never held in memory and the variance does not suffer from the cancellation of ``E[x^2] - E[x]^2``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from models.motion.layout import feature_layout

logger = logging.getLogger(__name__)


class FeatureStatistics:
    """Running per-dimension count, mean and sum of squared deviations over frames."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.frames = 0
        self.clips = 0
        self.skipped_nan = 0
        self._mean = np.zeros(dim, dtype=np.float64)
        self._m2 = np.zeros(dim, dtype=np.float64)

    def update(self, array: np.ndarray) -> bool:
        """Fold in one clip ``[T, dim]``; returns False (and counts it) if it contains NaN."""
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"expected a [frames, {self.dim}] array, got shape {array.shape}")
        if np.isnan(array).any():
            self.skipped_nan += 1
            return False
        count = len(array)
        if count == 0:
            return True
        values = array.astype(np.float64, copy=False)
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        total = self.frames + count
        delta = mean - self._mean
        self._mean += delta * (count / total)
        self._m2 += m2 + delta ** 2 * (self.frames * count / total)
        self.frames = total
        self.clips += 1
        return True

    @property
    def mean(self) -> np.ndarray:
        return self._mean.copy()

    @property
    def std(self) -> np.ndarray:
        """Population (ddof 0) std per dimension."""
        if self.frames == 0:
            raise ValueError("no frames were accumulated")
        return np.sqrt(self._m2 / self.frames)


def average_std_per_segment(std: np.ndarray, joints_num: int) -> np.ndarray:
    """Replace every feature segment's std by the mean std of that segment (upstream's ``/ 1.0`` step)."""
    layout = feature_layout(joints_num)
    if std.shape[-1] != layout.dim:
        raise ValueError(f"expected {layout.dim} std values for {joints_num} joints, got {std.shape[-1]}")
    out = std.copy()
    for segment in layout.segments().values():
        out[segment] = std[segment].mean()
    return out


def feature_mean_std(arrays: Iterable[np.ndarray], joints_num: int) -> tuple[np.ndarray, np.ndarray]:
    """HumanML3D's ``Mean.npy`` / ``Std.npy`` (float32 ``[D]``) from an iterable of clips ``[T, D]``."""
    stats = FeatureStatistics(feature_layout(joints_num).dim)
    for array in arrays:
        stats.update(array)
    if stats.skipped_nan:
        logger.warning("skipped %d clip(s) containing NaN (of %d)", stats.skipped_nan,
                       stats.skipped_nan + stats.clips)
    logger.info("feature statistics over %d clips, %d frames", stats.clips, stats.frames)
    std = average_std_per_segment(stats.std, joints_num)
    return stats.mean.astype(np.float32), std.astype(np.float32)

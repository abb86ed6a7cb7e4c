"""Streaming Mean/Std equals HumanML3D's cal_mean_variance on the concatenated data."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from models.motion.layout import feature_layout
from models.motion.stats import FeatureStatistics, average_std_per_segment, feature_mean_std


def upstream_mean_std(arrays: list[np.ndarray], joints_num: int) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's recipe, written out: concatenate, mean/std over frames, average std per segment."""
    data = np.concatenate([a for a in arrays if not np.isnan(a).any()], axis=0).astype(np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0)
    j = joints_num
    bounds = [0, 1, 3, 4, 4 + (j - 1) * 3, 4 + (j - 1) * 9, 4 + (j - 1) * 9 + j * 3, std.shape[0]]
    for a, b in zip(bounds[:-1], bounds[1:]):
        std[a:b] = std[a:b].mean() / 1.0
    return mean, std


@pytest.mark.parametrize("joints_num", [22, 21])
def test_streaming_matches_concatenation(joints_num):
    dim = feature_layout(joints_num).dim
    rng = np.random.default_rng(1)
    arrays = [(rng.normal(size=(int(n), dim)) * rng.uniform(0.1, 5, dim) + 1e3).astype(np.float32)
              for n in rng.integers(1, 60, size=12)]
    mean, std = feature_mean_std(iter(arrays), joints_num)
    expected_mean, expected_std = upstream_mean_std(arrays, joints_num)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (dim,)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-6)
    np.testing.assert_allclose(std, expected_std, rtol=1e-5)
    assert len(np.unique(std[feature_layout(joints_num).ric])) == 1


def test_nan_clips_are_skipped_and_counted(caplog):
    dim = feature_layout(22).dim
    good = np.ones((4, dim), np.float32) * np.arange(4, dtype=np.float32)[:, None]
    bad = good.copy()
    bad[2, 7] = np.nan
    with caplog.at_level(logging.WARNING, logger="models.motion.stats"):
        mean, _ = feature_mean_std([good, bad, good], 22)
    assert "skipped 1 clip(s) containing NaN (of 3)" in caplog.text
    np.testing.assert_allclose(mean, 1.5)

    stats = FeatureStatistics(dim)
    assert stats.update(good) and not stats.update(bad)
    assert (stats.clips, stats.frames, stats.skipped_nan) == (1, 4, 1)


def test_segment_average_and_errors():
    std = np.arange(263, dtype=np.float64)
    averaged = average_std_per_segment(std, 22)
    assert averaged[0] == 0 and averaged[1] == averaged[2] == 1.5 and averaged[4] == averaged[66] == 35.0
    with pytest.raises(ValueError, match="263"):
        average_std_per_segment(std[:251], 22)
    with pytest.raises(ValueError, match="no frames"):
        feature_mean_std([], 22)

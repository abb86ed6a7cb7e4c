"""Shared inputs for the motion-representation tests: the golden fixture and synthetic FK motions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.motion.quaternion import qmul, yaw_quaternion
from models.motion.representation import forward_kinematics
from models.motion.skeleton import SkeletonSpec


@pytest.fixture(scope="session")
def motion_repr(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "motion_repr.npz") as archive:
        return {key: archive[key] for key in archive.files}


def synthetic_motion(skeleton: SkeletonSpec, frames: int = 90, seed: int = 0,
                     turn: float = 0.8) -> np.ndarray:
    """A smooth walking-like clip ``[frames, J, 3]`` built by FK on ``skeleton``'s target offsets.

    The root drifts forward and yaws by up to ``turn`` radians; every joint swings about a random axis.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64) / skeleton.fps
    axes = rng.normal(size=(skeleton.joints_num, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    amplitude = rng.uniform(0.1, 0.5, size=skeleton.joints_num)
    phase = rng.uniform(0, 2 * np.pi, size=skeleton.joints_num)
    angle = amplitude * np.sin(2 * np.pi * 1.1 * t[:, None] + phase)  # [T, J]
    local = np.concatenate([np.cos(angle / 2)[..., None], np.sin(angle / 2)[..., None] * axes], axis=-1)
    yaw = yaw_quaternion(0.5 * turn * np.sin(2 * np.pi * 0.2 * t))
    local[:, 0] = qmul(yaw, local[:, 0])
    leg = float(skeleton.bone_lengths[[skeleton.l_idx1, skeleton.l_idx2]].sum())
    bounce = 0.05 * leg * np.sin(2 * np.pi * 2.2 * t)
    root = np.stack([0.3 * leg * t, 1.1 * leg + bounce, 0.8 * leg * t], axis=-1)
    offsets = skeleton.target_offsets.astype(np.float64)
    return forward_kinematics(local, root, offsets, skeleton).astype(np.float32)


@pytest.fixture(scope="session")
def make_synthetic_motion():
    return synthetic_motion

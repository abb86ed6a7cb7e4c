"""Quaternion helpers against scipy's rotations, on numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from models.motion.quaternion import (
    cont6d_to_matrix,
    cumsum,
    qbetween,
    qfix,
    qinv,
    qmul,
    qrot,
    quaternion_to_cont6d,
    quaternion_to_matrix,
    yaw_quaternion,
)

RNG = np.random.default_rng(7)
QUATS = Rotation.random(64, random_state=7).as_quat(scalar_first=True)  # (w, x, y, z)
VECTORS = RNG.normal(size=(64, 3))


def test_against_scipy():
    rotations = Rotation.from_quat(QUATS, scalar_first=True)
    np.testing.assert_allclose(qrot(QUATS, VECTORS), rotations.apply(VECTORS), atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(QUATS), rotations.as_matrix(), atol=1e-12)
    other = QUATS[::-1]
    composed = rotations * Rotation.from_quat(other, scalar_first=True)  # apply `other` first
    np.testing.assert_allclose(quaternion_to_matrix(qmul(QUATS, other)), composed.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(qrot(qinv(QUATS), qrot(QUATS, VECTORS)), VECTORS, atol=1e-12)


def test_qbetween_rotates_first_direction_onto_second():
    target = RNG.normal(size=(64, 3))
    quat = qbetween(VECTORS, target)
    rotated = qrot(quat, VECTORS / np.linalg.norm(VECTORS, axis=-1, keepdims=True))
    np.testing.assert_allclose(rotated, target / np.linalg.norm(target, axis=-1, keepdims=True), atol=1e-12)
    assert (quat[:, 0] >= 0).all()


def test_cont6d_round_trip_and_yaw():
    matrices = quaternion_to_matrix(QUATS)
    np.testing.assert_allclose(cont6d_to_matrix(quaternion_to_cont6d(QUATS)), matrices, atol=1e-12)
    quarter_turn = yaw_quaternion(np.array(np.pi / 4))  # half-angle pi/4: 90 degrees about +y
    np.testing.assert_allclose(qrot(quarter_turn, np.array([0.0, 0.0, 1.0])), [1.0, 0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("fn, arity", [(qrot, "qv"), (qmul, "qq"), (quaternion_to_cont6d, "q"),
                                        (qbetween, "vv")])
def test_torch_matches_numpy(fn, arity):
    pools = {"q": QUATS.astype(np.float32), "v": VECTORS.astype(np.float32)}
    args = [pools[kind][::1 if i == 0 else -1].copy() for i, kind in enumerate(arity)]
    out = fn(*[torch.from_numpy(a) for a in args])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), fn(*args), atol=1e-6)


def test_qfix_and_cumsum():
    q = np.tile(QUATS[:1], (5, 1))
    q[[2, 3]] *= -1
    fixed = qfix(q[:, None])[:, 0]
    np.testing.assert_allclose(fixed, np.tile(QUATS[:1], (5, 1)))
    values = RNG.normal(size=1000).astype(np.float32)
    np.testing.assert_array_equal(cumsum(values, axis=0), torch.cumsum(torch.from_numpy(values), 0).numpy())


@pytest.mark.parametrize("shape", [(3,), (2, 5, 3)])
def test_broadcasting(shape):
    v = RNG.normal(size=shape)
    assert qrot(QUATS[0], v).shape == shape

"""Quaternion and rotation helpers (w, x, y, z; Hamilton product) for numpy arrays and torch tensors.

Every function accepts either backend, broadcasts over leading axes, keeps the input's dtype and returns
the same kind it was given, so the motion representation runs on datasets (numpy) and inside models
(torch, autograd-friendly: nothing is written in place).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def is_torch(x: object) -> bool:
    return isinstance(x, torch.Tensor)


def stack(parts: Sequence[Array], axis: int = -1) -> Array:
    """``np.stack`` / ``torch.stack`` by the type of the first part."""
    return torch.stack(list(parts), dim=axis) if is_torch(parts[0]) else np.stack(parts, axis=axis)


def concat(parts: Sequence[Array], axis: int = -1) -> Array:
    """``np.concatenate`` / ``torch.cat`` by the type of the first part."""
    return torch.cat(list(parts), dim=axis) if is_torch(parts[0]) else np.concatenate(parts, axis=axis)


def zeros_like(x: Array) -> Array:
    return torch.zeros_like(x) if is_torch(x) else np.zeros_like(x)


def cumsum(x: Array, axis: int) -> Array:
    """Cumulative sum; float32 numpy input is accumulated in float64 like torch's CPU kernel does, so
    both backends give the same (and more accurate) running sums."""
    if is_torch(x):
        return torch.cumsum(x, dim=axis)
    if x.dtype == np.float32:
        return np.cumsum(x, axis=axis, dtype=np.float64).astype(np.float32)
    return np.cumsum(x, axis=axis)


def sqrt(x: Array) -> Array:
    return torch.sqrt(x) if is_torch(x) else np.sqrt(x)


def cross(a: Array, b: Array) -> Array:
    """Cross product over the last axis (size 3), broadcasting the leading axes."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx])


def dot(a: Array, b: Array) -> Array:
    """Dot product over the last axis, keeping it (size 1)."""
    return (a * b).sum(-1, keepdims=True) if not is_torch(a) else (a * b).sum(-1, keepdim=True)


def normalize(v: Array) -> Array:
    """``v / |v|`` over the last axis."""
    return v / sqrt(dot(v, v))


def qinv(q: Array) -> Array:
    """Inverse of a unit quaternion (its conjugate)."""
    return stack([q[..., 0], -q[..., 1], -q[..., 2], -q[..., 3]])


def qmul(q: Array, r: Array) -> Array:
    """Hamilton product ``q * r`` (apply ``r`` first, then ``q``).

    The terms are summed in the order of upstream's outer-product implementation, so float32 results
    match it bit for bit.
    """
    qw, qx, qy, qz = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rw, rx, ry, rz = r[..., 0], r[..., 1], r[..., 2], r[..., 3]
    return stack([
        rw * qw - rx * qx - ry * qy - rz * qz,
        rw * qx + rx * qw - ry * qz + rz * qy,
        rw * qy + rx * qz + ry * qw - rz * qx,
        rw * qz - rx * qy + ry * qx + rz * qw,
    ])


def qrot(q: Array, v: Array) -> Array:
    """Rotate vectors ``v [..., 3]`` by unit quaternions ``q [..., 4]``: ``v + 2 (w u x v + u x (u x v))``."""
    u = q[..., 1:]
    uv = cross(u, v)
    uuv = cross(u, uv)
    return v + 2 * (q[..., :1] * uv + uuv)


def qbetween(v0: Array, v1: Array) -> Array:
    """The shortest-arc unit quaternion rotating direction ``v0`` onto ``v1``."""
    w = sqrt(dot(v0, v0) * dot(v1, v1)) + dot(v0, v1)
    return normalize(concat([w, cross(v0, v1)]))


def qfix(q: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0) so consecutive quaternions have a non-negative dot product."""
    flips = np.cumsum((q[1:] * q[:-1]).sum(-1) < 0, axis=0) % 2 == 1
    out = q.copy()
    out[1:][flips] *= -1
    return out


def yaw_quaternion(half_angle: Array) -> Array:
    """Quaternions ``(cos a, 0, sin a, 0)``: rotations about +y by ``2a``."""
    zero = zeros_like(half_angle)
    if is_torch(half_angle):
        return stack([torch.cos(half_angle), zero, torch.sin(half_angle), zero])
    return stack([np.cos(half_angle), zero, np.sin(half_angle), zero])


def quaternion_to_matrix(q: Array) -> Array:
    """Rotation matrices ``[..., 3, 3]`` of (not necessarily unit) quaternions ``[..., 4]``."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    s = 2.0 / (q * q).sum(-1)
    rows = [
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    ]
    flat = stack(rows)
    return flat.reshape(tuple(flat.shape[:-1]) + (3, 3))


def matrix_to_cont6d(m: Array) -> Array:
    """Continuous 6D rotation: the first two matrix columns, concatenated ``[m[:, 0], m[:, 1]]``."""
    return concat([m[..., :, 0], m[..., :, 1]])


def quaternion_to_cont6d(q: Array) -> Array:
    return matrix_to_cont6d(quaternion_to_matrix(q))


def cont6d_to_matrix(d6: Array) -> Array:
    """Gram-Schmidt the two stored columns back into a rotation matrix ``[..., 3, 3]``."""
    x = normalize(d6[..., 0:3])
    z = normalize(cross(x, d6[..., 3:6]))
    y = cross(z, x)
    return stack([x, y, z], axis=-1)

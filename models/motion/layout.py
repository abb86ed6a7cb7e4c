"""Named slices of the HumanML3D-style feature vector, and validation of feature arrays read from disk.

Layout for J joints (D = 12J - 1; 263 for HumanML3D, 251 for KIT):

| slice | width | content |
|---|---|---|
| root_rot_vel | 1 | half the per-frame yaw change (rad) |
| root_lin_vel | 2 | root x/z velocity in the facing frame of the next frame |
| root_y | 1 | root height |
| ric | 3(J-1) | joints 1.. relative to the root's x/z, in the facing frame |
| rot6d | 6(J-1) | local joint rotations, continuous 6D |
| local_vel | 3J | joint velocities in the facing frame |
| foot_contact | 4 | left ankle/toe, right ankle/toe contact flags |
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from models.common.errors import DataError


@dataclass(frozen=True)
class FeatureLayout:
    joints_num: int
    root_rot_vel: slice
    root_lin_vel: slice
    root_y: slice
    ric: slice
    rot6d: slice
    local_vel: slice
    foot_contact: slice
    dim: int

    @property
    def root(self) -> slice:
        """The four root channels ``[0:4]`` (rotation velocity, linear velocity, height)."""
        return slice(0, self.root_y.stop)

    def segments(self) -> dict[str, slice]:
        """The seven segments in feature order (the unit of HumanML3D's per-segment std averaging)."""
        return {name: getattr(self, name) for name in SEGMENT_NAMES}


SEGMENT_NAMES = ("root_rot_vel", "root_lin_vel", "root_y", "ric", "rot6d", "local_vel", "foot_contact")


@cache
def feature_layout(joints_num: int) -> FeatureLayout:
    """The feature layout for a skeleton with ``joints_num`` joints."""
    if joints_num < 2:
        raise ValueError(f"a skeleton needs at least 2 joints, got {joints_num}")
    widths = (1, 2, 1, 3 * (joints_num - 1), 6 * (joints_num - 1), 3 * joints_num, 4)
    bounds = np.cumsum((0,) + widths)
    slices = {name: slice(int(a), int(b)) for name, a, b in zip(SEGMENT_NAMES, bounds[:-1], bounds[1:])}
    return FeatureLayout(joints_num=joints_num, dim=int(bounds[-1]), **slices)


def joints_num_for_dim(dim: int) -> int:
    """Inverse of ``feature_layout(J).dim`` (263 -> 22, 251 -> 21)."""
    if (dim + 1) % 12:
        raise ValueError(f"{dim} is not a HumanML3D-style feature width (12 J - 1)")
    return (dim + 1) // 12


def check_features(array: np.ndarray, expected_dim: int, *, source: str | Path | None = None) -> np.ndarray:
    """Return ``array`` if it is a finite, non-empty ``[T, expected_dim]`` motion; else raise ``DataError``.

    ``source`` (usually the file the array came from) is named in the error.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise DataError(f"expected a [frames, {expected_dim}] feature array, got shape {array.shape}",
                        path=source)
    if array.shape[1] != expected_dim:
        raise DataError(f"expected {expected_dim} features per frame, got {array.shape[1]} "
                        f"(shape {array.shape})", path=source)
    if array.shape[0] == 0:
        raise DataError("motion has zero frames", path=source)
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"expected a numeric array, got dtype {array.dtype}", path=source)
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        frame = int(bad_rows[0])
        column = int(np.flatnonzero(~finite[frame])[0])
        raise DataError(f"non-finite value {array[frame, column]} at frame {frame}, feature {column} "
                        f"({len(bad_rows)} bad frame(s) of {array.shape[0]})", path=source)
    return array

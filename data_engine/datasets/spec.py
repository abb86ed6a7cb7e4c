"""Per-dataset constants (HumanML3D, KIT-ML): one registry instead of ``if t2m / elif kit`` blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """What differs between text-motion datasets in the HumanML3D folder layout.

    ``dataname`` is the upstream short name (``t2m``/``kit``) used by the released evaluator folders
    (``checkpoints/{dataname}/...``).
    """

    name: str
    dataname: str
    joints_num: int
    feature_dim: int
    fps: float
    min_motion_len: int  # evaluation filter: motions shorter than this are skipped
    max_motion_len: int  # evaluation filter: motions with this many frames or more are skipped
    max_eval_frames: int = 196  # evaluator input length (zero padded)
    unit_length: int = 4  # VQ temporal downsampling (2 ** down_t)
    id_digits: int = 6

    @property
    def id_pattern(self) -> re.Pattern[str]:
        """Motion ids: ``000123`` and the mirrored ``M000123``."""
        return re.compile(rf"^M?\d{{{self.id_digits}}}$")


DATASETS: dict[str, DatasetSpec] = {
    "humanml3d": DatasetSpec(
        name="humanml3d", dataname="t2m", joints_num=22, feature_dim=263, fps=20.0,
        min_motion_len=40, max_motion_len=200, id_digits=6,
    ),
    "kit": DatasetSpec(
        name="kit", dataname="kit", joints_num=21, feature_dim=251, fps=12.5,
        min_motion_len=24, max_motion_len=200, id_digits=5,
    ),
}
_ALIASES = {"t2m": "humanml3d", "hml3d": "humanml3d", "kit-ml": "kit", "kitml": "kit"}


def get_dataset_spec(name: str) -> DatasetSpec:
    """Look up a spec by name (``humanml3d``/``kit``) or upstream alias (``t2m``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} (aliases {sorted(_ALIASES)})")
    return DATASETS[key]

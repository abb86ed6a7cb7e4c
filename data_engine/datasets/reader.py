"""Reader for a dataset root in the HumanML3D / KIT-ML layout (see ``layout.py``).

One reader serves VQ-VAE training, the token cache, evaluation, the data engine and SFT. It validates
what it reads and names the file and line of anything wrong:

* an id listed in a split file with no motion file is an error (``on_missing="error"``, the default) or a
  counted, logged skip (``on_missing="skip"``; upstream skipped silently);
* a features file of the wrong width, or with NaN/Inf values, is an error naming the file (and frame);
* a malformed ``texts`` line is an error naming the file and line.

``clips()`` builds the evaluation-style index of HumanML3D's ``Text2MotionDataset``: the whole motion
(if it has whole-clip captions) plus every sub-clip caption (``from#to`` in seconds) as its own item,
keeping only items whose length lies in ``[min_len, max_len)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_engine.datasets.layout import (
    FEATURES_DIR,
    JOINTS_DIR,
    MEAN_FILE,
    STD_FILE,
    TEXTS_DIR,
    Caption,
    read_split_file,
    read_texts_file,
)
from data_engine.datasets.spec import DatasetSpec, get_dataset_spec
from models.common.errors import DataError
from models.motion.layout import check_features

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One text-motion item: frames ``[start, end)`` of motion ``motion_id`` with its captions.

    ``name`` is the motion id for whole clips and ``<letter>_<id>`` for sub-clips (upstream draws the
    letter at random; here it is the sub-clip's position, so names are reproducible).
    """

    name: str
    motion_id: str
    start: int
    end: int
    captions: tuple[Caption, ...]

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class ClipIndex:
    """Clips of a split plus counts of what was left out and why."""

    clips: list[Clip]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def summary(self) -> str:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()) if v) or "none"
        return f"{len(self.clips)} clips (skipped {dropped})"


def _subclip_name(index: int, motion_id: str) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return f"{letters}_{motion_id}"


class MotionDataset:
    """A dataset root in the HumanML3D layout: split ids, features, joints, captions, statistics."""

    def __init__(self, root: str | Path, spec: DatasetSpec | str = "humanml3d") -> None:
        self.root = Path(root)
        self.spec = get_dataset_spec(spec) if isinstance(spec, str) else spec
        if not self.root.is_dir():
            raise DataError("dataset root does not exist or is not a folder", path=self.root)

    def __repr__(self) -> str:
        return f"MotionDataset(root={str(self.root)!r}, spec={self.spec.name!r})"

    # ---- paths -----------------------------------------------------------------------------------
    def features_path(self, motion_id: str) -> Path:
        return self.root / FEATURES_DIR / f"{motion_id}.npy"

    def joints_path(self, motion_id: str) -> Path:
        return self.root / JOINTS_DIR / f"{motion_id}.npy"

    def texts_path(self, motion_id: str) -> Path:
        return self.root / TEXTS_DIR / f"{motion_id}.txt"

    def split_path(self, split: str) -> Path:
        return self.root / f"{split}.txt"

    # ---- reading ---------------------------------------------------------------------------------
    def split_ids(self, split: str, on_missing: str = "error") -> list[str]:
        """Ids of ``<split>.txt`` that have a features file.

        ``on_missing="error"`` raises ``DataError`` naming the split file, line and missing file;
        ``"skip"`` drops such ids and logs how many were dropped.
        """
        if on_missing not in ("error", "skip"):
            raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        path = self.split_path(split)
        if not path.is_file():
            raise DataError(f"split file not found (expected one id per line) for split {split!r}", path=path)
        ids, missing = [], 0
        for line, motion_id in enumerate(read_split_file(path), start=1):
            if self.features_path(motion_id).is_file():
                ids.append(motion_id)
            elif on_missing == "error":
                raise DataError(
                    f"id {motion_id!r} has no motion file {self.features_path(motion_id)}", path=path, line=line
                )
            else:
                missing += 1
        if missing:
            logger.warning("%s: skipped %d ids with no motion file", path, missing)
        return ids

    def load_features(self, motion_id: str) -> np.ndarray:
        """``[T, D]`` float32 features, validated (width, finite values, at least one frame)."""
        path = self.features_path(motion_id)
        if not path.is_file():
            raise DataError(f"no motion file for id {motion_id!r}", path=path)
        array = np.load(path, allow_pickle=False)
        return check_features(array, self.spec.feature_dim, source=path).astype(np.float32, copy=False)

    def load_joints(self, motion_id: str) -> np.ndarray:
        """``[T, J, 3]`` float32 joint positions."""
        path = self.joints_path(motion_id)
        if not path.is_file():
            raise DataError(f"no joints file for id {motion_id!r}", path=path)
        array = np.load(path, allow_pickle=False)
        if array.ndim != 3 or array.shape[1:] != (self.spec.joints_num, 3):
            raise DataError(
                f"expected joints of shape [T, {self.spec.joints_num}, 3], got {list(array.shape)}", path=path
            )
        if not np.isfinite(array).all():
            raise DataError("joint positions contain NaN or Inf", path=path)
        return array.astype(np.float32, copy=False)

    def load_captions(self, motion_id: str) -> list[Caption]:
        """All annotations of a motion (whole-clip and sub-clip)."""
        path = self.texts_path(motion_id)
        if not path.is_file():
            raise DataError(f"no texts file for id {motion_id!r}", path=path)
        return read_texts_file(path)

    def mean_std(self, meta_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Feature statistics: ``Mean.npy``/``Std.npy`` of the root, or ``mean.npy``/``std.npy`` of
        ``meta_dir`` (the evaluator's ``meta`` folder, which the released VQ-VAE and evaluator use)."""
        if meta_dir is None:
            paths = (self.root / MEAN_FILE, self.root / STD_FILE)
        else:
            paths = (Path(meta_dir) / "mean.npy", Path(meta_dir) / "std.npy")
        arrays = []
        for path in paths:
            if not path.is_file():
                raise DataError("normalisation statistics file not found", path=path)
            array = np.load(path, allow_pickle=False)
            if array.shape != (self.spec.feature_dim,):
                raise DataError(f"expected shape [{self.spec.feature_dim}], got {list(array.shape)}", path=path)
            arrays.append(array.astype(np.float32))
        mean, std = arrays
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
            raise DataError("statistics must be finite with std > 0", path=paths[1])
        return mean, std

    # ---- indexing --------------------------------------------------------------------------------
    def clips(
        self,
        split: str,
        *,
        min_len: int | None = None,
        max_len: int | None = None,
        on_missing: str = "error",
        with_subclips: bool = True,
    ) -> ClipIndex:
        """The evaluation-style item list of a split (see the module docstring).

        ``min_len``/``max_len`` default to the dataset's evaluation filter ``[min_motion_len,
        max_motion_len)``; pass ``min_len=1, max_len=10**9`` to keep everything (e.g. for VQ training).
        """
        min_len = self.spec.min_motion_len if min_len is None else min_len
        max_len = self.spec.max_motion_len if max_len is None else max_len
        skipped = {"too short or too long": 0, "no whole-clip caption": 0, "sub-clip out of range": 0}
        clips: list[Clip] = []
        for motion_id in self.split_ids(split, on_missing=on_missing):
            frames = self.num_frames(motion_id)
            if not min_len <= frames < max_len:  # as upstream: the motion and all its sub-clips go
                skipped["too short or too long"] += 1
                continue
            captions = self.load_captions(motion_id)
            whole = tuple(c for c in captions if c.whole_clip)
            if whole:
                clips.append(Clip(motion_id, motion_id, 0, frames, whole))
            else:
                skipped["no whole-clip caption"] += 1
            if not with_subclips:
                continue
            for k, caption in enumerate(c for c in captions if not c.whole_clip):
                start = int(caption.start * self.spec.fps)
                end = min(int(caption.end * self.spec.fps), frames)
                if min_len <= end - start < max_len:
                    clips.append(Clip(_subclip_name(k, motion_id), motion_id, start, end, (caption,)))
                else:
                    skipped["sub-clip out of range"] += 1
        index = ClipIndex(clips, skipped)
        logger.info("%s split %r: %s", self.root, split, index.summary())
        return index

    def num_frames(self, motion_id: str) -> int:
        """Frame count of a features file, read from the ``.npy`` header only (no data load)."""
        path = self.features_path(motion_id)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read features file ({err})", path=path) from err
        if array.ndim != 2 or array.shape[1] != self.spec.feature_dim:
            raise DataError(
                f"expected features of shape [T, {self.spec.feature_dim}], got {list(array.shape)}", path=path
            )
        return int(array.shape[0])

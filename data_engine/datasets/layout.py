"""The HumanML3D / KIT-ML folder layout: file names, the ``texts/*.txt`` line format, split files.

One module owns the on-disk format so that the reader, the toy-world writer and the data engine agree::

    <root>/new_joint_vecs/<id>.npy   float32 [T, D] features (263 HumanML3D, 251 KIT-ML)
    <root>/new_joints/<id>.npy       float32 [T, J, 3] joint positions (= recover_from_ric(features); optional)
    <root>/texts/<id>.txt            one annotation per line: caption#word/POS word/POS ...#from#to
    <root>/{train,val,test,train_val,all}.txt   one id per line
    <root>/Mean.npy, <root>/Std.npy  feature statistics

``from``/``to`` are seconds; ``0.0#0.0`` annotates the whole clip, anything else a sub-clip. Mirrored
copies are separate files whose id carries an ``M`` prefix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.common.errors import DataError
from models.common.io import atomic_write_text

FEATURES_DIR = "new_joint_vecs"
JOINTS_DIR = "new_joints"
TEXTS_DIR = "texts"
MEAN_FILE = "Mean.npy"
STD_FILE = "Std.npy"
SPLITS = ("train", "val", "test", "train_val", "all")


@dataclass(frozen=True)
class Caption:
    """One annotation line: the caption, its ``word/POS`` tokens and the annotated span in seconds."""

    text: str
    tokens: tuple[str, ...]
    start: float = 0.0
    end: float = 0.0
    line: int | None = field(default=None, compare=False)

    @property
    def whole_clip(self) -> bool:
        """True when the caption describes the whole clip (``0.0#0.0``)."""
        return self.start == 0.0 and self.end == 0.0


def _parse_seconds(value: str, *, path: Path | str | None, line: int, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError as err:
        raise DataError(f"{name} time {value!r} is not a number", path=path, line=line, field=name) from err
    return 0.0 if math.isnan(seconds) else seconds  # upstream treats NaN as 0


def parse_text_line(raw: str, *, path: Path | str | None = None, line: int = 0) -> Caption:
    """Parse ``caption#tokens#from#to``; a malformed line raises ``DataError`` naming file and line."""
    parts = raw.rstrip("\r\n").split("#")
    if len(parts) != 4:
        raise DataError(
            f"expected 4 '#'-separated fields (caption#tokens#from#to), got {len(parts)}: {raw.strip()!r}",
            path=path, line=line,
        )
    caption, token_field, start, end = parts
    if not caption.strip():
        raise DataError("empty caption", path=path, line=line, field="caption")
    tokens = tuple(token_field.split())
    bad = [t for t in tokens if t.count("/") != 1 or t.startswith("/") or t.endswith("/")]
    if bad:
        raise DataError(f"tokens must look like word/POS, got {bad[:3]}", path=path, line=line, field="tokens")
    return Caption(
        text=caption,
        tokens=tokens,
        start=_parse_seconds(start, path=path, line=line, name="from"),
        end=_parse_seconds(end, path=path, line=line, name="to"),
        line=line,
    )


def format_text_line(caption: Caption) -> str:
    """Inverse of ``parse_text_line`` (no trailing newline)."""
    if "#" in caption.text or "\n" in caption.text:
        raise DataError(f"caption may not contain '#' or newlines: {caption.text!r}", field="caption")
    return f"{caption.text}#{' '.join(caption.tokens)}#{caption.start}#{caption.end}"


def read_texts_file(path: Path | str) -> list[Caption]:
    """All annotations of one ``texts/<id>.txt`` file (blank lines are ignored)."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        return [
            parse_text_line(raw, path=path, line=number)
            for number, raw in enumerate(handle, start=1)
            if raw.strip()
        ]


def write_texts_file(path: Path | str, captions: Iterable[Caption]) -> None:
    """Write one ``texts/<id>.txt`` file atomically."""
    atomic_write_text("".join(format_text_line(c) + "\n" for c in captions), path)


def read_split_file(path: Path | str) -> list[str]:
    """Ids of a split file, in file order (blank lines ignored)."""
    with open(path, encoding="utf-8") as handle:
        return [raw.strip() for raw in handle if raw.strip()]


def write_split_file(path: Path | str, ids: Sequence[str]) -> None:
    """Write a split file (one id per line) atomically."""
    atomic_write_text("".join(f"{motion_id}\n" for motion_id in ids), path)


def mirrored_id(motion_id: str) -> str:
    """The id of the left/right-mirrored copy (``000123`` <-> ``M000123``)."""
    return motion_id[1:] if motion_id.startswith("M") else f"M{motion_id}"

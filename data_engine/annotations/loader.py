"""Read annotation files: SFT JSON (one file or upstream's ``a.json:b.json`` lists) and stage-3 RL ``jsonl``.

Loading validates every record (``schema.parse_annotation_record``); the first problem raises a
``DataError`` naming file, record and field. ``validate_*`` return a per-file summary (record counts
per task, non-fatal warnings) for ``prepare/validate_annotations.py``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_engine.annotations.schema import (
    AnnotationRecord,
    RLRecord,
    parse_annotation_record,
    parse_rl_record,
)
from models.common.errors import DataError
from models.llm.prompts import TemplateStore


@dataclass
class AnnotationSummary:
    """What a validated file holds: record/candidate counts per task and non-fatal warnings."""

    path: str
    kind: str  # "sft" or "rl"
    records: int = 0
    candidates: int = 0
    tasks: Counter[str] = field(default_factory=Counter)
    blank_lines: int = 0  # rl jsonl only: skipped empty lines
    warnings: list[str] = field(default_factory=list)


def read_annotation_list(path: str | Path) -> list[Any]:
    """The raw ``annotations`` list of an SFT annotation JSON file (no record validation)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path=path) from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", path=path) from err
    if not isinstance(data, dict):
        raise DataError(
            f"expected a JSON object with an 'annotations' list, got {type(data).__name__}", path=path
        )
    if "annotations" not in data:
        raise DataError("missing top-level 'annotations'", path=path, field="annotations")
    if not isinstance(data["annotations"], list):
        raise DataError("'annotations' must be a list", path=path, field="annotations")
    return data["annotations"]


def load_annotation_file(
    path: str | Path,
    *,
    templates: TemplateStore | None = None,
    id_digits: int | None = None,
    warnings: list[str] | None = None,
) -> list[AnnotationRecord]:
    """Validated records of one SFT annotation file, in file order.

    ``id_digits``: motion-id width (6 HumanML3D, 5 KIT-ML; ``None`` accepts either).
    """
    templates = templates or TemplateStore.load()
    return [
        parse_annotation_record(
            obj, index=i, path=str(path), templates=templates, id_digits=id_digits, warnings=warnings
        )
        for i, obj in enumerate(read_annotation_list(path))
    ]


def split_file_list(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Upstream's ``--data-json-files a.json:b.json`` (``os.pathsep``-separated) or a sequence of paths."""
    if isinstance(paths, (str, Path)):
        return [Path(p) for p in str(paths).split(os.pathsep) if p]
    return [Path(p) for p in paths]


def load_annotation_files(
    paths: str | Path | Sequence[str | Path],
    *,
    templates: TemplateStore | None = None,
    id_digits: int | None = None,
) -> list[AnnotationRecord]:
    """The concatenated records of several files (one flat list, as upstream; no per-task weighting)."""
    templates = templates or TemplateStore.load()
    records: list[AnnotationRecord] = []
    for path in split_file_list(paths):
        records.extend(load_annotation_file(path, templates=templates, id_digits=id_digits))
    return records


def validate_annotation_file(
    path: str | Path, *, templates: TemplateStore | None = None, id_digits: int | None = None
) -> AnnotationSummary:
    """Validate an SFT annotation file; raises ``DataError`` at the first problem."""
    summary = AnnotationSummary(path=str(path), kind="sft")
    records = load_annotation_file(path, templates=templates, id_digits=id_digits, warnings=summary.warnings)
    summary.records = len(records)
    summary.candidates = sum(len(r.candidates) for r in records)
    summary.tasks.update(r.task for r in records)
    return summary


def _iter_rl_lines(path: Path, summary: AnnotationSummary | None, id_digits: int | None) -> list[RLRecord]:
    records = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path=path) from err
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                if summary is not None:
                    summary.blank_lines += 1
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as err:
                raise DataError(f"not valid JSON ({err})", path=path, line=number) from err
            records.append(parse_rl_record(obj, line=number, path=str(path), id_digits=id_digits))
    return records


def load_rl_jsonl(path: str | Path, *, id_digits: int | None = None) -> list[RLRecord]:
    """Validated stage-3 RL records (blank lines are skipped; ``validate_rl_jsonl`` counts them)."""
    return _iter_rl_lines(Path(path), None, id_digits)


def validate_rl_jsonl(path: str | Path, *, id_digits: int | None = None) -> AnnotationSummary:
    summary = AnnotationSummary(path=str(path), kind="rl")
    records = _iter_rl_lines(Path(path), summary, id_digits)
    summary.records = len(records)
    summary.tasks["rl"] = len(records)
    summary.warnings.extend(
        f"{path}, line {r.line}: no <Goal_Motion>; the motion-motion reward is 0 for its batch"
        for r in records
        if r.goal_motion is None
    )
    return summary


def validate_file(
    path: str | Path, *, templates: TemplateStore | None = None, id_digits: int | None = None
) -> AnnotationSummary:
    """Dispatch on the suffix: ``.jsonl`` is a stage-3 RL file, anything else an SFT annotation JSON."""
    if Path(path).suffix == ".jsonl":
        return validate_rl_jsonl(path, id_digits=id_digits)
    return validate_annotation_file(path, templates=templates, id_digits=id_digits)

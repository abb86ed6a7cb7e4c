"""Validate annotation files and print per-task counts; exit 1 if any file is invalid.

    python prepare/validate_annotations.py \
        --paths ../shared/reference/upstream_data/HumanML3D/annotations_demo --show-warnings
    python prepare/validate_annotations.py --paths a.json:b.json rl/train.jsonl --dataset humanml3d

``--paths`` takes SFT annotation JSON files, stage-3 RL ``.jsonl`` files, folders (searched recursively
for both) and upstream-style ``a.json:b.json`` lists. ``--dataset`` fixes the motion-id width
(humanml3d: 6 digits, kit: 5); ``auto`` accepts either. Each file is reported on one line; the first
problem of an invalid file is printed with its record and field.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_engine.annotations import validate_file
from data_engine.datasets.spec import get_dataset_spec
from models.common.config import parse_config
from models.common.errors import DataError
from models.llm.prompts import TemplateStore


@dataclass
class ValidateConfig:
    paths: list[str] = field(default_factory=list, metadata={"help": "files, folders or a.json:b.json lists"})
    dataset: str = field(default="auto", metadata={"help": "humanml3d | kit | auto (motion-id width)"})
    templates: str = field(default="", metadata={"help": "template JSON (default: the shipped asset)"})
    show_warnings: bool = field(default=False, metadata={"help": "print every non-fatal warning"})

    def __post_init__(self) -> None:
        if not self.paths:
            raise SystemExit("--paths: give at least one annotation file or folder")
        if self.dataset != "auto":
            get_dataset_spec(self.dataset)


def expand_paths(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for entry in paths:
        for part in (p for p in entry.split(os.pathsep) if p):
            path = Path(part)
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl")))
            else:
                files.append(path)
    return files


def run(config: ValidateConfig) -> int:
    """Validate every file named by ``config``; print one line per file; return the exit status."""
    id_digits = None if config.dataset == "auto" else get_dataset_spec(config.dataset).id_digits
    templates = TemplateStore.load(config.templates or None)
    files = expand_paths(config.paths)
    if not files:
        print("no annotation files found", file=sys.stderr)
        return 2
    totals: Counter[str] = Counter()
    failed = 0
    for path in files:
        try:
            summary = validate_file(path, templates=templates, id_digits=id_digits)
        except DataError as err:
            failed += 1
            print(f"FAIL  {err}")
            continue
        totals.update(summary.tasks)
        tasks = ", ".join(f"{task}={count}" for task, count in sorted(summary.tasks.items()))
        extra = f", {len(summary.warnings)} warning(s)" if summary.warnings else ""
        print(f"OK    {path}: {summary.records} records, {summary.candidates} candidates [{tasks}]{extra}")
        if config.show_warnings:
            for warning in summary.warnings:
                print(f"      warning: {warning}")
    print(
        f"{len(files) - failed} file(s) valid, {failed} invalid; "
        f"records per task: {dict(sorted(totals.items()))}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_config(ValidateConfig, argv=argv, description=__doc__))


if __name__ == "__main__":
    sys.exit(main())

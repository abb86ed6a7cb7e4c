"""Dataclass configuration for entry points: named presets, JSON files and CLI overrides.

Each entry point declares one dataclass. ``parse_config`` builds it from, in increasing priority:

1. the dataclass defaults,
2. a named preset (``--preset toy``),
3. a JSON file of field values (``--config run.json``, e.g. the ``config.json`` saved next to a run),
4. command-line flags; every field ``foo_bar`` is accepted as ``--foo-bar`` and ``--foo_bar``, so the
   upstream flag names (``--llm-backbone``, ``--resume-llm``, ``--eval-task``) work unchanged.

Validation belongs in the dataclass's ``__post_init__`` so it runs whichever way a config is built.
The flag parsing itself is transformers' ``HfArgumentParser``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from models.common.io import atomic_write_json

T = TypeVar("T")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the entry point's docstring (usage examples) as written."""


def _field_names(config_cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_cls)}


def _check_keys(config_cls: type, values: Mapping[str, Any], origin: str) -> None:
    unknown = sorted(set(values) - _field_names(config_cls))
    if unknown:
        raise SystemExit(
            f"{origin}: unknown setting(s) {unknown} for {config_cls.__name__}; "
            f"valid settings: {sorted(_field_names(config_cls))}"
        )


def parse_config(
    config_cls: type[T],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    argv: Sequence[str] | None = None,
    description: str | None = None,
) -> T:
    """Build ``config_cls`` from defaults, ``--preset``, ``--config`` and CLI flags (in that order)."""
    from transformers import HfArgumentParser  # lazy: keeps library imports light

    presets = dict(presets or {})
    argv = list(sys.argv[1:] if argv is None else argv)

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)

    overrides: dict[str, Any] = {}
    if known.preset is not None:
        if known.preset not in presets:
            raise SystemExit(f"unknown --preset {known.preset!r}; choose one of {sorted(presets)}")
        _check_keys(config_cls, presets[known.preset], f"preset {known.preset!r}")
        overrides.update(presets[known.preset])
    if known.config is not None:
        path = Path(known.config)
        try:
            from_file = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"--config {path}: cannot read a JSON object of settings ({err})") from err
        if not isinstance(from_file, dict):
            raise SystemExit(f"--config {path}: expected a JSON object of settings")
        _check_keys(config_cls, from_file, f"--config {path}")
        overrides.update(from_file)

    parser = HfArgumentParser(config_cls, description=description, formatter_class=_HelpFormatter)
    preset_help = f"named preset: {', '.join(sorted(presets))}" if presets else "no presets defined"
    parser.add_argument("--preset", default=None, help=preset_help)
    parser.add_argument("--config", default=None, help="JSON file of settings (applied after --preset)")
    parser.set_defaults(**overrides)
    # The extra namespace holding --preset/--config (already applied above) is dropped.
    return parser.parse_args_into_dataclasses(args=rest)[0]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a config dataclass (paths become strings)."""

    def convert(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return {k: convert(v) for k, v in dataclasses.asdict(config).items()}


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as JSON (atomically), so a run can be reproduced with ``--config``."""
    atomic_write_json(config_to_dict(config), path)

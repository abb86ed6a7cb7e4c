"""Configuration parsing (presets, JSON, upstream flag names) and crash-safe writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from models.common.config import parse_config, save_config
from models.common.errors import DataError
from models.common.io import atomic_write, atomic_write_json, fingerprint_files


@dataclass
class RunConfig:
    llm_backbone: str = field(default="gemma-2-2b-it", metadata={"help": "backbone folder"})
    batch_size: int = 4
    learning_rate: float = 1e-5
    full_tuning: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


PRESETS = {"toy": {"batch_size": 32, "learning_rate": 1e-3}}


def test_defaults_preset_file_and_flags_in_priority_order(tmp_path: Path) -> None:
    assert parse_config(RunConfig, PRESETS, []) == RunConfig()
    assert parse_config(RunConfig, PRESETS, ["--preset", "toy"]).batch_size == 32
    cfg_file = tmp_path / "run.json"
    cfg_file.write_text(json.dumps({"batch_size": 8}))
    cfg = parse_config(RunConfig, PRESETS, ["--preset", "toy", "--config", str(cfg_file), "--llm-backbone", "tiny"])
    assert (cfg.batch_size, cfg.learning_rate, cfg.llm_backbone) == (8, 1e-3, "tiny")
    assert parse_config(RunConfig, PRESETS, ["--batch_size", "2", "--full-tuning"]).full_tuning is True


def test_saved_config_reproduces_the_run(tmp_path: Path) -> None:
    cfg = parse_config(RunConfig, PRESETS, ["--preset", "toy", "--llm-backbone", "tiny"])
    save_config(cfg, tmp_path / "config.json")
    assert parse_config(RunConfig, PRESETS, ["--config", str(tmp_path / "config.json")]) == cfg


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown --preset 'huge'"):
        parse_config(RunConfig, PRESETS, ["--preset", "huge"])
    (tmp_path / "bad.json").write_text(json.dumps({"batchsize": 3}))
    with pytest.raises(SystemExit, match="batchsize"):
        parse_config(RunConfig, PRESETS, ["--config", str(tmp_path / "bad.json")])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        parse_config(RunConfig, PRESETS, ["--batch-size", "0"])


def test_atomic_write_leaves_old_file_on_crash(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.json"
    atomic_write_json({"step": 1}, target)

    def crash(handle) -> None:
        handle.write(b'{"step": 2')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert json.loads(target.read_text()) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.json"]  # no temp file left behind


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    a = tmp_path / "a.npy"
    a.write_bytes(b"1")
    first = fingerprint_files([a], root=tmp_path)
    a.write_bytes(b"12")
    assert fingerprint_files([a], root=tmp_path) != first


def test_data_error_names_place() -> None:
    err = DataError("bad width", path="x/000001.npy", record=3, field="motion")
    assert str(err) == "x/000001.npy, record 3, field 'motion': bad width"

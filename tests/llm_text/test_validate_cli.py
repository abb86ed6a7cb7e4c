"""prepare/validate_annotations.py: one line per file, precise failure messages, non-zero exit on errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def cli(repo_root: Path):
    spec = importlib.util.spec_from_file_location(
        "validate_annotations", repo_root / "prepare" / "validate_annotations.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_demo_folder_is_valid(cli, demo_dir: Path, capsys):
    assert cli.run(cli.ValidateConfig(paths=[str(demo_dir)], show_warnings=True)) == 0
    out = capsys.readouterr().out
    assert "10 file(s) valid, 0 invalid" in out and "'t2m_direct_generation': 14" in out
    assert out.count("warning: ") == 2


def test_invalid_files_fail_with_record_and_field(cli, demo_dir: Path, tmp_path: Path, capsys):
    data = json.loads((demo_dir / "stage-1/T2M_direct_generation_annots.json").read_text(encoding="utf-8"))
    data["annotations"][4]["conversations"][0]["from"] = "assistant"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    kit = demo_dir / "stage_0_annotations_demo.json"
    assert cli.run(cli.ValidateConfig(paths=[f"{bad}:{kit}"], dataset="humanml3d")) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0] == f"FAIL  {bad}, record #4 (id=4), field 'conversations[0].from': "
        "expected role 'system', got 'assistant'"
    )
    assert out[1].startswith(f"FAIL  {kit}, record #0 (id=0), field 'motions.<Goal_Motion>.motion_name'")
    assert cli.run(cli.ValidateConfig(paths=[str(kit)], dataset="kit")) == 0
    with pytest.raises(SystemExit):
        cli.ValidateConfig(paths=[])

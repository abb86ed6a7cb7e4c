"""prepare/make_toy_dataset.py: builds, skips an identical world, refuses to clobber what it should not."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest


@pytest.fixture(scope="module")
def make_toy_main(repo_root):
    script = repo_root / "prepare" / "make_toy_dataset.py"
    spec = importlib.util.spec_from_file_location("prepare_make_toy_dataset", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module.main


def test_build_skip_refuse_overwrite(make_toy_main, tmp_path, capsys) -> None:
    out = tmp_path / "toy"
    argv = ["--preset", "tiny", "--out", str(out), "--workers", "1"]
    summary = make_toy_main(argv)
    assert not summary.skipped_existing and summary.base_motions == 60
    assert summary.split_clips["test"] >= 96
    assert "clips per split" in capsys.readouterr().out
    fingerprint = json.loads((out / "toy_world.json").read_text())["fingerprint"]

    assert make_toy_main(argv).skipped_existing  # same settings: nothing to do
    with pytest.raises(SystemExit, match="--overwrite"):
        make_toy_main(argv + ["--seed", "1"])
    rebuilt = make_toy_main(argv + ["--seed", "1", "--overwrite"])
    assert not rebuilt.skipped_existing
    assert json.loads((out / "toy_world.json").read_text())["fingerprint"] != fingerprint
    assert not list(tmp_path.glob(".toy.*"))  # no staging folders left behind


def test_refuses_a_folder_that_is_not_a_toy_world(make_toy_main, tmp_path) -> None:
    out = tmp_path / "HumanML3D"
    out.mkdir()
    (out / "all.txt").write_text("000000\n")
    with pytest.raises(SystemExit, match="not a toy world"):
        make_toy_main(["--preset", "tiny", "--out", str(out), "--overwrite"])
    assert (out / "all.txt").read_text() == "000000\n"


def test_rejects_too_few_motions(make_toy_main, tmp_path) -> None:
    with pytest.raises(SystemExit, match="too small"):
        make_toy_main(["--num-motions", "20", "--out", str(tmp_path / "x")])

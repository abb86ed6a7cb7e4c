"""prepare/export_vqvae.py converts ours <-> released and checks what it wrote."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from models.vqvae import load_vqvae, save_vqvae


@pytest.fixture(scope="module")
def export_main(repo_root):
    script = repo_root / "prepare" / "export_vqvae.py"
    spec = importlib.util.spec_from_file_location("prepare_export_vqvae", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module.main


def test_ours_to_released_and_back(export_main, small_model, vq_golden, tmp_path, capsys):
    ours = save_vqvae(small_model, tmp_path / "ours.pt")
    released = export_main(["--input", str(ours), "--output", str(tmp_path / "net_last.pth")])
    summary = json.loads(capsys.readouterr().out)
    assert summary["tensors"] == 67 and summary["wrote"] == str(released)
    assert list(torch.load(released, weights_only=True)) == ["net"]

    back = export_main(["--input", str(released), "--output", str(tmp_path / "back.pt"), "--to", "ours",
                        "--vq-preset", "small_fixture"])
    assert torch.load(back, weights_only=True)["config"] == small_model.config.to_dict()
    codes = load_vqvae(back).encode(vq_golden["motions"])
    assert all(torch.equal(a, b) for a, b in zip(codes, vq_golden["codes"]))


def test_refuses_to_overwrite(export_main, small_model, tmp_path):
    ours = save_vqvae(small_model, tmp_path / "ours.pt")
    target = tmp_path / "exists.pth"
    target.write_bytes(b"keep me")
    with pytest.raises(SystemExit, match="--overwrite"):
        export_main(["--input", str(ours), "--output", str(target)])
    assert target.read_bytes() == b"keep me"
    export_main(["--input", str(ours), "--output", str(target), "--overwrite"])
    assert list(torch.load(target, weights_only=True)) == ["net"]

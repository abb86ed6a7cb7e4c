"""prepare/convert_checkpoint.py: Motion-Agent -> authors -> our folder -> authors, logits preserved."""

from __future__ import annotations

import copy

import pytest
import torch

from models.llm.checkpoints import load_checkpoint, read_checkpoint, save_motion_agent_lora
from models.llm.model import activate_full_tuning


@pytest.fixture(scope="module")
def convert(load_script):
    return load_script("prepare/convert_checkpoint.py").main


def test_conversion_chain(convert, build, helpers, tiny_folder, tmp_path, capsys):
    source, _, vocab = build()
    helpers.perturb(source, vocab)
    motion_agent = save_motion_agent_lora(source, tmp_path / "motionllm.pth", vocab)
    common = ["--llm-backbone", str(tiny_folder), "--dtype", "fp32", "--lora-alpha", "16"]

    # Motion-Agent -> authors' LoRA 'shared' .pth (the README's manual rename)
    shared = convert(
        [
            "--input",
            str(motion_agent),
            "--to",
            "authors-pth",
            "--output",
            str(tmp_path / "shared.pth"),
            *common,
        ]
    )
    assert "(motion-agent): loaded 28 parameters" in capsys.readouterr().out
    state, info = read_checkpoint(shared)
    assert (
        info == {"epoch": 0}
        and any(".lora_A.shared." in k for k in state)
        and state["embeddings"].shape[0] == 514
    )
    stage1, _, _ = build(full_tuning=True, init_checkpoint=str(shared))
    expected = helpers.logits(activate_full_tuning(copy.deepcopy(source)), vocab)
    assert torch.equal(helpers.logits(stage1, vocab), expected)

    # authors' LoRA .pth -> our HF folder (merged)
    folder = convert(["--input", str(shared), "--to", "hf-folder", "--output", str(tmp_path / "hf"), *common])
    reopened, _, _ = build(llm_backbone=str(folder), use_lora=False)
    assert torch.equal(helpers.logits(reopened, vocab), expected)

    # our folder -> authors' full .pth (no backbone needed)
    full = convert(
        [
            "--input",
            str(folder),
            "--to",
            "authors-pth",
            "--output",
            str(tmp_path / "full.pth"),
            "--dtype",
            "fp32",
        ]
    )
    state, _ = read_checkpoint(full)
    assert "model.layers.0.mlp.up_proj.weight" in state and state["embeddings"].shape[0] == vocab.vocab_size
    fresh, _, _ = build(use_lora=False)
    assert load_checkpoint(fresh, full, vocab).ok
    assert torch.equal(helpers.logits(fresh, vocab), expected)


def test_refuses_to_overwrite_and_needs_a_backbone(convert, tmp_path):
    existing = tmp_path / "out.pth"
    existing.write_bytes(b"")
    source = tmp_path / "in.pth"
    torch.save({"x": torch.zeros(1)}, source)
    with pytest.raises(SystemExit, match="--overwrite"):
        convert(["--input", str(source), "--output", str(existing)])
    with pytest.raises(SystemExit, match="--llm-backbone"):
        convert(["--input", str(source), "--output", str(tmp_path / "new")])

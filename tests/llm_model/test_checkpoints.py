"""Checkpoint round trips with the tiny Gemma-2 (identical logits) and loud failures."""

from __future__ import annotations

import argparse
import copy
import json

import pytest
import torch

from models.common.errors import DataError
from models.llm.checkpoints import (
    authors_state_dict,
    load_authors_checkpoint,
    load_checkpoint,
    load_motion_agent_lora,
    motion_agent_state_dict,
    read_checkpoint,
    save_adapter_folder,
    save_authors_checkpoint,
    save_hf_folder,
    save_motion_agent_lora,
)
from models.llm.model import activate_full_tuning, load_tokenizer
from models.llm.vocab import MotionVocab, add_motion_tokens


@pytest.fixture()
def trained_lora(build, helpers):
    """A LoRA model whose adapter and motion rows are non-trivial (as after training)."""
    model, tokenizer, vocab = build()
    helpers.perturb(model, vocab)
    return model, tokenizer, vocab


@pytest.fixture()
def trained_full(trained_lora):
    """A merged (full-tuning) model with non-trivial weights everywhere."""
    model, tokenizer, vocab = trained_lora
    return activate_full_tuning(model), tokenizer, vocab


def test_full_authors_pth_round_trip(trained_full, build, helpers, tmp_path):
    model, _, vocab = trained_full
    path = save_authors_checkpoint(model, tmp_path / "full.pth", epoch=4, step=12)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "step", "state_dict"} and (raw["epoch"], raw["step"]) == (4, 12)
    assert set(raw["state_dict"]) == {n for n, _ in model.named_parameters()} | {"embeddings", "lm_head"}

    fresh, _, _ = build(use_lora=False)  # stage 2: --wo-lora --full-tuning
    report = load_authors_checkpoint(fresh, path, vocab)
    assert report.ok and report.resume_info == {"epoch": 4, "step": 12} and not report.kept
    assert torch.equal(helpers.logits(fresh, vocab), helpers.logits(model, vocab))


def test_full_checkpoint_into_fresh_lora_model_keeps_the_zero_lora(trained_full, build, helpers, tmp_path):
    model, _, vocab = trained_full
    path = save_authors_checkpoint(model, tmp_path / "full.pth", epoch=0)
    lora, _, _ = build()  # upstream test flow loads full checkpoints into a (fresh) LoRA wrapper
    report = load_authors_checkpoint(lora, path, vocab)
    assert report.ok and len(report.kept) == 2 * 7 * 2  # the fresh LoRA A/B of 2 layers x 7 projections
    assert torch.allclose(helpers.logits(lora, vocab), helpers.logits(model, vocab), atol=1e-4, rtol=1e-4)


def test_motion_agent_lora_round_trip(trained_lora, build, helpers, tmp_path):
    model, _, vocab = trained_lora
    path = save_motion_agent_lora(model, tmp_path / "motionllm.pth", vocab)
    state = torch.load(path, weights_only=True)
    assert "state_dict" not in state and state["embeddings"].shape == (514, 64)
    assert any(".lora_A.t2m." in k for k in state) and not any(".shared." in k for k in state)
    # Motion-Agent files also hold the m2t adapter (r 32): it is ignored, and reported
    m2t = {
        k.replace(".t2m.", ".m2t."): torch.zeros(4, *v.shape[1:])
        if ".lora_A." in k
        else torch.zeros(v.shape[0], 4)
        for k, v in state.items()
        if ".t2m." in k
    }
    torch.save({**state, **m2t}, path)

    fresh, _, _ = build()
    report = load_motion_agent_lora(fresh, path)
    assert report.ok and report.format == "motion-agent" and len(report.ignored) == len(m2t)
    assert "embeddings: 514 motion-token rows" in report.embedding_rows
    assert len(report.kept) > 0  # the base weights stay the backbone's
    assert torch.equal(helpers.logits(fresh, vocab), helpers.logits(model, vocab))


def test_stage1_order_load_lora_then_merge(trained_lora, build, helpers, tmp_path):
    model, _, vocab = trained_lora
    path = save_motion_agent_lora(model, tmp_path / "motionllm.pth", vocab)
    stage1, _, _ = build(full_tuning=True, init_checkpoint=str(path))
    assert type(stage1).__name__ == "Gemma2ForCausalLM" and all(p.requires_grad for p in stage1.parameters())
    expected = helpers.logits(activate_full_tuning(copy.deepcopy(model)), vocab)
    assert torch.equal(helpers.logits(stage1, vocab), expected)


def test_lora_only_authors_pth_round_trip(trained_lora, build, helpers, tmp_path):
    model, _, vocab = trained_lora
    for rows in ("all", "new"):
        path = save_authors_checkpoint(
            model, tmp_path / f"lora_{rows}.pth", epoch=1, lora_only=True, embedding_rows=rows, vocab=vocab
        )
        state, _ = read_checkpoint(path)
        assert state["embeddings"].shape[0] == (vocab.vocab_size if rows == "all" else 514)
        assert all(".lora_" in k for k in state if k not in ("embeddings", "lm_head"))
        fresh, _, _ = build()
        assert load_checkpoint(fresh, path, vocab).ok
        assert torch.equal(helpers.logits(fresh, vocab), helpers.logits(model, vocab))


def test_hf_folder_opens_with_auto_model_and_keeps_token_ids(trained_lora, build, helpers, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tokenizer, vocab = trained_lora
    folder = save_hf_folder(model, tokenizer, tmp_path / "hf", {"stage": "test"})
    merged = activate_full_tuning(copy.deepcopy(model))
    reopened = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    assert torch.equal(helpers.logits(reopened, vocab), helpers.logits(merged, vocab))

    meta = json.loads((folder / "motion_llm.json").read_text())
    assert (
        meta["nb_text_tokens"] == vocab.nb_text_tokens and meta["nb_code"] == 512 and meta["stage"] == "test"
    )
    reloaded = load_tokenizer(folder)
    assert MotionVocab.from_tokenizer(reloaded) == vocab
    text = "x" + vocab.block_text([3, 9]) + "<eos>"
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]

    as_backbone, tokenizer2, vocab2 = build(llm_backbone=str(folder), use_lora=False)
    assert vocab2 == vocab and len(tokenizer2) == len(tokenizer)
    assert torch.equal(helpers.logits(as_backbone, vocab), helpers.logits(merged, vocab))


def test_hf_folder_save_is_atomic_replace(trained_full, tmp_path):
    model, tokenizer, _ = trained_full
    folder = tmp_path / "hf"
    save_hf_folder(model, tokenizer, folder, {"round": 1})
    save_hf_folder(model, tokenizer, folder, {"round": 2})
    assert json.loads((folder / "motion_llm.json").read_text())["round"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no temporary leftovers


def test_adapter_folder_round_trip(trained_lora, build, helpers, tmp_path):
    model, tokenizer, vocab = trained_lora
    folder = save_adapter_folder(model, tokenizer, tmp_path / "adapter")
    assert (folder / "shared" / "adapter_config.json").is_file()
    fresh, _, _ = build(init_checkpoint=str(folder))
    assert torch.equal(helpers.logits(fresh, vocab), helpers.logits(model, vocab))


def test_trainable_token_rows_are_saved_and_merged(build, helpers, tmp_path):
    model, _, vocab = build(train_new_token_rows=True)
    helpers.perturb(model, vocab)
    delta = next(p for n, p in model.named_parameters() if "trainable_tokens_delta" in n)
    with torch.no_grad():
        delta.add_(0.5)  # the trained copy of the motion rows now differs from the base rows
    path = save_authors_checkpoint(
        model, tmp_path / "lora.pth", epoch=0, lora_only=True, embedding_rows="new", vocab=vocab
    )
    assert torch.equal(read_checkpoint(path)[0]["embeddings"], delta.detach())
    fresh, _, _ = build()
    load_checkpoint(fresh, path, vocab)
    assert torch.allclose(helpers.logits(fresh, vocab), helpers.logits(model, vocab), atol=1e-4, rtol=1e-4)
    full = authors_state_dict(model, vocab)
    merged = activate_full_tuning(copy.deepcopy(model))
    assert torch.equal(full["model.embed_tokens.weight"], merged.model.embed_tokens.weight)
    assert torch.equal(full["model.layers.1.mlp.up_proj.weight"], merged.model.layers[1].mlp.up_proj.weight)


# ---------------------------------------------------------------------------------------------- errors


def test_checkpoint_for_another_vocabulary_size(trained_full, build, tmp_path):
    model, _, vocab = trained_full
    state = authors_state_dict(model, vocab)
    bigger = torch.zeros(256514, state["embeddings"].shape[1])
    state.update({"model.embed_tokens.weight": bigger, "embeddings": bigger, "lm_head": bigger})
    fresh, _, _ = build(use_lora=False)
    with pytest.raises(
        DataError,
        match=r"another vocabulary size: 256514 rows \(= 256000 text \+ 514 motion tokens\), "
        rf"but this model has {vocab.vocab_size} rows",
    ):
        load_authors_checkpoint(fresh, {"epoch": 0, "state_dict": state}, vocab)
    report = load_authors_checkpoint(fresh, {"epoch": 0, "state_dict": state}, vocab, strict=False)
    assert not report.ok and len(report.shape_errors) == 2  # embed_tokens and embeddings (lm_head is tied)


def test_missing_and_unused_are_listed(trained_full, build, tmp_path):
    model, _, vocab = trained_full
    state = authors_state_dict(model, vocab)
    del state["model.layers.0.mlp.up_proj.weight"], state["model.norm.weight"]
    state["model.layers.9.mlp.up_proj.weight"] = torch.zeros(3)
    fresh, _, _ = build(use_lora=False)
    before = {n: p.clone() for n, p in fresh.named_parameters()}
    with pytest.raises(DataError) as err:
        load_authors_checkpoint(fresh, state, vocab)
    assert all(torch.equal(p, before[n]) for n, p in fresh.named_parameters())  # nothing written
    message = str(err.value)
    assert "MISSING model parameters (2)" in message and "model.layers.0.mlp.up_proj.weight" in message
    assert "model.norm.weight" in message
    assert "UNUSED checkpoint keys (1)" in message and "model.layers.9.mlp.up_proj.weight" in message


def test_shape_mismatch_names_both_shapes(trained_full, build):
    model, _, vocab = trained_full
    state = authors_state_dict(model, vocab)
    state["model.layers.1.self_attn.q_proj.weight"] = torch.zeros(7, 64)
    fresh, _, _ = build(use_lora=False)
    with pytest.raises(DataError, match=r"q_proj.weight: checkpoint \[7, 64\] vs model .* \[64, 64\]"):
        load_authors_checkpoint(fresh, state, vocab)


def test_motion_agent_file_without_t2m_keys(trained_lora, build, tmp_path):
    model, _, vocab = trained_lora
    state = motion_agent_state_dict(model, vocab)
    only_m2t = {k.replace(".t2m.", ".m2t."): v for k, v in state.items()}
    fresh, _, _ = build()
    with pytest.raises(DataError, match="no LoRA keys of adapter 't2m'"):
        load_motion_agent_lora(fresh, only_m2t)
    plain, _, _ = build(use_lora=False)
    with pytest.raises(DataError, match="use_lora=True"):
        load_motion_agent_lora(plain, state)


def test_lora_checkpoint_into_merged_model_fails_with_a_hint(trained_lora, build, tmp_path):
    model, _, vocab = trained_lora
    path = save_motion_agent_lora(model, tmp_path / "ma.pth", vocab)
    lora_only = authors_state_dict(model, vocab, lora_only=True, embedding_rows="new")
    plain, _, _ = build(use_lora=False)
    with pytest.raises(DataError, match="merge"):
        load_authors_checkpoint(plain, lora_only, vocab)
    renamed_by_hand_forgotten, _, _ = build()
    with pytest.raises(DataError, match="load with load_motion_agent_lora"):
        load_authors_checkpoint(
            renamed_by_hand_forgotten, path, vocab
        )  # upstream would load nothing silently


def test_motion_agent_rank_mismatch_is_a_shape_error(trained_lora, build, tmp_path):
    model, _, vocab = trained_lora
    path = save_motion_agent_lora(model, tmp_path / "ma.pth", vocab)
    other_rank, _, _ = build(lora_r=4)
    with pytest.raises(
        DataError, match=r"lora_A.t2m.weight: checkpoint \[8, 64\] vs model .*lora_A.shared.weight \[4, 64\]"
    ):
        load_motion_agent_lora(other_rank, path)


def test_unsafe_or_foreign_files_are_rejected(build, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "args": argparse.Namespace(lr=1e-5)}, bad)
    with pytest.raises(DataError, match="weights-only"):
        read_checkpoint(bad)
    with pytest.raises(DataError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")
    model, tokenizer, vocab = build()
    with pytest.raises(DataError, match="full model folder"):
        load_checkpoint(model, tokenizer.name_or_path, vocab)


def test_tokenizer_reload_after_add_motion_tokens_keeps_layout(tiny_folder, tmp_path):
    tokenizer = load_tokenizer(tiny_folder)
    vocab = add_motion_tokens(tokenizer)
    tokenizer.save_pretrained(tmp_path)
    assert add_motion_tokens(load_tokenizer(tmp_path)) == vocab

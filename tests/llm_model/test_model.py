"""build_motion_llm: settings, the LoRA / full-tuning state machine, trainable sets, merged weights."""

from __future__ import annotations

import copy

import pytest
import torch

from models.llm.model import (
    LLMSettings,
    activate_full_tuning,
    count_parameters,
    merged_state_dict,
    resolve_attn_implementation,
    resolve_dtype,
    trainable_parameter_report,
)


def test_settings_validation():
    with pytest.raises(ValueError, match="attn_implementation"):
        LLMSettings(llm_backbone="x", attn_implementation="sdpa")  # Gemma-2 + sdpa drops the soft-cap
    with pytest.raises(ValueError, match="dtype"):
        LLMSettings(llm_backbone="x", dtype="fp16")
    with pytest.raises(ValueError, match="train_new_token_rows"):
        LLMSettings(llm_backbone="x", use_lora=True, full_tuning=True, train_new_token_rows=True)
    assert LLMSettings(llm_backbone="g").tokenizer_path == "g"
    assert LLMSettings(llm_backbone="g", llm_tokenizer="t").tokenizer_path == "t"


def test_auto_resolution_on_this_machine():
    cuda = torch.cuda.is_available()
    assert resolve_dtype("auto") == (torch.bfloat16 if cuda else torch.float32)
    assert resolve_dtype("bf16") == torch.bfloat16
    assert resolve_attn_implementation("eager") == "eager"
    if not cuda:
        assert resolve_attn_implementation("auto") == "eager"


def test_lora_mode(build, helpers):
    model, tokenizer, vocab = build()
    assert type(model).__name__ == "PeftModelForCausalLM" and list(model.peft_config) == ["shared"]
    config = model.peft_config["shared"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 16, 0.1)
    assert set(config.target_modules) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and ".shared." in n for n in trainable)
    assert len(trainable) == 2 * 7 * 2
    embedding = model.get_input_embeddings().weight
    assert embedding.shape[0] == len(tokenizer) == vocab.vocab_size
    assert model.get_output_embeddings().weight is embedding  # tied, no pad-to-multiple
    total, n_trainable = count_parameters(model)
    assert n_trainable == sum(model.get_parameter(n).numel() for n in trainable) and total > n_trainable


def test_full_tuning_merges_and_trains_everything(build, helpers):
    lora, _, vocab = build()
    helpers.perturb(lora, vocab)
    expected = helpers.logits(lora, vocab)
    full = activate_full_tuning(lora)
    assert type(full).__name__ == "Gemma2ForCausalLM"
    assert all(p.requires_grad for p in full.parameters())
    assert full.lm_head.weight is full.model.embed_tokens.weight
    assert torch.allclose(
        helpers.logits(full, vocab), expected, atol=1e-4, rtol=1e-4
    )  # merge reorders float ops

    stage2, _, _ = build(use_lora=False, full_tuning=True)  # upstream --wo-lora --full-tuning
    assert type(stage2).__name__ == "Gemma2ForCausalLM" and all(p.requires_grad for p in stage2.parameters())
    frozen, _, _ = build(use_lora=False)
    assert count_parameters(frozen)[1] == 0


def test_new_token_rows_train_only_the_motion_rows(build, helpers):
    model, _, vocab = build(train_new_token_rows=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    deltas = [n for n in trainable if "trainable_tokens_delta" in n]
    assert len(deltas) == 1 and model.get_parameter(deltas[0]).shape[0] == vocab.nb_motion_tokens
    base = model.get_input_embeddings().token_adapter.base_layer.weight
    assert not base.requires_grad
    model.train()
    loss = model(input_ids=helpers.probe_ids(vocab), labels=helpers.probe_ids(vocab)).loss
    loss.backward()
    assert model.get_parameter(deltas[0]).grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_merged_state_dict_equals_peft_merge(build, helpers, dtype):
    model, _, vocab = build(dtype=dtype, train_new_token_rows=True)
    helpers.perturb(model, vocab)
    state = merged_state_dict(model)
    merged = activate_full_tuning(copy.deepcopy(model))
    reference = dict(merged.named_parameters())
    assert set(state) == set(reference)
    for name, tensor in state.items():
        assert tensor.dtype == reference[name].dtype and torch.equal(tensor, reference[name]), name


def test_trainable_parameter_report_lists_every_parameter(build):
    model, _, _ = build()
    report = trainable_parameter_report(model)
    lines = report.strip().splitlines()
    assert len(lines) == len(list(model.named_parameters())) + 1
    assert "lora_A.shared.weight\t8x64\tfloat32\tTrue" in report
    assert lines[-1].startswith("# total ")

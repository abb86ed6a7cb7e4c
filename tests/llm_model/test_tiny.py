"""The tiny local Gemma-2: Gemma tokenizer conventions, folder layout, determinism, the CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from models.llm.model import load_backbone, load_tokenizer
from models.llm.tiny import (
    GEMMA_CHAT_TEMPLATE,
    TINY_SHAPES,
    build_tiny_gemma2,
    make_tiny_llm,
    train_tiny_tokenizer,
)
from models.llm.vocab import add_motion_tokens


@pytest.fixture(scope="module")
def tokenizer(tiny_folder):
    return load_tokenizer(tiny_folder)


def test_folder_is_laid_out_like_gemma_2b_it(tiny_folder):
    names = {p.name for p in tiny_folder.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    } <= names
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["model_type"] == "gemma2" and config["architectures"] == ["Gemma2ForCausalLM"]
    assert config["tie_word_embeddings"] is True
    assert (config["attn_logit_softcapping"], config["final_logit_softcapping"]) == (50.0, 30.0)
    assert config["max_position_embeddings"] >= 2048 and config["sliding_window"] > 0
    assert config["layer_types"] == ["sliding_attention", "full_attention"]
    assert config["vocab_size"] == 400  # the base vocabulary: motion tokens are added at load time
    generation = json.loads((tiny_folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [1, 5] and generation["pad_token_id"] == 0


def test_special_token_ids_follow_gemma(tokenizer):
    assert len(tokenizer) == 400
    assert (
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        tokenizer.bos_token_id,
        tokenizer.unk_token_id,
    ) == (0, 1, 2, 3)
    assert tokenizer.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>", "<0x00>", "<0xFF>"]) == [
        4,
        5,
        6,
        261,
    ]
    assert tokenizer.padding_side == "left"
    assert "<Motion>" not in tokenizer.get_vocab()


def test_bos_prepended_eos_text_and_no_dummy_prefix(tokenizer):
    ids = tokenizer("a person walks<eos>")["input_ids"]
    assert ids[0] == 2 and ids[-1] == 1 and ids.count(2) == 1
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("person walks", add_special_tokens=False)["input_ids"])
    assert not pieces[0].startswith("\u2581")  # Gemma adds no dummy prefix
    assert (
        tokenizer.decode(tokenizer("\n\n Response:", add_special_tokens=False)["input_ids"])
        == "\n\n Response:"
    )


def test_byte_fallback_round_trip(tokenizer):
    text = "Ünïcode ✓ 人が歩く"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(ids, skip_special_tokens=True) == text  # bytes are ordinary entries, not specials


def test_motion_tokens_single_and_stable_across_save_load(tiny_folder, tmp_path):
    tokenizer = load_tokenizer(tiny_folder)
    vocab = add_motion_tokens(tokenizer)
    text = "a person walks" + vocab.block_text([5, 511, 0]) + "<eos>"
    ids = tokenizer(text)["input_ids"]
    assert ids[-6:] == [400, 402 + 5, 402 + 511, 402 + 0, 401, 1]
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_tokenizer(tmp_path)
    assert add_motion_tokens(reloaded) == vocab
    assert reloaded(text)["input_ids"] == ids
    assert reloaded("Ünïcode ✓")["input_ids"] == tokenizer("Ünïcode ✓")["input_ids"]


def test_chat_template_is_gemmas(tokenizer):
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok "}],
        tokenize=False,
        add_generation_prompt=False,
    )
    assert rendered == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nok<end_of_turn>\n"
    spec = importlib.util.find_spec("trl")  # trl ships the official template as package data
    if spec is None:
        pytest.skip("trl not installed")
    official = Path(spec.submodule_search_locations[0]) / "chat_templates" / "gemma.jinja"
    if not official.is_file():
        pytest.skip("trl no longer ships gemma.jinja")
    assert official.read_text(encoding="utf-8").rstrip("\n") == GEMMA_CHAT_TEMPLATE


def test_weights_depend_only_on_the_seed(tiny_folder, tiny_corpus_texts, tmp_path):
    again = make_tiny_llm(tmp_path / "again", tiny_corpus_texts, preset="smoke", vocab_size=400, seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_folder / name).read_bytes(), name
    tokenizer = load_tokenizer(tiny_folder)
    other = build_tiny_gemma2(TINY_SHAPES["smoke"], tokenizer, seed=1).state_dict()
    same = load_backbone(tiny_folder, torch.float32, "eager").state_dict()
    assert not torch.equal(other["model.embed_tokens.weight"], same["model.embed_tokens.weight"])


def test_toy_preset_size():
    tokenizer = train_tiny_tokenizer(["a person walks forward"] * 5, vocab_size=300)
    model = build_tiny_gemma2(TINY_SHAPES["toy"], tokenizer)
    config = model.config
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.num_key_value_heads,
        config.head_dim,
        config.intermediate_size,
    ) == (128, 4, 4, 1, 32, 512)
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    assert 0.9e6 < non_embedding < 1.0e6
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_tokenizer_rejects_tiny_vocab():
    with pytest.raises(ValueError, match="at least"):
        train_tiny_tokenizer(["x"], vocab_size=100)


def test_cli_reads_captions_templates_and_extra_files(load_script, caption_root, tmp_path, capsys):
    script = load_script("prepare/make_tiny_llm.py")
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"annotations": [{"analysis": "zyzzyva quokka"}] * 300}))
    out = tmp_path / "tiny"
    folder = script.main(
        [
            "--preset",
            "smoke",
            "--data-root",
            str(caption_root),
            "--out",
            str(out),
            "--vocab-size",
            "700",
            "--seed",
            "3",
            "--extra-corpus",
            str(extra),
        ]
    )
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.index("{\n") :])  # deepspeed may print a line first
    assert folder == out and summary["base_vocab"] == 700
    assert summary["corpus"]["captions"] == 5 and summary["corpus"]["extra"] == 300
    assert summary["parameters_with_512_motion_codes"] == summary["parameters"] + 514 * 64
    tokenizer = load_tokenizer(out)
    assert (
        len(tokenizer("zyzzyva", add_special_tokens=False)["input_ids"]) <= 2
    )  # learned from the extra file
    assert json.loads((out / "config.json").read_text())["hidden_size"] == TINY_SHAPES["smoke"].hidden_size
    assert script.read_captions(caption_root, "train") == [
        "a person walks forward slowly",
        "someone walks ahead at a slow pace",
        "the figure kicks with the right leg then turns left",
        "the figure kicks with the left leg then turns right",
    ]

"""``load_inference_llm``: every ``--llm-ckpt`` form gives the trained model's logits."""

from __future__ import annotations

import torch

from models.llm.checkpoints import save_adapter_folder, save_authors_checkpoint, save_hf_folder
from models.llm.inference import load_inference_llm
from models.llm.model import LLMSettings, build_motion_llm, write_embedding_rows


@torch.no_grad()
def _trained_lora(folder):
    """A LoRA model (r 8) whose LoRA and motion rows are non-trivial, as after training."""
    torch.manual_seed(0)
    model, tokenizer, vocab = build_motion_llm(
        LLMSettings(
            llm_backbone=str(folder), lora_r=8, lora_alpha=16, dtype="fp32", attn_implementation="eager"
        )
    )
    generator = torch.Generator().manual_seed(1)
    for name, param in model.named_parameters():
        if ".lora_" in name:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    hidden = model.get_input_embeddings().weight.shape[1]
    write_embedding_rows(
        model, vocab.nb_text_tokens, torch.randn(vocab.nb_motion_tokens, hidden, generator=generator)
    )
    return model.eval(), tokenizer, vocab


@torch.no_grad()
def _logits(model, vocab) -> torch.Tensor:
    ids = torch.tensor([[2, 40, 41, vocab.motion_start_id, vocab.first_code_id + 7, vocab.motion_end_id, 1]])
    return model(input_ids=ids).logits


def test_every_checkpoint_form_loads_the_same_model(tiny_llm_dir, tmp_path):
    model, tokenizer, vocab = _trained_lora(tiny_llm_dir)
    expected = _logits(model, vocab)
    authors = save_authors_checkpoint(model, tmp_path / "ckpt_epoch3.pth", epoch=3)
    lora_pth = save_authors_checkpoint(model, tmp_path / "lora.pth", epoch=4, lora_only=True)
    adapter = save_adapter_folder(model, tokenizer, tmp_path / "adapter")
    hf = save_hf_folder(model, tokenizer, tmp_path / "hf")
    cases = [
        (str(authors), {"merge_lora": True, "lora_r": 8, "lora_alpha": 16}, 3),
        (str(lora_pth), {"lora_r": 8, "lora_alpha": 16}, 4),
        (str(adapter), {"merge_lora": True}, None),  # LoRA rank read from the folder
    ]
    for ckpt, options, epoch in cases:
        loaded, _, loaded_vocab, info = load_inference_llm(
            str(tiny_llm_dir), ckpt, dtype="fp32", attn_implementation="eager", **options
        )
        assert loaded_vocab == vocab and info["resume_info"].get("epoch") == epoch
        assert not any(p.requires_grad for p in loaded.parameters())
        torch.testing.assert_close(_logits(loaded, vocab), expected, rtol=1e-4, atol=1e-4)
    loaded, _, _, info = load_inference_llm("", str(hf), dtype="fp32", attn_implementation="eager")
    assert info["backbone"] == str(hf) and info["checkpoint"] == ""
    torch.testing.assert_close(_logits(loaded, vocab), expected, rtol=1e-4, atol=1e-4)

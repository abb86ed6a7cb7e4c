"""Fixtures for the LLM-core tests: a caption folder in the HumanML3D layout and a tiny Gemma-2 folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CAPTIONS = {
    "000001": [
        "a person walks forward slowly#a/DET person/NOUN walk/VERB forward/ADV slowly/ADV#0.0#0.0",
        "someone walks ahead at a slow pace#someone/PRON walk/VERB ahead/ADV#0.0#0.0",
    ],
    "000002": ["a man jumps up twice#a/DET man/NOUN jump/VERB up/ADV twice/ADV#0.0#0.0"],
    "000003": ["the figure kicks with the right leg then turns left#the/DET figure/NOUN kick/VERB#0.0#2.5"],
    "M000003": ["the figure kicks with the left leg then turns right#the/DET figure/NOUN kick/VERB#0.0#2.5"],
}


def write_caption_root(root: Path) -> Path:
    (root / "texts").mkdir(parents=True)
    for motion_id, lines in CAPTIONS.items():
        (root / "texts" / f"{motion_id}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "train.txt").write_text("000001\n000003\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def caption_root(tmp_path_factory) -> Path:
    return write_caption_root(tmp_path_factory.mktemp("captions"))


@pytest.fixture(scope="session")
def tiny_corpus_texts() -> list[str]:
    from models.llm.tiny import tiny_corpus

    captions = [line.split("#")[0] for lines in CAPTIONS.values() for line in lines]
    return tiny_corpus(captions * 10)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_corpus_texts) -> Path:
    """The ``smoke`` tiny Gemma-2 base folder (no motion tokens), vocabulary 400."""
    from models.llm.tiny import make_tiny_llm

    return make_tiny_llm(
        tmp_path_factory.mktemp("tiny") / "gemma2", tiny_corpus_texts, preset="smoke", vocab_size=400, seed=0
    )


@torch.no_grad()
def perturb(model, vocab, seed: int = 1) -> None:
    """Give LoRA B (zero at init) and the motion-token rows random values so that they change logits."""
    from models.llm.model import write_embedding_rows

    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if ".lora_B." in name or ".lora_A." in name:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    hidden = model.get_input_embeddings().weight.shape[1]
    write_embedding_rows(
        model, vocab.nb_text_tokens, torch.randn(vocab.nb_motion_tokens, hidden, generator=generator)
    )


def probe_ids(vocab) -> torch.Tensor:
    """A batch mixing text and motion tokens."""
    text = [2, 40, 41, 60, 77, 90]
    motion = [
        vocab.motion_start_id,
        *(vocab.first_code_id + k for k in (0, 5, 511, 17)),
        vocab.motion_end_id,
        1,
    ]
    return torch.tensor([text + motion, motion + text])


@torch.no_grad()
def logits(model, vocab) -> torch.Tensor:
    model.eval()
    return model(input_ids=probe_ids(vocab)).logits


@pytest.fixture(scope="session")
def helpers():
    """``perturb``, ``probe_ids`` and ``logits`` (test modules cannot import conftest in importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(perturb=perturb, probe_ids=probe_ids, logits=logits)


@pytest.fixture()
def build(tiny_folder):
    """``build(**settings)`` -> ``(model, tokenizer, vocab)`` from the tiny folder (fp32, eager)."""
    from models.llm.model import LLMSettings, build_motion_llm

    def make(**overrides):
        settings = {
            "llm_backbone": str(tiny_folder),
            "lora_r": 8,
            "lora_alpha": 16,
            "dtype": "fp32",
            "attn_implementation": "eager",
            **overrides,
        }
        torch.manual_seed(0)
        return build_motion_llm(LLMSettings(**settings))

    return make

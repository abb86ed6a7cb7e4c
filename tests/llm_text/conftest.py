"""Fixtures for the prompt/sequence tests: a tiny real BPE tokenizer with the motion tokens, golden lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.llm.prompts import DEFAULT_TEMPLATE_PATH


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        return [s for item in obj for s in _strings(item)]
    if isinstance(obj, dict):
        return [s for item in obj.values() for s in _strings(item)]
    return []


@pytest.fixture(scope="session")
def demo_dir(upstream_data_dir: Path) -> Path:
    return upstream_data_dir / "annotations_demo"


@pytest.fixture(scope="session")
def tiny_tokenizer(demo_dir: Path):
    """Byte-level BPE (3000 entries, <pad>=0 <eos>=1 <bos>=2, bos prepended) trained on the demo and
    template text, wrapped as a transformers fast tokenizer and extended with the motion tokens exactly
    as upstream (``<Motion>``, ``</Motion>``, ``<Motion_0..511>`` as plain added tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from models.llm.vocab import add_motion_tokens

    corpus = _strings(json.loads(DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8")))
    for path in sorted(demo_dir.rglob("*.json")):
        corpus += _strings(json.loads(path.read_text(encoding="utf-8")))
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=3000,
        special_tokens=["<pad>", "<eos>", "<bos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    vocab = add_motion_tokens(tokenizer)
    return tokenizer, vocab


@pytest.fixture(scope="session")
def golden_lines(fixtures_dir: Path) -> list[dict]:
    with (fixtures_dir / "prompts.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="session")
def golden_test_prompts(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "test_prompts.json").read_text(encoding="utf-8"))

"""Fixtures for the evaluator tests: golden evaluator/metric files and tiny real vocabularies/tokenizers."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.t2m_extractor import T2MEvaluator, T2MEvaluatorConfig
from evaluators.word_vectors import WordVectorizer


@pytest.fixture(scope="session")
def evaluator_golden(fixtures_dir: Path) -> dict:
    """Contents of ``fixtures/t2m_evaluator_small.pt`` (see fixtures/README.md)."""
    return torch.load(fixtures_dir / "t2m_evaluator_small.pt", weights_only=True)


@pytest.fixture()
def small_evaluator(evaluator_golden: dict) -> T2MEvaluator:
    evaluator = T2MEvaluator(T2MEvaluatorConfig.preset("small"))
    evaluator.load_checkpoint_dict(evaluator_golden)
    return evaluator.eval()


@pytest.fixture(scope="session")
def metrics_golden(fixtures_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """``(metrics.npz arrays, metrics.json)``."""
    arrays = np.load(fixtures_dir / "metrics.npz")
    return {key: arrays[key] for key in arrays.files}, json.loads((fixtures_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def toy_vocabulary() -> tuple[np.ndarray, list[str]]:
    """A deterministic 8-d vocabulary with the special tokens first (as in our_vab)."""
    words = (
        "sos eos unk a person walk forward left hand wave the slowly chair turn around and then jump"
    ).split()
    vectors = np.random.default_rng(0).standard_normal((len(words), 8)).astype(np.float32)
    return vectors, words


@pytest.fixture()
def toy_vectorizer(toy_vocabulary) -> WordVectorizer:
    return WordVectorizer(*toy_vocabulary)


@pytest.fixture(scope="session")
def tiny_clip_tokenizer_dir(tmp_path_factory) -> Path:
    """A real (transformers) CLIP BPE tokenizer with a letters-only vocabulary and no merges."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for char in string.ascii_lowercase + ".,!'":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder = tmp_path_factory.mktemp("clip_tokenizer")
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(str(folder))
    return folder

"""Fixtures for the inference tests: a tiny toy world, a tiny untrained Gemma-2, a random tiny VQ-VAE,
a random tiny T2M evaluator and word vectors for the toy vocabulary — all built once per session."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    from data_engine.toy_world.build import ToyWorldSettings, build_toy_world

    root = tmp_path_factory.mktemp("toy") / "world"
    build_toy_world(root, ToyWorldSettings(num_motions=60, seed=0), workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory, toy_root: Path) -> Path:
    from data_engine.datasets.layout import read_texts_file
    from models.llm.tiny import make_tiny_llm, tiny_corpus

    captions = [c.text for path in sorted((toy_root / "texts").glob("*.txt")) for c in read_texts_file(path)]
    folder = tmp_path_factory.mktemp("llm") / "tiny"
    return make_tiny_llm(folder, tiny_corpus(captions), preset="smoke", vocab_size=512, seed=0)


@pytest.fixture(scope="session")
def llm(tiny_llm_dir: Path) -> SimpleNamespace:
    """``(model, tokenizer, vocab)`` of the untrained tiny LLM (fp32, eager, frozen). Do not modify."""
    from models.llm.model import LLMSettings, build_motion_llm

    torch.manual_seed(0)
    model, tokenizer, vocab = build_motion_llm(
        LLMSettings(llm_backbone=str(tiny_llm_dir), use_lora=False, dtype="fp32", attn_implementation="eager")
    )
    return SimpleNamespace(model=model, tokenizer=tokenizer, vocab=vocab)


@pytest.fixture()
def make_engine(llm):
    """``make_engine(record_inputs=False, **generation_settings)`` -> a fresh ``MotionLLMEngine``."""
    from models.llm.inference import GenerationSettings, MotionLLMEngine

    def make(record_inputs: bool = False, **settings):
        return MotionLLMEngine(
            llm.model, llm.tokenizer, llm.vocab, GenerationSettings(**settings), record_inputs=record_inputs
        )

    return make


@pytest.fixture(scope="session")
def toy_captions(toy_root: Path) -> list[str]:
    from data_engine.datasets.layout import read_texts_file

    paths = sorted((toy_root / "texts").glob("*.txt"))[:12]
    return [read_texts_file(p)[0].text for p in paths]


@pytest.fixture(scope="session")
def tiny_vq_path(tmp_path_factory, toy_root: Path) -> Path:
    """A randomly initialised ``toy`` VQ-VAE (512 codes) saved with the toy world's statistics."""
    from models.vqvae import MotionVQVAE, get_vqvae_config, save_vqvae
    from models.vqvae.training import NORMALIZATION_KEY, Normalization

    torch.manual_seed(0)
    vq = MotionVQVAE(get_vqvae_config("toy")).eval()
    with torch.no_grad():  # an untrained codebook is all zeros: give codes distinct vectors
        vq.vqvae.quantizer.codebook.normal_()
    vq.vqvae.quantizer.mark_initialized()
    stats = Normalization(
        np.load(toy_root / "Mean.npy"), np.load(toy_root / "Std.npy"), f"dataset:{toy_root}"
    )
    path = tmp_path_factory.mktemp("vq") / "vqvae.pth"
    return save_vqvae(vq, path, extra={NORMALIZATION_KEY: stats.to_checkpoint()})


@pytest.fixture(scope="session")
def tiny_evaluator_dir(tmp_path_factory, toy_root: Path) -> Path:
    """A random ``small`` T2M evaluator as ``finest.tar`` plus ``meta/{mean,std}.npy`` (toy statistics)."""
    from evaluators.t2m_extractor import T2MEvaluator, T2MEvaluatorConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("evaluator")
    T2MEvaluator(T2MEvaluatorConfig.preset("small")).save(folder / "finest.tar")
    (folder / "meta").mkdir()
    np.save(folder / "meta" / "mean.npy", np.load(toy_root / "Mean.npy"))
    np.save(folder / "meta" / "std.npy", np.load(toy_root / "Std.npy"))
    return folder


@pytest.fixture(scope="session")
def glove_dir(tmp_path_factory, toy_root: Path) -> Path:
    """``our_vab`` word vectors (random, 300-d) for every word of the toy captions."""
    from data_engine.datasets.layout import read_texts_file
    from evaluators.word_vectors import save_our_vab

    words = {"sos", "eos", "unk"}
    for path in (toy_root / "texts").glob("*.txt"):
        for caption in read_texts_file(path):
            words.update(token.split("/")[0] for token in caption.tokens)
    ordered = sorted(words)
    vectors = np.random.default_rng(0).standard_normal((len(ordered), 300)).astype(np.float32)
    return save_our_vab(vectors, ordered, tmp_path_factory.mktemp("glove"))

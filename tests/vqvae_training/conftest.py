"""Fixtures for VQ-VAE training / token-cache tests: a tiny toy world and tiny real VQ-VAEs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_engine.datasets.reader import MotionDataset
from data_engine.toy_world import ToyWorldSettings, build_toy_world
from models.vqvae import MotionVQVAE, get_vqvae_config
from models.vqvae.training import MotionWindows, TrainingRecipe, load_normalization

# The "tiny" toy world: 60 base motions (+ mirrors), 18 train / 6 val / 96 test clips, 9 sub-clip captions.
TINY_WORLD = ToyWorldSettings(num_motions=60)


@pytest.fixture(autouse=True)
def _single_thread(monkeypatch):
    """Tiny models gain nothing from intra-op threads, and OpenMP barriers stall on a busy machine; the
    entry scripts read OMP_NUM_THREADS (``cpu_threads``)."""
    previous = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vq_training") / "toy_tiny"
    build_toy_world(root, TINY_WORLD, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tiny_world: Path) -> MotionDataset:
    return MotionDataset(tiny_world, "humanml3d")


@pytest.fixture()
def tiny_vq() -> MotionVQVAE:
    """A freshly initialised small VQ-VAE (64 codes of 32 dims, width 32, unit length 4)."""
    torch.manual_seed(0)
    return MotionVQVAE(get_vqvae_config("small_fixture"))


@pytest.fixture()
def tiny_recipe() -> TrainingRecipe:
    return TrainingRecipe(batch_size=8, window_size=32, lr=1e-3, warm_up_iter=4, total_iter=20,
                          lr_scheduler=[10], gamma=0.5, seed=5)


@pytest.fixture(scope="session")
def tiny_windows(tiny_dataset: MotionDataset) -> MotionWindows:
    return MotionWindows.from_dataset(tiny_dataset, "train", load_normalization(tiny_dataset), 32, seed=5,
                                      progress=False)


@pytest.fixture()
def coded_vq(tiny_dataset: MotionDataset) -> MotionVQVAE:
    """A small VQ-VAE whose codebook is spread over real encoder latents, so many codes occur."""
    torch.manual_seed(1)
    vq = MotionVQVAE(get_vqvae_config("small_fixture")).eval()
    mean, std = tiny_dataset.mean_std()
    motions = [torch.from_numpy((tiny_dataset.load_features(i) - mean) / std)
               for i in tiny_dataset.split_ids("train")[:8]]
    with torch.no_grad():
        latents = torch.cat([vq.vqvae.encoder(m[None].permute(0, 2, 1))[0].t() for m in motions])
    pick = torch.randperm(len(latents), generator=torch.Generator().manual_seed(2))[: vq.nb_code]
    vq.vqvae.quantizer.codebook.copy_(latents[pick])
    vq.vqvae.quantizer.mark_initialized()
    return vq


"""Fixtures for the VQ-VAE tests: the golden ``vqvae_small.pt`` and tiny real models built from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.vqvae import MotionVQVAE, VQVAEConfig, load_vqvae


@pytest.fixture(scope="session")
def vq_golden(fixtures_dir: Path) -> dict:
    """Contents of ``fixtures/vqvae_small.pt`` (see fixtures/README.md)."""
    return torch.load(fixtures_dir / "vqvae_small.pt", weights_only=True)


@pytest.fixture(scope="session")
def small_config(vq_golden: dict) -> VQVAEConfig:
    return VQVAEConfig.from_dict(vq_golden["config"])


@pytest.fixture()
def small_model(vq_golden: dict, small_config: VQVAEConfig) -> MotionVQVAE:
    """The fixture's upstream weights, loaded strictly, in eval mode."""
    return load_vqvae({"net": vq_golden["state_dict"]}, small_config)


@pytest.fixture()
def varied_model(small_model: MotionVQVAE) -> MotionVQVAE:
    """The fixture model with its codebook moved onto real encoder latents, so that many codes occur.

    (With the fixture's ``randn`` codebook a random encoder uses only 3-4 codes, which makes
    code-equality checks weak.)
    """
    generator = torch.Generator().manual_seed(7)
    motions = torch.randn(8, 64, small_model.config.input_dim, generator=generator)
    with torch.no_grad():
        latents = small_model.vqvae.encoder(motions.permute(0, 2, 1)).permute(0, 2, 1).reshape(-1, 32)
    pick = torch.randperm(len(latents), generator=generator)[: small_model.nb_code]
    small_model.vqvae.quantizer.codebook.copy_(latents[pick])
    return small_model


@pytest.fixture(scope="session")
def make_motions():
    """``make_motions(lengths, dim=263, seed=0)`` -> list of ``randn`` motions ``[T_i, dim]``."""

    def make(lengths: list[int], dim: int = 263, seed: int = 0) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return [torch.randn(n, dim, generator=generator) for n in lengths]

    return make

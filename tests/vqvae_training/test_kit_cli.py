"""KIT-ML through the VQ-VAE training CLI: the toy and small presets follow the data's width."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_engine.toy_world import ToyWorldSettings, build_toy_world
from models.vqvae import load_vqvae


@pytest.fixture(scope="module")
def tiny_kit_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vq_kit") / "toy_kit"
    build_toy_world(root, ToyWorldSettings(dataset="kit", num_motions=56, seed=0), workers=1, progress=False)
    return root


def test_toy_vq_preset_trains_a_251_d_tokenizer_on_kit(load_script, tiny_kit_world, tmp_path):
    main = load_script("prepare/train_vqvae.py").main
    common = ["--data-root", str(tiny_kit_world), "--dataset", "kit", "--batch-size", "8", "--window-size", "32",
              "--warm-up-iter", "2", "--total-iter", "3", "--lr-scheduler", "3", "--eval-iter", "3",
              "--save-iter", "3", "--no-render", "--no-progress", "--out-dir", str(tmp_path)]
    main(common + ["--vq-preset", "small_fixture", "--exp-name", "small"])
    vq = load_vqvae(tmp_path / "small" / "vqvae.pt")
    assert vq.config.input_dim == 251 and vq.config.nb_code == 64
    codes = vq.encode([torch.zeros(16, 251)])[0]
    assert codes.shape == (4,)
    with pytest.raises(SystemExit, match="--vq-preset humanml3d expects 263-d features, --dataset kit has 251"):
        main(common + ["--vq-preset", "humanml3d", "--exp-name", "wrong"])

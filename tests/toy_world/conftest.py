"""Tiny toy worlds built once per test session (HumanML3D and KIT-ML variants)."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_engine.toy_world.build import ToyWorldSettings, build_toy_world

TINY_HML3D = ToyWorldSettings(dataset="humanml3d", num_motions=60, seed=0)
TINY_KIT = ToyWorldSettings(dataset="kit", num_motions=56, seed=0)


@pytest.fixture(scope="session")
def toy_hml3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HumanML3D-layout toy world, built with two worker processes."""
    root = tmp_path_factory.mktemp("toy") / "hml3d"
    build_toy_world(root, TINY_HML3D, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def toy_kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy") / "kit"
    build_toy_world(root, TINY_KIT, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_hml3d_settings() -> ToyWorldSettings:
    return TINY_HML3D

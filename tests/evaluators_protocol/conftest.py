"""Fixtures: a tiny toy world and a small evaluator trained on it once per session (via the real CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_engine.datasets.reader import MotionDataset
from data_engine.toy_world.build import ToyWorldSettings, build_toy_world
from evaluators.assets import EvaluatorAssets

TINY = ToyWorldSettings(dataset="humanml3d", num_motions=60, seed=0)

# Trained on the tiny world's test split itself (110 items) for ~10 s: the point is an evaluator whose
# R-precision is well above chance (~0.2 vs 1/32), so that protocol properties can be tested.
TRAIN_ARGS = [
    "--preset",
    "toy",
    "--train-split",
    "test",
    "--val-split",
    "test",
    "--threads",
    "1",
    "--progress",
    "false",
    "--dim-word",
    "16",
    "--dim-text-hidden",
    "24",
    "--dim-coemb-hidden",
    "24",
    "--dim-movement-enc-hidden",
    "24",
    "--dim-movement-latent",
    "24",
    "--dim-motion-hidden",
    "32",
    "--dim-movement-dec-hidden",
    "24",
    "--word-vector-epochs",
    "5",
    "--movement-max-steps",
    "20",
    "--movement-batch-size",
    "32",
    "--batch-size",
    "32",
    "--max-steps",
    "120",
    "--epochs",
    "100",
    "--lr",
    "5e-3",
    "--negative-margin",
    "5",
    "--val-every",
    "60",
    "--val-repeats",
    "1",
    "--log-every",
    "25",
    "--reference-repeats",
    "2",
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Deterministic and fast on a shared 2-core machine (two OpenMP threads spin under contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("protocol") / "toy"
    build_toy_world(root, TINY, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tiny_root: Path) -> MotionDataset:
    return MotionDataset(tiny_root)


@pytest.fixture(scope="session")
def script_main(load_script):
    """``script_main(name)`` -> ``prepare/<name>.py``'s ``main``."""
    return lambda name: load_script(f"prepare/{name}.py").main


@pytest.fixture(scope="session")
def train_args() -> list[str]:
    return list(TRAIN_ARGS)


@pytest.fixture(scope="session")
def trained_dir(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory, script_main) -> tuple[Path, dict]:
    """``(out_dir, summary)`` of ``prepare/train_evaluator.py`` on the tiny world."""
    out = tmp_path_factory.mktemp("evaluator")
    threads = torch.get_num_threads()
    try:
        summary = script_main("train_evaluator")(
            ["--data-root", str(tiny_root), "--out-dir", str(out), *TRAIN_ARGS]
        )
    finally:
        torch.set_num_threads(threads)
    return out, summary


@pytest.fixture(scope="session")
def assets(trained_dir, tiny_dataset) -> EvaluatorAssets:
    return EvaluatorAssets.load(trained_dir[0], tiny_dataset.spec)

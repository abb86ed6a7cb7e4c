"""Fixtures for the data-engine tests: a small toy world, its negatives, and a built annotation set."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_engine.toy_world.build import ToyWorldSettings, build_toy_world


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy world in the HumanML3D layout: ~100 base motions (+ mirrors), train/val/test splits."""
    root = tmp_path_factory.mktemp("toy") / "toy"
    build_toy_world(root, ToyWorldSettings(num_motions=100, seed=7), workers=2)
    return root


@pytest.fixture(scope="session")
def toy_negatives(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Negatives of every train clip, with the trivial pooled-features encoder."""
    from data_engine.retrieve_negatives import main

    out = tmp_path_factory.mktemp("negatives") / "negatives.json"
    main(["--preset", "toy", "--dataset-root", str(toy_root), "--out", str(out), "--save-npz"])
    return out


@pytest.fixture(scope="session")
def toy_annotations(
    toy_root: Path, toy_negatives: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    """All stages built with the offline writer: (output folder, run summary)."""
    from data_engine.build_annotations import main

    out = tmp_path_factory.mktemp("annotations") / "ann"
    summary = main(
        [
            "--preset",
            "toy",
            "--dataset-root",
            str(toy_root),
            "--negatives",
            str(toy_negatives),
            "--out",
            str(out),
            "--stage0-prompts",
            "motionagent",
            "--no-progress",
        ]
    )
    return out, summary

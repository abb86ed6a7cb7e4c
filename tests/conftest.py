"""Shared pytest setup: offline Hugging Face, deterministic threads, paths to the shared reference data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network: a Hub lookup would hang for ~50 s before failing.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("IRG_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` (golden fixtures, real motion samples, upstream demo annotations).

    Present beside every developer checkout and CI run; a plain clone elsewhere skips these tests.
    Override the location with ``IRG_REFERENCE_DIR``.
    """
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (set IRG_REFERENCE_DIR)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def fixtures_dir(reference_dir: Path) -> Path:
    return reference_dir / "fixtures"


@pytest.fixture(scope="session")
def motion_samples_dir(reference_dir: Path) -> Path:
    return reference_dir / "motion_samples"


@pytest.fixture(scope="session")
def upstream_data_dir(reference_dir: Path) -> Path:
    return reference_dir / "upstream_data" / "HumanML3D"

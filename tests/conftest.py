"""Shared pytest setup: offline Hugging Face, deterministic threads, paths to the shared reference data."""

from __future__ import annotations

import importlib.util
import os
import sys
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


@pytest.fixture(scope="session")
def load_script(repo_root: Path):
    """``load_script("prepare/train_vqvae.py")`` -> the script imported as a module."""

    def load(relative: str):
        path = repo_root / relative
        name = "script_" + path.stem
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve string annotations through sys.modules
        spec.loader.exec_module(module)
        return module

    return load

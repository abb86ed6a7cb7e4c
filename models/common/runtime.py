"""Process-level setup shared by entry points: seeding, logging, thread count."""

from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_logging(log_file: str | Path | None = None, rank: int = 0, level: int = logging.INFO) -> None:
    """Log to stderr (rank 0 only at INFO; other ranks WARNING) and optionally to ``log_file``."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None and rank == 0:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(
        level=level if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
        force=True,
    )


def cpu_threads() -> int:
    """Threads torch should use: ``OMP_NUM_THREADS`` when set (torchrun sets 1), else all cores."""
    env = os.environ.get("OMP_NUM_THREADS")
    return int(env) if env and env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)

"""Throughput of the motion representation: feature extraction and recovery, in frames per second.

    python benchmarks/bench_motion_repr.py                          # the shipped sample, replicated
    python benchmarks/bench_motion_repr.py --data-root data/HumanML3D --max-clips 500
    python benchmarks/bench_motion_repr.py --data-root data/KIT-ML --dataset kit
    python benchmarks/bench_motion_repr.py --toy-world --max-clips 0   # build the default toy world (timed), all clips

With ``--data-root``, clips come from ``new_joints/*.npy`` (extraction) and ``new_joint_vecs/*.npy``
(recovery); without it, HumanML3D clip 012314 from ``../shared/reference/motion_samples`` is replicated
``--replicas`` times. Recovery is timed per clip (numpy, torch) and on one padded batch (torch).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.common.config import parse_config
from models.common.runtime import cpu_threads
from models.motion.representation import joints_to_features, recover_from_ric
from models.motion.skeleton import get_skeleton

SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "motion_samples"


@dataclass
class BenchConfig:
    data_root: str | None = field(
        default=None,
        metadata={"help": "HumanML3D-layout folder (new_joints/, new_joint_vecs/); default: the sample"})
    dataset: str = field(default="humanml3d", metadata={"help": "skeleton: humanml3d | kit"})
    max_clips: int = field(default=200, metadata={"help": "at most this many clips from --data-root (0: all)"})
    toy_world: bool = field(
        default=False,
        metadata={"help": "build the default toy world in a temporary folder (timed) and use it as --data-root"})
    replicas: int = field(default=100, metadata={"help": "copies of the sample clip without --data-root"})
    repeats: int = field(default=3, metadata={"help": "timing repeats (best is reported)"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: all cores)"})

    def __post_init__(self) -> None:
        if self.max_clips < 0 or self.replicas < 1 or self.repeats < 1:
            raise SystemExit("--max-clips must be >= 0 (0: all); --replicas and --repeats must be positive")


def _load(folder: Path, limit: int) -> list[np.ndarray]:
    files = sorted(folder.glob("*.npy"))[: limit or None]
    if not files:
        raise SystemExit(f"no .npy files in {folder}")
    return [np.load(f).astype(np.float32) for f in files]


def _best_rate(frames: int, run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return frames / best


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    config = parse_config(BenchConfig, argv=argv, description=__doc__)
    if config.threads:
        torch.set_num_threads(config.threads)
    skeleton = get_skeleton(config.dataset)
    if not config.toy_world:
        return _run(config, skeleton)
    with tempfile.TemporaryDirectory() as tmp:
        config.data_root = str(_build_toy_world(Path(tmp) / "toy", config.dataset))
        return _run(config, skeleton)


def _build_toy_world(folder: Path, dataset: str) -> Path:
    from data_engine.toy_world import ToyWorldSettings, build_toy_world

    summary = build_toy_world(folder, ToyWorldSettings(dataset=dataset), progress=False)
    print(summary.format())  # includes the build time
    return folder


def _run(config: BenchConfig, skeleton) -> dict[str, float]:
    if config.data_root:
        root = Path(config.data_root)
        joints = _load(root / "new_joints", config.max_clips)
        features = _load(root / "new_joint_vecs", config.max_clips)
        source = f"{root} ({len(joints)} joint clips, {len(features)} feature clips)"
    else:
        joints = [np.load(SAMPLE_DIR / "new_joints_012314.npy")] * config.replicas
        features = [np.load(SAMPLE_DIR / "new_joint_vecs_012314.npy")] * config.replicas
        source = f"sample 012314 x {config.replicas}"

    joint_frames = sum(len(j) for j in joints)
    feature_frames = sum(len(f) for f in features)
    tensors = [torch.from_numpy(f) for f in features]
    longest = max(len(f) for f in features)
    batch = torch.zeros(len(features), longest, features[0].shape[1])
    for i, f in enumerate(tensors):
        batch[i, : len(f)] = f
    j = skeleton.joints_num

    rates = {
        "joints_to_features": _best_rate(
            joint_frames, lambda: [joints_to_features(x, skeleton) for x in joints], config.repeats),
        "recover_from_ric numpy (per clip)": _best_rate(
            feature_frames, lambda: [recover_from_ric(x, j) for x in features], config.repeats),
        "recover_from_ric torch (per clip)": _best_rate(
            feature_frames, lambda: [recover_from_ric(x, j) for x in tensors], config.repeats),
        "recover_from_ric torch (one padded batch)": _best_rate(
            feature_frames, lambda: recover_from_ric(batch, j), config.repeats),
    }
    print(f"motion representation throughput — {source}; {joint_frames} joint frames, {feature_frames} "
          f"feature frames; torch threads {torch.get_num_threads()} of {cpu_threads()} cores")
    for name, rate in rates.items():
        print(f"  {name:<44s} {rate:>12,.0f} frames/s")
    return rates


if __name__ == "__main__":
    main()

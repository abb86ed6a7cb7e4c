"""Negative retrieval at the HumanML3D size: 29,228 clips x 512-d embeddings, every clip an anchor.

    python benchmarks/bench_negatives.py                         # full size, p = 0.9, 4 negatives
    python benchmarks/bench_negatives.py --num-clips 4000 --check 200 --chunk-size 256

Clips come in mirrored pairs (like HumanML3D's ``M`` copies), and each anchor excludes itself and its
mirror. Prints the wall time, the CPU time of all threads (less sensitive to other load on the machine),
the peak resident memory of the process (``getrusage``) and the peak of Python/numpy allocations
(``tracemalloc``; torch buffers are not traced), and, with ``--check N``, verifies N anchors against a
full sort of their distances.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import torch

from data_engine.negatives import ascending_ranks, retrieve_negatives, slice_bounds, slice_sizes
from models.common.config import parse_config


@dataclass
class BenchNegativesConfig:
    num_clips: int = field(default=29228, metadata={"help": "clips (HumanML3D with mirrors: 29,228)"})
    dim: int = field(default=512, metadata={"help": "embedding size (T2M evaluator: 512)"})
    p: float = 0.9
    n_neg: int = 4
    chunk_size: int = 512
    dtype: str = field(default="float64", metadata={"help": "distance precision: float64 | float32"})
    seed: int = 0
    check: int = field(default=20, metadata={"help": "anchors verified against a full sort"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default)"})

    def __post_init__(self) -> None:
        if self.num_clips < 4 or self.num_clips % 2 or self.dim < 1:
            raise SystemExit("--num-clips must be even and >= 4 (mirrored pairs), --dim >= 1")


def main(argv: list[str] | None = None) -> dict:
    config = parse_config(BenchNegativesConfig, {}, argv, description=__doc__)
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    embeddings = rng.standard_normal((config.num_clips, config.dim)).astype(np.float32)
    mirror = np.arange(config.num_clips) ^ 1  # clips 2k and 2k+1 are mirrors of each other
    exclusions = [np.array(sorted((i, int(mirror[i])))) for i in range(config.num_clips)]

    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    rss_before = usage_before.ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    result = retrieve_negatives(
        embeddings,
        embeddings,
        p=config.p,
        n_neg=config.n_neg,
        seed=config.seed,
        exclusions=exclusions,
        chunk_size=config.chunk_size,
        dtype=config.dtype,
    )
    seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_peak = usage.ru_maxrss  # KiB on Linux
    cpu_seconds = (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)

    lo, hi = slice_bounds(result.pool_sizes, config.p, config.n_neg)
    checked = 0
    for anchor in rng.choice(config.num_clips, size=min(config.check, config.num_clips), replace=False):
        ranks = ascending_ranks(
            embeddings[anchor].astype(np.float64), embeddings.astype(np.float64), exclusions[anchor]
        )
        for k, index in enumerate(result.indices[anchor]):
            if index >= 0 and not lo[anchor, k] <= ranks[index] < hi[anchor, k]:
                raise SystemExit(
                    f"anchor {anchor}: negative {k} has rank {ranks[index]}, "
                    f"outside its slice [{lo[anchor, k]}, {hi[anchor, k]})"
                )
        checked += 1
    summary = {
        "clips": config.num_clips,
        "dim": config.dim,
        "torch_threads": torch.get_num_threads(),
        "slice_sizes": slice_sizes(config.num_clips - 2, config.p, config.n_neg),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 1),
        "anchors_per_second": round(config.num_clips / seconds),
        "peak_rss_mib": round(rss_peak / 1024),
        "rss_growth_mib": round((rss_peak - rss_before) / 1024),
        "tracemalloc_peak_mib": round(traced_peak / 2**20),
        "incomplete_anchors": result.incomplete,
        "verified_anchors": checked,
    }
    print(
        f"negative retrieval: {config.num_clips} clips x {config.dim}-d, p={config.p}, "
        f"{config.n_neg} negatives, chunk {config.chunk_size}, {config.dtype}, "
        f"{summary['torch_threads']} torch threads"
    )
    print(f"  slice sizes (pool {config.num_clips - 2}): {summary['slice_sizes']}")
    print(
        f"  time {summary['seconds']} s ({summary['anchors_per_second']} anchors/s); "
        f"CPU time {summary['cpu_seconds']} s (all threads)"
    )
    print(
        f"  peak RSS {summary['peak_rss_mib']} MiB (+{summary['rss_growth_mib']} MiB during retrieval); "
        f"tracemalloc peak {summary['tracemalloc_peak_mib']} MiB"
    )
    print(
        f"  {checked} anchors verified against a full sort; {result.incomplete} anchors with < {config.n_neg}"
    )
    return summary


if __name__ == "__main__":
    main()

"""Metric cost of 20 evaluation repeats at the HumanML3D test-set size: vectorised vs. reference-style.

    python benchmarks/bench_metrics.py                     # 4384 x 512 random embeddings, 20 repeats
    python benchmarks/bench_metrics.py --repeats 5 --fid-method eigen

Each repeat computes what one upstream evaluation repeat computes from the gathered embeddings: R@1-3 and
matching score for real and generated motions (pools of 32), FID, and diversity (300 draws) for both.
Both implementations see the same inputs and the same seeded legacy numpy RNG; the script checks that
the numbers agree (R-precision exactly) and prints the time per part and the ratios.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from evaluators.metrics import diversity, fid, r_precision
from models.common.config import parse_config


@dataclass
class BenchConfig:
    num_rows: int = field(default=4384, metadata={"help": "embeddings per set (HumanML3D test split: 4384)"})
    dim: int = field(default=512, metadata={"help": "embedding size"})
    repeats: int = field(default=20, metadata={"help": "evaluation repeats"})
    fid_method: str = field(default="sqrtm", metadata={"help": "our FID path: sqrtm | eigen"})
    seed: int = field(
        default=0, metadata={"help": "seed of the random embeddings and of the diversity draws"}
    )

    def __post_init__(self) -> None:
        if self.num_rows < 301 or self.dim < 2 or self.repeats < 1:
            raise SystemExit("--num-rows must exceed 300 (diversity draws 300), --dim >= 2, --repeats >= 1")
        if self.fid_method not in ("sqrtm", "eigen"):
            raise SystemExit("--fid-method must be sqrtm or eigen")


# ------------------------------------------------------------------------------------------------------------
# REFERENCE-STYLE BASELINE: the upstream structure (utils/metrics.py functions + the pool loop of
# test_unified.py), written out here only to time it against evaluators.metrics. Not used elsewhere.
# ------------------------------------------------------------------------------------------------------------
def _baseline_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(
        -2 * np.dot(a, b.T) + np.sum(np.square(a), axis=1, keepdims=True) + np.sum(np.square(b), axis=1)
    )


def _baseline_top_k(sorted_indices: np.ndarray, top_k: int) -> np.ndarray:
    size = sorted_indices.shape[0]
    is_match = sorted_indices == np.expand_dims(np.arange(size), 1).repeat(size, 1)
    hit = np.zeros(size, bool)
    columns = []
    for k in range(top_k):
        hit = hit | is_match[:, k]
        columns.append(hit[:, None])
    return np.concatenate(columns, axis=1)


def _baseline_r_precision(text: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, float]:
    counts, traces, rows = np.zeros(3), 0.0, 0
    for start in range(0, len(text), 32):
        if len(text[start : start + 32]) < 32:
            continue
        dist = _baseline_distances(text[start : start + 32], motion[start : start + 32])
        counts = counts + _baseline_top_k(np.argsort(dist, axis=1), 3).sum(axis=0)
        traces += dist.trace()
        rows += 32
    return counts / rows, traces / rows


def _baseline_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    sigma1, sigma2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _baseline_diversity(emb: np.ndarray, times: int) -> float:
    first = np.random.choice(len(emb), times, replace=False)
    second = np.random.choice(len(emb), times, replace=False)
    return float(linalg.norm(emb[first] - emb[second], axis=1).mean())


# ------------------------------------------------------------------------------------------------------------
def _timed(timings: dict[str, float], part: str, run: Callable[[], object]) -> object:
    start = time.perf_counter()
    value = run()
    timings[part] = timings.get(part, 0.0) + time.perf_counter() - start
    return value


def _evaluate(text, gt, pred, ours: bool, fid_method: str, timings: dict[str, float]) -> dict[str, object]:
    if ours:
        real = _timed(timings, "r_precision", lambda: r_precision(text, gt))
        gen = _timed(timings, "r_precision", lambda: r_precision(text, pred))
        rp = {"real": (real.rates, real.matching_score), "pred": (gen.rates, gen.matching_score)}
        fid_value = _timed(timings, "fid", lambda: fid(gt, pred, method=fid_method))
        div = _timed(timings, "diversity", lambda: (diversity(gt, 300), diversity(pred, 300)))
    else:
        rp = {
            "real": _timed(timings, "r_precision", lambda: _baseline_r_precision(text, gt)),
            "pred": _timed(timings, "r_precision", lambda: _baseline_r_precision(text, pred)),
        }
        fid_value = _timed(timings, "fid", lambda: _baseline_fid(gt, pred))
        div = _timed(
            timings, "diversity", lambda: (_baseline_diversity(gt, 300), _baseline_diversity(pred, 300))
        )
    return {"rp": rp, "fid": fid_value, "diversity": div}


def _check_same(a: dict[str, object], b: dict[str, object], fid_tolerance: float) -> None:
    for kind in ("real", "pred"):
        if not np.array_equal(a["rp"][kind][0], b["rp"][kind][0]):
            raise SystemExit(f"R-precision ({kind}) differs: {a['rp'][kind][0]} vs {b['rp'][kind][0]}")
        if not np.isclose(a["rp"][kind][1], b["rp"][kind][1], rtol=1e-6):
            raise SystemExit(f"matching score ({kind}) differs: {a['rp'][kind][1]} vs {b['rp'][kind][1]}")
    if abs(a["fid"] - b["fid"]) > fid_tolerance:
        raise SystemExit(f"FID differs: {a['fid']} vs {b['fid']}")
    if not np.allclose(a["diversity"], b["diversity"], rtol=1e-6):
        raise SystemExit(f"diversity differs: {a['diversity']} vs {b['diversity']}")


def run(config: BenchConfig) -> None:
    rng = np.random.default_rng(config.seed)
    gt = rng.standard_normal((config.num_rows, config.dim)).astype(np.float32)
    # Noise level chosen so that R@1 is about 0.4-0.5, as with the real evaluator.
    text = (gt + 12.0 * rng.standard_normal(gt.shape)).astype(np.float32)
    pred = (gt + 0.5 * rng.standard_normal(gt.shape) + 0.1).astype(np.float32)

    _evaluate(text, gt, pred, True, config.fid_method, {})  # warm-up: first LAPACK/sqrtm calls are slow
    _evaluate(text, gt, pred, False, config.fid_method, {})
    ours_t: dict[str, float] = {}
    base_t: dict[str, float] = {}
    fid_tolerance = 1e-4 if config.fid_method == "sqrtm" else 1e-3
    first = None
    for repeat in range(config.repeats):
        results = {}
        for is_ours in (True, False) if repeat % 2 == 0 else (False, True):  # alternate: no order bias
            np.random.seed(config.seed + repeat)
            results[is_ours] = _evaluate(
                text, gt, pred, is_ours, config.fid_method, ours_t if is_ours else base_t
            )
        ours, base = results[True], results[False]
        _check_same(ours, base, fid_tolerance)
        first = first or ours

    print(
        f"{config.repeats} repeats, {config.num_rows} x {config.dim} float32 embeddings (text, gt, pred); "
        f"our FID: {config.fid_method}"
    )
    print(
        f"numbers agree: R@1-3 real {first['rp']['real'][0].round(4).tolist()}, "
        f"pred {first['rp']['pred'][0].round(4).tolist()}, FID {first['fid']:.4f}, "
        f"diversity {np.round(first['diversity'], 4).tolist()}"
    )
    print(f"{'part':<14}{'reference-style s':>19}{'vectorised s':>15}{'ratio':>9}")
    for part in ("r_precision", "fid", "diversity"):
        print(f"{part:<14}{base_t[part]:>19.3f}{ours_t[part]:>15.3f}{base_t[part] / ours_t[part]:>8.1f}x")
    total_base, total_ours = sum(base_t.values()), sum(ours_t.values())
    print(f"{'total':<14}{total_base:>19.3f}{total_ours:>15.3f}{total_base / total_ours:>8.1f}x")


def main(argv: list[str] | None = None) -> None:
    run(parse_config(BenchConfig, argv=argv, description=__doc__))


if __name__ == "__main__":
    main()

"""Text-to-motion metrics as pure numpy functions: R-precision, matching score, FID, diversity, multimodality.

Numbers are those of the upstream functions (``IRG-MotionLLM:SFT/HumanML3D/utils/metrics.py`` plus the pool
loop of ``test_unified.py``), computed vectorised over all pools at once and with these fixes:

- distances are clamped at 0 before the square root (no NaN for identical vectors);
- FID is float64 throughout, calls ``scipy.linalg.sqrtm`` without the deprecated ``disp`` and, instead
  of raising on a large imaginary residue, falls back to the eigenvalue formula (with a warning);
- too few rows for a full R-precision pool, for diversity or for multimodality raise a clear error
  (upstream divides by zero, or silently returns 0 for diversity — still available as an option).

Random draws (diversity, multimodality) take an explicit ``rng``: a ``np.random.Generator``, a legacy
``np.random.RandomState``, or ``None`` for numpy's legacy global state — the latter, after
``np.random.seed(s)``, reproduces upstream's numbers exactly.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import linalg

logger = logging.getLogger(__name__)

RandomSource = np.random.Generator | np.random.RandomState | None

R_PRECISION_POOL_SIZE = 32
R_PRECISION_TOP_K = 3

UPSTREAM_RESULT_KEYS = (
    "eval_fid",
    "eval_diversity",
    "eval_diversity_real",
    "eval_R_precision_top1",
    "eval_R_precision_top2",
    "eval_R_precision_top3",
    "eval_R_precision_real_top1",
    "eval_R_precision_real_top2",
    "eval_R_precision_real_top3",
    "eval_matching_score_pred",
    "eval_matching_score_real",
)


# ---------------------------------------------------------------------------------------------- distances
def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances ``[..., N1, N2]`` between ``a [..., N1, D]`` and ``b [..., N2, D]`` (leading dims broadcast).

    Upstream's expansion ``sqrt(-2 a·b + |a|² + |b|²)`` in the inputs' dtype, clamped at 0 before the root.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"feature sizes differ: {a.shape} vs {b.shape}")
    cross = -2 * np.matmul(a, np.swapaxes(b, -1, -2))  # (..., N1, N2)
    a_sq = np.sum(np.square(a), axis=-1, keepdims=True)  # (..., N1, 1)
    b_sq = np.expand_dims(np.sum(np.square(b), axis=-1), -2)  # (..., 1, N2)
    return np.sqrt(np.maximum(cross + a_sq + b_sq, 0))


def top_k_hits(sorted_indices: np.ndarray, top_k: int) -> np.ndarray:
    """Cumulative hit matrix ``[..., N, top_k]`` (bool) from row-wise argsorts ``[..., N, N]``.

    ``hits[..., i, k]`` is True when item ``i`` is among the ``k+1`` nearest candidates of row ``i``.
    """
    n = sorted_indices.shape[-2]
    if not 1 <= top_k <= sorted_indices.shape[-1]:
        raise ValueError(f"top_k must be in [1, {sorted_indices.shape[-1]}], got {top_k}")
    matches = sorted_indices[..., :top_k] == np.arange(n)[:, None]  # (..., N, top_k)
    return np.logical_or.accumulate(matches, axis=-1)


@dataclass
class RPrecisionResult:
    """R-precision and matching score over pools of ``pool_size`` consecutive (text, motion) pairs.

    ``counts[k]`` / ``rates[k]``: hits within the ``k+1`` nearest motions (summed / divided by rows used);
    ``per_pool_counts [P, top_k]``, ``per_pool_traces [P]`` (sum of matched distances per pool).
    """

    counts: np.ndarray
    rates: np.ndarray
    matching_score: float
    per_pool_counts: np.ndarray
    per_pool_traces: np.ndarray
    num_pools: int
    rows_used: int
    rows_skipped: int


def r_precision(
    text_emb: np.ndarray,
    motion_emb: np.ndarray,
    pool_size: int = R_PRECISION_POOL_SIZE,
    top_k: int = R_PRECISION_TOP_K,
) -> RPrecisionResult:
    """R-precision (top-1..top_k) and matching score (MM-Dist) of ``text_emb [N, D]`` vs ``motion_emb``.

    Row ``i`` of both is a matched pair. Rows are cut into pools of ``pool_size`` consecutive pairs; in each
    pool every text ranks the pool's motions by Euclidean distance. A trailing partial pool is skipped
    (reported in ``rows_skipped`` and logged); fewer than ``pool_size`` rows raise ``ValueError``.
    """
    text_emb, motion_emb = np.asarray(text_emb), np.asarray(motion_emb)
    if text_emb.ndim != 2 or text_emb.shape != motion_emb.shape:
        raise ValueError(
            f"expected two [N, D] arrays of equal shape, got {text_emb.shape} and {motion_emb.shape}"
        )
    n = text_emb.shape[0]
    num_pools = n // pool_size
    if num_pools == 0:
        raise ValueError(f"R-precision needs at least one full pool of {pool_size} pairs, got {n}")
    used = num_pools * pool_size
    if used < n:
        logger.info(
            "R-precision: %d trailing row(s) do not fill a pool of %d and are skipped", n - used, pool_size
        )
    dims = text_emb.shape[1]
    dist = euclidean_distance_matrix(
        text_emb[:used].reshape(num_pools, pool_size, dims),
        motion_emb[:used].reshape(num_pools, pool_size, dims),
    )  # (P, S, S)
    traces = np.trace(dist, axis1=-2, axis2=-1)  # (P,)
    hits = top_k_hits(np.argsort(dist, axis=-1), top_k)  # (P, S, top_k)
    per_pool = hits.sum(axis=1)  # (P, top_k)
    counts = per_pool.sum(axis=0)
    return RPrecisionResult(
        counts=counts,
        rates=counts / used,
        matching_score=float(traces.astype(np.float64).sum() / used),
        per_pool_counts=per_pool,
        per_pool_traces=traces,
        num_pools=num_pools,
        rows_used=used,
        rows_skipped=n - used,
    )


# ---------------------------------------------------------------------------------------------- FID
def activation_statistics(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``emb [N, D]`` -> ``(mean [D], covariance [D, D])`` in float64 (unbiased covariance, N-1)."""
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise ValueError(f"activation statistics need [N >= 2, D] embeddings, got {emb.shape}")
    return emb.mean(axis=0, dtype=np.float64), np.cov(emb, rowvar=False, dtype=np.float64)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product_eigen(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr sqrtm(S1 S2)`` as ``Σ sqrt(max(λ, 0))`` over the eigenvalues of the symmetric ``√S1 S2 √S1``."""
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def _trace_sqrt_product_scipy(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        logger.warning("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if largest > 1e-3:
            warnings.warn(
                f"FID: sqrtm has an imaginary diagonal component of {largest:.3g}; using the "
                "eigenvalue formula instead",
                RuntimeWarning,
                stacklevel=3,
            )
            return trace_sqrt_product_eigen(sigma1, sigma2)
        covmean = covmean.real
    return float(np.trace(covmean))


FID_METHODS = ("sqrtm", "eigen")  # see frechet_distance


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    method: Literal["sqrtm", "eigen"] = "sqrtm",
) -> float:
    """Fréchet distance ``|mu1-mu2|² + tr S1 + tr S2 - 2 tr sqrtm(S1 S2)`` in float64.

    ``method="sqrtm"`` (default, upstream's value to ~1e-8) uses scipy's Schur square root; ``"eigen"`` uses
    the eigenvalue formula (never complex, agrees to ~1e-5 on singular covariances).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {sigma1.shape}/{sigma2.shape}")
    for name, value in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f"FID input {name} has non-finite entries")
    if method == "sqrtm":
        tr_covmean = _trace_sqrt_product_scipy(sigma1, sigma2, eps)
    elif method == "eigen":
        tr_covmean = trace_sqrt_product_eigen(sigma1, sigma2)
    else:
        raise ValueError(f"unknown FID method {method!r} (sqrtm or eigen)")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid(
    reference_emb: np.ndarray, generated_emb: np.ndarray, method: Literal["sqrtm", "eigen"] = "sqrtm"
) -> float:
    """FID between two embedding sets ``[N, D]`` (argument order as upstream: ground truth first)."""
    return frechet_distance(
        *activation_statistics(reference_emb), *activation_statistics(generated_emb), method=method
    )


# ---------------------------------------------------------------------------------------------- diversity
def _choice(rng: RandomSource, population: int, size: int) -> np.ndarray:
    if rng is None:  # numpy's legacy global RandomState, as upstream
        return np.random.choice(population, size, replace=False)
    return rng.choice(population, size, replace=False)


def diversity(
    emb: np.ndarray,
    times: int = 300,
    rng: RandomSource = None,
    on_too_few: Literal["raise", "zero"] = "raise",
) -> float:
    """Mean distance between ``times`` random pairs of rows of ``emb [N, D]``.

    Draws two independent index sets ``choice(N, times, replace=False)`` (first, then second) from ``rng``.
    Needs ``N > times`` (upstream's strict check); otherwise raises, or with ``on_too_few="zero"`` returns
    0.0 without drawing, as upstream's IRG copy does.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"diversity expects [N, D] embeddings, got {emb.shape}")
    if emb.shape[0] <= times:
        if on_too_few == "zero":
            logger.warning(
                "diversity: %d rows <= %d draws; returning 0 (upstream quirk)", emb.shape[0], times
            )
            return 0.0
        raise ValueError(
            f"diversity needs more than {times} rows, got {emb.shape[0]} "
            f"(lower diversity_times, or on_too_few='zero' for upstream's silent 0)"
        )
    first = _choice(rng, emb.shape[0], times)
    second = _choice(rng, emb.shape[0], times)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb: np.ndarray, times: int = 10, rng: RandomSource = None) -> float:
    """Mean distance of ``times`` random pairs of generations per text; ``emb [N_text, R, D]``, ``R > times``.

    The two index sets over ``R`` (first, then second) are shared by all texts, as upstream.
    """
    emb = np.asarray(emb)
    if emb.ndim != 3:
        raise ValueError(f"multimodality expects [N_text, R, D] embeddings, got {emb.shape}")
    if emb.shape[1] <= times:
        raise ValueError(f"multimodality needs more than {times} generations per text, got {emb.shape[1]}")
    first = _choice(rng, emb.shape[1], times)
    second = _choice(rng, emb.shape[1], times)
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean())


def default_diversity_times(num_rows: int) -> int:
    """Upstream's rule: 300 draws when there are more than 300 rows, else 100."""
    return 300 if num_rows > 300 else 100


# ---------------------------------------------------------------------------------------------- upstream set
def upstream_eval_results(
    text_emb: np.ndarray,
    gt_motion_emb: np.ndarray,
    pred_motion_emb: np.ndarray,
    pool_size: int = R_PRECISION_POOL_SIZE,
    diversity_times: int | None = None,
    rng: RandomSource = None,
    diversity_on_too_few: Literal["raise", "zero"] = "raise",
    fid_method: Literal["sqrtm", "eigen"] = "sqrtm",
) -> dict[str, float]:
    """The 11 metrics of one upstream evaluation repeat (``test_unified.py``), keys as upstream.

    ``text_emb``, ``gt_motion_emb``, ``pred_motion_emb``: ``[N, D]`` in the same (gathered) order. Diversity
    draws real first, then pred, from ``rng``; ``diversity_times`` defaults to upstream's 300/100 rule.
    """
    real = r_precision(text_emb, gt_motion_emb, pool_size)
    pred = r_precision(text_emb, pred_motion_emb, pool_size)
    times = default_diversity_times(len(gt_motion_emb)) if diversity_times is None else diversity_times
    results = {
        "eval_diversity_real": diversity(gt_motion_emb, times, rng, diversity_on_too_few),
        "eval_diversity": diversity(pred_motion_emb, times, rng, diversity_on_too_few),
        "eval_fid": fid(gt_motion_emb, pred_motion_emb, method=fid_method),
    }
    for k in range(len(pred.rates)):
        results[f"eval_R_precision_top{k + 1}"] = float(pred.rates[k])
        results[f"eval_R_precision_real_top{k + 1}"] = float(real.rates[k])
    results["eval_matching_score_pred"] = pred.matching_score
    results["eval_matching_score_real"] = real.matching_score
    return {key: results[key] for key in UPSTREAM_RESULT_KEYS}

"""Graded negative motions by the paper's slice rule (IRG-MotionLLM §4 / §D.1).

For every anchor (goal) clip, all other clips of the pool are ranked by embedding distance and
``n_neg`` negatives are drawn, each strictly closer to the anchor than the previous one:

* ``M`` is the anchor's pool size: every pool clip except the anchor itself and its excluded clips
  (see :func:`exclusion_lists`: its own mirrored copy / sub-clips, clips with the same captions).
* Pool clips are ranked by ascending ``(distance, clip index)``; rank 0 is the nearest. The index breaks
  exact ties, so the order is total and reproducible.
* ``R_0 = M``. For negative ``k = 0, 1, ...``: if ``R_k = 0`` the pool is exhausted and negative ``k``
  (and every later one) is missing (index ``-1``, distance NaN); otherwise the slice holds the
  ``n_k = max(1, floor(p * R_k))`` farthest remaining clips, i.e. ascending ranks ``[R_k - n_k, R_k)``;
  one clip is drawn uniformly from it and the whole slice is removed: ``R_{k+1} = R_k - n_k``.
  ``floor`` is exact (``p`` is read as the nearest fraction with denominator <= 10^6, so 0.9 is 9/10 and
  0.875 is 7/8); because ``p < 1`` the slice never empties a pool of two or more clips.

With HumanML3D (``M`` ~ 29k, p = 0.9) the slices are ~26.3k, 2.6k, 263 and 27 clips: the first
negative is any of the far 90 %, the last one of the ~30 nearest clips except the ~3 nearest.

Implementation: anchors are processed in chunks; for each chunk the squared distances to the whole
pool are matrix products over fixed blocks of 256 anchors (float64 by default), so no distance depends
on the chunk size (``chunk_size`` is rounded up to a multiple of 256). The ``K = max R_1`` nearest clips
of every row come from ``torch.topk`` (a selection, never a full sort of the row) and are ordered by
``(distance, index)``; negatives ``k >= 1`` are read off that list by rank. Negative 0 lies in the far
set (everything but the ``R_1`` nearest) and is drawn uniformly from it by position: the ``u``-th far
clip in index order, found with a cumulative sum over the row. All random numbers are drawn up front
(one uniform per anchor and negative from a ``numpy.random.Generator`` seeded with ``seed``), so results
do not depend on the chunk size. Reported distances are recomputed directly (``||a - b||``) for the
chosen pairs.
"""

from __future__ import annotations

import logging
import math
import re
import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

CAPTION_OVERLAP_MODES = ("none", "identical", "any")
GEMM_ROWS = 256  # anchors per matrix product; fixed so that chunking never changes a distance bit
METRICS = ("euclidean", "cosine")


# ---------------------------------------------------------------------------------------------- slices
def slice_fraction(p: float) -> Fraction:
    """``p`` as an exact fraction (denominator <= 10^6), validated to lie in (0, 1)."""
    if not 0.0 < float(p) < 1.0:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
    return Fraction(float(p)).limit_denominator(10**6)


def slice_bounds(
    pool_sizes: np.ndarray | Sequence[int], p: float, n_neg: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per anchor and negative, the ascending-rank slice ``[lo, hi)`` the negative is drawn from.

    ``pool_sizes [A]`` -> ``(lo, hi)`` each ``[A, n_neg]`` int64; an exhausted pool gives ``lo == hi``.
    """
    if n_neg < 1:
        raise ValueError(f"n_neg must be >= 1, got {n_neg}")
    frac = slice_fraction(p)
    remaining = np.asarray(pool_sizes, dtype=np.int64).copy()
    if (remaining < 0).any():
        raise ValueError("pool sizes must be >= 0")
    lo = np.empty((remaining.size, n_neg), dtype=np.int64)
    hi = np.empty_like(lo)
    for k in range(n_neg):
        size = np.where(remaining > 0, np.maximum(1, (frac.numerator * remaining) // frac.denominator), 0)
        hi[:, k] = remaining
        lo[:, k] = remaining - size
        remaining = remaining - size
    return lo, hi


def slice_sizes(pool_size: int, p: float, n_neg: int) -> list[int]:
    """The slice sizes ``[n_0, n_1, ...]`` for one pool size (0 where the pool is exhausted)."""
    lo, hi = slice_bounds([pool_size], p, n_neg)
    return (hi - lo)[0].tolist()


# ------------------------------------------------------------------------------------------- exclusions
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_caption(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (the paper's test-prompt matching rule)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def source_id(motion_id: str) -> str:
    """The recording a clip comes from: its motion id without the mirror prefix ``M``."""
    return motion_id.removeprefix("M")


@dataclass(frozen=True)
class ClipKey:
    """What exclusion needs to know about a clip: its name, motion id and captions."""

    name: str
    motion_id: str
    captions: tuple[str, ...]


def exclusion_lists(
    anchors: Sequence[ClipKey],
    pool: Sequence[ClipKey],
    *,
    exclude_same_source: bool = True,
    caption_overlap: str = "identical",
) -> list[np.ndarray]:
    """Pool indices each anchor may not draw as a negative (always including the anchor itself).

    * the anchor itself (a pool clip with the anchor's name);
    * ``exclude_same_source``: every clip of the same recording — the mirrored copy (``M`` prefix) and
      the sub-clips of either. Default on: a mirror is a near duplicate, and most captions do not name
      a side, so it would be a false negative. Turn it off to allow left/right-swapped hard negatives;
    * ``caption_overlap``: ``"identical"`` excludes clips whose (normalised) caption set equals the
      anchor's, ``"any"`` clips sharing at least one normalised caption, ``"none"`` nothing.
    """
    if caption_overlap not in CAPTION_OVERLAP_MODES:
        raise ValueError(f"caption_overlap must be one of {CAPTION_OVERLAP_MODES}, got {caption_overlap!r}")
    by_name: dict[str, int] = {}
    by_source: dict[str, list[int]] = defaultdict(list)
    by_caption_set: dict[frozenset[str], list[int]] = defaultdict(list)
    by_caption: dict[str, list[int]] = defaultdict(list)
    for index, clip in enumerate(pool):
        if clip.name in by_name:
            raise ValueError(f"duplicate clip name {clip.name!r} in the pool")
        by_name[clip.name] = index
        by_source[source_id(clip.motion_id)].append(index)
        normalized = frozenset(normalize_caption(c) for c in clip.captions)
        if caption_overlap == "identical":
            by_caption_set[normalized].append(index)
        elif caption_overlap == "any":
            for caption in normalized:
                by_caption[caption].append(index)

    lists = []
    for anchor in anchors:
        excluded: list[int] = []
        if anchor.name in by_name:
            excluded.append(by_name[anchor.name])
        if exclude_same_source:
            excluded.extend(by_source.get(source_id(anchor.motion_id), ()))
        normalized = frozenset(normalize_caption(c) for c in anchor.captions)
        if caption_overlap == "identical":
            excluded.extend(by_caption_set.get(normalized, ()))
        elif caption_overlap == "any":
            for caption in normalized:
                excluded.extend(by_caption.get(caption, ()))
        lists.append(np.unique(np.asarray(excluded, dtype=np.int64)))
    return lists


# --------------------------------------------------------------------------------------------- retrieval
@dataclass
class NegativeResult:
    """Negatives per anchor, far -> near: pool indices (-1 = missing) and distances (NaN = missing)."""

    indices: np.ndarray  # [A, n_neg] int64
    distances: np.ndarray  # [A, n_neg] float64
    pool_sizes: np.ndarray  # [A] int64: M per anchor

    @property
    def incomplete(self) -> int:
        """Anchors whose pool ran out before ``n_neg`` negatives."""
        return int((self.indices < 0).any(axis=1).sum())


def _prepare(embeddings: np.ndarray, metric: str, dtype: torch.dtype) -> torch.Tensor:
    tensor = torch.as_tensor(np.ascontiguousarray(embeddings)).to(dtype)
    if tensor.ndim != 2:
        raise ValueError(f"embeddings must be [N, d], got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError("embeddings contain NaN or Inf")
    if metric == "cosine":
        tensor = torch.nn.functional.normalize(tensor, dim=1)
    return tensor


def retrieve_negatives(
    anchor_embeddings: np.ndarray,
    pool_embeddings: np.ndarray,
    *,
    p: float,
    n_neg: int = 4,
    seed: int = 0,
    exclusions: Sequence[np.ndarray] | None = None,
    metric: str = "euclidean",
    chunk_size: int = 512,
    dtype: str = "float64",
    progress: bool = False,
) -> NegativeResult:
    """Draw ``n_neg`` graded negatives per anchor by the slice rule (module docstring).

    ``anchor_embeddings [A, d]``, ``pool_embeddings [N, d]``; ``exclusions[a]`` holds the pool indices
    anchor ``a`` may not draw (include the anchor's own pool index when it is in the pool;
    :func:`exclusion_lists` does). ``metric``: ``euclidean`` (the T2M evaluator's) or ``cosine`` (TMR's);
    reported distances are Euclidean distances (of the unit vectors for ``cosine``). Deterministic for a
    seed and independent of ``chunk_size``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    pool = _prepare(pool_embeddings, metric, torch_dtype)
    anchors = (
        pool if anchor_embeddings is pool_embeddings else _prepare(anchor_embeddings, metric, torch_dtype)
    )
    if anchors.shape[1] != pool.shape[1]:
        raise ValueError(f"anchor dim {anchors.shape[1]} != pool dim {pool.shape[1]}")
    num_anchors, num_pool = anchors.shape[0], pool.shape[0]
    if exclusions is None:
        exclusions = [np.zeros(0, dtype=np.int64)] * num_anchors
    if len(exclusions) != num_anchors:
        raise ValueError(f"{len(exclusions)} exclusion lists for {num_anchors} anchors")
    exclusions = [np.unique(np.asarray(e, dtype=np.int64)) for e in exclusions]
    counts = np.array([len(e) for e in exclusions], dtype=np.int64)
    flat = np.concatenate(list(exclusions)) if counts.sum() else np.zeros(0, dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= num_pool):
        raise ValueError(f"exclusion indices must lie in [0, {num_pool})")
    offsets = np.concatenate([[0], np.cumsum(counts)])

    pool_sizes = num_pool - counts
    lo, hi = slice_bounds(pool_sizes, p, n_neg)
    near_counts = lo[:, 0]  # R_1 = M - n_0 per anchor: the clips nearer than the first slice
    k_near = int(near_counts.max(initial=0))
    uniforms = np.random.default_rng(seed).random((num_anchors, n_neg))
    offsets_in_slice = np.minimum(np.floor(uniforms * (hi - lo)).astype(np.int64), np.maximum(hi - lo - 1, 0))
    ranks = lo + offsets_in_slice  # ascending pool rank of every negative

    indices = np.full((num_anchors, n_neg), -1, dtype=np.int64)
    distances = np.full((num_anchors, n_neg), np.nan, dtype=np.float64)
    pool_sq = (pool * pool).sum(dim=1)
    chunk_size = -(-chunk_size // GEMM_ROWS) * GEMM_ROWS  # chunks start at multiples of GEMM_ROWS
    chunks = range(0, num_anchors, chunk_size)
    for start in tqdm(chunks, desc="negatives", unit="chunk", disable=not progress):
        stop = min(start + chunk_size, num_anchors)
        block = anchors[start:stop]
        sq = torch.empty((stop - start, num_pool), dtype=pool.dtype)
        for row in range(0, stop - start, GEMM_ROWS):  # same products whatever the chunk size
            torch.mm(block[row : row + GEMM_ROWS], pool.T, out=sq[row : row + GEMM_ROWS])
        sq.mul_(-2.0).add_(pool_sq[None, :]).add_((block * block).sum(dim=1, keepdim=True)).clamp_(min=0.0)
        rows = np.repeat(np.arange(stop - start), counts[start:stop])
        cols = flat[offsets[start] : offsets[stop]]
        if cols.size:
            sq[torch.as_tensor(rows), torch.as_tensor(cols)] = math.inf
        valid = hi[start:stop] > lo[start:stop]  # [b, n_neg]

        # Near set: the k_near nearest of each row, ordered by (distance, index).
        if k_near:
            _, near_idx = _sorted_nearest(sq, k_near)
            for k in range(1, n_neg):
                rank = torch.as_tensor(np.where(valid[:, k], ranks[start:stop, k], 0))
                picked = torch.gather(near_idx, 1, rank[:, None])[:, 0].numpy()
                indices[start:stop, k] = np.where(valid[:, k], picked, -1)

        # Negative 0: the u-th clip (in index order) of the far set = not near, not excluded.
        far = torch.ones_like(sq, dtype=torch.bool)
        if k_near:  # near candidates beyond a row's own R_1 belong to its far set
            beyond = torch.arange(k_near)[None, :] >= torch.as_tensor(near_counts[start:stop])[:, None]
            far.scatter_(1, near_idx, beyond)
        if cols.size:
            far[torch.as_tensor(rows), torch.as_tensor(cols)] = False
        cumulative = torch.cumsum(far, dim=1, dtype=torch.int32)
        target = torch.as_tensor(ranks[start:stop, 0] - lo[start:stop, 0]).to(torch.int32)  # in far set
        picked = torch.searchsorted(cumulative, target[:, None], right=True)[:, 0]
        picked = picked.clamp_(max=num_pool - 1)
        indices[start:stop, 0] = np.where(valid[:, 0], picked.numpy(), -1)

        # Report distances computed directly (exact to rounding, independent of the matrix products).
        for k in range(n_neg):
            chosen = torch.as_tensor(np.maximum(indices[start:stop, k], 0))
            direct = (block - pool[chosen]).norm(dim=1).numpy()
            distances[start:stop, k] = np.where(valid[:, k], direct, np.nan)
    return NegativeResult(indices=indices, distances=distances, pool_sizes=pool_sizes)


def _sort_by_value_then_column(
    values: torch.Tensor, columns: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    columns, order = torch.sort(columns, dim=1)
    values = torch.gather(values, 1, order)
    values, order = torch.sort(values, dim=1, stable=True)
    return values, torch.gather(columns, 1, order)


def _sorted_nearest(sq: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` first entries of every row of ``sq`` in the total order (value, column), and their columns.

    ``topk`` of ``k + 1`` selects without a full sort; the selection is sorted by value. Rows with tied
    values inside the selection are re-sorted by (value, column); rows where the ``k``-th and ``k+1``-th
    values tie (so which tied entries are among the first ``k`` is ambiguous) are recomputed exactly with
    a full sort of the row — rare for real-valued embeddings.
    """
    width = sq.shape[1]
    take = min(k + 1, width)
    values, columns = torch.topk(sq, take, dim=1, largest=False, sorted=False)
    values, order = torch.sort(values, dim=1)
    columns = torch.gather(columns, 1, order)
    tied = (values[:, 1:] == values[:, :-1]).any(dim=1).nonzero()[:, 0]
    if tied.numel():
        values[tied], columns[tied] = _sort_by_value_then_column(values[tied], columns[tied])
    if take > k:
        boundary = (values[:, k] == values[:, k - 1]).nonzero()[:, 0]
        for row in boundary.tolist():
            full = sq[row].numpy()
            order_np = np.lexsort((np.arange(width), full))[:take]
            columns[row] = torch.as_tensor(order_np)
            values[row] = torch.as_tensor(full[order_np])
    return values[:, :k], columns[:, :k]


def ascending_ranks(
    anchor_embedding: np.ndarray, pool_embeddings: np.ndarray, excluded: np.ndarray, metric: str = "euclidean"
) -> np.ndarray:
    """Reference ranking for one anchor by a full sort (tests and small pools): pool rank of every index,
    -1 for excluded ones."""
    anchor = _prepare(anchor_embedding[None, :], metric, torch.float64)[0].numpy()
    pool = _prepare(pool_embeddings, metric, torch.float64).numpy()
    sq = ((pool - anchor) ** 2).sum(axis=1)
    sq[excluded] = np.inf
    order = np.lexsort((np.arange(sq.size), sq))
    ranks = np.empty(sq.size, dtype=np.int64)
    ranks[order] = np.arange(sq.size)
    ranks[excluded] = -1
    return ranks


# ------------------------------------------------------------------------------------------------- files
NEGATIVES_FORMAT = "irg-negatives/1"


@dataclass(frozen=True)
class Negative:
    name: str
    distance: float


@dataclass
class NegativesFile:
    """Per anchor clip name, its negatives far -> near (missing ones are simply absent), plus settings."""

    info: dict
    negatives: dict[str, list[Negative]]


def save_negatives(path: str | Path, info: dict, negatives: dict[str, list[Negative]]) -> Path:
    """Write ``{"info": ..., "negatives": {anchor: [{"name", "distance"}, ...]}}`` atomically."""
    from models.common.io import atomic_write_json

    payload = {
        "info": {"format": NEGATIVES_FORMAT, **info},
        "negatives": {
            anchor: [{"name": n.name, "distance": round(float(n.distance), 6)} for n in items]
            for anchor, items in negatives.items()
        },
    }
    return atomic_write_json(payload, path, indent=1)


def load_negatives(path: str | Path) -> NegativesFile:
    """Read a negatives file, raising ``DataError`` naming the anchor and field of anything malformed."""
    import json

    from models.common.errors import DataError

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(f"cannot read the negatives file ({err.strerror or err})", path=path) from err
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON ({err})", path=path) from err
    if not isinstance(data, dict) or not isinstance(data.get("negatives"), dict):
        raise DataError(
            "expected {'info': {...}, 'negatives': {anchor: [...]}}", path=path, field="negatives"
        )
    info = data.get("info") or {}
    if info.get("format") != NEGATIVES_FORMAT:
        raise DataError(
            f"unknown format {info.get('format')!r}; expected {NEGATIVES_FORMAT!r}",
            path=path,
            field="info.format",
        )
    negatives: dict[str, list[Negative]] = {}
    for anchor, items in data["negatives"].items():
        if not isinstance(items, list):
            raise DataError("expected a list of negatives", path=path, record=anchor)
        parsed = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise DataError(
                    "expected {'name': str, 'distance': float}", path=path, record=anchor, field=f"[{i}]"
                )
            parsed.append(Negative(item["name"], float(item.get("distance", float("nan")))))
        negatives[anchor] = parsed
    return NegativesFile(info=info, negatives=negatives)

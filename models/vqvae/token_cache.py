"""Motion tokens of a whole dataset, computed once: every clip and sub-clip at every SFT crop offset.

Upstream SFT encodes every motion of every sample at every step, one at a time, after a random crop to
a multiple of ``unit_length``: a span of ``n`` frames becomes frames ``[o, o + (n // unit) * unit)`` with
``o`` drawn from ``[0, n % unit]``. Those ``n % unit + 1`` variants are few, so the cache stores all of
them, for

* every motion file (whole clip, ``end=None``; mirrored ``M`` ids are files of their own),
* every sub-clip caption of the ``texts`` files: ``[int(from * fps), min(int(to * fps), frames))`` for
  ``from < to`` (upstream uses the whole clip otherwise),
* optional extra spans ``(motion_id, start, end)`` (e.g. from annotation files).

Storage (no pickle): ``codes.npy`` one flat int16 array; ``index.npz`` per-span arrays (motion, start, end,
codes per variant, variants, first code); ``metadata.json`` written last (its presence marks a complete
cache). The cache is rebuilt only when its fingerprint changes: the sha256 of the VQ weights, and a hash
of the features and texts files (``fingerprint_files``: names, sizes, mtimes), the normalisation
statistics, the extra spans and the unit length. Builds run in shards of motions; each finished shard is
saved with a progress marker, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_engine.datasets.layout import FEATURES_DIR
from data_engine.datasets.reader import MotionDataset
from models.common.errors import DataError
from models.common.io import atomic_write, atomic_write_json, fingerprint_files
from models.vqvae.model import MotionVQVAE

logger = logging.getLogger(__name__)

FORMAT_NAME = "irg-motionllm/token-cache"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
CODES_FILE = "codes.npy"
INDEX_FILE = "index.npz"
PROGRESS_FILE = "progress.json"
SHARDS_DIR = "shards"
CODE_DTYPE = np.int16

SPAN_WHOLE, SPAN_SUBCLIP, SPAN_EXTRA = 0, 1, 2
SPAN_KINDS = {SPAN_WHOLE: "whole", SPAN_SUBCLIP: "subclip", SPAN_EXTRA: "extra"}
_INDEX_ARRAYS = ("motion_ids", "motion_frames", "span_motion", "span_start", "span_end", "span_kind",
                 "span_codes", "span_variants", "span_first")

ExtraSpan = tuple[str, int, int | None]


def vq_weights_sha256(vq: MotionVQVAE) -> str:
    """sha256 of the VQ-VAE's state dict (names, dtypes, shapes, bytes): the same weights hash the same in
    any file format."""
    digest = hashlib.sha256()
    for name, tensor in sorted(vq.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{data.dtype}\0{tuple(data.shape)}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def crop_variants(frames: int, unit_length: int) -> int:
    """Number of SFT crop offsets of a span of ``frames`` frames: ``frames % unit_length + 1``."""
    return frames % unit_length + 1


# ----- reading -------------------------------------------------------------------------------------------

class TokenCache:
    """Read access to a built cache; ``open`` validates it (missing, incomplete, corrupt or stale)."""

    def __init__(self, folder: Path, metadata: dict[str, Any], codes: np.ndarray,
                 index: dict[str, np.ndarray]) -> None:
        self.folder = folder
        self.metadata = metadata
        self.from_existing = True  # False when build_token_cache (re)computed it
        self._codes = codes
        self._index = index
        self._motion_row = {name: i for i, name in enumerate(index["motion_ids"].tolist())}
        self._span_row = {key: row for row, key in enumerate(zip(index["span_motion"].tolist(),
                                                                  index["span_start"].tolist(),
                                                                  index["span_end"].tolist()))}

    @classmethod
    def open(cls, folder: str | Path, *, expected_vq_sha256: str | None = None,
             expected_dataset_fingerprint: str | None = None) -> TokenCache:
        """Load and validate a cache; pass the expected fingerprints to reject a stale one."""
        folder = Path(folder)
        meta_path = folder / METADATA_FILE
        if not meta_path.is_file():
            if (folder / PROGRESS_FILE).is_file():
                raise DataError("token cache build is incomplete (interrupted); run build_token_cache "
                                "(prepare/build_token_cache.py) again to resume it", path=folder)
            raise DataError(f"no token cache here (missing {METADATA_FILE}); build it with "
                            "prepare/build_token_cache.py", path=folder)
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"unreadable token-cache metadata ({err})", path=meta_path) from err
        if metadata.get("format") != FORMAT_NAME or metadata.get("format_version") != FORMAT_VERSION:
            raise DataError(f"not a token cache of format {FORMAT_NAME} v{FORMAT_VERSION} (found "
                            f"{metadata.get('format')} v{metadata.get('format_version')}); rebuild it",
                            path=meta_path)
        for name, expected in (("vq_sha256", expected_vq_sha256),
                               ("dataset_fingerprint", expected_dataset_fingerprint)):
            if expected is not None and metadata.get(name) != expected:
                raise DataError(f"stale token cache: built with {name} {metadata.get(name)}, expected "
                                f"{expected}; rebuild it with prepare/build_token_cache.py", path=folder)
        try:
            codes = np.load(folder / CODES_FILE, allow_pickle=False)
            with np.load(folder / INDEX_FILE, allow_pickle=False) as archive:
                index = {name: archive[name] for name in _INDEX_ARRAYS}
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise DataError(f"corrupt or missing token-cache files ({type(err).__name__}: {err}); rebuild it",
                            path=folder) from err
        _validate(folder, metadata, codes, index)
        return cls(folder, metadata, codes, index)

    # ----- lookup ---------------------------------------------------------------------------------------
    def _row(self, motion_id: str, start: int, end: int | None) -> int:
        motion = self._motion_row.get(motion_id)
        frames = int(self._index["motion_frames"][motion]) if motion is not None else None
        clipped = frames if end is None or frames is None else min(int(end), frames)
        row = None if motion is None else self._span_row.get((motion, int(start), clipped))
        if row is None:
            span = "whole clip" if end is None else f"frames [{start}, {end})"
            why = "motion not in the cache" if motion is None else "span not in the cache"
            raise DataError(f"missing token-cache entry for motion {motion_id!r}, {span} ({why}); rebuild "
                            "the cache with this span (e.g. as an extra span)", path=self.folder,
                            record=motion_id)
        return row

    def variants(self, motion_id: str, start: int = 0, end: int | None = None) -> int:
        """Crop offsets available for the span (``span_frames % unit_length + 1``)."""
        return int(self._index["span_variants"][self._row(motion_id, start, end)])

    def codes(self, motion_id: str, start: int = 0, end: int | None = None, offset: int = 0) -> np.ndarray:
        """int16 codes of frames ``[start + offset, start + offset + (n // unit) * unit)`` of the span."""
        row = self._row(motion_id, start, end)
        variants = int(self._index["span_variants"][row])
        if not 0 <= offset < variants:
            raise DataError(f"crop offset {offset} out of range [0, {variants}) for motion {motion_id!r} "
                            f"frames [{start}, {end})", path=self.folder, record=motion_id)
        count = int(self._index["span_codes"][row])
        first = int(self._index["span_first"][row]) + offset * count
        return self._codes[first:first + count].copy()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or not 1 <= len(key) <= 3:
            return False
        try:
            self._row(*key)
        except DataError:
            return False
        return True

    def __len__(self) -> int:
        """Number of spans."""
        return len(self._index["span_start"])

    def code_histogram(self) -> np.ndarray:
        """How often each code occurs over all entries (``[nb_code]`` int64)."""
        return np.bincount(self._codes.astype(np.int64), minlength=int(self.metadata["nb_code"]))

    @property
    def motion_ids(self) -> list[str]:
        return self._index["motion_ids"].tolist()

    def frames(self, motion_id: str) -> int:
        """Length of a motion's features file."""
        if motion_id not in self._motion_row:
            raise DataError(f"motion {motion_id!r} is not in the token cache", path=self.folder,
                            record=motion_id)
        return int(self._index["motion_frames"][self._motion_row[motion_id]])

    def spans(self, motion_id: str) -> list[tuple[int, int]]:
        """``(start, end)`` of every cached span of a motion (the whole clip included)."""
        motion = self._motion_row.get(motion_id)
        rows = np.flatnonzero(self._index["span_motion"] == motion) if motion is not None else []
        return [(int(self._index["span_start"][r]), int(self._index["span_end"][r])) for r in rows]


def _validate(folder: Path, metadata: dict[str, Any], codes: np.ndarray,
              index: dict[str, np.ndarray]) -> None:
    problems = []
    if codes.dtype != CODE_DTYPE or codes.ndim != 1:
        problems.append(f"codes must be a 1-D {np.dtype(CODE_DTYPE)} array, got {codes.dtype} {codes.shape}")
    spans = len(index["span_start"])
    if any(len(index[name]) != spans for name in _INDEX_ARRAYS if name.startswith("span_")):
        problems.append("index arrays have different lengths")
    if len(index["motion_ids"]) != len(index["motion_frames"]):
        problems.append("motion_ids and motion_frames differ in length")
    if not problems:
        ends = index["span_first"] + index["span_variants"].astype(np.int64) * index["span_codes"]
        motions = len(index["motion_ids"])
        if spans and (int(ends.max()) > len(codes) or int(index["span_motion"].max()) >= motions):
            problems.append("index points outside the codes array")
        if len(codes) != metadata.get("counts", {}).get("codes"):
            problems.append(f"{len(codes)} codes, metadata says {metadata.get('counts', {}).get('codes')}")
        elif len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= int(metadata["nb_code"])):
            problems.append(f"codes outside [0, {metadata['nb_code']})")
        elif hashlib.sha256(codes.tobytes()).hexdigest() != metadata.get("codes_sha256"):
            problems.append("codes checksum mismatch")
    if problems:
        raise DataError("corrupt token cache: " + "; ".join(problems) + "; rebuild it", path=folder)


# ----- building -------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    """Every span to encode, in (motion, start, end) order, with its place in the flat codes array."""

    motion_ids: list[str]
    motion_frames: np.ndarray
    span_motion: np.ndarray
    span_start: np.ndarray
    span_end: np.ndarray
    span_kind: np.ndarray
    span_codes: np.ndarray
    span_variants: np.ndarray
    span_first: np.ndarray
    skipped: dict[str, int]

    @property
    def num_codes(self) -> int:
        if not len(self.span_first):
            return 0
        return int(self.span_first[-1] + self.span_variants[-1] * self.span_codes[-1])

    def index_arrays(self) -> dict[str, np.ndarray]:
        return {"motion_ids": np.array(self.motion_ids, dtype=str),
                **{name: getattr(self, name) for name in _INDEX_ARRAYS if name != "motion_ids"}}

    def shard_rows(self, motions: range) -> tuple[int, int]:
        """Span rows ``[lo, hi)`` of the motions in ``motions`` (spans are sorted by motion)."""
        lo, hi = np.searchsorted(self.span_motion, [motions.start, motions.stop])
        return int(lo), int(hi)

    def code_range(self, rows: tuple[int, int]) -> tuple[int, int]:
        lo, hi = rows
        if lo == hi:
            start = int(self.span_first[lo]) if lo < len(self.span_first) else self.num_codes
            return start, start
        last = hi - 1
        end = self.span_first[last] + self.span_variants[last] * self.span_codes[last]
        return int(self.span_first[lo]), int(end)


def _list_ids(dataset: MotionDataset, ids: Iterable[str] | None) -> list[str]:
    if ids is None:
        folder = dataset.root / FEATURES_DIR
        if not folder.is_dir():
            raise DataError("no features folder", path=folder)
        found = sorted(p.stem for p in folder.glob("*.npy"))
        if not found:
            raise DataError("features folder holds no .npy files", path=folder)
        return found
    chosen = list(dict.fromkeys(ids))
    missing = [i for i in chosen if not dataset.features_path(i).is_file()]
    if missing:
        raise DataError(f"{len(missing)} requested motion(s) have no features file, e.g. {missing[:5]}",
                        path=dataset.root / FEATURES_DIR, record=missing[0])
    return chosen


def _normalise_extra(extra_spans: Iterable[Sequence]) -> list[ExtraSpan]:
    spans = []
    for number, span in enumerate(extra_spans):
        if len(span) != 3:
            raise DataError(f"extra span must be (motion_id, start, end), got {span!r}", record=number)
        motion_id, start, end = span
        spans.append((str(motion_id), int(start), None if end is None else int(end)))
    return sorted(set(spans), key=lambda s: (s[0], s[1], -1 if s[2] is None else s[2]))


def dataset_fingerprint(dataset: MotionDataset, ids: Sequence[str], mean: np.ndarray, std: np.ndarray,
                        extra_spans: Sequence[ExtraSpan], unit_length: int) -> str:
    """What the cache's content depends on besides the VQ weights (see the module docstring)."""
    paths = [dataset.features_path(i) for i in ids]
    paths += [p for p in (dataset.texts_path(i) for i in ids) if p.is_file()]
    stats = np.asarray(mean, np.float32).tobytes() + np.asarray(std, np.float32).tobytes()
    payload = {"files": fingerprint_files(paths, root=dataset.root),
               "stats": hashlib.sha256(stats).hexdigest(),
               "extra_spans": hashlib.sha256(json.dumps(extra_spans).encode()).hexdigest(),
               "unit_length": unit_length, "fps": dataset.spec.fps}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _plan(dataset: MotionDataset, ids: list[str], extra_spans: list[ExtraSpan], unit: int,
          progress: bool) -> _Plan:
    fps = dataset.spec.fps
    motion_index = {name: i for i, name in enumerate(ids)}
    scan = tqdm(ids, desc="scan motions", unit="motion", disable=not progress, leave=False)
    frames = np.array([dataset.num_frames(i) for i in scan], dtype=np.int64)
    skipped = {"no texts file": 0, "sub-clip from >= to (whole clip used)": 0, "empty sub-clip": 0,
               "empty extra span": 0}
    spans: dict[tuple[int, int, int], int] = {}
    for m, motion_id in enumerate(ids):
        spans[(m, 0, int(frames[m]))] = SPAN_WHOLE
        if not dataset.texts_path(motion_id).is_file():
            skipped["no texts file"] += 1
            continue
        for caption in dataset.load_captions(motion_id):
            if caption.whole_clip:
                continue
            if not caption.start < caption.end:
                skipped["sub-clip from >= to (whole clip used)"] += 1
                continue
            start, end = int(caption.start * fps), min(int(caption.end * fps), int(frames[m]))
            if start >= end:
                skipped["empty sub-clip"] += 1
                continue
            spans.setdefault((m, start, end), SPAN_SUBCLIP)
    for motion_id, start, end in extra_spans:
        if motion_id not in motion_index:
            raise DataError(f"extra span for motion {motion_id!r}, which is not among the cached motions",
                            record=motion_id)
        m = motion_index[motion_id]
        end = int(frames[m]) if end is None else min(end, int(frames[m]))
        if start < 0:
            raise DataError(f"extra span [{start}, {end}) of motion {motion_id!r} starts before frame 0",
                            record=motion_id)
        if start >= end:
            skipped["empty extra span"] += 1
            continue
        spans.setdefault((m, start, end), SPAN_EXTRA)
    keys = sorted(spans)
    table = np.array(keys, dtype=np.int64).reshape(-1, 3)
    lengths = table[:, 2] - table[:, 1]
    codes = lengths // unit
    variants = lengths % unit + 1
    sizes = codes * variants
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return _Plan(motion_ids=ids, motion_frames=frames.astype(np.int32),
                 span_motion=table[:, 0].astype(np.int32), span_start=table[:, 1].astype(np.int32),
                 span_end=table[:, 2].astype(np.int32),
                 span_kind=np.array([spans[k] for k in keys], dtype=np.uint8),
                 span_codes=codes.astype(np.int32), span_variants=variants.astype(np.int32),
                 span_first=first, skipped=skipped)


def _encode_shard(dataset: MotionDataset, vq: MotionVQVAE, plan: _Plan, motions: range, mean: np.ndarray,
                  std: np.ndarray, batch_size: int, bar: tqdm) -> np.ndarray:
    """Codes of every crop variant of the spans of ``motions``, in plan order (one flat int16 array)."""
    unit = vq.unit_length
    rows = plan.shard_rows(motions)
    code_lo, code_hi = plan.code_range(rows)
    out = np.zeros(code_hi - code_lo, dtype=CODE_DTYPE)
    if rows[0] == rows[1]:
        return out
    arrays = []
    for m in motions:
        features = dataset.load_features(plan.motion_ids[m])
        if len(features) != plan.motion_frames[m]:
            raise DataError(f"features file changed during the build ({len(features)} frames, "
                            f"{plan.motion_frames[m]} when scanned)",
                            path=dataset.features_path(plan.motion_ids[m]))
        arrays.append((features - mean) / std)
    base = np.concatenate([[0], np.cumsum([len(a) for a in arrays])[:-1]]).astype(np.int64)
    frames = torch.from_numpy(np.concatenate(arrays).astype(np.float32, copy=False))

    span_rows = np.arange(*rows)
    variants = plan.span_variants[span_rows].astype(np.int64)
    crop_row = np.repeat(span_rows, variants)
    crop_offset = np.arange(len(crop_row)) - np.repeat(np.cumsum(variants) - variants, variants)
    crop_codes = plan.span_codes[crop_row].astype(np.int64)
    crop_frame = base[plan.span_motion[crop_row] - motions.start] + plan.span_start[crop_row] + crop_offset
    crop_pos = plan.span_first[crop_row] - code_lo + crop_offset * crop_codes

    for count in np.unique(crop_codes[crop_codes > 0]).tolist():
        members = np.flatnonzero(crop_codes == count)
        for chunk in np.array_split(members, -(-len(members) // batch_size)):
            rows_t = torch.from_numpy(crop_frame[chunk][:, None] + np.arange(count * unit))
            codes = vq.encode(frames[rows_t], batch_size=batch_size)
            out[crop_pos[chunk][:, None] + np.arange(count)] = torch.stack(codes).numpy().astype(CODE_DTYPE)
            bar.update(len(chunk))
    bar.update(int((crop_codes == 0).sum()))
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def build_token_cache(dataset: MotionDataset, vq: MotionVQVAE, folder: str | Path, *, mean: np.ndarray,
                      std: np.ndarray, ids: Iterable[str] | None = None, extra_spans: Iterable[Sequence] = (),
                      batch_size: int = 256, resume: bool = True, progress: bool = True,
                      shard_size: int = 1024, normalization_source: str = "given",
                      on_shard: Callable[[int, int], None] | None = None) -> TokenCache:
    """Tokenise ``ids`` (default: every features file) into ``folder``; see the module docstring.

    An up-to-date cache is opened and returned without work. ``resume=False`` discards the finished shards
    of an interrupted build. ``on_shard(done, total)`` is called after each shard is saved.
    """
    folder = Path(folder)
    unit = vq.unit_length
    if vq.nb_code > np.iinfo(CODE_DTYPE).max + 1:
        raise ValueError(f"nb_code {vq.nb_code} does not fit the cache's int16 codes")
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    if mean.shape != (vq.config.input_dim,) or std.shape != mean.shape:
        raise ValueError(f"mean/std must have shape [{vq.config.input_dim}], "
                         f"got {mean.shape} and {std.shape}")
    if shard_size < 1 or batch_size < 1:
        raise ValueError("shard_size and batch_size must be >= 1")
    motion_ids = _list_ids(dataset, ids)
    extras = _normalise_extra(extra_spans)
    vq_sha = vq_weights_sha256(vq)
    data_fp = dataset_fingerprint(dataset, motion_ids, mean, std, extras, unit)

    if (folder / METADATA_FILE).is_file():
        try:
            cache = TokenCache.open(folder, expected_vq_sha256=vq_sha, expected_dataset_fingerprint=data_fp)
            logger.info("token cache %s is up to date (%d spans)", folder, len(cache))
            return cache
        except DataError as err:
            logger.info("rebuilding token cache: %s", err)
    build_key = hashlib.sha256(f"{FORMAT_VERSION}|{vq_sha}|{data_fp}|{shard_size}".encode()).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).unlink(missing_ok=True)  # from here on the folder is an incomplete build
    done = _resumable_shards(folder, build_key) if resume else set()
    if not done:
        shutil.rmtree(folder / SHARDS_DIR, ignore_errors=True)

    started = time.perf_counter()
    plan = _plan(dataset, motion_ids, extras, unit, progress)
    count = len(motion_ids)
    shards = [range(lo, min(lo + shard_size, count)) for lo in range(0, count, shard_size)]
    total_crops = int(plan.span_variants.sum())
    (folder / SHARDS_DIR).mkdir(exist_ok=True)
    with tqdm(total=total_crops, desc="tokenise", unit="crop", disable=not progress) as bar:
        for number, motions in enumerate(shards):
            path = folder / SHARDS_DIR / f"{number:05d}.npy"
            lo, hi = plan.code_range(plan.shard_rows(motions))
            if number in done and _shard_ok(path, hi - lo):
                bar.update(int(plan.span_variants[slice(*plan.shard_rows(motions))].sum()))
                continue
            _save_npy(path, _encode_shard(dataset, vq, plan, motions, mean, std, batch_size, bar))
            done.add(number)
            marker = {"build_key": build_key, "shards_done": sorted(done), "num_shards": len(shards)}
            atomic_write_json(marker, folder / PROGRESS_FILE)
            if on_shard is not None:
                on_shard(len(done), len(shards))

    codes = np.concatenate([np.load(folder / SHARDS_DIR / f"{n:05d}.npy", allow_pickle=False)
                            for n in range(len(shards))]) if shards else np.zeros(0, CODE_DTYPE)
    if len(codes) != plan.num_codes:
        raise RuntimeError(f"assembled {len(codes)} codes, the plan has {plan.num_codes}")
    _save_npy(folder / CODES_FILE, codes)
    atomic_write(folder / INDEX_FILE, lambda handle: np.savez(handle, **plan.index_arrays()))
    kinds = {name: int((plan.span_kind == kind).sum()) for kind, name in SPAN_KINDS.items()}
    metadata = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "vq_sha256": vq_sha, "dataset_fingerprint": data_fp,
        "dataset": dataset.spec.name, "data_root": str(dataset.root),
        "unit_length": unit, "nb_code": vq.nb_code,
        "normalization": {"source": normalization_source,
                          "sha256": hashlib.sha256(mean.tobytes() + std.tobytes()).hexdigest()},
        "counts": {"motions": len(motion_ids), "spans": len(plan.span_start), **kinds,
                   "entries": total_crops, "codes": int(len(codes)), "skipped": plan.skipped},
        "codes_sha256": hashlib.sha256(codes.tobytes()).hexdigest(),
    }
    atomic_write_json(metadata, folder / METADATA_FILE)
    shutil.rmtree(folder / SHARDS_DIR, ignore_errors=True)
    (folder / PROGRESS_FILE).unlink(missing_ok=True)
    cache = TokenCache.open(folder, expected_vq_sha256=vq_sha, expected_dataset_fingerprint=data_fp)
    cache.from_existing = False
    logger.info("token cache %s: %d spans, %d entries, %d codes in %.1f s", folder, len(cache), total_crops,
                len(codes), time.perf_counter() - started)
    return cache


def _resumable_shards(folder: Path, build_key: str) -> set[int]:
    path = folder / PROGRESS_FILE
    try:
        progress = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return set()
    if progress.get("build_key") != build_key:
        return set()
    done = {int(n) for n in progress.get("shards_done", [])}
    if done:
        logger.info("resuming token cache build: %d/%d shards already done", len(done),
                    progress.get("num_shards"))
    return done


def _shard_ok(path: Path, expected: int) -> bool:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return array.dtype == CODE_DTYPE and array.shape == (expected,)

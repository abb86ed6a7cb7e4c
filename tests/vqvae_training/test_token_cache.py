"""The token cache: complete, equal to one-at-a-time encoding, reused when unchanged, resumable."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data_engine.datasets.layout import FEATURES_DIR
from data_engine.datasets.reader import MotionDataset
from models.common.errors import DataError
from models.vqvae.token_cache import (
    CODES_FILE,
    INDEX_FILE,
    METADATA_FILE,
    TokenCache,
    build_token_cache,
    vq_weights_sha256,
)


def _build(dataset, vq, folder, **kwargs) -> TokenCache:
    mean, std = dataset.mean_std()
    return build_token_cache(dataset, vq, folder, mean=mean, std=std, progress=False, **kwargs)


def _subclip_spans(dataset: MotionDataset, motion_id: str) -> set[tuple[int, int]]:
    frames = dataset.num_frames(motion_id)
    return {(int(c.start * 20), min(int(c.end * 20), frames)) for c in dataset.load_captions(motion_id)
            if not c.whole_clip and c.start < c.end}


@pytest.fixture()
def world_copy(tiny_world: Path, tmp_path: Path) -> MotionDataset:
    """A private copy of the tiny world (tests modify features files)."""
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    return MotionDataset(root, "humanml3d")


def test_every_clip_mirror_and_subclip_at_every_offset(coded_vq, tiny_dataset, tmp_path):
    cache = _build(tiny_dataset, coded_vq, tmp_path / "cache")
    ids = sorted(p.stem for p in (tiny_dataset.root / FEATURES_DIR).glob("*.npy"))
    assert cache.motion_ids == ids and any(i.startswith("M") for i in ids)
    subclips = 0
    for motion_id in ids:
        frames = tiny_dataset.num_frames(motion_id)
        assert cache.variants(motion_id) == frames % 4 + 1
        assert (motion_id, 0, None) in cache and (motion_id, 0, frames) in cache
        for start, end in _subclip_spans(tiny_dataset, motion_id):
            assert cache.variants(motion_id, start, end) == (end - start) % 4 + 1
            subclips += 1
        assert set(cache.spans(motion_id)) == {(0, frames)} | _subclip_spans(tiny_dataset, motion_id)
    counts = cache.metadata["counts"]
    assert subclips > 0 and counts["subclip"] == subclips and counts["whole"] == len(ids)
    assert counts["entries"] == sum(cache.variants(i, s, e) for i in ids for s, e in cache.spans(i))
    assert cache.metadata["unit_length"] == 4 and cache.metadata["nb_code"] == 64
    assert cache.metadata["vq_sha256"] == vq_weights_sha256(coded_vq)
    assert cache.metadata["dataset"] == "humanml3d"


def test_codes_equal_one_at_a_time_encoding(coded_vq, tiny_dataset, tmp_path):
    cache = _build(tiny_dataset, coded_vq, tmp_path / "cache", batch_size=5, shard_size=7)
    mean, std = tiny_dataset.mean_std()
    distinct = set()
    for motion_id in cache.motion_ids:
        features = (tiny_dataset.load_features(motion_id) - mean) / std
        for start, end in cache.spans(motion_id):
            length = (end - start) // 4 * 4
            for offset in range(cache.variants(motion_id, start, end)):
                crop = torch.from_numpy(features[start + offset:start + offset + length])
                expected = coded_vq.encode([crop])[0].numpy()  # one motion at a time, as upstream
                got = cache.codes(motion_id, start, end, offset)
                assert got.dtype == np.int16, got.dtype
                assert np.array_equal(got, expected), (motion_id, start, end, offset)
                distinct.update(got.tolist())
    assert len(distinct) > 5


def test_reopening_is_instant_and_does_not_rebuild(coded_vq, tiny_dataset, tmp_path):
    folder = tmp_path / "cache"
    first = _build(tiny_dataset, coded_vq, folder)
    assert not first.from_existing
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = _build(tiny_dataset, coded_vq, folder)
    assert again.from_existing
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    started = time.perf_counter()
    opened = TokenCache.open(folder, expected_vq_sha256=vq_weights_sha256(coded_vq))
    assert time.perf_counter() - started < 0.5
    assert np.array_equal(opened.codes("000000"), first.codes("000000"))


def test_changed_features_or_weights_trigger_a_rebuild(coded_vq, world_copy, tmp_path):
    folder = tmp_path / "cache"
    _build(world_copy, coded_vq, folder)
    path = world_copy.features_path("000003")
    features = np.load(path)
    np.save(path, features[::-1].copy())  # same size, new content
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # whatever the clock's granularity
    rebuilt = _build(world_copy, coded_vq, folder)
    assert not rebuilt.from_existing
    mean, std = world_copy.mean_std()
    codes = rebuilt.codes("000003")  # crop offset 0: the first 4 * len(codes) frames
    expected = coded_vq.encode([torch.from_numpy((features[::-1][: 4 * len(codes)] - mean) / std)])[0].numpy()
    assert np.array_equal(codes, expected)

    with torch.no_grad():
        coded_vq.vqvae.quantizer.codebook.mul_(1.5)
    reweighted = _build(world_copy, coded_vq, folder)
    assert not reweighted.from_existing
    assert reweighted.metadata["vq_sha256"] == vq_weights_sha256(coded_vq) != rebuilt.metadata["vq_sha256"]
    with pytest.raises(DataError, match="stale token cache"):
        TokenCache.open(folder, expected_vq_sha256=rebuilt.metadata["vq_sha256"])


def test_interrupted_build_resumes_and_ends_identical(coded_vq, tiny_dataset, tmp_path):
    clean = tmp_path / "clean"
    _build(tiny_dataset, coded_vq, clean, shard_size=16)

    def crash_after_three(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt("simulated crash")

    folder = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        _build(tiny_dataset, coded_vq, folder, shard_size=16, on_shard=crash_after_three)
    with pytest.raises(DataError, match="incomplete"):
        TokenCache.open(folder)
    calls = []
    cache = _build(tiny_dataset, coded_vq, folder, shard_size=16,
                   on_shard=lambda done, total: calls.append(done))
    assert calls == [4, 5, 6, 7, 8]  # 120 motions in 8 shards; the first 3 were kept
    assert not cache.from_existing
    for name in (CODES_FILE, INDEX_FILE, METADATA_FILE):
        assert (folder / name).read_bytes() == (clean / name).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted([CODES_FILE, INDEX_FILE, METADATA_FILE])


def test_missing_entries_and_bad_offsets_name_the_motion_and_span(coded_vq, tiny_dataset, tmp_path):
    cache = _build(tiny_dataset, coded_vq, tmp_path / "cache")
    with pytest.raises(DataError, match=r"missing token-cache entry for motion '000001', frames \[3, 17\)"):
        cache.codes("000001", 3, 17)
    with pytest.raises(DataError, match="missing token-cache entry for motion '999999', whole clip"):
        cache.variants("999999")
    frames = tiny_dataset.num_frames("000001")
    with pytest.raises(DataError, match="crop offset 4 out of range"):
        cache.codes("000001", offset=4)
    assert ("000001", 3, 17) not in cache and ("000001", 0, None) in cache
    # an end past the clip is clipped, as upstream's slicing does
    assert np.array_equal(cache.codes("000001", 0, frames + 50), cache.codes("000001"))


def test_extra_spans(coded_vq, tiny_dataset, tmp_path):
    extra = [("000002", 10, 50), ("M000002", 6, None)]
    cache = _build(tiny_dataset, coded_vq, tmp_path / "cache", extra_spans=extra)
    assert cache.variants("000002", 10, 50) == 1 and len(cache.codes("000002", 10, 50)) == 10
    frames = tiny_dataset.num_frames("M000002")
    assert cache.variants("M000002", 6, None) == (frames - 6) % 4 + 1
    assert cache.metadata["counts"]["extra"] == 2
    with pytest.raises(DataError, match="not among the cached motions"):
        _build(tiny_dataset, coded_vq, tmp_path / "other", extra_spans=[("123456", 0, 8)])


def test_corrupt_files_are_reported_and_rebuilt(coded_vq, tiny_dataset, tmp_path):
    folder = tmp_path / "cache"
    _build(tiny_dataset, coded_vq, folder)
    codes = np.load(folder / CODES_FILE)
    codes[5] = (codes[5] + 1) % 64
    np.save(folder / CODES_FILE, codes)
    with pytest.raises(DataError, match="corrupt token cache: codes checksum mismatch"):
        TokenCache.open(folder)
    (folder / INDEX_FILE).write_bytes(b"not an archive")
    with pytest.raises(DataError, match="corrupt or missing"):
        TokenCache.open(folder)
    assert not _build(tiny_dataset, coded_vq, folder).from_existing
    with pytest.raises(DataError, match="no token cache here"):
        TokenCache.open(tmp_path / "nowhere")

"""Negative retrieval: the slice rule, exclusions, determinism, chunk independence, the entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_engine.negatives import (
    ClipKey,
    ascending_ranks,
    exclusion_lists,
    load_negatives,
    retrieve_negatives,
    slice_bounds,
    slice_sizes,
)


def self_exclusions(n: int) -> list[np.ndarray]:
    return [np.array([i]) for i in range(n)]


def test_slice_sizes_follow_the_documented_rule():
    # HumanML3D scale: M = 29227 (29228 clips minus the anchor), p = 0.9
    assert slice_sizes(29227, 0.9, 4) == [26304, 2630, 263, 27]
    # KIT-ML p = 7/8: floor(87.5) = 87, floor(0.875 * 13) = 11, then max(1, floor(1.75)) = 1, max(1, 0) = 1
    assert slice_sizes(100, 0.875, 4) == [87, 11, 1, 1]
    # exact fractions: 0.9 * 10 is 9, not 8.999...
    assert slice_sizes(10, 0.9, 2) == [9, 1]
    # an exhausted pool gives empty slices
    assert slice_sizes(2, 0.9, 4) == [1, 1, 0, 0]
    assert slice_sizes(0, 0.9, 4) == [0, 0, 0, 0]
    lo, hi = slice_bounds([29227], 0.9, 4)
    assert hi[0].tolist() == [29227, 2923, 293, 30] and lo[0].tolist() == [2923, 293, 30, 3]
    with pytest.raises(ValueError):
        slice_sizes(10, 1.0, 4)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_negatives_lie_in_their_slices_and_get_strictly_closer(metric):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 12))
    exclusions = self_exclusions(len(x))
    result = retrieve_negatives(
        x, x, p=0.9, n_neg=4, seed=1, exclusions=exclusions, metric=metric, chunk_size=37
    )
    lo, hi = slice_bounds(result.pool_sizes, 0.9, 4)
    assert (result.pool_sizes == 399).all()
    for a in range(len(x)):
        ranks = ascending_ranks(x[a], x, exclusions[a], metric)
        for k, index in enumerate(result.indices[a]):
            assert index != a, "the anchor itself is never a negative"
            assert lo[a, k] <= ranks[index] < hi[a, k]
        assert (np.diff(result.distances[a]) < 0).all(), "each negative strictly closer than the previous"
        expected = np.linalg.norm(
            (
                x[result.indices[a]] / np.linalg.norm(x[result.indices[a]], axis=1, keepdims=True)
                - x[a] / np.linalg.norm(x[a])
            )
            if metric == "cosine"
            else x[result.indices[a]] - x[a],
            axis=1,
        )
        np.testing.assert_allclose(result.distances[a], expected, rtol=1e-9, atol=1e-9)


def test_deterministic_under_a_seed_and_independent_of_the_chunk_size():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((700, 8)).astype(np.float32)
    exclusions = self_exclusions(len(x))
    runs = [
        retrieve_negatives(x, x, p=0.9, seed=5, exclusions=exclusions, chunk_size=c)
        for c in (1, 256, 300, 600, 1000)
    ]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.indices, runs[0].indices)
        np.testing.assert_array_equal(run.distances, runs[0].distances)
    other = retrieve_negatives(x, x, p=0.9, seed=6, exclusions=exclusions)
    assert (other.indices != runs[0].indices).any()


def test_exact_ties_are_ranked_by_index_whatever_the_chunking():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, size=(150, 3)).astype(np.float64)  # many identical distances
    exclusions = self_exclusions(len(x))
    first = retrieve_negatives(x, x, p=0.9, seed=2, exclusions=exclusions, chunk_size=4)
    second = retrieve_negatives(x, x, p=0.9, seed=2, exclusions=exclusions, chunk_size=150)
    np.testing.assert_array_equal(first.indices, second.indices)
    lo, hi = slice_bounds(first.pool_sizes, 0.9, 4)
    for a in range(len(x)):
        ranks = ascending_ranks(x[a], x, exclusions[a])
        assert all(lo[a, k] <= ranks[i] < hi[a, k] for k, i in enumerate(first.indices[a]))


def test_exclusions_are_respected_and_a_small_pool_runs_out():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4))
    exclusions = [np.array([0, 1, 2])] + self_exclusions(6)[1:]
    result = retrieve_negatives(x, x, p=0.9, n_neg=4, seed=0, exclusions=exclusions)
    assert result.pool_sizes.tolist() == [3, 5, 5, 5, 5, 5]
    assert not set(result.indices[0]) & {0, 1, 2}
    # pool of 3: slices 2, 1, then exhausted
    assert (result.indices[0, :2] >= 0).all() and (result.indices[0, 2:] == -1).all()
    assert np.isnan(result.distances[0, 2:]).all()
    assert result.incomplete == 6  # a pool of 5 gives slices 4, 1, then nothing


def test_exclusion_lists_cover_mirror_subclips_and_caption_overlap():
    pool = [
        ClipKey("000001", "000001", ("a person walks.",)),
        ClipKey("M000001", "M000001", ("a person walks.",)),
        ClipKey("A_000001", "000001", ("a person stops",)),
        ClipKey("000002", "000002", ("A person walks",)),  # same caption after normalisation
        ClipKey("000003", "000003", ("a person walks.", "someone runs.")),
        ClipKey("000004", "000004", ("a person jumps.",)),
    ]
    default = exclusion_lists(pool[:1], pool)[0].tolist()
    assert default == [0, 1, 2, 3]  # itself, its mirror and sub-clip, the identical caption set
    assert exclusion_lists(pool[:1], pool, caption_overlap="any")[0].tolist() == [0, 1, 2, 3, 4]
    assert exclusion_lists(pool[:1], pool, exclude_same_source=False, caption_overlap="none")[0].tolist() == [
        0
    ]


def test_entry_point_on_the_toy_world(toy_root, toy_negatives):
    negatives = load_negatives(toy_negatives)
    assert negatives.info["settings"]["p"] == 0.9 and negatives.info["encoder"]["kind"] == "features"
    train = {line.strip() for line in (toy_root / "train.txt").read_text().splitlines() if line.strip()}
    assert negatives.negatives, "every train clip is an anchor"
    short = sum(len(items) < 4 for items in negatives.negatives.values())
    assert short == negatives.info["incomplete_anchors"]  # ~100 train clips: the 4th slice is often empty
    for anchor, items in negatives.negatives.items():
        source = anchor.split("_")[-1].removeprefix("M")
        assert 3 <= len(items) <= 4
        assert all(n.name.split("_")[-1].removeprefix("M") != source for n in items), (
            "own mirror/sub-clip excluded"
        )
        assert all(n.name.split("_")[-1] in train for n in items)
        distances = [n.distance for n in items]
        assert distances == sorted(distances, reverse=True)
    arrays = np.load(toy_negatives.with_suffix(".npz"))
    assert arrays["indices"].shape == (len(negatives.negatives), 4)
    assert json.loads(toy_negatives.read_text())["info"]["format"] == "irg-negatives/1"

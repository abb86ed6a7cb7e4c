"""Metrics: every number of fixtures/metrics.json, plus properties (FID symmetry, perfect matches, errors).

Tolerances from fixtures/README.md: R-precision counts exact; distances 1e-4 absolute (bitwise in
practice); matching score relative 1e-6; FID absolute 1e-4; diversity/multimodality relative 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

from evaluators.metrics import (
    UPSTREAM_RESULT_KEYS,
    activation_statistics,
    default_diversity_times,
    diversity,
    euclidean_distance_matrix,
    fid,
    frechet_distance,
    multimodality,
    r_precision,
    top_k_hits,
    upstream_eval_results,
)

FID_ATOL = 1e-4
RTOL = 1e-6


@pytest.fixture(scope="module")
def golden(metrics_golden):
    return metrics_golden


def test_distance_blocks_match(golden):
    arrays, _ = golden
    for other in ("gt", "pred"):
        dist = euclidean_distance_matrix(arrays["text"][:32], arrays[other][:32])
        assert dist.dtype == np.float32
        np.testing.assert_allclose(dist, arrays[f"dist_block0_text_{other}"], atol=1e-4, rtol=0)


def test_top_k_matrices_match_per_block(golden):
    arrays, _ = golden
    for block in range(3):
        rows = slice(32 * block, 32 * (block + 1))
        dist = euclidean_distance_matrix(arrays["text"][rows], arrays["gt"][rows])
        hits = top_k_hits(np.argsort(dist, axis=1), 3)
        np.testing.assert_array_equal(hits, arrays[f"top_k_mat_block{block}_real"])


def test_per_pool_counts_rates_and_traces(golden):
    arrays, expected = golden
    for kind, other in (("real", "gt"), ("pred", "pred")):
        result = r_precision(arrays["text"], arrays[other])
        assert result.num_pools == 3 and result.rows_skipped == 0
        for pool, block in enumerate(expected["per_block"]):
            assert result.per_pool_counts[pool].tolist() == block[f"{kind}_top123_counts"]
            np.testing.assert_allclose(result.per_pool_counts[pool] / 32, block[f"{kind}_rates"])
            np.testing.assert_allclose(result.per_pool_traces[pool], block[f"{kind}_trace"], rtol=RTOL)


def test_upstream_eval_results_match_all_eleven_keys(golden):
    arrays, expected = golden
    np.random.seed(0)
    results = upstream_eval_results(
        arrays["text"], arrays["gt"], arrays["pred"], rng=None, diversity_on_too_few="zero"
    )
    assert tuple(results) == UPSTREAM_RESULT_KEYS
    reference = expected["eval_loop_results"]
    for key in UPSTREAM_RESULT_KEYS:
        if "R_precision" in key:
            assert results[key] == reference[key], key  # exact: integer counts / 96
        elif key == "eval_fid":
            assert results[key] == pytest.approx(reference[key], abs=FID_ATOL)
        else:
            assert results[key] == pytest.approx(reference[key], rel=RTOL, abs=1e-12), key


def test_upstream_eval_results_default_refuses_silent_zero_diversity(golden):
    arrays, _ = golden
    with pytest.raises(ValueError, match="more than 100 rows"):
        upstream_eval_results(arrays["text"], arrays["gt"], arrays["pred"])


def test_fid_values_incl_reversed_lowdim_and_eigen(golden):
    arrays, expected = golden
    gt, pred = arrays["gt"], arrays["pred"]
    reference = expected["fid"]
    gt_mu, gt_cov = activation_statistics(gt)
    np.testing.assert_allclose(gt_mu, arrays["gt_mu"], atol=1e-6)
    assert np.trace(gt_cov) == pytest.approx(reference["trace_gt_cov"], rel=1e-12)
    assert fid(gt, pred) == pytest.approx(reference["value"], abs=FID_ATOL)
    assert fid(pred, gt) == pytest.approx(reference["fid_reversed_args"], abs=FID_ATOL)
    assert fid(gt, pred, method="eigen") == pytest.approx(
        reference["value_via_eigh_alternative"], abs=FID_ATOL
    )
    assert fid(gt, gt) == pytest.approx(reference["fid_gt_vs_gt"], abs=FID_ATOL)
    low_gt, low_pred = gt[:, : reference["fid_lowdim_dims"]], pred[:, : reference["fid_lowdim_dims"]]
    assert fid(low_gt, low_pred) == pytest.approx(reference["fid_lowdim"], abs=FID_ATOL)
    assert fid(low_gt, low_pred, method="eigen") == pytest.approx(
        reference["fid_lowdim_via_eigh_alternative"], abs=FID_ATOL
    )


def test_fid_is_zero_for_identical_sets_and_symmetric():
    emb = np.random.default_rng(1).standard_normal((400, 16)).astype(np.float32)
    other = emb[::-1] * 1.3 + 0.2
    assert abs(fid(emb, emb)) < 1e-6 and abs(fid(emb, emb, method="eigen")) < 1e-6
    assert fid(emb, other) == pytest.approx(fid(other, emb), abs=1e-8)
    assert fid(emb, other) == pytest.approx(fid(emb, other, method="eigen"), abs=1e-8)


def test_fid_with_large_imaginary_residue_falls_back_to_eigen_with_warning():
    # A non-PSD "covariance" makes sqrtm(S1 S2) imaginary on the diagonal (upstream raises ValueError).
    with pytest.warns(RuntimeWarning, match="eigenvalue formula"):
        value = frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))
    assert value == pytest.approx(0.0, abs=1e-12)  # 0 + tr(I) + tr(S2) - 2 * (0 + 1)


def test_fid_rejects_non_finite_and_mismatched_inputs():
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([np.nan, 0.0]), np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


@pytest.mark.parametrize("case", ["gt_48", "gt_95", "pred_48", "diversity_320_300"])
def test_diversity_cases_with_seeded_global_rng(golden, case):
    arrays, expected = golden
    spec = expected["diversity"][case]
    np.random.seed(0)
    value = diversity(arrays[spec["array"]], spec["diversity_times"], rng=None)
    assert value == pytest.approx(spec["value"], rel=RTOL)
    # A legacy RandomState seeded the same way draws the same indices.
    assert diversity(arrays[spec["array"]], spec["diversity_times"], np.random.RandomState(0)) == value


def test_diversity_draw_indices_match_stored(golden):
    arrays, _ = golden
    rng = np.random.RandomState(0)
    first, second = rng.choice(96, 48, replace=False), rng.choice(96, 48, replace=False)
    np.testing.assert_array_equal(first, arrays["div_idx_gt_48_first"])
    np.testing.assert_array_equal(second, arrays["div_idx_gt_48_second"])


def test_diversity_too_few_rows_raises_or_returns_upstream_zero(golden):
    arrays, expected = golden
    with pytest.raises(ValueError, match="more than 300 rows"):
        diversity(arrays["gt"], 300, np.random.default_rng(0))
    state = np.random.get_state()[1].copy()
    assert (
        diversity(arrays["gt"], 300, None, on_too_few="zero") == expected["diversity"]["gt_300"]["value"] == 0
    )
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # no random numbers consumed
    assert default_diversity_times(96) == 100 and default_diversity_times(301) == 300


def test_diversity_accepts_a_generator(golden):
    arrays, _ = golden
    a = diversity(arrays["diversity_320"], 300, np.random.default_rng(5))
    b = diversity(arrays["diversity_320"], 300, np.random.default_rng(5))
    assert a == b and 25 < a < 40


def test_multimodality_32x30_and_32x10_raises(golden):
    arrays, expected = golden
    np.random.seed(0)
    value = multimodality(arrays["mm_32x30"], 10, rng=None)
    assert value == pytest.approx(expected["multimodality"]["mm_32x30_times10"]["value"], rel=RTOL)
    rng = np.random.RandomState(0)
    np.testing.assert_array_equal(rng.choice(30, 10, replace=False), arrays["mm_idx_mm_32x30_times10_first"])
    with pytest.raises(ValueError, match="more than 10 generations"):
        multimodality(arrays["mm_32x10"], 10, rng=np.random.default_rng(0))


def test_r_precision_perfect_match_and_known_permutation():
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((70, 24)).astype(np.float32) * 10
    result = r_precision(emb, emb)
    assert result.rates.tolist() == [1.0, 1.0, 1.0]
    assert result.matching_score == pytest.approx(0.0, abs=1e-2)
    assert (result.num_pools, result.rows_used, result.rows_skipped) == (2, 64, 6)
    # Swapping two motions in the first pool turns both of those texts' top-1 into misses.
    swapped = emb.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    shifted = r_precision(emb, swapped)
    assert shifted.per_pool_counts[0, 0] == 30 and shifted.per_pool_counts[1, 0] == 32


def test_r_precision_needs_a_full_pool():
    emb = np.zeros((31, 8), np.float32)
    with pytest.raises(ValueError, match="at least one full pool of 32"):
        r_precision(emb, emb)


def test_distance_of_identical_vectors_is_not_nan():
    vec = np.full((2, 512), 123.456, np.float32)
    dist = euclidean_distance_matrix(vec, vec)
    assert np.isfinite(dist).all() and dist.max() < 1.0

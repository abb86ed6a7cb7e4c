"""The evaluation protocol on the tiny toy world with a small trained evaluator (see conftest)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from evaluators.generators import GeneratedBatch, GroundTruthGenerator, RandomGroundTruthGenerator
from evaluators.protocol import (
    EvalReport,
    ProtocolSettings,
    T2MTestSet,
    assemble_shards,
    embed_shard,
    format_interval,
    repeat_metrics,
    run_protocol,
    sample_repeat,
    shard_positions,
    summarize,
)

SETTINGS = ProtocolSettings(repeats=2, diversity_times=50)


@pytest.fixture(scope="module")
def test_set(assets, tiny_dataset) -> T2MTestSet:
    return T2MTestSet.from_assets(tiny_dataset, "test", assets)


@pytest.fixture(scope="module")
def gt_report(test_set, assets) -> EvalReport:
    return run_protocol(GroundTruthGenerator(), test_set, assets.evaluator, SETTINGS, progress=False)


class RawGroundTruth:
    """Returns the ground truth de-normalised (raw features), through the plain ``generate`` protocol
    plus the items (to know which motion), with per-sample info."""

    def __init__(self, space) -> None:
        self.space = space

    def generate_items(self, batch) -> GeneratedBatch:
        motions = [
            self.space.denormalize(batch.motions[i, : batch.lengths[i]]) for i in range(len(batch.indices))
        ]
        info = [
            {"num_gens": 2, "parse_fallback": i % 4 == 0, "text": "kept for logs"}
            for i in range(len(motions))
        ]
        return GeneratedBatch(motions, "raw", info)


class NoisyGroundTruth:
    """A sampling generator: ground truth plus fresh gaussian noise on every call."""

    def __init__(self, scale: float, seed: int = 0) -> None:
        self.scale = scale
        self.rng = np.random.default_rng(seed)

    def generate_items(self, batch) -> GeneratedBatch:
        return GeneratedBatch(
            [
                batch.motions[i, : batch.lengths[i]]
                + self.scale
                * self.rng.standard_normal((batch.lengths[i], batch.motions.shape[-1])).astype(np.float32)
                for i in range(len(batch.indices))
            ],
            "evaluator",
        )


def test_trained_evaluator_is_far_above_chance(trained_dir) -> None:
    _, summary = trained_dir
    assert summary["reference"]["eval_R_precision_real_top1"] > 3 / 32
    assert summary["matching"]["steps"] == 120 and summary["movement"]["steps"] == 20


def test_ground_truth_generator_gives_zero_fid_and_the_real_r_precision(gt_report) -> None:
    summary = gt_report.summary()
    assert abs(summary["eval_fid"]["mean"]) < 1e-6
    for k in (1, 2, 3):
        assert summary[f"eval_R_precision_top{k}"] == summary[f"eval_R_precision_real_top{k}"]
    assert summary["eval_matching_score_pred"] == summary["eval_matching_score_real"]
    assert 0 < summary["eval_fid_real"]["mean"] < 0.5  # independent crops of the same items
    assert gt_report.counts["items"] == 110 and gt_report.counts["pools"] == 3
    assert gt_report.counts["items_outside_pools"] == 110 - 96


def test_raw_features_are_converted_with_the_evaluator_statistics(gt_report, test_set, assets) -> None:
    report = run_protocol(
        RawGroundTruth(test_set.space), test_set, assets.evaluator, SETTINGS, progress=False
    )
    for key, value in gt_report.summary().items():
        assert report.summary()[key]["mean"] == pytest.approx(value["mean"], abs=2e-4), key
    stats = report.generator_stats
    assert stats["num_gens"] == {"count": 220, "mean": 2.0}
    assert stats["parse_fallback"]["true"] == 2 * 28 and "text" not in stats


def test_same_seed_same_numbers_other_seed_differs(gt_report, test_set, assets) -> None:
    again = run_protocol(GroundTruthGenerator(), test_set, assets.evaluator, SETTINGS, progress=False)
    for ours, theirs in zip(
        again.per_repeat, gt_report.per_repeat, strict=True
    ):  # FID: threaded LAPACK jitter ~1e-9
        assert ours == pytest.approx(theirs, abs=1e-8, rel=0)
    assert gt_report.per_repeat[0] != gt_report.per_repeat[1]  # repeats draw differently
    other = run_protocol(
        GroundTruthGenerator(),
        test_set,
        assets.evaluator,
        dataclasses.replace(SETTINGS, seed=7),
        progress=False,
    )
    assert other.per_repeat != gt_report.per_repeat


def test_random_ground_truth_is_near_chance(gt_report, test_set, assets) -> None:
    settings = dataclasses.replace(SETTINGS, repeats=4)
    report = run_protocol(
        RandomGroundTruthGenerator(seed=3), test_set, assets.evaluator, settings, progress=False
    )
    summary = report.summary()
    assert summary["eval_R_precision_top1"]["mean"] < 0.08  # chance: 1/32 = 0.031
    assert summary["eval_R_precision_top3"]["mean"] < 0.18  # chance: 3/32 = 0.094
    assert summary["eval_R_precision_real_top1"]["mean"] > 2.5 * summary["eval_R_precision_top1"]["mean"]
    assert summary["eval_fid"]["mean"] > 10 * abs(gt_report.summary()["eval_fid"]["mean"])


def test_two_simulated_ranks_give_the_single_process_numbers(gt_report, test_set, assets) -> None:
    repeat = sample_repeat(test_set, SETTINGS, 0)
    reference = repeat.resampled(np.random.default_rng([SETTINGS.seed, 0, 3]))
    shards = [
        embed_shard(
            GroundTruthGenerator(),
            repeat,
            assets.evaluator,
            SETTINGS,
            shard_positions(110, r, 2),
            reference_repeat=reference,
        )
        for r in (1, 0)
    ]
    assert [len(s.positions) for s in shards] == [55, 55]
    metrics = repeat_metrics(assemble_shards(shards, 110), SETTINGS, 0)
    for key, value in gt_report.per_repeat[0].items():
        assert metrics[key] == pytest.approx(value, abs=1e-5), key
    eigen = repeat_metrics(assemble_shards(shards, 110), dataclasses.replace(SETTINGS, fid_method="eigen"), 0)
    for key in ("eval_fid", "eval_fid_real"):
        assert eigen[key] == pytest.approx(metrics[key], rel=1e-4, abs=1e-4), key
    assert {k: v for k, v in eigen.items() if "fid" not in k} == {k: v for k, v in metrics.items() if "fid" not in k}


def test_shards_cover_every_item_once() -> None:
    parts = [shard_positions(103, r, 4) for r in range(4)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(103))
    assert [len(p) for p in parts] == [26, 26, 26, 25]
    assert len(shard_positions(3, 3, 4)) == 0
    with pytest.raises(ValueError, match="rank"):
        shard_positions(10, 2, 2)


def test_multimodality_is_zero_for_deterministic_and_positive_for_sampling_generators(
    test_set, assets
) -> None:
    settings = ProtocolSettings(repeats=1, diversity_times=50, mm_num_texts=4, mm_repeats=12, mm_times=10)
    fixed = run_protocol(
        GroundTruthGenerator(), test_set, assets.evaluator, settings, progress=False, reference_row=False
    )
    noisy = run_protocol(NoisyGroundTruth(0.5), test_set, assets.evaluator, settings, progress=False)
    assert fixed.per_repeat[0]["eval_multimodality"] == pytest.approx(0, abs=1e-6)
    assert "eval_fid_real" not in fixed.per_repeat[0]
    assert noisy.per_repeat[0]["eval_multimodality"] > 0.05
    assert "MModality" in noisy.to_markdown()


def test_ci95_and_summary_formulas() -> None:
    values = [0.50, 0.52, 0.55, 0.49]
    summary = summarize(values)
    assert summary["std"] == pytest.approx(np.std(values))  # population std, as upstream
    assert summary["ci95"] == pytest.approx(1.96 * np.std(values) / math.sqrt(4))
    report = EvalReport(per_repeat=[{"eval_fid": v, "eval_R_precision_top1": 1 - v} for v in values])
    assert report.summary()["eval_fid"] == summary
    assert format_interval(0.5216, 0.0031) == "0.522±.003"
    assert format_interval(12.3456, 1.2341) == "12.346±1.234"
    assert format_interval(-1e-9, 0.0) == "0.000±.000"


def test_report_json_round_trip_and_markdown(gt_report, tmp_path) -> None:
    path = gt_report.to_json(tmp_path / "eval.json")
    data = json.loads(path.read_text())
    assert list(data["per_repeat"]) == ["Repeat-0", "Repeat-1"]
    assert data["summary"]["eval_fid"]["ci95"] >= 0
    assert EvalReport.from_json(path).per_repeat == gt_report.per_repeat
    table = gt_report.to_markdown(label="GT")
    assert table.splitlines()[2].startswith("| Real motion | ") and "| GT | " in table
    assert "2 repeat(s)" in table and "95% confidence interval" in table
    assert "population std" in gt_report.to_markdown(interval="std")
    assert gt_report.format_upstream().splitlines()[0] == "Avg Results"


def test_log_dir_holds_results_table_and_first_repeat_samples(test_set, assets, tmp_path) -> None:
    settings = dataclasses.replace(SETTINGS, repeats=1)
    run_protocol(
        RawGroundTruth(test_set.space), test_set, assets.evaluator, settings, progress=False, log_dir=tmp_path
    )
    samples = [json.loads(line) for line in (tmp_path / "samples_repeat0.jsonl").read_text().splitlines()]
    assert len(samples) == 110 and samples[0]["info"]["num_gens"] == 2
    assert samples[0]["generated_frames"] == samples[0]["gt_frames"]
    assert "Repeat-0" in json.loads((tmp_path / "eval_results.json").read_text())["per_repeat"]
    assert (tmp_path / "eval_results.md").read_text().startswith("| Method |")


def test_test_set_sampling_follows_upstream_rules(test_set) -> None:
    repeat = test_set.sample(np.random.default_rng(0))
    units = test_set.clip_lengths // 4
    assert np.isin(repeat.lengths // 4, [units, units - 1]).all() and (repeat.lengths % 4 == 0).all()
    assert 0.2 < np.mean(repeat.lengths // 4 == units - 1) < 0.5  # the 'double' coin has probability 1/3
    assert (repeat.starts >= 0).all() and (repeat.starts + repeat.lengths <= test_set.clip_lengths).all()
    assert sorted(repeat.order.tolist()) == list(range(len(test_set)))
    batch = repeat.batch([0, 5])
    assert batch.motions.shape == (2, 196, 263) and batch.word_embs.shape == (2, 22, 16)
    assert not batch.motions[0, batch.lengths[0] :].any()
    clip = test_set.clips[5]
    raw = test_set.dataset.load_features(clip.motion_id)[clip.start : clip.end]
    start, length = repeat.starts[5], repeat.lengths[5]
    np.testing.assert_allclose(
        batch.motions[1, :length], test_set.space.normalize(raw[start : start + length])
    )
    assert batch.captions[1] in [c.text for c in clip.captions]
    lazy = T2MTestSet(
        test_set.dataset,
        "test",
        test_set.word_vectorizer,
        test_set.space.mean,
        test_set.space.std,
        preload=False,
    )
    np.testing.assert_array_equal(
        lazy.frames(np.array([5]), repeat.starts[[5]], repeat.lengths[[5]]), batch.motions[1:]
    )

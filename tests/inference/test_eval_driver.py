"""``SFT/test_unified.py`` end to end on the tiny toy world (untrained LLM, random VQ and evaluator)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.llm.inference import MOTION_TASKS


@pytest.fixture(scope="module")
def driver(load_script):
    return load_script("SFT/test_unified.py")


@pytest.fixture()
def argv(toy_root, tiny_llm_dir, tiny_vq_path, tiny_evaluator_dir, glove_dir):
    def make(results_dir: Path, tasks: str, *extra: str) -> list[str]:
        return [
            "--preset", "toy", "--data-root", str(toy_root), "--llm-backbone", str(tiny_llm_dir),
            "--vq-ckpt", str(tiny_vq_path), "--evaluator-dir", str(tiny_evaluator_dir),
            "--glove-dir", str(glove_dir), "--eval-task", tasks, "--eval-repeat-times", "1",
            "--max-new-tokens", "6", "--max-refine-round", "1", "--diversity-times", "40",
            "--results-dir", str(results_dir), "--no_progress", "--seed", "7", "--debug", "--debug-ids", "40",
            *extra,
        ]  # fmt: skip

    return make


def test_stage1_table_outputs_and_reproducibility(driver, argv, tmp_path):
    first = driver.main(argv(tmp_path / "a", "t2m,direct_generation-instructed_refinement"))
    root = Path(first["results_dir"])
    assert (root / "executed_command.sh").read_text().count("--eval-task") == 1
    table = (root / "summary.md").read_text()
    for row in ("| Real motion |", "| t2m |", "| direct_generation-instructed_refinement |"):
        assert row in table
    items = first["counts"]["items"]
    for task in ("t2m", "direct_generation-instructed_refinement"):
        folder = root / task
        report = json.loads((folder / "eval_results.json").read_text())
        assert set(report["per_repeat"]) == {"Repeat-0"}
        assert set(report["summary"]["eval_fid"]) == {"mean", "std", "ci95"}
        assert (folder / "eval_results.md").is_file() and (folder / "all_eval_results_t2m.json").is_file()
        stats = json.loads((folder / "generation_stats.json").read_text())
        # the untrained model never closes its block properly: every answer is a counted substitute
        assert stats["substituted_motions"] == items == sum(stats["fallback_reasons"].values())
        logs = sorted((folder / "txt_io").glob("*.json"))
        assert len(logs) == items
        record = json.loads(logs[0].read_text())
        assert record["extracted_motion"] == [0] and record["input_text"].endswith(" Response:<Motion>")
    loop_dir = root / "direct_generation-instructed_refinement"
    loop_stats = json.loads((loop_dir / "generation_stats.json").read_text())
    assert loop_stats["rounds_histogram"] == {"1": items} and loop_stats["num_gens_histogram"] == {"2": items}
    assert loop_stats["cache_hits"] >= items  # the initial generation reuses the t2m pass (greedy)

    second = driver.main(argv(tmp_path / "b", "t2m,pure_random_flip"))
    assert second["tasks"]["t2m"]["summary"] == first["tasks"]["t2m"]["summary"]
    flip = second["tasks"]["pure_random_flip"]
    assert flip["generation"]["generate_calls"] == 0 and flip["generation"]["substituted_motions"] == 0
    assert flip["summary"]["eval_fid"]["mean"] < first["tasks"]["t2m"]["summary"]["eval_fid"]["mean"]
    samples = Path(second["results_dir"]) / "pure_random_flip" / "samples_repeat0.jsonl"
    partners = [json.loads(line)["info"]["partner"] for line in samples.read_text().splitlines()]
    assert len(set(partners)) > items // 2  # foreign motions drawn across the test set

    table = driver.main(["--compare", str(root), str(tmp_path / "b")])
    assert table.count("| a/") == 2 and table.count("| b/") == 2


def test_unknown_task_is_a_clear_error(driver, argv, tmp_path):
    with pytest.raises(SystemExit) as err:
        driver.main(argv(tmp_path, "t2m,motion_poetry"))
    message = str(err.value)
    assert "motion_poetry" in message and all(task in message for task in MOTION_TASKS)
    with pytest.raises(SystemExit, match=r"test_m2t\.py"):
        driver.main(argv(tmp_path, "m2t"))


def test_checkpoint_for_another_vocabulary_is_rejected(driver, argv, tmp_path, llm):
    hidden = llm.model.config.hidden_size
    rows = llm.vocab.vocab_size + 100
    state = {"embeddings": torch.zeros(rows, hidden), "lm_head": torch.zeros(rows, hidden)}
    path = tmp_path / "other_vocab.pth"
    torch.save({"epoch": 3, "state_dict": state}, path)
    with pytest.raises(ValueError, match="another vocabulary size"):
        driver.main([*argv(tmp_path / "out", "t2m"), "--llm-ckpt", str(path)])


def test_generator_feature_space(llm, tiny_vq_path, toy_root):
    from models.llm.generators import LLMMotionGenerator
    from models.llm.inference import GenerationSettings, MotionLLMEngine
    from models.vqvae import load_vqvae

    vq = load_vqvae(tiny_vq_path)
    engine = MotionLLMEngine(llm.model, llm.tokenizer, llm.vocab, GenerationSettings(max_new_tokens=2))
    stats = (np.load(toy_root / "Mean.npy"), np.load(toy_root / "Std.npy"))
    same = LLMMotionGenerator(engine, vq, "t2m", vq_stats=stats, evaluator_stats=stats)
    assert same.normalization == "evaluator"
    other = (stats[0] + 1.0, stats[1])
    raw = LLMMotionGenerator(engine, vq, "t2m", vq_stats=stats, evaluator_stats=other)
    assert raw.normalization == "raw"
    codes = [[1, 2, 3], [4] * 60]
    normalised = same.decode(codes)
    assert [len(m) for m in normalised] == [12, 196]  # 4 frames per code, cropped at 196
    assert not np.allclose(normalised[0], normalised[1][:12])  # different codes, different motions
    expected = normalised[0] * stats[1] + stats[0]
    np.testing.assert_allclose(raw.decode(codes)[0], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown statistics"):
        LLMMotionGenerator(engine, vq, "t2m", evaluator_stats=(stats[0][:67], stats[1][:67]))
    batch = same.generate(["a person walks forward", "someone waves"], np.array([40, 60]))
    assert len(batch.motions) == 2 and batch.info[0]["parse_fallback"] in (True, False)

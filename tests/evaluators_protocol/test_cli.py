"""prepare/train_evaluator.py and prepare/eval_reference.py end to end (the trained_dir fixture runs the
training once); one torchrun test checks that two processes give the single-process numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluators.opt_file import read_opt_file
from evaluators.t2m_extractor import T2MEvaluatorConfig

REFERENCE_ARGS = [
    "--repeats",
    "2",
    "--diversity-times",
    "50",
    "--threads",
    "1",
    "--progress",
    "false",
    "--device",
    "cpu",
]


def test_training_writes_the_released_layout(trained_dir, tiny_dataset) -> None:
    root, summary = trained_dir
    match = root / "checkpoints" / "t2m" / "text_mot_match"
    for name in (
        "model/finest.tar",
        "model/latest.tar",
        "meta/mean.npy",
        "meta/std.npy",
        "opt.txt",
        "train_config.json",
        "train_summary.json",
        "log.jsonl",
        "reference_test.json",
        "reference_test.md",
    ):
        assert (match / name).is_file(), name
    assert (root / "checkpoints" / "t2m" / "Decomp_SP001_SM001_H512" / "model" / "latest.tar").is_file()
    assert (root / "glove" / "our_vab_data.npy").is_file()
    options = read_opt_file(match / "opt.txt")
    assert options["dataset_name"] == "t2m" and options["dim_word"] == 16 and options["feat_bias"] == 1.0
    assert T2MEvaluatorConfig.from_opt_file(match / "opt.txt").dim_movement_latent == 24
    _, std = tiny_dataset.mean_std()  # the toy preset keeps the dataset's statistics (feat_bias 1)
    np.testing.assert_array_equal(np.load(match / "meta" / "std.npy"), std)
    records = [json.loads(line) for line in (match / "log.jsonl").read_text().splitlines()]
    assert {(r["phase"], r["split"]) for r in records} == {
        ("movement", "train"),
        ("movement", "val"),
        ("matching", "train"),
        ("matching", "val"),
    }
    assert set(summary["seconds"]) >= {"movement_autoencoder", "matching", "reference_row"}


def test_rerun_resumes_a_finished_run_without_training(
    trained_dir, tiny_root, script_main, train_args, capsys
) -> None:
    root, summary = trained_dir
    finest = root / "checkpoints" / "t2m" / "text_mot_match" / "model" / "finest.tar"
    before = finest.read_bytes()
    again = script_main("train_evaluator")(
        ["--data-root", str(tiny_root), "--out-dir", str(root), *train_args]
    )
    assert again["matching"]["steps"] == summary["matching"]["steps"] and again["matching"]["best"] == {}
    assert finest.read_bytes() == before
    assert again["reference"] == pytest.approx(summary["reference"], abs=1e-6)
    assert "Reference row on the test split" in capsys.readouterr().out


def test_a_split_smaller_than_one_batch_fails_before_training(tiny_root, script_main, train_args, tmp_path) -> None:
    with pytest.raises(SystemExit, match=r"--train-split 'test' of .* has 110 evaluation items, fewer than one "
                                         r"--batch-size 111 batch"):
        script_main("train_evaluator")(
            ["--data-root", str(tiny_root), "--out-dir", str(tmp_path / "ev"), *train_args, "--batch-size", "111"]
        )
    assert not (tmp_path / "ev" / "checkpoints" / "t2m" / "text_mot_match" / "model").exists()


def test_eval_reference_prints_the_row(trained_dir, tiny_root, tmp_path, script_main, capsys) -> None:
    report = script_main("eval_reference")(
        [
            "--data-root",
            str(tiny_root),
            "--evaluator-dir",
            str(trained_dir[0]),
            "--out",
            str(tmp_path),
            *REFERENCE_ARGS,
        ]
    )
    out = capsys.readouterr().out
    assert "| Real motion | " in out and "| Ground truth (generated = GT) | " in out and "Avg Results" in out
    assert report.summary()["eval_R_precision_top1"] == report.summary()["eval_R_precision_real_top1"]
    assert json.loads((tmp_path / "eval_results.json").read_text())["counts"]["items"] == 110


@pytest.mark.distributed
def test_torchrun_two_processes_match_one(trained_dir, tiny_root, tmp_path, script_main) -> None:
    single = script_main("eval_reference")(
        ["--data-root", str(tiny_root), "--evaluator-dir", str(trained_dir[0]), *REFERENCE_ARGS]
    )
    script = Path(__file__).resolve().parents[2] / "prepare" / "eval_reference.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        str(script),
        "--data-root",
        str(tiny_root),
        "--evaluator-dir",
        str(trained_dir[0]),
        "--out",
        str(tmp_path),
        *REFERENCE_ARGS,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "eval_results.json").read_text())
    assert data["counts"]["world_size"] == 2
    for index, metrics in enumerate(single.per_repeat):
        assert data["per_repeat"][f"Repeat-{index}"] == pytest.approx(metrics, abs=1e-5)

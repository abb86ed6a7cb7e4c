"""``torchrun --nproc_per_node 2`` of prepare/train_vqvae.py (gloo on CPU) matches a one-process run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

ARGS = ["--vq-preset", "small_fixture", "--batch-size", "8", "--window-size", "32", "--total-iter", "5",
        "--warm-up-iter", "3", "--lr", "1e-3", "--print-iter", "1", "--eval-iter", "4", "--save-iter", "4",
        "--no-render", "--no-progress", "--seed", "11"]


@pytest.mark.distributed
def test_two_rank_training_matches_one_process(load_script, tiny_world, repo_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command = torchrun + [str(repo_root / "prepare" / "train_vqvae.py"), "--data-root", str(tiny_world),
                          "--out-dir", str(tmp_path), "--exp-name", "ddp", *ARGS]
    process = subprocess.Popen(command, cwd=repo_root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # torchrun and its workers
        process.communicate()
        raise
    assert process.returncode == 0, stderr[-3000:]
    assert "on 2 rank(s)" in stderr

    load_script("prepare/train_vqvae.py").main(["--data-root", str(tiny_world), "--out-dir", str(tmp_path),
                                               "--exp-name", "single", *ARGS])
    ddp = torch.load(tmp_path / "ddp" / "vqvae.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "vqvae.pt", weights_only=True)
    assert ddp["step"] == single["step"] == 7
    # same global batches, gradients averaged over ranks, EMA over the all-gathered latents: equal up to
    # float summation order
    for name, tensor in single["net"].items():
        torch.testing.assert_close(ddp["net"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(ddp["quantizer_ema"]["code_count"], single["quantizer_ema"]["code_count"])

    def records(run: str) -> list[dict]:
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["split"] == "train"]

    for a, b in zip(records("ddp"), records("single"), strict=True):
        assert a["active_codes"] == b["active_codes"] and a["resets"] == b["resets"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)

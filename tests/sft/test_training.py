"""Single-process SFT: the loss falls, run files are written, optimiser modes behave as documented,
a SIGKILLed run resumes exactly, checkpoints are atomic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.common.config import parse_config
from models.llm.sft_trainer import PRESETS, SFTConfig, run_sft
from models.llm.training import (
    LATEST_FILE,
    CheckpointManager,
    DistContext,
    TrainPosition,
    lr_multiplier,
    resolve_optim_settings,
)

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "SFT" / "train_unified_sft.py"


@pytest.fixture
def one_thread(monkeypatch):
    """Runs in this process and in subprocesses use one intra-op thread (bitwise-comparable results)."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def sft_args(toy_world, smoke_llm, out: Path, name: str, files: str = "stage1", *extra: str) -> list[str]:
    paths = toy_world["stage0"][:1] if files == "t2m" else toy_world[files]
    return [
        "--preset",
        "smoke",
        "--llm-backbone",
        str(smoke_llm),
        "--token-cache",
        str(toy_world["cache"]),
        "--data-json-files",
        ":".join(str(p) for p in paths),
        "--out-dir",
        str(out),
        "--exp-name",
        name,
        *extra,
    ]


def run(argv: list[str]) -> dict[str, float]:
    return run_sft(parse_config(SFTConfig, PRESETS, argv))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_training_reduces_loss_and_writes_run_files(toy_world, smoke_llm, tmp_path, one_thread) -> None:
    run(
        sft_args(
            toy_world,
            smoke_llm,
            tmp_path,
            "learn",
            "stage1",
            "--max-steps",
            "40",
            "--log-every",
            "10",
            "--batch-size",
            "8",
            "--save-step-frequency",
            "0",
        )
    )
    run_dir = tmp_path / "learn"
    curve = metrics(run_dir)
    assert [m["step"] for m in curve] == [10, 20, 30, 40]
    assert curve[-1]["loss"] < curve[0]["loss"] - 1.0, [m["loss"] for m in curve]
    assert curve[-1]["acc"] > curve[0]["acc"]
    assert all(0.0 <= m["pad_fraction"] < 1.0 and m["tokens_per_s"] > 0 for m in curve)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["max_steps"] == 40 and config["optim_mode"] == "recommended"
    samples = (run_dir / "training_samples.txt").read_text()
    assert samples.count("### item") == 4 and "--- supervised ---" in samples and " Response:" in samples
    assert "total" in (run_dir / "trainable_params.txt").read_text()
    assert "step 40" in (run_dir / "run.log").read_text()
    assert list((run_dir / "tensorboard").glob("events.*"))
    assert not (run_dir / "checkpoints").exists()  # no checkpointing asked for
    meta = json.loads((run_dir / "final" / "motion_llm.json").read_text())
    assert meta["sft"]["global_step"] == 40 and (run_dir / "final" / "model.safetensors").is_file()


def test_optimizer_modes(toy_world, smoke_llm, tmp_path) -> None:
    faithful = resolve_optim_settings("faithful", 1e-5, cuda=True)
    assert (
        faithful.optimizer_name,
        faithful.param_dtype,
        faithful.schedule,
        faithful.warmup_steps,
        faithful.max_grad_norm,
        faithful.autocast_bf16,
    ) == ("Adam", "bf16", "constant", 0, 0.0, False)
    recommended = resolve_optim_settings("recommended", 1e-3, cuda=True)
    assert (
        recommended.optimizer_name,
        recommended.param_dtype,
        recommended.schedule,
        recommended.warmup_steps,
        recommended.max_grad_norm,
        recommended.autocast_bf16,
    ) == ("AdamW", "fp32", "cosine", 50, 1.0, True)
    assert not resolve_optim_settings("recommended", 1e-3, cuda=False).autocast_bf16
    assert resolve_optim_settings("faithful", 1e-5, schedule="cosine", max_grad_norm=2.0).max_grad_norm == 2.0
    multipliers = [lr_multiplier(s, recommended, total_steps=150) for s in (0, 49, 50, 100, 149, 500)]
    assert multipliers[:3] == [1 / 50, 1.0, 1.0]
    assert multipliers[3] == pytest.approx(0.1 + 0.9 * 0.5) and multipliers[5] == pytest.approx(0.1)
    assert all(lr_multiplier(s, faithful, 100) == 1.0 for s in (0, 10, 1000))

    # faithful on CPU: parameters, gradients and Adam moments stay bf16, LR constant
    run(
        sft_args(
            toy_world,
            smoke_llm,
            tmp_path,
            "faithful",
            "stage0",
            "--optim-mode",
            "faithful",
            "--learning-rate",
            "1e-3",
            "--max-steps",
            "2",
            "--save-step-frequency",
            "2",
            "--log-every",
            "1",
        )
    )
    folder = tmp_path / "faithful" / "checkpoints" / "step_000002"
    assert {t.dtype for t in load_file(str(folder / "model" / "model.safetensors")).values()} == {
        torch.bfloat16
    }
    state = torch.load(folder / "optimizer.pt", weights_only=True)["optimizer"]
    moments = [v for s in state["state"].values() for k, v in s.items() if k.startswith("exp_avg")]
    assert moments and {m.dtype for m in moments} == {torch.bfloat16}
    assert not state["param_groups"][0].get("decoupled_weight_decay")  # Adam, not AdamW
    assert {m["lr"] for m in metrics(tmp_path / "faithful")} == {1e-3}
    assert "bfloat16" in (tmp_path / "faithful" / "trainable_params.txt").read_text()


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_sigkill_mid_epoch_then_resume_is_exact(mode, toy_world, smoke_llm, tmp_path, one_thread) -> None:
    # T2M file only: 207 records, 26 micro-batches of 8 = 13 optimiser steps per epoch
    extra = [
        "--max-steps",
        "20",
        "--save-step-frequency",
        "4",
        "--log-every",
        "1",
        "--gradient-accumulation-steps",
        "2",
        "--batch-size",
        "8",
        "--keep-checkpoints",
        "2",
    ]
    if mode == "lora":  # LoRA with dropout: the resumed RNG state matters
        extra += [
            "--full-tuning",
            "false",
            "--wo-lora",
            "false",
            "--lora-r-t2m",
            "4",
            "--lora-alpha-t2m",
            "8",
        ]
    run(sft_args(toy_world, smoke_llm, tmp_path, "reference", "t2m", *extra))

    argv = sft_args(toy_world, smoke_llm, tmp_path, "killed", "t2m", *extra, "--resume-from", "auto")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, str(ENTRY), *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    run_dir = tmp_path / "killed"
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and process.poll() is None:
        latest = run_dir / "checkpoints" / LATEST_FILE
        try:
            logged = metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
        except json.JSONDecodeError:  # a line being written
            logged = []
        if latest.is_file() and logged and logged[-1]["step"] >= int(latest.read_text().split("_")[1]) + 2:
            process.send_signal(signal.SIGKILL)
            killed_at = logged[-1]["step"]
            break
        time.sleep(0.02)
    process.wait(timeout=30)
    assert killed_at is not None, "the run finished or stalled before it could be killed"
    checkpoint_step = int((run_dir / "checkpoints" / LATEST_FILE).read_text().split("_")[1])
    assert 0 < checkpoint_step < killed_at  # killed after a checkpoint, not at it
    assert not (run_dir / "final").exists()

    run(argv)
    reference, resumed = metrics(tmp_path / "reference"), metrics(run_dir)
    keys = ("step", "epoch", "loss", "acc", "motion_acc", "text_acc", "lr", "grad_norm", "tokens", "samples")
    assert [[m[k] for k in keys] for m in resumed] == [[m[k] for k in keys] for m in reference]
    assert reference[killed_at - 1]["epoch"] == 0 and reference[-1]["epoch"] == 1  # killed mid-epoch 0
    name = "adapter_model.safetensors" if mode == "lora" else "model.safetensors"
    files = sorted((tmp_path / "reference" / "final").rglob(name))
    assert files
    for path in files:
        want = load_file(str(path))
        got = load_file(str(run_dir / "final" / path.relative_to(tmp_path / "reference" / "final")))
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert len(CheckpointManager(run_dir / "checkpoints", DistContext()).checkpoints()) == 2  # rolling window


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from models.llm.training import CheckpointManager, DistContext, TrainPosition
    manager = CheckpointManager(Path(sys.argv[1]), DistContext())
    def write(tmp):
        (tmp / "model.bin").write_bytes(b"x" * 1000)
        print("writing", flush=True)
        time.sleep(60)
    manager.save(2, write, TrainPosition(2, 0, 4))
""")


def test_checkpoint_is_atomic_under_sigkill(tmp_path) -> None:
    root = tmp_path / "checkpoints"
    manager = CheckpointManager(root, DistContext(), keep_last=0)
    manager.save(1, lambda tmp: (tmp / "model.bin").write_bytes(b"1"), TrainPosition(1, 0, 2))
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert [p.name for p in manager.checkpoints()] == ["step_000001"]
    assert (root / ".step_000002.tmp").is_dir()  # the interrupted save is invisible to resume
    assert manager.latest() == root / "step_000001" and manager.resolve("auto") == root / "step_000001"

    def crash(tmp: Path) -> None:
        (tmp / "model.bin").write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        manager.save(3, crash, TrainPosition(3, 0, 6))
    assert manager.latest() == root / "step_000001" and not (root / "step_000003").exists()
    manager.save(4, lambda tmp: (tmp / "model.bin").write_bytes(b"4"), TrainPosition(4, 1, 0))
    assert manager.latest() == root / "step_000004" and not list(root.glob(".step_*.tmp"))
    assert (root / LATEST_FILE).read_text().strip() == "step_000004"
    with pytest.raises(FileNotFoundError, match="not a complete training checkpoint"):
        manager.resolve(str(tmp_path))
    assert len(manager.checkpoints()) == 2

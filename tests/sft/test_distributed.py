"""``torchrun --nproc_per_node 2`` on CPU (gloo): DDP and DeepSpeed ZeRO-2 with a client optimizer.

The first DeepSpeed run on a fresh machine JIT-compiles DeepSpeed's shared-memory communication op
(~40-90 s, cached in ~/.cache/torch_extensions afterwards).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "SFT" / "train_unified_sft.py"

pytestmark = pytest.mark.distributed


def torchrun(toy_world, smoke_llm, out: Path, name: str, *extra: str) -> list[dict]:
    torchrun_bin = Path(sys.executable).with_name("torchrun")
    launcher = (
        [str(torchrun_bin)] if torchrun_bin.exists() else [sys.executable, "-m", "torch.distributed.run"]
    )
    files = ":".join(str(p) for p in toy_world["stage1"])
    command = [
        *launcher,
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29600 + os.getpid() % 200),
        str(ENTRY),
        "--preset",
        "smoke",
        "--llm-backbone",
        str(smoke_llm),
        "--token-cache",
        str(toy_world["cache"]),
        "--data-json-files",
        files,
        "--out-dir",
        str(out),
        "--exp-name",
        name,
        "--max-steps",
        "6",
        "--log-every",
        "2",
        "--save-step-frequency",
        "3",
        "--wo-scale-lr",
        "false",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    run_dir = out / name
    assert (run_dir / "final" / "model.safetensors").is_file()
    assert (run_dir / "checkpoints" / "step_000006").is_dir()
    assert "world 2" in (run_dir / "run.log").read_text()
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ddp_curve(toy_world, smoke_llm, tmp_path_factory) -> list[dict]:
    return torchrun(toy_world, smoke_llm, tmp_path_factory.mktemp("ddp"), "ddp")


def test_ddp_gloo_trains(ddp_curve) -> None:
    assert [m["step"] for m in ddp_curve] == [2, 4, 6]
    assert ddp_curve[-1]["loss"] < ddp_curve[0]["loss"]
    assert ddp_curve[0]["lr"] == pytest.approx(2 * 3e-3)  # LR scaled by the world size (no --wo-scale-lr)
    assert ddp_curve[-1]["samples"] == 2 * 2 * 4  # two steps x two ranks x batch 4


@pytest.mark.skipif(shutil.which("g++") is None, reason="DeepSpeed JIT-compiles its CPU communication op")
def test_deepspeed_zero2_matches_ddp(toy_world, smoke_llm, tmp_path, ddp_curve) -> None:
    curve = torchrun(toy_world, smoke_llm, tmp_path, "zero2", "--deepspeed", "--zero-stage", "2")
    assert (tmp_path / "zero2" / "checkpoints" / "step_000006" / "deepspeed").is_dir()
    # same data, same per-rank token-mean loss, gradients averaged over ranks: the same run as DDP
    for ours, reference in zip(curve, ddp_curve, strict=True):
        assert ours["loss"] == pytest.approx(reference["loss"], rel=1e-4)
        assert ours["acc"] == pytest.approx(reference["acc"], abs=1e-3)


def test_stage_scripts_print_and_chain_stage0_into_stage1(toy_world, smoke_llm, tmp_path) -> None:
    env = {
        **os.environ,
        "PRESET": "smoke",
        "LLM_BACKBONE": str(smoke_llm),
        "TOKEN_CACHE": str(toy_world["cache"]),
        "STAGE0_FILES": ":".join(str(p) for p in toy_world["stage0"]),
        "STAGE1_FILES": ":".join(str(p) for p in toy_world["stage1"]),
        "OUT_DIR": str(tmp_path),
        "PYTHON": sys.executable,
        "MASTER_PORT": str(29800 + os.getpid() % 100),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    for stage in ("0", "1"):
        result = subprocess.run(
            [
                "bash",
                str(REPO / "SFT" / f"train_stage{stage}.sh"),
                "--max-steps",
                "2",
                "--save-step-frequency",
                "0",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        command = result.stdout.splitlines()[0]
        assert command.startswith("+ ") and "torch.distributed.run --nproc_per_node 1" in command
        assert "--preset smoke" in command and command.endswith("--max-steps 2 --save-step-frequency 0")
        assert (tmp_path / f"smoke_stage{stage}" / "final" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "smoke_stage1" / "config.json").read_text())
    assert config["resume_llm"] == str(tmp_path / "smoke_stage0" / "final")

    missing = subprocess.run(
        ["bash", str(REPO / "SFT" / "train_stage1.sh")],
        capture_output=True,
        text=True,
        env={**env, "PRESET": "humanml3d", "RESUME_LLM": ""},
        timeout=60,
    )
    assert missing.returncode == 2 and "set RESUME_LLM" in missing.stderr

"""Building blocks of LLM training: distributed setup, optimiser modes, LR schedules, loss and metrics,
DDP / DeepSpeed engines, and atomic, resumable checkpoints.

Optimiser modes (``OPTIM_MODES``):

* ``faithful`` — the authors' recipe: every LLM parameter in bf16 (so gradients and Adam moments are bf16
  too: no fp32 master weights, no autocast, no loss scaling), ``torch.optim.Adam`` (betas 0.9/0.999,
  eps 1e-8, no weight decay), constant LR, no warm-up, no gradient clipping. It runs in bf16 on CPU as
  well. Many bf16 updates at lr 1e-5 underflow; that is the dynamics the released checkpoints had.
* ``recommended`` — fp32 parameters (master weights) with bf16 autocast on CUDA, ``torch.optim.AdamW``,
  linear warm-up then cosine decay to ``min_lr_ratio`` x LR, gradient clipping at 1.0.

Explicit settings (schedule, warm-up, clipping, parameter dtype) override the mode's defaults.

The loss is the Hugging Face causal-LM loss (shift by one, cross-entropy over labels != -100, mean over
the supervised tokens of the local micro-batch), computed here from the logits so that the accuracy
counts come from the same pass. With gradient accumulation the micro-batch means are averaged. Metrics
are summed in device tensors and reduced across ranks only when logged (no per-step host syncs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from models.common.io import atomic_write_text
from models.llm.sequences import IGNORE_INDEX

logger = logging.getLogger(__name__)

OPTIM_MODES = ("faithful", "recommended")
LR_SCHEDULES = ("constant", "cosine")


# ----------------------------------------------------------------------------------------------------
# Distributed setup


@dataclass(frozen=True)
class DistContext:
    """Where this process runs. ``world_size == 1`` without a process group."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_distributed(timeout_s: int = 1800, deepspeed: bool = False) -> DistContext:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1): NCCL on GPU, gloo on CPU.

    Single process (plain ``python`` or ``torchrun --nproc_per_node 1``): no process group, unless
    DeepSpeed needs one (it always initialises its communication layer).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    backend = "nccl" if cuda else "gloo"
    if deepspeed:
        import deepspeed as ds

        if "MASTER_ADDR" not in os.environ:  # plain `python` launch: a one-process group
            os.environ.update(
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=os.environ.get("MASTER_PORT", "29511"),
                RANK="0",
                LOCAL_RANK="0",
                WORLD_SIZE="1",
            )
        ds.init_distributed(dist_backend=backend, timeout=timedelta(seconds=timeout_s))
    elif world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistContext(rank, local_rank, world_size, device, backend if dist.is_initialized() else None)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def scaled_learning_rate(lr: float, world_size: int, wo_scale_lr: bool) -> float:
    """Upstream: the LR is multiplied by the number of processes unless ``--wo-scale-lr``."""
    return lr if wo_scale_lr else lr * world_size


# ----------------------------------------------------------------------------------------------------
# Optimiser modes and schedules


@dataclass(frozen=True)
class OptimSettings:
    """Resolved optimiser settings (see the module docstring for the two modes)."""

    mode: str
    lr: float
    param_dtype: str  # "bf16" | "fp32"
    schedule: str
    warmup_steps: int
    min_lr_ratio: float
    max_grad_norm: float  # 0: no clipping
    weight_decay: float
    autocast_bf16: bool  # recommended mode on CUDA

    @property
    def optimizer_name(self) -> str:
        return "Adam" if self.mode == "faithful" else "AdamW"


def resolve_optim_settings(
    mode: str,
    lr: float,
    *,
    param_dtype: str = "auto",
    schedule: str | None = None,
    warmup_steps: int | None = None,
    min_lr_ratio: float = 0.1,
    max_grad_norm: float | None = None,
    weight_decay: float = 0.0,
    cuda: bool | None = None,
) -> OptimSettings:
    """The mode's defaults, overridden by every setting that is not ``None``/``auto``."""
    if mode not in OPTIM_MODES:
        raise ValueError(f"optim mode must be one of {OPTIM_MODES}, got {mode!r}")
    cuda = torch.cuda.is_available() if cuda is None else cuda
    faithful = mode == "faithful"
    dtype = ("bf16" if faithful else "fp32") if param_dtype == "auto" else param_dtype
    if dtype not in ("bf16", "fp32"):
        raise ValueError(f"parameter dtype must be auto, bf16 or fp32, got {param_dtype!r}")
    schedule = schedule or ("constant" if faithful else "cosine")
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    settings = OptimSettings(
        mode=mode,
        lr=lr,
        param_dtype=dtype,
        schedule=schedule,
        warmup_steps=(0 if faithful else 50) if warmup_steps is None else warmup_steps,
        min_lr_ratio=min_lr_ratio,
        max_grad_norm=(0.0 if faithful else 1.0) if max_grad_norm is None else max_grad_norm,
        weight_decay=weight_decay,
        autocast_bf16=not faithful and dtype == "fp32" and cuda,
    )
    if settings.warmup_steps < 0 or settings.max_grad_norm < 0 or not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"invalid optimiser settings {settings}")
    return settings


def build_optimizer(model: torch.nn.Module, settings: OptimSettings) -> torch.optim.Optimizer:
    """Adam (faithful) or AdamW (recommended; weight decay only on matrices) over trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if settings.mode == "faithful":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=settings.lr)


def lr_multiplier(step: int, settings: OptimSettings, total_steps: int) -> float:
    """LR factor at optimiser step ``step`` (0-based): linear warm-up, then constant or cosine decay."""
    warmup = settings.warmup_steps
    if warmup and step < warmup:
        return (step + 1) / warmup
    if settings.schedule == "constant":
        return 1.0
    span = max(total_steps - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    floor = settings.min_lr_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: OptimSettings, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, settings, total_steps)
    )


# ----------------------------------------------------------------------------------------------------
# Loss and metrics


METRIC_FIELDS = (
    "loss_sum",
    "micro_batches",
    "correct",
    "valid",
    "motion_correct",
    "motion_valid",
    "text_correct",
    "text_valid",
    "tokens",
    "padded_tokens",
    "samples",
    "truncated",
    "skipped",
    "grad_norm_sum",
    "optimizer_steps",
)


def causal_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, first_motion_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """HF causal-LM loss (token mean over the micro-batch) and accuracy counts.

    Returns ``(loss, counts)`` with ``counts = [correct, valid, motion_correct, motion_valid,
    text_correct, text_valid]`` (float, on the logits' device). As upstream, "motion" labels are ids
    ``>= first_motion_id`` (the two tags and the codes), "text" the rest; accuracy is next-token argmax
    accuracy on the supervised positions. A micro-batch without supervised tokens has loss 0.
    """
    shift_logits = logits[:, :-1]
    targets = labels[:, 1:]
    valid = targets != IGNORE_INDEX
    total = F.cross_entropy(
        shift_logits.float().reshape(-1, shift_logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    count = valid.sum()
    loss = total / count.clamp(min=1)
    with torch.no_grad():
        hit = (shift_logits.argmax(dim=-1) == targets) & valid
        motion = valid & (targets >= first_motion_id)
        text = valid & ~motion
        counts = torch.stack(
            [hit.sum(), count, (hit & motion).sum(), motion.sum(), (hit & text).sum(), text.sum()]
        ).float()
    return loss, counts


class MetricAccumulator:
    """Running sums of :data:`METRIC_FIELDS` in one device tensor; ``reduce`` sums them over ranks."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.values = torch.zeros(len(METRIC_FIELDS), dtype=torch.float64, device=device)
        self._index = {name: i for i, name in enumerate(METRIC_FIELDS)}

    def add_micro_batch(self, loss: torch.Tensor, counts: torch.Tensor, stats: Mapping[str, int]) -> None:
        host = torch.tensor(
            [
                1,
                stats["tokens"],
                stats["padded_tokens"],
                stats["samples"],
                stats["truncated"],
                stats["skipped"],
            ],
            dtype=torch.float64,
        )
        index = self._index
        self.values[index["loss_sum"]] += loss.detach().to(torch.float64)
        self.values[index["correct"] : index["text_valid"] + 1] += counts.to(torch.float64)
        slots = [
            index[k] for k in ("micro_batches", "tokens", "padded_tokens", "samples", "truncated", "skipped")
        ]
        self.values[slots] += host.to(self.device, non_blocking=True)

    def add_optimizer_step(self, grad_norm: torch.Tensor | None) -> None:
        self.values[self._index["optimizer_steps"]] += 1
        if grad_norm is not None:
            self.values[self._index["grad_norm_sum"]] += grad_norm.detach().to(torch.float64)

    def reduce(self, ctx: DistContext) -> dict[str, float]:
        """Sums over ranks (one all-reduce) turned into rates; resets the sums."""
        values = self.values.clone()
        if ctx.distributed:
            dist.all_reduce(values)
        sums = dict(zip(METRIC_FIELDS, values.tolist(), strict=True))
        self.values.zero_()

        def ratio(a: str, b: str) -> float:
            return sums[a] / sums[b] if sums[b] else float("nan")

        return {
            "loss": ratio("loss_sum", "micro_batches"),
            "acc": ratio("correct", "valid"),
            "motion_acc": ratio("motion_correct", "motion_valid"),
            "text_acc": ratio("text_correct", "text_valid"),
            "grad_norm": ratio("grad_norm_sum", "optimizer_steps"),
            "pad_fraction": 1.0 - ratio("tokens", "padded_tokens"),
            "tokens": sums["tokens"],
            "supervised_tokens": sums["valid"],
            "samples": sums["samples"],
            "truncated": sums["truncated"],
            "skipped": sums["skipped"],
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"values": self.values.detach().cpu()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.values.copy_(state["values"].to(self.device))


# ----------------------------------------------------------------------------------------------------
# Engines: one interface for plain / DDP and DeepSpeed


class TorchEngine:
    """Single process or DDP: forward, backward (``no_sync`` inside an accumulation group), step."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        settings: OptimSettings,
        ctx: DistContext,
    ) -> None:
        self.module = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.settings = settings
        self.ctx = ctx
        self.wrapped: torch.nn.Module = model
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(model, device_ids=device_ids)

    def train_micro_batch(
        self, batch: Mapping[str, torch.Tensor], first_motion_id: int, scale: float, sync: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, backward of ``loss * scale``; gradients are all-reduced only when ``sync``."""
        no_sync = self.ctx.distributed and not sync
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if self.settings.autocast_bf16
            else contextlib.nullcontext()
        )
        with self.wrapped.no_sync() if no_sync else contextlib.nullcontext():
            with autocast:
                logits = self.wrapped(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
            loss, counts = causal_lm_loss(logits, batch["labels"], first_motion_id)
            (loss * scale).backward()
        return loss.detach(), counts

    def step(self) -> torch.Tensor | None:
        grad_norm = None
        if self.settings.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.module.parameters() if p.requires_grad], self.settings.max_grad_norm
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


class DeepSpeedEngine:
    """DeepSpeed ZeRO-2/3 around a client torch optimizer and scheduler (no JIT-compiled fused Adam).

    Gradient accumulation is caller-managed (``managed_gradient_accumulation: false``): every ``step``
    is an optimiser update. bf16 (with DeepSpeed's fp32 master weights) is enabled on CUDA for fp32
    models; a model already in bf16 (faithful mode) keeps bf16 parameters and DeepSpeed's bf16 path.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        settings: OptimSettings,
        ctx: DistContext,
        *,
        micro_batch_size: int,
        accumulation_steps: int,
        zero_stage: int,
    ) -> None:
        import warnings

        import deepspeed

        # DeepSpeed's ZeRO calls a torch.distributed function that torch now marks deprecated
        warnings.filterwarnings(
            "ignore", message=".*all_gather_into_tensor.* is deprecated", category=FutureWarning
        )
        if zero_stage not in (1, 2, 3):
            raise ValueError(f"zero stage must be 1, 2 or 3, got {zero_stage}")
        self.settings = settings
        self.ctx = ctx
        params_bf16 = next(model.parameters()).dtype == torch.bfloat16
        config: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": micro_batch_size,
            "gradient_accumulation_steps": accumulation_steps,
            "managed_gradient_accumulation": False,
            "zero_optimization": {"stage": zero_stage},
            "gradient_clipping": settings.max_grad_norm,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if params_bf16 or (ctx.device.type == "cuda" and settings.mode == "recommended"):
            config["bf16"] = {"enabled": True}
        self.config = config
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config
        )
        self.module = self.engine.module
        self.zero_stage = zero_stage

    def train_micro_batch(
        self, batch: Mapping[str, torch.Tensor], first_motion_id: int, scale: float, sync: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, backward of ``loss * scale`` (DeepSpeed reduces at ``step``)."""
        logits = self.engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, counts = causal_lm_loss(logits, batch["labels"], first_motion_id)
        self.engine.backward(loss * scale, scale_wrt_gas=False)
        return loss.detach(), counts

    def step(self) -> torch.Tensor | None:
        self.engine.step()
        norm = self.engine.get_global_grad_norm() if self.settings.max_grad_norm > 0 else None
        return None if norm is None else torch.as_tensor(float(norm))

    def current_lr(self) -> float:
        return float(self.engine.get_lr()[0])

    @contextlib.contextmanager
    def gathered_parameters(self) -> Iterator[None]:
        """Full parameters on every rank (ZeRO-3 partitions them) for exporting the model."""
        if self.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.module.parameters()), modifier_rank=None):
                yield
        else:
            yield


# ----------------------------------------------------------------------------------------------------
# Checkpoints: step_XXXXXX folders written atomically, a `latest` pointer, pruning


STEP_DIR = re.compile(r"^step_(\d{6,})$")
LATEST_FILE = "latest"
TRAINER_STATE_FILE = "trainer_state.json"
KEEP_MARKER = "keep"


@dataclass
class TrainPosition:
    """Where training stands: optimiser steps done, current epoch, micro-batches of it consumed."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class CheckpointManager:
    """``root/step_XXXXXX/`` checkpoints written through a temporary sibling, then renamed; a ``latest``
    file (atomically replaced) names the newest complete one. Collective: every rank calls ``save``.

    A kill during a save leaves at most a hidden ``.step_XXXXXX.tmp`` folder (removed by the next save)
    and never a partial ``step_*`` folder; ``latest`` always names a complete checkpoint.
    """

    def __init__(self, root: str | Path, ctx: DistContext, keep_last: int = 0) -> None:
        self.root = Path(root)
        self.ctx = ctx
        self.keep_last = keep_last

    @staticmethod
    def step_name(step: int) -> str:
        return f"step_{step:06d}"

    def latest(self) -> Path | None:
        """The checkpoint named by ``latest`` (or the newest complete ``step_*`` if the file is missing)."""
        pointer = self.root / LATEST_FILE
        if pointer.is_file():
            folder = self.root / pointer.read_text(encoding="utf-8").strip()
            if (folder / TRAINER_STATE_FILE).is_file():
                return folder
        complete = [p for p in self.checkpoints() if (p / TRAINER_STATE_FILE).is_file()]
        return complete[-1] if complete else None

    def checkpoints(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
        return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))

    def save(
        self,
        step: int,
        write: Callable[[Path], None],
        position: TrainPosition,
        keep: bool = False,
    ) -> Path:
        """Run ``write(tmp_folder)`` on every rank, then (rank 0) publish it as ``step_XXXXXX``."""
        name = self.step_name(step)
        final = self.root / name
        tmp = self.root / f".{name}.tmp"
        if self.ctx.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            for stale in self.root.glob(".step_*.tmp"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
        self.ctx.barrier()
        write(tmp)
        self.ctx.barrier()
        if self.ctx.is_main:
            state = {**position.to_dict(), "world_size": self.ctx.world_size}
            atomic_write_text(json.dumps(state, indent=2) + "\n", tmp / TRAINER_STATE_FILE)
            if keep:
                atomic_write_text("kept: epoch checkpoint\n", tmp / KEEP_MARKER)
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.root)
            atomic_write_text(name + "\n", self.root / LATEST_FILE)
            self._prune(final)
        self.ctx.barrier()
        return final

    def _prune(self, newest: Path) -> None:
        if self.keep_last <= 0:
            return
        rolling = [p for p in self.checkpoints() if not (p / KEEP_MARKER).exists() and p != newest]
        for old in rolling[: max(len(rolling) - (self.keep_last - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)

    def resolve(self, resume_from: str) -> Path | None:
        """``''`` -> None; ``auto`` -> latest or None; a path -> that checkpoint (must be complete)."""
        if not resume_from:
            return None
        if resume_from == "auto":
            return self.latest()
        folder = Path(resume_from)
        if (folder / LATEST_FILE).is_file() and not (folder / TRAINER_STATE_FILE).is_file():
            folder = CheckpointManager(folder, self.ctx).latest() or folder
        if not (folder / TRAINER_STATE_FILE).is_file():
            raise FileNotFoundError(
                f"{folder} is not a complete training checkpoint (no {TRAINER_STATE_FILE})"
            )
        return folder


def read_position(folder: str | Path) -> TrainPosition:
    state = json.loads((Path(folder) / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    return TrainPosition(state["global_step"], state["epoch"], state["batches_in_epoch"])


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_model_folder_weights(model: torch.nn.Module, folder: str | Path) -> None:
    """Load a ``save_hf_folder`` folder's weights (single or sharded safetensors) into a plain model.

    Only tied weights (``lm_head.weight`` of Gemma-2) may be absent from the files.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(str(folder / shard)))
    result = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"{folder}: weights do not match the model (missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(result.unexpected_keys)[:5]})"
        )

"""The SFT run (stages 0-2): configuration, presets and the training loop of ``SFT/train_unified_sft.py``.

A run writes into ``{out_dir}/{exp_name}/`` (rank 0): ``config.json`` (reusable with ``--config``),
``run.log``, ``trainable_params.txt``, ``training_samples.txt`` (the first rendered items),
``metrics.jsonl`` (one JSON line per logged step), ``tensorboard/``, ``checkpoints/step_XXXXXX/`` with
``checkpoints/latest``, and at the end ``final/`` (our Hugging Face folder for full tuning, the adapter
folder for LoRA; ``--save-authors-format`` adds the authors' ``.pth``).

Resume (``--resume-from auto|PATH``) restores weights, optimiser, scheduler, every RNG state, the
metric sums and the data position (epoch, micro-batches consumed), so a killed run continues exactly
where its last checkpoint was taken: same batches, same items, same weights and the same logged curve
(``metrics.jsonl`` lines after the checkpoint are dropped, TensorBoard purges them). DDP resume is the
same mechanism: each rank restores its own RNG file, the optimiser state is identical on all ranks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as transformers_logging

from data_engine.annotations import load_annotation_files
from data_engine.datasets.spec import get_dataset_spec
from models.common.config import config_to_dict, save_config
from models.common.io import atomic_write_text
from models.common.runtime import (capture_rng_state, cpu_threads, restore_rng_state, seed_everything,
                                   setup_logging)
from models.llm.checkpoints import (
    load_adapter_folder,
    save_adapter_folder,
    save_authors_checkpoint,
    save_hf_folder,
)
from models.llm.model import LLMSettings, build_motion_llm, is_peft_model, trainable_parameter_report
from models.llm.sequences import IGNORE_INDEX, SequenceOptions
from models.llm.sft_dataset import (
    MotionCodeSource,
    SFTBatchSampler,
    SFTCollator,
    SFTDataOptions,
    SFTDataset,
    task_counts,
)
from models.llm.training import (
    OPTIM_MODES,
    TRAINER_STATE_FILE,
    CheckpointManager,
    DeepSpeedEngine,
    DistContext,
    MetricAccumulator,
    TorchEngine,
    TrainPosition,
    build_optimizer,
    build_scheduler,
    init_distributed,
    load_model_folder_weights,
    read_position,
    resolve_optim_settings,
    scaled_learning_rate,
    shutdown_distributed,
)
from models.vqvae.token_cache import TokenCache

logger = logging.getLogger("sft")

METRICS_FILE = "metrics.jsonl"
SAMPLES_TO_DUMP = 4
AUTHORS_FINAL_NAME = "motionllm_unified_sft_final.pth"
# Consistency of a resumed run: these settings must equal the checkpoint's (the data order depends on them).
# (--max-steps / --epochs-unified may change: the run is then longer or shorter, with the schedule stretched.)
RESUME_MUST_MATCH = (
    "batch_size",
    "gradient_accumulation_steps",
    "group_by_length",
    "seed",
    "data_json_files",
    "dataname",
    "max_tgt_len",
    "overflow",
)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class SFTConfig:
    """Settings of one SFT run; names follow upstream's flags (``--llm-backbone``, ``--resume-llm`` ...)."""

    # --- upstream flags ---
    training_task: str = field(
        default="multitask_shared", metadata=_help("recorded only (legacy upstream field)")
    )
    llm_backbone: str = field(default="", metadata=_help("Gemma-2 folder (or the tiny local one)"))
    llm_tokenizer: str = field(default="", metadata=_help("tokenizer folder; empty = --llm-backbone"))
    resume_llm: str = field(
        default="",
        metadata=_help(
            "initial weights (upstream semantics, not a training resume): an authors'/Motion-Agent .pth, an "
            "adapter folder, or one of our full model folders (then used as the backbone)"
        ),
    )
    exp_name: str = field(default="test", metadata=_help("run folder name under --out-dir"))
    out_dir: str = field(default="experiments", metadata=_help("output root"))
    batch_size: int = field(default=4, metadata=_help("micro-batch size per process"))
    epochs_unified: int = field(default=15, metadata=_help("number of epochs"))
    wo_scale_lr: bool = field(
        default=False, metadata=_help("do not multiply the LR by the number of processes")
    )
    learning_rate: float = field(
        default=1e-5, metadata=_help("peak learning rate (before world-size scaling)")
    )
    prompt_w_response: bool = field(
        default=True, metadata=_help("append ' Response:' to prompts (released runs)")
    )
    data_json_files: str = field(default="", metadata=_help("annotation files, ':'-separated"))
    full_tuning: bool = field(
        default=False, metadata=_help("merge the LoRA (if any) and train every parameter")
    )
    wo_lora: bool = field(default=False, metadata=_help("no LoRA wrapper"))
    ignore_incorrect: bool = field(default=False, metadata=_help("CoT: no loss on intermediate motions"))
    wo_answer: bool = field(default=False, metadata=_help("CoT: no <answer> block"))
    save_frequency: int = field(default=0, metadata=_help("also keep a checkpoint every N epochs (0: off)"))
    save_step_frequency: int = field(default=0, metadata=_help("checkpoint every N optimiser steps (0: off)"))
    seed: int = field(default=123, metadata=_help("seed of data order, item draws and initialisation"))
    dataname: str = field(default="t2m", metadata=_help("t2m/humanml3d or kit (motion-id digits, fps)"))
    lora_r_t2m: int = field(default=64, metadata=_help("LoRA rank"))
    lora_alpha_t2m: int = field(default=64, metadata=_help("LoRA alpha"))
    lora_dropout: float = field(default=0.1, metadata=_help("LoRA dropout"))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("micro-batches per optimiser step"))
    deepspeed: bool = field(default=False, metadata=_help("DeepSpeed ZeRO instead of DDP"))
    zero_stage: int = field(default=2, metadata=_help("ZeRO stage with --deepspeed (1, 2 or 3)"))
    max_tgt_len: int = field(default=2048, metadata=_help("maximum tokens per sequence"))
    debug: bool = field(default=False, metadata=_help("no checkpoints or export, log every step"))
    # --- ours ---
    data_root: str = field(
        default="", metadata=_help("dataset root (default token cache: <data-root>/token_cache)")
    )
    token_cache: str = field(default="", metadata=_help("token cache folder (prepare/build_token_cache.py)"))
    optim_mode: str = field(default="faithful", metadata=_help("faithful | recommended (see the docstring)"))
    dtype: str = field(default="auto", metadata=_help("parameter dtype: auto (mode's) | bf16 | fp32"))
    lr_schedule: str | None = field(default=None, metadata=_help("constant | cosine (default: the mode's)"))
    warmup_steps: int | None = field(
        default=None, metadata=_help("linear warm-up steps (default: the mode's)")
    )
    min_lr_ratio: float = field(default=0.1, metadata=_help("cosine floor as a fraction of the LR"))
    max_grad_norm: float | None = field(
        default=None, metadata=_help("clip norm, 0 = off (default: the mode's)")
    )
    weight_decay: float = field(default=0.0, metadata=_help("weight decay (AdamW: matrices only)"))
    max_steps: int = field(default=0, metadata=_help("stop after N optimiser steps (0: all epochs)"))
    attn_implementation: str = field(
        default="auto", metadata=_help("auto | eager | flash_attention_2 | flex_attention")
    )
    group_by_length: bool = field(default=False, metadata=_help("length-grouped batches (else random)"))
    overflow: str = field(
        default="truncate", metadata=_help("sequences over --max-tgt-len: truncate | skip | error")
    )
    num_workers: int = field(default=1, metadata=_help("DataLoader worker processes"))
    log_every: int = field(default=10, metadata=_help("log every N optimiser steps"))
    resume_from: str = field(
        default="", metadata=_help("'auto' (latest checkpoint of this run, if any) or a path")
    )
    keep_checkpoints: int = field(default=2, metadata=_help("rolling step checkpoints kept (0: all)"))
    save_authors_format: bool = field(default=False, metadata=_help("also export the authors' .pth"))

    def __post_init__(self) -> None:
        problems = []
        if self.optim_mode not in OPTIM_MODES:
            problems.append(f"--optim-mode must be one of {OPTIM_MODES}")
        if self.overflow not in ("truncate", "skip", "error"):
            problems.append("--overflow must be truncate, skip or error")
        if self.zero_stage not in (1, 2, 3):
            problems.append("--zero-stage must be 1, 2 or 3")
        for name in (
            "batch_size",
            "epochs_unified",
            "gradient_accumulation_steps",
            "log_every",
            "max_tgt_len",
        ):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("max_steps", "save_frequency", "save_step_frequency", "num_workers", "keep_checkpoints"):
            if getattr(self, name) < 0:
                problems.append(f"--{name.replace('_', '-')} must be >= 0")
        if problems:
            raise SystemExit("; ".join(problems))
        try:
            get_dataset_spec(self.dataname)
        except KeyError as err:
            raise SystemExit(str(err)) from err

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.exp_name

    @property
    def cache_dir(self) -> str:
        return self.token_cache or (str(Path(self.data_root) / "token_cache") if self.data_root else "")


UPSTREAM_STAGE1 = {
    "training_task": "multitask_shared",
    "batch_size": 4,
    "epochs_unified": 15,
    "learning_rate": 1e-5,
    "wo_scale_lr": True,
    "full_tuning": True,
    "prompt_w_response": True,
    "optim_mode": "faithful",
    "save_frequency": 3,
    "max_tgt_len": 2048,
    "group_by_length": False,
}

PRESETS: dict[str, dict[str, Any]] = {
    # upstream stage 1 (train_stage1.sh); stage 2 = these + --wo-lora --ignore-incorrect --wo-answer,
    # --batch-size 1, --epochs-unified 20, --save-frequency 2
    "humanml3d": {**UPSTREAM_STAGE1, "dataname": "t2m"},
    "kit": {**UPSTREAM_STAGE1, "dataname": "kit"},
    # tiny Gemma-2 on the toy world (toy_llm_calibration.md): full tuning from random init, AdamW 1e-3,
    # warm-up 50 + cosine, length-grouped batches of 16 (the prompts are ~2x the calibration's). Measured on
    # 2 cores: ~3.1 steps/s on stage-0 data, ~3.8 on stage-1 data; the stage scripts pass --max-steps 500
    # (stage 0, ~2.9 min) and 650 (stage 1, ~3.4 min)
    "toy": {
        "batch_size": 16,
        "learning_rate": 1e-3,
        "wo_scale_lr": True,
        "full_tuning": True,
        "wo_lora": True,
        "optim_mode": "recommended",
        "lr_schedule": "cosine",
        "warmup_steps": 50,
        "epochs_unified": 100,
        "max_steps": 650,
        "group_by_length": True,
        "num_workers": 0,
        "log_every": 25,
        "save_step_frequency": 100,
        "max_tgt_len": 2048,
        "dataname": "t2m",
    },
    # seconds-long runs for tests
    "smoke": {
        "batch_size": 4,
        "learning_rate": 3e-3,
        "wo_scale_lr": True,
        "full_tuning": True,
        "wo_lora": True,
        "optim_mode": "recommended",
        "lr_schedule": "constant",
        "warmup_steps": 0,
        "epochs_unified": 2,
        "max_steps": 8,
        "group_by_length": True,
        "num_workers": 0,
        "log_every": 2,
        "save_step_frequency": 4,
        "max_tgt_len": 512,
        "dataname": "t2m",
    },
}


# ----------------------------------------------------------------------------------------------------


def llm_settings(cfg: SFTConfig, param_dtype: str) -> LLMSettings:
    """Model construction for ``cfg``; a full model folder given as ``--resume-llm`` becomes the backbone."""
    backbone, init = cfg.llm_backbone, cfg.resume_llm
    if init and Path(init).is_dir() and (Path(init) / "config.json").is_file():
        backbone, init = init, ""
    return LLMSettings(
        llm_backbone=backbone,
        llm_tokenizer=cfg.llm_tokenizer,
        attn_implementation=cfg.attn_implementation,
        dtype=param_dtype,
        use_lora=not cfg.wo_lora,
        lora_r=cfg.lora_r_t2m,
        lora_alpha=cfg.lora_alpha_t2m,
        lora_dropout=cfg.lora_dropout,
        full_tuning=cfg.full_tuning,
        init_checkpoint=init,
    )


def _export_model(model: Any, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> None:
    if is_peft_model(model):
        save_adapter_folder(model, tokenizer, folder, extra_metadata=meta)
    else:
        save_hf_folder(model, tokenizer, folder, extra_metadata=meta)


def _load_model_weights(model: Any, folder: Path, vocab: Any) -> None:
    if is_peft_model(model):
        load_adapter_folder(model, folder, vocab, strict=True).raise_if_failed()
    else:
        load_model_folder_weights(model, folder)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop logged lines after ``step`` (they belong to the part of a killed run being redone)."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["step"] <= step
    ]
    atomic_write_text("".join(line + "\n" for line in kept), path)


def _dump_samples(dataset: SFTDataset, keys: list[tuple[int, int]], tokenizer: Any, path: Path) -> None:
    blocks = []
    for epoch, index in keys:
        item = dataset[(epoch, index)]
        supervised = [
            t for t, label in zip(item.input_ids, item.labels, strict=True) if label != IGNORE_INDEX
        ]
        blocks.append(
            f"### item {index} (epoch {epoch}) task={item.task} tokens={len(item.input_ids)} "
            f"supervised={len(supervised)} truncated={item.truncated} skipped={item.skipped}\n"
            f"{dataset.records[index].where}\n--- full text ---\n{tokenizer.decode(item.input_ids)}\n"
            f"--- supervised ---\n{tokenizer.decode(supervised)}\n"
        )
    atomic_write_text("\n".join(blocks), path)


def _check_resume_config(folder: Path, cfg: SFTConfig, ctx: DistContext) -> None:
    """Refuse a resume whose data order would differ; warn about other changed settings."""
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    saved_world = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))["world_size"]
    current = config_to_dict(cfg)
    differing = [k for k in RESUME_MUST_MATCH if saved.get(k) != current.get(k)]
    if saved_world != ctx.world_size:
        differing.append(f"world size ({saved_world} -> {ctx.world_size})")
    if differing:
        raise SystemExit(f"cannot resume exactly from {folder}: settings changed: {differing}")
    other = sorted(
        k
        for k in current
        if k not in RESUME_MUST_MATCH and k != "resume_from" and saved.get(k) != current.get(k)
    )
    if other and ctx.is_main:
        logger.warning("resuming with changed settings: %s", other)


class SFTRun:
    """One training run (see the module docstring); ``run()`` returns the final logged metrics."""

    def __init__(self, cfg: SFTConfig) -> None:
        self.cfg = cfg
        self.ctx = init_distributed(deepspeed=cfg.deepspeed)
        self.run_dir = cfg.run_dir
        setup_logging(self.run_dir / "run.log" if self.ctx.is_main else None, rank=self.ctx.rank)
        torch.set_num_threads(cpu_threads())
        transformers_logging.disable_progress_bar()  # per-file load/save bars of every checkpoint
        seed_everything(cfg.seed)
        self.ckpt = CheckpointManager(self.run_dir / "checkpoints", self.ctx, keep_last=cfg.keep_checkpoints)
        self.resume_dir = None if cfg.debug else self.ckpt.resolve(cfg.resume_from)
        self._rng_to_restore: dict[str, Any] | None = None
        if self.resume_dir is not None:
            _check_resume_config(self.resume_dir, cfg, self.ctx)

        self.optim = resolve_optim_settings(
            cfg.optim_mode,
            scaled_learning_rate(cfg.learning_rate, self.ctx.world_size, cfg.wo_scale_lr),
            param_dtype=cfg.dtype,
            schedule=cfg.lr_schedule,
            warmup_steps=cfg.warmup_steps,
            min_lr_ratio=cfg.min_lr_ratio,
            max_grad_norm=cfg.max_grad_norm,
            weight_decay=cfg.weight_decay,
            cuda=self.ctx.device.type == "cuda",
        )
        model, self.tokenizer, self.vocab = build_motion_llm(llm_settings(cfg, self.optim.param_dtype))
        self.model = model.to(self.ctx.device).train()
        self._build_data()
        self.steps_per_epoch = math.ceil(len(self.sampler) / cfg.gradient_accumulation_steps)
        total = self.steps_per_epoch * cfg.epochs_unified
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
        optimizer = build_optimizer(self.model, self.optim)
        scheduler = build_scheduler(optimizer, self.optim, self.total_steps)
        self.position = TrainPosition()
        if self.resume_dir is not None and not cfg.deepspeed:
            self._load_state(optimizer, scheduler)
        if cfg.deepspeed:
            self.engine: TorchEngine | DeepSpeedEngine = DeepSpeedEngine(
                self.model,
                optimizer,
                scheduler,
                self.optim,
                self.ctx,
                micro_batch_size=cfg.batch_size,
                accumulation_steps=cfg.gradient_accumulation_steps,
                zero_stage=cfg.zero_stage,
            )
        else:
            self.engine = TorchEngine(self.model, optimizer, scheduler, self.optim, self.ctx)
        self.metrics = MetricAccumulator(self.ctx.device)
        if self.resume_dir is not None:
            if cfg.deepspeed:
                self._load_deepspeed_state()
            self._load_rank_state()

    # ----- setup --------------------------------------------------------------------------------------

    def _build_data(self) -> None:
        cfg = self.cfg
        if not cfg.data_json_files:
            raise SystemExit("--data-json-files is empty: give the annotation files (':'-separated)")
        if not cfg.cache_dir:
            raise SystemExit("give --token-cache (or --data-root holding token_cache/)")
        spec = get_dataset_spec(cfg.dataname)
        records = load_annotation_files(cfg.data_json_files, id_digits=spec.id_digits)
        source = MotionCodeSource(TokenCache.open(cfg.cache_dir), spec)
        if source.cache.metadata.get("nb_code", self.vocab.nb_code) > self.vocab.nb_code:
            raise SystemExit(
                f"token cache has {source.cache.metadata['nb_code']} codes, the LLM {self.vocab.nb_code}"
            )
        options = SFTDataOptions(
            seed=cfg.seed,
            max_length=cfg.max_tgt_len,
            on_overflow=cfg.overflow,
            sequence=SequenceOptions(
                prompt_w_response=cfg.prompt_w_response,
                ignore_incorrect=cfg.ignore_incorrect,
                wo_answer=cfg.wo_answer,
            ),
        )
        self.dataset = SFTDataset(records, source, self.tokenizer, self.vocab, options)
        self.sampler = SFTBatchSampler(
            self.dataset.estimated_lengths,
            cfg.batch_size,
            group_by_length=cfg.group_by_length,
            seed=cfg.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        self.collator = SFTCollator(self.tokenizer.pad_token_id)
        logger.info(
            "data: %d records %s; %d micro-batches/epoch/rank (%d items left out per epoch)",
            len(records),
            task_counts(records),
            len(self.sampler),
            self.sampler.dropped_per_epoch,
        )

    def _load_state(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        folder = self.resume_dir
        _load_model_weights(self.model, folder / "model", self.vocab)
        state = torch.load(folder / "optimizer.pt", map_location=self.ctx.device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])

    def _load_deepspeed_state(self) -> None:
        path, _ = self.engine.engine.load_checkpoint(
            str(self.resume_dir / "deepspeed"),
            tag="state",
            load_optimizer_states=True,
            load_lr_scheduler_states=True,
        )
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed state in {self.resume_dir / 'deepspeed'}")

    def _load_rank_state(self) -> None:
        position = read_position(self.resume_dir)
        state = torch.load(self.resume_dir / f"rank{self.ctx.rank:03d}.pt", weights_only=True)
        self.metrics.load_state_dict(state["metrics"])
        self._rng_to_restore = state["rng"]
        self.position = position
        logger.info(
            "resuming from %s: step %d, epoch %d, micro-batch %d",
            self.resume_dir,
            position.global_step,
            position.epoch,
            position.batches_in_epoch,
        )

    def _write_run_files(self) -> None:
        if not self.ctx.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.run_dir / "config.json")
        atomic_write_text(trainable_parameter_report(self.model), self.run_dir / "trainable_params.txt")
        first = self.sampler.global_batches(0)[0][:SAMPLES_TO_DUMP]
        _dump_samples(
            self.dataset, [(0, int(i)) for i in first], self.tokenizer, self.run_dir / "training_samples.txt"
        )
        _truncate_metrics(self.run_dir / METRICS_FILE, self.position.global_step)

    # ----- checkpoints ------------------------------------------------------------------------------

    def _export_meta(self) -> dict[str, Any]:
        return {
            "sft": {
                "exp_name": self.cfg.exp_name,
                "global_step": self.position.global_step,
                "epoch": self.position.epoch,
                "optim_mode": self.cfg.optim_mode,
            }
        }

    def _write_checkpoint(self, tmp: Path, authors: bool) -> None:
        ctx, engine = self.ctx, self.engine
        if isinstance(engine, DeepSpeedEngine):
            engine.engine.save_checkpoint(str(tmp / "deepspeed"), tag="state", save_latest=False)
            with engine.gathered_parameters():
                if ctx.is_main:
                    self._write_model(tmp, authors)
        elif ctx.is_main:
            self._write_model(tmp, authors)
            torch.save(
                {"optimizer": engine.optimizer.state_dict(), "scheduler": engine.scheduler.state_dict()},
                tmp / "optimizer.pt",
            )
        torch.save(
            {"rng": capture_rng_state(), "metrics": self.metrics.state_dict()}, tmp / f"rank{ctx.rank:03d}.pt"
        )
        if ctx.is_main:
            save_config(self.cfg, tmp / "config.json")

    def _write_model(self, folder: Path, authors: bool) -> None:
        _export_model(self.model, self.tokenizer, folder / "model", self._export_meta())
        if authors:  # upstream's name: the 0-based epoch just completed
            completed = self.position.epoch - 1
            save_authors_checkpoint(
                self.model,
                folder / f"motionllm_unified_sft_epoch{completed}.pth",
                epoch=completed,
                step=self.position.global_step,
                lora_only=is_peft_model(self.model),
            )

    def save_checkpoint(self, keep: bool = False) -> Path:
        authors = keep and self.cfg.save_authors_format
        folder = self.ckpt.save(
            self.position.global_step,
            lambda tmp: self._write_checkpoint(tmp, authors),
            self.position,
            keep=keep,
        )
        logger.info("checkpoint %s", folder)
        return folder

    def export_final(self) -> Path:
        folder = self.run_dir / "final"
        engine = self.engine
        with engine.gathered_parameters() if isinstance(engine, DeepSpeedEngine) else nullcontext():
            if self.ctx.is_main:
                _export_model(self.model, self.tokenizer, folder, self._export_meta())
                if self.cfg.save_authors_format:
                    save_authors_checkpoint(
                        self.model,
                        self.run_dir / AUTHORS_FINAL_NAME,
                        epoch=self.position.epoch,
                        step=self.position.global_step,
                        lora_only=is_peft_model(self.model),
                    )
        self.ctx.barrier()
        return folder

    # ----- the loop ----------------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        self._write_run_files()
        writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(
                str(self.run_dir / "tensorboard"), purge_step=self.position.global_step or None
            )
        log_every = 1 if cfg.debug else cfg.log_every
        checkpointing = not cfg.debug and (cfg.save_step_frequency or cfg.save_frequency)
        accum = cfg.gradient_accumulation_steps
        first_motion_id = self.vocab.motion_start_id
        logger.info(
            "training %d steps (%d/epoch, %d epochs max), %s %s lr %.3g, params %s, world %d%s",
            self.total_steps,
            self.steps_per_epoch,
            cfg.epochs_unified,
            cfg.optim_mode,
            self.optim.optimizer_name,
            self.optim.lr,
            self.optim.param_dtype,
            ctx.world_size,
            f", DeepSpeed ZeRO-{cfg.zero_stage}" if cfg.deepspeed else "",
        )
        from tqdm import tqdm

        bar = tqdm(
            total=self.total_steps,
            initial=self.position.global_step,
            disable=not ctx.is_main,
            unit="step",
            dynamic_ncols=True,
        )
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)
        last: dict[str, float] = {}
        clock, clock_step = time.perf_counter(), self.position.global_step
        step = self.position.global_step
        done = step >= self.total_steps
        epoch = self.position.epoch
        while not done and epoch < cfg.epochs_unified:
            start = self.position.batches_in_epoch if epoch == self.position.epoch else 0
            self.sampler.set_epoch(epoch, start_batch=start)
            loader = torch.utils.data.DataLoader(
                self.dataset,
                batch_sampler=self.sampler,
                collate_fn=self.collator,
                num_workers=cfg.num_workers,
                pin_memory=ctx.device.type == "cuda",
                generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch),
            )
            micro_batches = len(self.sampler)
            index = start
            for batch in loader:
                group_start = (index // accum) * accum
                group_size = min(accum, micro_batches - group_start)
                boundary = index + 1 == group_start + group_size
                tensors = {
                    k: batch[k].to(ctx.device, non_blocking=True)
                    for k in ("input_ids", "labels", "attention_mask")
                }
                loss, counts = self.engine.train_micro_batch(
                    tensors, first_motion_id, 1.0 / group_size, boundary
                )
                self.metrics.add_micro_batch(loss, counts, batch["stats"])
                index += 1
                if not boundary:
                    continue
                lr = self.engine.current_lr()
                self.metrics.add_optimizer_step(self.engine.step())
                step += 1
                epoch_done = index == micro_batches
                self.position = (
                    TrainPosition(step, epoch + 1, 0) if epoch_done else TrainPosition(step, epoch, index)
                )
                bar.update(1)
                done = step >= self.total_steps
                if step % log_every == 0 or done:
                    now = time.perf_counter()
                    last = self._log(
                        step, epoch, lr, self.metrics.reduce(ctx), now - clock, step - clock_step, writer, bar
                    )
                    clock, clock_step = now, step
                keep = bool(epoch_done and cfg.save_frequency and (epoch + 1) % cfg.save_frequency == 0)
                periodic = bool(cfg.save_step_frequency and step % cfg.save_step_frequency == 0)
                final = done and checkpointing
                if not cfg.debug and (keep or periodic or final):
                    self.save_checkpoint(keep=keep)
                if done:
                    break
            epoch += 1
        bar.close()
        if writer is not None:
            writer.close()
        if not cfg.debug:
            folder = self.export_final()
            logger.info("final model: %s", folder)
        return last

    def _log(
        self,
        step: int,
        epoch: int,
        lr: float,
        metrics: dict[str, float],
        seconds: float,
        steps: int,
        writer: Any,
        bar: Any,
    ) -> dict[str, float]:
        record = {
            "step": step,
            "epoch": epoch,
            "lr": lr,
            **metrics,
            "steps_per_s": steps / seconds if seconds > 0 else float("nan"),
            "tokens_per_s": metrics["tokens"] / seconds if seconds > 0 else float("nan"),
        }
        if self.ctx.is_main:
            with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            for name in (
                "loss",
                "acc",
                "motion_acc",
                "text_acc",
                "lr",
                "grad_norm",
                "pad_fraction",
                "tokens_per_s",
                "steps_per_s",
            ):
                if math.isfinite(record[name]):
                    writer.add_scalar(f"train/{name}", record[name], step)
            bar.set_postfix(
                loss=f"{record['loss']:.4f}",
                acc=f"{record['acc']:.3f}",
                mot=f"{record['motion_acc']:.3f}",
                txt=f"{record['text_acc']:.3f}",
            )
            logger.info(
                "step %d epoch %d loss %.4f acc %.3f motion %.3f text %.3f lr %.3g pad %.2f "
                "%.2f steps/s %.0f tok/s%s",
                step,
                epoch,
                record["loss"],
                record["acc"],
                record["motion_acc"],
                record["text_acc"],
                lr,
                record["pad_fraction"],
                record["steps_per_s"],
                record["tokens_per_s"],
                f" truncated {int(record['truncated'])}" if record["truncated"] else "",
            )
        return record


def run_sft(cfg: SFTConfig) -> dict[str, float]:
    """Train according to ``cfg`` (single process, torchrun DDP or DeepSpeed); returns the last metrics."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return SFTRun(cfg).run()
    finally:
        shutdown_distributed()

"""Train the T2M-GPT motion VQ-VAE (recipe in ``models/vqvae/training.py``), resumable and multi-GPU.

    # the released HumanML3D recipe (T2M-GPT README: batch 256, 300k iterations, lr step at 200k)
    python prepare/train_vqvae.py --preset humanml3d --data-root dataset/HumanML3D \\
        --meta-dir checkpoints/t2m/VQVAEV3_CB1024_CMT_H1024_NRES3/meta
    torchrun --nproc_per_node 8 prepare/train_vqvae.py --preset humanml3d --data-root dataset/HumanML3D
    # the toy world on a laptop CPU (~1-1.5 min)
    python prepare/train_vqvae.py --preset toy --data-root data/toy
    # resume exactly where a run stopped
    python prepare/train_vqvae.py --preset toy --data-root data/toy \\
        --resume-pth output/VQVAE_toy/checkpoint_last.pt

Writes to ``<out-dir>/<exp-name>/``: ``config.json``, ``train.log``, ``log.jsonl`` (train averages every
``--print-iter`` steps, validation every ``--eval-iter``), TensorBoard scalars in ``tb/``,
``checkpoint_last.pt`` (weights, config, EMA codebook statistics, optimiser, scheduler, RNG states, step,
normalisation; every ``--save-iter`` steps and at the end), and at the end ``vqvae.pt`` (our format with
the normalisation statistics), ``net_last.pth`` (the released ``{'net': ...}`` format the authors' code
loads), ``metrics.json`` (test-split MPJPE and codebook usage) and ``render_test_<id>.gif`` (a test motion
beside its reconstruction).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import get_dataset_spec
from models.common.config import parse_config, save_config
from models.common.errors import DataError
from models.common.io import atomic_write_json, atomic_write_text
from models.common.runtime import cpu_threads, seed_everything, setup_logging
from models.motion.render import render_grid
from models.motion.skeleton import get_skeleton
from models.vqvae import PRESETS as VQ_PRESETS
from models.vqvae import MotionVQVAE, export_released, get_vqvae_config, load_vqvae, save_vqvae
from models.vqvae.evaluation import evaluate_reconstruction, reconstruct
from models.vqvae.training import (
    NORMALIZATION_KEY,
    RECONS_LOSSES,
    TRAINING_STATE_KEY,
    MotionWindows,
    Normalization,
    TrainingRecipe,
    VQTrainer,
    load_normalization,
)

logger = logging.getLogger("train_vqvae")

CHECKPOINT_FILE = "checkpoint_last.pt"
LOG_FILE = "log.jsonl"
LOG_STATE_KEY = "log_accumulator"
TRAIN_SCALARS = ("loss", "recons", "vel", "commit", "perplexity", "active_codes", "resets")

# T2M-GPT README: batch 256, lr 2e-4, 300k iterations, lr x0.05 at 200k, loss-vel 0.5, l1_smooth; the
# option_vq.py defaults for the rest (window 64, warm-up 1000, commit 0.02, AdamW betas (0.9, 0.99)).
_RELEASED = dict(batch_size=256, window_size=64, lr=2e-4, total_iter=300_000, lr_scheduler=[200_000],
                 warm_up_iter=1000, gamma=0.05, commit=0.02, loss_vel=0.5, recons_loss="l1_smooth")
PRESETS: dict[str, dict[str, Any]] = {
    "humanml3d": {**_RELEASED, "dataset": "humanml3d", "vq_preset": "humanml3d"},
    "kit": {**_RELEASED, "dataset": "kit", "vq_preset": "kit"},
    # Width-64 VQ-VAE (same layout: 512 codes, unit length 4) on the default toy world: ~750 steps of 64
    # windows, ~1 min of training on 2 CPU cores.
    "toy": {"dataset": "humanml3d", "vq_preset": "toy", "batch_size": 64, "window_size": 64, "lr": 1e-3,
            "warm_up_iter": 51, "total_iter": 700, "lr_scheduler": [500], "gamma": 0.2, "commit": 0.02,
            "loss_vel": 0.5, "recons_loss": "l1_smooth", "print_iter": 50, "eval_iter": 250, "save_iter": 250,
            "exp_name": "VQVAE_toy"},
}


@dataclass
class TrainVQVAEConfig:
    data_root: str = field(default="", metadata={"help": "dataset root in the HumanML3D layout"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    meta_dir: str | None = field(default=None, metadata={
        "help": "folder with mean.npy/std.npy (the evaluator's meta, as the released VQ); None: the "
                "dataset's Mean.npy/Std.npy"})
    vq_preset: str = field(default="humanml3d", metadata={"help": f"architecture: {' | '.join(VQ_PRESETS)}"})
    nb_code: int | None = field(default=None, metadata={"help": "codebook size (None: the --vq-preset's)"})
    code_dim: int | None = field(default=None, metadata={"help": "code width = encoder output width (None: "
                                                                 "the --vq-preset's)"})
    width: int | None = field(default=None, metadata={"help": "conv width (None: the --vq-preset's)"})
    down_t: int | None = field(default=None, metadata={"help": "stride-2 levels (None: the --vq-preset's)"})
    depth: int | None = field(default=None, metadata={"help": "residual blocks per level (None: preset's)"})
    dilation_growth_rate: int | None = field(default=None, metadata={"help": "dilation growth (None: the "
                                                                             "--vq-preset's)"})
    mu: float | None = field(default=None, metadata={"help": "codebook EMA decay (None: the --vq-preset's)"})
    batch_size: int = field(default=256, metadata={"help": "windows per step, over all ranks"})
    window_size: int = field(default=64, metadata={"help": "training window in frames"})
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate (AdamW, betas 0.9/0.99)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warm_up_iter: int = field(default=1000, metadata={"help": "linear warm-up (warm_up_iter - 1 steps, as "
                                                               "upstream), before --total-iter"})
    total_iter: int = field(default=300_000, metadata={"help": "steps after the warm-up"})
    lr_scheduler: list[int] = field(default_factory=lambda: [200_000], metadata={
        "help": "MultiStepLR milestones (steps after the warm-up)"})
    gamma: float = field(default=0.05, metadata={"help": "lr factor at each milestone"})
    commit: float = field(default=0.02, metadata={"help": "commitment loss weight"})
    loss_vel: float = field(default=0.5, metadata={"help": "weight of the joint-position (RIC) term"})
    recons_loss: str = field(default="l1_smooth", metadata={"help": f"{' | '.join(RECONS_LOSSES)}"})
    seed: int = field(default=123, metadata={"help": "seed of weights, windows and the codebook init"})
    out_dir: str = field(default="output", metadata={"help": "parent folder of the run"})
    exp_name: str = field(default="VQVAE", metadata={"help": "run folder name under --out-dir"})
    resume_pth: str | None = field(default=None, metadata={
        "help": "checkpoint_last.pt of a run to resume exactly, or VQ weights (released/ours) to start from"})
    print_iter: int = field(default=200, metadata={"help": "log train averages every N steps"})
    eval_iter: int = field(default=1000, metadata={"help": "validate (recons loss, MPJPE) every N steps"})
    save_iter: int = field(default=5000, metadata={"help": "write checkpoint_last.pt every N steps"})
    render: bool = field(default=True, metadata={"help": "render a test motion beside its reconstruction"})
    render_id: str | None = field(default=None, metadata={"help": "test motion to render (None: the first)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda:LOCAL_RANK if available) | cpu | cuda"})
    deterministic: bool = field(default=False, metadata={
        "help": "deterministic GPU kernels (bit-exact resume on GPU; CPU runs are deterministic anyway)"})
    progress: bool = field(default=True, metadata={"help": "tqdm progress bar"})

    def __post_init__(self) -> None:
        if not self.data_root:
            raise SystemExit("--data-root is required")
        if self.vq_preset not in VQ_PRESETS:
            raise SystemExit(f"--vq-preset must be one of {sorted(VQ_PRESETS)}, got {self.vq_preset!r}")
        try:
            get_dataset_spec(self.dataset)
            self.recipe()
        except (KeyError, ValueError) as err:
            raise SystemExit(str(err)) from err
        for name in ("print_iter", "eval_iter", "save_iter"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")

    def recipe(self) -> TrainingRecipe:
        return TrainingRecipe(batch_size=self.batch_size, window_size=self.window_size, lr=self.lr,
                              weight_decay=self.weight_decay, warm_up_iter=self.warm_up_iter,
                              total_iter=self.total_iter, lr_scheduler=list(self.lr_scheduler),
                              gamma=self.gamma, commit=self.commit, loss_vel=self.loss_vel,
                              recons_loss=self.recons_loss, seed=self.seed)

    def vq_overrides(self) -> dict[str, Any]:
        names = ("nb_code", "code_dim", "width", "down_t", "depth", "dilation_growth_rate", "mu")
        values = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        if "code_dim" in values:
            values["output_emb_width"] = values["code_dim"]
        return values


@dataclass
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def _init_distributed(cfg: TrainVQVAEConfig) -> tuple[Distributed, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    env = Distributed(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{env.local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return env, device


class RunLog:
    """Averages of the train scalars over ``print_iter`` steps, to ``log.jsonl``, TensorBoard and tqdm."""

    def __init__(self, exp_dir: Path, enabled: bool, resume_step: int) -> None:
        self.path = exp_dir / LOG_FILE
        self.enabled = enabled
        self.sums = dict.fromkeys(TRAIN_SCALARS, 0.0)
        self.count = 0
        self.writer = None
        if not enabled:
            return
        if resume_step and self.path.is_file():  # drop records written after the checkpoint we resume from
            lines = self.path.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= resume_step
                    and json.loads(line)["split"] != "test"]
            atomic_write_text("".join(f"{line}\n" for line in kept), self.path)
        elif not resume_step:
            self.path.unlink(missing_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(exp_dir / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state(self, state: dict[str, Any]) -> None:
        self.sums = {k: float(v) for k, v in state["sums"].items()}
        self.count = int(state["count"])

    def add(self, metrics: dict[str, float]) -> None:
        for name in TRAIN_SCALARS:
            self.sums[name] += metrics[name]
        self.count += 1

    def flush_train(self, step: int, lr: float) -> dict[str, float]:
        record = {name: value / max(self.count, 1) for name, value in self.sums.items()}
        self.sums = dict.fromkeys(TRAIN_SCALARS, 0.0)
        self.count = 0
        self.write(step, "train", {**record, "lr": lr})
        return record

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "split": split, **values}) + "\n")
        for name, value in values.items():
            self.writer.add_scalar(f"{split}/{name}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# Presets that are a dataset's released tokenizer: their input width is part of what they mean.
DATASET_VQ_PRESETS = ("humanml3d", "kit")


def _build_model(cfg: TrainVQVAEConfig, feature_dim: int) -> MotionVQVAE:
    """The ``--vq-preset`` architecture for ``feature_dim``-d features (the toy and small presets follow the
    data, so ``--preset toy --dataset kit`` trains a 251-d toy tokenizer)."""
    preset_dim = get_vqvae_config(cfg.vq_preset).input_dim
    if cfg.vq_preset in DATASET_VQ_PRESETS and preset_dim != feature_dim:
        raise SystemExit(f"--vq-preset {cfg.vq_preset} expects {preset_dim}-d features, "
                         f"--dataset {cfg.dataset} has {feature_dim}")
    return MotionVQVAE(get_vqvae_config(cfg.vq_preset, **cfg.vq_overrides(), input_dim=feature_dim))


def _checkpoint_extra(cfg: TrainVQVAEConfig, normalization: Normalization, log: RunLog) -> dict[str, Any]:
    return {NORMALIZATION_KEY: normalization.to_checkpoint(), LOG_STATE_KEY: log.state(),
            "dataset": get_dataset_spec(cfg.dataset).name, "train_config": asdict(cfg)}


def _validate(trainer: VQTrainer, features: list, normalization: Normalization, skeleton,
              log: RunLog) -> None:
    metrics = evaluate_reconstruction(trainer.vq, features, normalization, skeleton)
    logger.info("step %d validation: %s", trainer.step, metrics.summary())
    log.write(trainer.step, "val", {k: v for k, v in metrics.to_dict().items() if k != "nb_code"})


def _render(vq: MotionVQVAE, dataset: MotionDataset, motion_id: str, normalization: Normalization,
            path: Path, mpjpe_mm: float, progress: bool) -> Path:
    features = dataset.load_features(motion_id)
    features = features[: len(features) // vq.unit_length * vq.unit_length]
    normalised = torch.from_numpy(normalization.normalize(features))
    _, (recon,) = reconstruct(vq, [normalised])
    captions = [f"{motion_id}: ground truth", "VQ-VAE reconstruction"]
    return render_grid([normalised.numpy(), recon.numpy()], captions, path, get_skeleton(dataset.spec.name),
                       mean=normalization.mean, std=normalization.std,
                       title=f"test split MPJPE {mpjpe_mm:.1f} mm", progress=progress)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    cfg = parse_config(TrainVQVAEConfig, PRESETS, argv=argv, description=__doc__)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    env, device = _init_distributed(cfg)
    torch.set_num_threads(cpu_threads())
    exp_dir = Path(cfg.out_dir) / cfg.exp_name
    if env.main:
        exp_dir.mkdir(parents=True, exist_ok=True)
    env.barrier()
    setup_logging(exp_dir / "train.log", rank=env.rank)
    if (exp_dir / CHECKPOINT_FILE).exists() and cfg.resume_pth is None:
        raise SystemExit(f"{exp_dir} already holds a run; pass --resume-pth {exp_dir / CHECKPOINT_FILE} to "
                         "continue it, or choose another --exp-name")

    dataset = MotionDataset(cfg.data_root, cfg.dataset)
    normalization = load_normalization(dataset, cfg.meta_dir)
    skeleton = get_skeleton(dataset.spec.name)
    recipe = cfg.recipe()
    seed_everything(cfg.seed)
    vq = _build_model(cfg, dataset.spec.feature_dim)
    resume_payload = None
    if cfg.resume_pth is not None:
        payload = torch.load(cfg.resume_pth, map_location="cpu", weights_only=True)
        if TRAINING_STATE_KEY in payload:
            resume_payload = payload
            stored = Normalization.from_checkpoint(payload[NORMALIZATION_KEY])
            if stored.sha256() != normalization.sha256():
                raise SystemExit(f"{cfg.resume_pth} was trained with other normalisation statistics "
                                 f"({stored.source}); pass the same --meta-dir")
        else:  # weights only (e.g. a released net_last.pth): start a new run from them, as upstream
            loaded = load_vqvae(payload, vq.config)  # EMA statistics restored, or restarted from the codebook
            vq.load_state_dict(loaded.state_dict())
            vq.vqvae.quantizer.load_training_state(loaded.vqvae.quantizer.training_state())
            logger.info("initialised the weights from %s", cfg.resume_pth)

    windows = MotionWindows.from_dataset(dataset, "train", normalization, recipe.window_size, recipe.seed,
                                         progress=cfg.progress and env.main)
    trainer = VQTrainer(vq, windows, recipe, joints_num=skeleton.joints_num, device=device, rank=env.rank,
                        world_size=env.world_size, ddp=env.world_size > 1)
    if resume_payload is not None:
        trainer.load_checkpoint(cfg.resume_pth)
        logger.info("resumed %s at step %d of %d", cfg.resume_pth, trainer.step, recipe.num_steps)
    log = RunLog(exp_dir, env.main, trainer.step)
    if resume_payload is not None:
        log.load_state(resume_payload[LOG_STATE_KEY])
    if env.main:
        save_config(cfg, exp_dir / "config.json")
        logger.info("%d training motions, %d steps (%d warm-up), %d windows per step on %d rank(s), %s",
                    len(windows), recipe.num_steps, recipe.warm_up_steps, recipe.batch_size, env.world_size,
                    device)
    val_features = [dataset.load_features(i) for i in dataset.split_ids("val")] if env.main else []

    bar = tqdm(total=recipe.num_steps, initial=trainer.step, desc="train VQ-VAE", unit="step",
               disable=not (cfg.progress and env.main))
    while not trainer.done:
        lr = trainer.lr
        metrics = trainer.train_step()
        log.add(metrics)
        bar.update()
        step = trainer.step
        if step % cfg.print_iter == 0:
            record = log.flush_train(step, lr)
            bar.set_postfix(loss=f"{record['loss']:.4f}", ppl=f"{record['perplexity']:.0f}", lr=f"{lr:.1e}")
        if env.main and (step % cfg.eval_iter == 0 or trainer.done):
            _validate(trainer, val_features, normalization, skeleton, log)
        if env.main and (step % cfg.save_iter == 0 or trainer.done):
            trainer.save_checkpoint(exp_dir / CHECKPOINT_FILE, _checkpoint_extra(cfg, normalization, log))
    bar.close()

    result: dict[str, Any] = {}
    if env.main:
        extra = {NORMALIZATION_KEY: normalization.to_checkpoint(), "dataset": dataset.spec.name,
                 "step": trainer.step}
        save_vqvae(vq, exp_dir / "vqvae.pt", extra=extra)
        export_released(vq, exp_dir / "net_last.pth")
        test_ids = dataset.split_ids("test")
        metrics = evaluate_reconstruction(vq, [dataset.load_features(i) for i in test_ids], normalization,
                                          skeleton, progress=cfg.progress)
        result = {"split": "test", "step": trainer.step, **metrics.to_dict(),
                  "normalization": normalization.source, "checkpoint": str(exp_dir / "vqvae.pt")}
        if cfg.render and test_ids:
            render_id = cfg.render_id or test_ids[0]
            path = exp_dir / f"render_test_{render_id}.gif"
            result["render"] = str(_render(vq, dataset, render_id, normalization, path, metrics.mpjpe_mm,
                                           cfg.progress))
        atomic_write_json(result, exp_dir / "metrics.json")
        log.write(trainer.step, "test", {k: v for k, v in metrics.to_dict().items() if k != "nb_code"})
        logger.info("test split: %s", metrics.summary())
        print(json.dumps(result, indent=2))
    log.close()
    env.barrier()
    if env.world_size > 1:
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        raise SystemExit(f"error: {err}") from err

"""Training the motion VQ-VAE with T2M-GPT's recipe, resumable bit for bit and shardable across ranks.

The recipe (T2M-GPT ``train_vq.py``, ``utils/losses.py``, ``dataset/dataset_VQ.py``):

* data: every train motion at least ``window_size`` frames long, z-normalised; each epoch visits the
  motions in a random order and cuts one random window of ``window_size`` frames from each; batches of
  ``batch_size`` windows, the last incomplete batch dropped;
* objective: ``recons(x_hat, x) + loss_vel * recons(x_hat[ric], x[ric]) + commit * commitment`` where
  ``recons`` is smooth-L1 (``l1_smooth``; ``l1``/``l2`` available), ``ric`` the rotation-invariant joint
  positions (upstream names this the "velocity" loss) and the commitment term ``MSE(z, sg[code])``;
* optimiser: AdamW, betas (0.9, 0.99), weight decay 0;
* schedule: ``warm_up_iter - 1`` linear warm-up steps (lr * (s + 1) / (warm_up_iter + 1)), then
  ``total_iter`` steps of MultiStepLR(milestones, gamma) counted from the end of the warm-up. As
  upstream, the main phase starts from the last warm-up lr, ``lr * warm_up_iter / (warm_up_iter + 1)``;
* the codebook is updated by EMA with dead-code reset inside ``EMAResetQuantizer``.

Distributed training: ``batch_size`` is the global batch; rank ``r`` of ``W`` takes the contiguous slice
``r`` of every batch, gradients are averaged by DDP and the quantizer's EMA update sees the latents of all
ranks (all-gathered in rank order), so the codebook evolves as in one process on the global batch.

Exact resume: windows are a pure function of ``(seed, step)`` and a checkpoint holds the weights, the
codebook's EMA statistics, optimiser, scheduler, every RNG state and the step, so a run stopped at step
``k`` and resumed ends bit-identical to an uninterrupted one (on CPU; on GPU with deterministic kernels).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from data_engine.datasets.reader import MotionDataset
from models.common.errors import DataError
from models.common.runtime import capture_rng_state, restore_rng_state
from models.motion.layout import feature_layout
from models.vqvae.checkpoint import read_checkpoint, save_vqvae
from models.vqvae.model import MotionVQVAE

logger = logging.getLogger(__name__)

RECONS_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss,
    "l2": F.mse_loss,
    "l1_smooth": F.smooth_l1_loss,
}
TRAINING_STATE_KEY = "training_state"
NORMALIZATION_KEY = "normalization"


# ----- normalisation ---------------------------------------------------------------------------------

@dataclass
class Normalization:
    """Feature mean/std a VQ-VAE was trained with, and where they came from."""

    mean: np.ndarray
    std: np.ndarray
    source: str

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} must be equal 1-D shapes")

    def normalize(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32, copy=False)

    def denormalize(self, features: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(features, torch.Tensor):
            std = torch.as_tensor(self.std, device=features.device, dtype=features.dtype)
            mean = torch.as_tensor(self.mean, device=features.device, dtype=features.dtype)
            return features * std + mean
        return features * self.std + self.mean

    def sha256(self) -> str:
        """Content hash of the two arrays (part of the token cache's fingerprint)."""
        return hashlib.sha256(self.mean.tobytes() + self.std.tobytes()).hexdigest()

    def to_checkpoint(self) -> dict[str, Any]:
        return {"mean": torch.from_numpy(self.mean.copy()), "std": torch.from_numpy(self.std.copy()),
                "source": self.source}

    @classmethod
    def from_checkpoint(cls, stored: Mapping[str, Any]) -> Normalization:
        return cls(np.asarray(stored["mean"]), np.asarray(stored["std"]), str(stored["source"]))


def load_normalization(dataset: MotionDataset, meta_dir: str | Path | None = None) -> Normalization:
    """The dataset's ``Mean.npy``/``Std.npy``, or ``meta_dir``'s ``mean.npy``/``std.npy`` (the evaluator's
    statistics, which the released VQ-VAE was trained with)."""
    mean, std = dataset.mean_std(meta_dir)
    source = f"meta_dir:{Path(meta_dir)}" if meta_dir is not None else f"dataset:{dataset.root}"
    return Normalization(mean, std, source)


def stored_normalization(checkpoint: str | Path | Mapping[str, Any]) -> Normalization | None:
    """The statistics stored in a checkpoint written by ``train_vqvae`` (None for released checkpoints)."""
    if isinstance(checkpoint, (str, Path)):
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    else:
        payload = checkpoint
    stored = payload.get(NORMALIZATION_KEY) if isinstance(payload, Mapping) else None
    return Normalization.from_checkpoint(stored) if stored is not None else None


# ----- recipe and schedule ----------------------------------------------------------------------------

@dataclass
class TrainingRecipe:
    """Optimisation hyper-parameters (T2M-GPT ``option_vq.py`` names; defaults: the released HumanML3D VQ)."""

    batch_size: int = 256
    window_size: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warm_up_iter: int = 1000
    total_iter: int = 300_000
    lr_scheduler: list[int] = field(default_factory=lambda: [200_000])
    gamma: float = 0.05
    commit: float = 0.02
    loss_vel: float = 0.5
    recons_loss: str = "l1_smooth"
    seed: int = 123

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        self.lr_scheduler = [int(m) for m in self.lr_scheduler]
        if self.recons_loss not in RECONS_LOSSES:
            raise ValueError(f"recons_loss must be one of {sorted(RECONS_LOSSES)}, got {self.recons_loss!r}")
        for name in ("batch_size", "window_size", "total_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warm_up_iter < 0 or self.lr <= 0 or not 0 < self.gamma <= 1:
            raise ValueError("need warm_up_iter >= 0, lr > 0 and 0 < gamma <= 1")

    @property
    def warm_up_steps(self) -> int:
        """Upstream runs ``range(1, warm_up_iter)``: one step fewer than the flag says."""
        return max(self.warm_up_iter - 1, 0)

    @property
    def num_steps(self) -> int:
        """Optimiser steps of the whole run: warm-up, then ``total_iter``."""
        return self.warm_up_steps + self.total_iter


class T2MGPTSchedule:
    """LR multiplier of T2M-GPT's warm-up + MultiStepLR, as a ``LambdaLR`` function (picklable state).

    ``multiplier(step)`` is the factor for 1-based optimiser step ``step``; ``LambdaLR`` calls the object
    with its counter ``k = step - 1``.
    """

    def __init__(self, warm_up_iter: int, milestones: Sequence[int], gamma: float) -> None:
        self.warm_up_iter = int(warm_up_iter)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)

    def multiplier(self, step: int) -> float:
        warm_up_steps = max(self.warm_up_iter - 1, 0)
        if step <= warm_up_steps:
            return (step + 1) / (self.warm_up_iter + 1)
        main_step = step - warm_up_steps
        # MultiStepLR is chainable: it scales whatever lr the warm-up left in the optimiser.
        start = self.warm_up_iter / (self.warm_up_iter + 1) if warm_up_steps else 1.0
        decays = sum(1 for m in self.milestones if m < main_step)
        return start * self.gamma**decays

    def __call__(self, k: int) -> float:
        return self.multiplier(k + 1)


# ----- objective -------------------------------------------------------------------------------------

class LossTerms(NamedTuple):
    total: torch.Tensor
    recons: torch.Tensor
    vel: torch.Tensor
    commit: torch.Tensor


def vq_objective(reconstruction: torch.Tensor, target: torch.Tensor, commit_loss: torch.Tensor, *,
                 joints_num: int, recons_loss: str = "l1_smooth", loss_vel: float = 0.5,
                 commit: float = 0.02) -> LossTerms:
    """T2M-GPT's VQ-VAE loss on normalised features ``[B, T, D]`` (see the module docstring)."""
    loss_fn = RECONS_LOSSES[recons_loss]
    ric = feature_layout(joints_num).ric
    recons = loss_fn(reconstruction, target)
    vel = loss_fn(reconstruction[..., ric], target[..., ric])
    return LossTerms(recons + commit * commit_loss + loss_vel * vel, recons, vel, commit_loss)


# ----- data --------------------------------------------------------------------------------------------

class MotionWindows:
    """Normalised training motions in one flat array, cut into deterministic batches of random windows.

    The windows of step ``s`` depend only on ``(seed, s)``: epoch ``e = (s - 1) // batches_per_epoch``
    draws a permutation of the motions and one window start per motion from
    ``numpy.random.default_rng([seed, e])``; step ``s`` takes the next ``batch_size`` of them.
    """

    def __init__(self, motions: Sequence[np.ndarray], window_size: int, seed: int,
                 names: Sequence[str] | None = None) -> None:
        if not motions:
            raise DataError(f"no training motions of at least {window_size} frames")
        short = [i for i, m in enumerate(motions) if len(m) < window_size]
        if short:
            raise ValueError(f"{len(short)} motions are shorter than the window ({window_size} frames)")
        self.window_size = window_size
        self.seed = seed
        self.names = list(names) if names is not None else [str(i) for i in range(len(motions))]
        self.lengths = np.array([len(m) for m in motions], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.frames = torch.from_numpy(np.concatenate(motions).astype(np.float32, copy=False))
        self._plan: tuple[int, np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_dataset(cls, dataset: MotionDataset, split: str, normalization: Normalization, window_size: int,
                     seed: int, progress: bool = True) -> MotionWindows:
        """Every motion of ``split`` with at least ``window_size`` frames (shorter ones are counted, as
        upstream skips them)."""
        motions, names, skipped = [], [], 0
        for motion_id in tqdm(dataset.split_ids(split), desc=f"load {split}", unit="motion",
                              disable=not progress, leave=False):
            features = dataset.load_features(motion_id)
            if len(features) < window_size:
                skipped += 1
                continue
            motions.append(normalization.normalize(features))
            names.append(motion_id)
        logger.info("%s split %r: %d motions for training, %d shorter than the %d-frame window skipped",
                    dataset.root, split, len(motions), skipped, window_size)
        return cls(motions, window_size, seed, names)

    def __len__(self) -> int:
        return len(self.lengths)

    def batches_per_epoch(self, batch_size: int) -> int:
        count = len(self) // batch_size
        if count == 0:
            raise DataError(f"{len(self)} training motions of at least {self.window_size} frames cannot fill "
                            f"one batch of {batch_size} windows; lower --batch-size or --window-size")
        return count

    def position(self, step: int, batch_size: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of 1-based step ``step``."""
        return divmod(step - 1, self.batches_per_epoch(batch_size))

    def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._plan is None or self._plan[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self))
            starts = rng.integers(0, self.lengths[order] - self.window_size + 1)
            self._plan = (epoch, order, starts)
        return self._plan[1], self._plan[2]

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """``[batch_size // world_size, window_size, D]`` windows of ``step`` for ``rank``."""
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by the world size {world_size}")
        epoch, index = self.position(step, batch_size)
        order, starts = self._epoch_plan(epoch)
        per_rank = batch_size // world_size
        pick = slice(index * batch_size + rank * per_rank, index * batch_size + (rank + 1) * per_rank)
        first = self.offsets[order[pick]] + starts[pick]
        rows = torch.from_numpy(first[:, None] + np.arange(self.window_size))
        return self.frames[rows]


# ----- the training step --------------------------------------------------------------------------------

Gather = Callable[[torch.Tensor], torch.Tensor]


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenation over ranks (rank order) of an equally shaped tensor; identity without a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class StepOutput(NamedTuple):
    loss: LossTerms
    perplexity: torch.Tensor  # of the global batch's code histogram
    active_codes: torch.Tensor  # distinct codes in the global batch
    resets: torch.Tensor  # dead codes replaced by this step's EMA update


class VQTrainingModule(nn.Module):
    """One training forward: encoder, quantizer with a cross-rank EMA update, decoder, objective.

    With one process this computes exactly ``MotionVQVAE.forward`` (tested); with several, the codebook
    update uses the all-gathered latents. This is the module DDP wraps.
    """

    def __init__(self, vq: MotionVQVAE, recipe: TrainingRecipe, joints_num: int,
                 gather: Gather = all_gather_cat) -> None:
        super().__init__()
        self.vq = vq
        self.recipe = recipe
        self.joints_num = joints_num
        self.gather = gather

    def forward(self, windows: torch.Tensor) -> StepOutput:
        vq = self.vq
        quantizer = vq.vqvae.quantizer
        latents = vq.vqvae.encoder(windows.to(vq.dtype).permute(0, 2, 1))
        batch, channels, length = latents.shape
        x = latents.permute(0, 2, 1).reshape(-1, channels)
        if not quantizer.initialized:
            quantizer.init_codebook(self.gather(x.detach()))
        code_idx = quantizer.quantize(x)
        x_d = quantizer.dequantize(code_idx)
        all_codes = self.gather(code_idx)
        perplexity = quantizer.update_codebook(self.gather(x.detach()), all_codes)
        commit_loss = F.mse_loss(x, x_d.detach())
        x_d = x + (x_d - x).detach()  # straight-through, written as upstream so outputs match bit for bit
        quantized = x_d.view(batch, length, channels).permute(0, 2, 1).contiguous()
        reconstruction = vq.vqvae.decoder(quantized).permute(0, 2, 1)
        loss = vq_objective(reconstruction, windows[:, : reconstruction.shape[1]], commit_loss,
                            joints_num=self.joints_num, recons_loss=self.recipe.recons_loss,
                            loss_vel=self.recipe.loss_vel, commit=self.recipe.commit)
        active = torch.unique(all_codes).numel()
        return StepOutput(loss, perplexity.detach(), torch.tensor(active),
                          quantizer.last_reset_count.detach().clone())


def _mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values


class VQTrainer:
    """Model, optimiser, schedule and data of one VQ-VAE training run, steppable and checkpointable.

    ``train_step()`` runs step ``self.step + 1`` and returns its scalars (mean over ranks);
    ``state_dict()`` / ``load_state_dict()`` capture everything needed for an exact resume.
    """

    def __init__(self, vq: MotionVQVAE, windows: MotionWindows, recipe: TrainingRecipe, *, joints_num: int,
                 device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
                 ddp: bool = False) -> None:
        if windows.window_size != recipe.window_size:
            raise ValueError(f"windows are {windows.window_size} frames, "
                             f"the recipe says {recipe.window_size}")
        self.device = torch.device(device)
        self.vq = vq.to(self.device).train()
        self.windows = windows
        self.recipe = recipe
        self.rank = rank
        self.world_size = world_size
        windows.batches_per_epoch(recipe.batch_size)  # fail early if one batch cannot be filled
        module: nn.Module = VQTrainingModule(self.vq, recipe, joints_num)
        if ddp:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            # Buffers (the codebook) are synced once at init, then kept equal by the all-gathered EMA update.
            module = DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)
        self.module = module
        self.optimizer = torch.optim.AdamW(self.vq.parameters(), lr=recipe.lr, betas=recipe.betas,
                                           weight_decay=recipe.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, T2MGPTSchedule(recipe.warm_up_iter, recipe.lr_scheduler, recipe.gamma))
        self.step = 0

    @property
    def done(self) -> bool:
        return self.step >= self.recipe.num_steps

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def train_step(self) -> dict[str, float]:
        step = self.step + 1
        windows = self.windows.batch(step, self.recipe.batch_size, self.rank, self.world_size).to(self.device)
        lr = self.lr
        out: StepOutput = self.module(windows)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.total.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step = step
        losses = _mean_over_ranks(torch.stack([t.detach().float() for t in out.loss]))
        total, recons, vel, commit = losses.tolist()
        return {"loss": total, "recons": recons, "vel": vel, "commit": commit,
                "perplexity": float(out.perplexity), "active_codes": float(out.active_codes),
                "resets": float(out.resets), "lr": lr}

    # ----- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights and EMA statistics (which ``save_vqvae`` stores)."""
        epoch, index = self.windows.position(self.step + 1, self.recipe.batch_size)
        return {"step": self.step, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": capture_rng_state(),
                "sampler": {"seed": self.windows.seed, "epoch": epoch, "batch": index,
                            "motions": len(self.windows), "batch_size": self.recipe.batch_size},
                "recipe": asdict(self.recipe)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        sampler = state["sampler"]
        ours = {"seed": self.windows.seed, "motions": len(self.windows), "batch_size": self.recipe.batch_size}
        if any(sampler[key] != value for key, value in ours.items()):
            raise DataError(f"checkpoint sampler {sampler} does not match this run ({ours}): the windows "
                            "would differ from the interrupted run's")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])

    def save_checkpoint(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Our VQ format (weights, config, EMA statistics) plus the training state; written atomically."""
        return save_vqvae(self.vq, path, extra={TRAINING_STATE_KEY: self.state_dict(), **(extra or {})})

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Restore weights, EMA statistics and training state from ``save_checkpoint``'s file; returns the
        whole payload (for the caller's extras)."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if TRAINING_STATE_KEY not in payload:
            raise DataError("not a training checkpoint (no training state); it holds weights only",
                            path=path)
        state, _, ema = read_checkpoint(payload)
        self.vq.load_state_dict(state, strict=True)
        if ema is None:
            raise DataError("training checkpoint lacks the quantizer's EMA statistics", path=path)
        self.vq.vqvae.quantizer.load_training_state(ema)
        self.vq.to(self.device)
        self.load_state_dict(payload[TRAINING_STATE_KEY])
        return payload

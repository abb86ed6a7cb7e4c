"""Reconstruction quality of a VQ-VAE over whole motions: MPJPE, feature error, codebook usage.

Each motion is cropped to a multiple of ``unit_length`` (from frame 0), encoded and decoded (batched by
equal length, so results equal one-at-a-time upstream ``encode``/``forward_decoder``). Both the input and
the reconstruction are de-normalised and turned into joint positions with ``recover_from_ric``; MPJPE is
the mean Euclidean joint error over all frames and joints, in millimetres (HumanML3D positions are metres,
KIT-ML's millimetres). ``mpjpe_mm`` subtracts each frame's root joint first (MoMask's convention, the
figure VQ papers report); ``mpjpe_global_mm`` does not, so it also counts the drift of the root
trajectory integrated from the reconstructed root velocities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from data_engine.datasets.reader import MotionDataset
from models.motion.representation import recover_from_ric
from models.motion.skeleton import SkeletonSpec, get_skeleton
from models.vqvae.model import MotionVQVAE
from models.vqvae.quantizer import EMAResetQuantizer
from models.vqvae.training import Normalization

logger = logging.getLogger(__name__)

MM_PER_UNIT = {"m": 1000.0, "mm": 1.0}


def mpjpe(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, *,
          align_root: bool = False) -> float:
    """Mean per-joint position error of ``[..., J, 3]`` joint arrays, in their own unit.

    ``align_root`` subtracts the root joint (index 0) of each pose from all its joints first.
    """
    pred_t = torch.as_tensor(pred, dtype=torch.float64)
    target_t = torch.as_tensor(target, dtype=torch.float64)
    if pred_t.shape != target_t.shape or pred_t.shape[-1] != 3:
        raise ValueError(f"joint arrays must have equal shapes [..., J, 3], got {tuple(pred_t.shape)} "
                         f"and {tuple(target_t.shape)}")
    if align_root:
        pred_t = pred_t - pred_t[..., :1, :]
        target_t = target_t - target_t[..., :1, :]
    return float(torch.linalg.vector_norm(pred_t - target_t, dim=-1).mean())


def codebook_usage(codes: Sequence[torch.Tensor], nb_code: int) -> tuple[int, float]:
    """(distinct codes used, perplexity of the code histogram) over all ``codes``."""
    flat = torch.cat([c.reshape(-1) for c in codes]).long()
    counts = torch.bincount(flat, minlength=nb_code).double()
    return int((counts > 0).sum()), float(EMAResetQuantizer.perplexity_from_counts(counts))


@dataclass
class ReconstructionMetrics:
    motions: int
    frames: int
    mpjpe_mm: float  # root-aligned per frame
    mpjpe_global_mm: float
    feature_l1: float  # mean |x_hat - x| of normalised features
    recons_loss: float  # smooth-L1 of normalised features (the training reconstruction term)
    active_codes: int
    nb_code: int
    perplexity: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.motions} motions: MPJPE {self.mpjpe_mm:.1f} mm (global "
                f"{self.mpjpe_global_mm:.1f} mm), feature L1 {self.feature_l1:.4f}, codebook "
                f"{self.active_codes}/{self.nb_code} codes used, perplexity {self.perplexity:.1f}")


def reconstruct(vq: MotionVQVAE, motions: Sequence[np.ndarray | torch.Tensor],
                batch_size: int = 256) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(codes, reconstructions) of normalised motions; reconstructions have ``len // unit * unit`` frames."""
    codes = vq.encode(list(motions), batch_size=batch_size)
    decoded = vq.decode(codes, batch_size=batch_size)
    return codes, [m.detach().float().cpu() for m in decoded.unpad()]


def evaluate_reconstruction(vq: MotionVQVAE, features: Sequence[np.ndarray], normalization: Normalization,
                            skeleton: SkeletonSpec, *, batch_size: int = 256, chunk: int = 1024,
                            progress: bool = False) -> ReconstructionMetrics:
    """Metrics over raw (un-normalised) feature arrays ``[T_i, D]``; motions shorter than one VQ unit are
    skipped (logged). Work is done ``chunk`` motions at a time to bound memory."""
    unit = vq.unit_length
    kept = [f for f in features if len(f) >= unit]
    if len(kept) < len(features):
        logger.warning("skipped %d motions shorter than one VQ unit (%d frames)",
                       len(features) - len(kept), unit)
    if not kept:
        raise ValueError("no motions to evaluate")
    scale = MM_PER_UNIT[skeleton.unit]
    sums = {"err": 0.0, "err_root": 0.0, "l1": 0.0, "recons": 0.0}
    frames = joints_total = values = 0
    all_codes: list[torch.Tensor] = []
    for first in tqdm(range(0, len(kept), chunk), desc="reconstruct", unit="chunk", disable=not progress,
                      leave=False):
        raw = [torch.from_numpy(np.ascontiguousarray(f[: len(f) // unit * unit], dtype=np.float32))
               for f in kept[first:first + chunk]]
        normalised = [torch.from_numpy(normalization.normalize(r.numpy())) for r in raw]
        codes, recons = reconstruct(vq, normalised, batch_size=batch_size)
        all_codes.extend(codes)
        for target_n, recon_n, target_raw in zip(normalised, recons, raw):
            sums["l1"] += float((recon_n - target_n).abs().sum())
            sums["recons"] += float(F.smooth_l1_loss(recon_n, target_n, reduction="sum"))
            values += target_n.numel()
            pred_joints = recover_from_ric(normalization.denormalize(recon_n).double(), skeleton.joints_num)
            true_joints = recover_from_ric(target_raw.double(), skeleton.joints_num)
            joints = pred_joints.shape[0] * pred_joints.shape[1]
            sums["err"] += mpjpe(pred_joints, true_joints) * joints
            sums["err_root"] += mpjpe(pred_joints, true_joints, align_root=True) * joints
            frames += len(target_raw)
            joints_total += joints
    active, perplexity = codebook_usage(all_codes, vq.nb_code)
    return ReconstructionMetrics(
        motions=len(kept), frames=frames, mpjpe_mm=scale * sums["err_root"] / joints_total,
        mpjpe_global_mm=scale * sums["err"] / joints_total, feature_l1=sums["l1"] / values,
        recons_loss=sums["recons"] / values, active_codes=active, nb_code=vq.nb_code, perplexity=perplexity)


def evaluate_split(vq: MotionVQVAE, dataset: MotionDataset, split: str, normalization: Normalization, *,
                   batch_size: int = 256, progress: bool = False) -> ReconstructionMetrics:
    """``evaluate_reconstruction`` over every motion of a dataset split."""
    features = [dataset.load_features(i) for i in dataset.split_ids(split)]
    return evaluate_reconstruction(vq, features, normalization, get_skeleton(dataset.spec.name),
                                   batch_size=batch_size, progress=progress)

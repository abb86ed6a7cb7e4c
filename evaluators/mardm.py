"""MARDM's cross-evaluators (Meng et al., "Rethinking Diffusion for Text-Driven Human Motion Generation").

MARDM retrains the evaluators on the first 67 feature dims only (root 4 + joint positions 63; KIT 64),
normalised with its own ``utils/eval_mean_std/{t2m,kit}/eval_{mean,std}.npy``. Two evaluators:

- a Guo-architecture one (``checkpoints/<ds>/text_mot_match/model/finest.tar``, keys ``movement_encoder``,
  ``text_encoder``, ``motion_encoder``): :class:`~evaluators.t2m_extractor.T2MEvaluator` with input 67 and
  *no* foot-contact slicing. MARDM sorts each batch by motion length; our packing makes that unnecessary
  and returns input order (``length_sort_order`` reproduces MARDM's order when needed).
- ``MotionCLIP`` (``text_mot_match_clip/model/finest.tar``, key ``contrast_model``): a motion transformer
  (query token + sinusoidal PE, 8 layers) and a text transformer over CLIP ViT-B/16 token and position
  embeddings. Those CLIP embeddings are stored in the checkpoint itself, so only CLIP's BPE tokenizer
  files are needed (a local folder, e.g. a saved ``openai/clip-vit-base-patch16``; nothing is downloaded).
  Without a tokenizer the CLIP evaluator is simply unavailable (``has_clip`` is False).

Feeding our outputs (VQ-normalised 263-d features): ``x * std_vq + mean_vq`` -> ``[:67]`` -> MARDM
normalisation -> zero the frames after each length (see :meth:`MARDMNormalizer.from_vq_features`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evaluators.t2m_extractor import (
    ArrayLike,
    T2MEvaluator,
    T2MEvaluatorConfig,
    load_checkpoint_safely,
    load_module_states,
)
from models.common.errors import DataError

logger = logging.getLogger(__name__)

MARDM_FEATURE_DIMS = {"t2m": 67, "humanml3d": 67, "kit": 64}
CLIP_CONTEXT_LENGTH = 77


def mardm_guo_config(dataset: str = "t2m") -> T2MEvaluatorConfig:
    """Config of MARDM's retrained Guo evaluator: movement input = all 67 (KIT 64) dims, no foot contacts."""
    if dataset not in MARDM_FEATURE_DIMS:
        raise ValueError(f"unknown MARDM dataset {dataset!r}; choose one of {sorted(MARDM_FEATURE_DIMS)}")
    return T2MEvaluatorConfig(dim_pose=MARDM_FEATURE_DIMS[dataset], foot_contact_dims=0)


# ---------------------------------------------------------------------------------------------- normalisation
@dataclass
class MARDMNormalizer:
    """MARDM's evaluator normalisation over the first ``mean.size`` feature dims (67 for HumanML3D)."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, np.float32).reshape(-1)
        self.std = np.asarray(self.std, np.float32).reshape(-1)
        if self.mean.shape != self.std.shape or (self.std <= 0).any():
            raise ValueError(f"mean {self.mean.shape} / std {self.std.shape} must match and std must be > 0")

    @classmethod
    def load(cls, folder: str | Path) -> MARDMNormalizer:
        """Read ``eval_mean.npy`` and ``eval_std.npy`` (MARDM's ``utils/eval_mean_std/<dataset>/``)."""
        folder = Path(folder)
        arrays = []
        for name in ("eval_mean.npy", "eval_std.npy"):
            try:
                arrays.append(np.load(folder / name, allow_pickle=False))
            except (OSError, ValueError) as err:
                raise DataError(f"cannot load MARDM statistics ({err})", path=folder / name) from err
        return cls(*arrays)

    @property
    def dim(self) -> int:
        return self.mean.size

    def normalize(self, raw: ArrayLike, m_lens: ArrayLike | Sequence[int] | None = None) -> ArrayLike:
        """Raw ``[..., T, D >= dim]`` -> ``(x[..., :dim] - mean) / std``; frames ≥ ``m_lens`` set to 0."""
        if raw.shape[-1] < self.dim:
            raise ValueError(f"features have {raw.shape[-1]} dims, MARDM needs the first {self.dim}")
        out = (raw[..., : self.dim] - _like(self.mean, raw)) / _like(self.std, raw)
        return _zero_after_lengths(out, m_lens)

    def from_vq_features(
        self,
        x_vq: ArrayLike,
        vq_mean: np.ndarray,
        vq_std: np.ndarray,
        m_lens: ArrayLike | Sequence[int] | None = None,
    ) -> ArrayLike:
        """Our VQ-normalised 263-d features -> MARDM input: ``x*std_vq + mean_vq`` -> ``[:dim]`` -> normalise.

        Pass ``m_lens`` for zero-padded batches: padding is zero in *our* normalised space, which is not
        zero after conversion, and MARDM's evaluator expects zeros there.
        """
        std_vq = _like(np.asarray(vq_std, np.float32), x_vq)
        mean_vq = _like(np.asarray(vq_mean, np.float32), x_vq)
        return self.normalize(x_vq * std_vq + mean_vq, m_lens)


def _like(array: np.ndarray, reference: ArrayLike) -> ArrayLike:
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(array, dtype=reference.dtype, device=reference.device)
    return array


def _zero_after_lengths(x: ArrayLike, m_lens: ArrayLike | Sequence[int] | None) -> ArrayLike:
    if m_lens is None:
        return x
    lengths = np.asarray(torch.as_tensor(m_lens).cpu()).reshape(-1, 1)
    if x.ndim != 3 or lengths.shape[0] != x.shape[0]:
        raise ValueError(
            f"m_lens needs batched features [B, T, D]; got {tuple(x.shape)} and {lengths.shape[0]} lengths"
        )
    keep = np.arange(x.shape[1])[None, :] < lengths  # (B, T)
    if isinstance(x, torch.Tensor):
        return x * torch.as_tensor(keep, device=x.device).unsqueeze(-1).to(x.dtype)
    return x * keep[..., None].astype(x.dtype)


# ---------------------------------------------------------------------------------------------- MotionCLIP
@dataclass
class MotionCLIPConfig:
    """MotionCLIP sizes (defaults: MARDM's released evaluator on CLIP ViT-B/16 embeddings)."""

    input_dim: int = 67
    latent_dim: int = 512
    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 8
    dropout: float = 0.2
    pe_max_len: int = 2000
    vocab_size: int = 49408
    context_length: int = CLIP_CONTEXT_LENGTH
    text_width: int = 512
    text_layers: int = 8
    text_heads: int = 8
    text_ff_size: int = 1024
    embed_dim: int = 512


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the sin/cos table (buffer ``pe [max_len, d_model]``, stored in checkpoints) to ``[B, T, d]``."""

    def __init__(self, d_model: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.shape[1]].unsqueeze(0))


def _transformer(width: int, heads: int, ff_size: int, dropout: float, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, ff_size, dropout, activation="gelu", batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class MotionTransformerEncoder(nn.Module):
    """``motion [B, T, input_dim]``, padding mask ``[B, T]`` (True = pad) -> query output ``[B, embed]``."""

    def __init__(self, config: MotionCLIPConfig) -> None:
        super().__init__()
        self.query_token = nn.Parameter(torch.randn(1, config.latent_dim))
        self.embed_motion = nn.Linear(config.input_dim, config.latent_dim)
        self.sequence_pos_encoder = SinusoidalPositionalEncoding(
            config.latent_dim, config.dropout, config.pe_max_len
        )
        self.transformer = _transformer(
            config.latent_dim, config.num_heads, config.ff_size, config.dropout, config.num_layers
        )
        self.out_ln = nn.LayerNorm(config.latent_dim)
        self.out = nn.Linear(config.latent_dim, config.embed_dim)

    def forward(self, motion: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        batch = motion.shape[0]
        tokens = torch.cat(
            [self.query_token.expand(batch, 1, -1), self.embed_motion(motion)], dim=1
        )  # (B, 1+T, L)
        mask = torch.cat([padding_mask.new_zeros(batch, 1), padding_mask], dim=1)
        hidden = self.transformer(self.sequence_pos_encoder(tokens), src_key_padding_mask=mask)
        return self.out(self.out_ln(hidden)[:, 0])


class MotionCLIP(nn.Module):
    """MARDM's ``MotionCLIP`` with its state-dict names (``motion_encoder.*``, ``token_embedding.weight``,
    ``positional_embedding``, ``logit_scale``, ``textTransEncoder.*``, ``text_ln.*``, ``out.*``)."""

    def __init__(self, config: MotionCLIPConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or MotionCLIPConfig()
        self.motion_encoder = MotionTransformerEncoder(c)
        self.token_embedding = nn.Embedding(c.vocab_size, c.text_width)
        self.positional_embedding = nn.Parameter(
            torch.empty(c.context_length, c.text_width).normal_(std=0.01)
        )
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.textTransEncoder = _transformer(
            c.text_width, c.text_heads, c.text_ff_size, c.dropout, c.text_layers
        )
        self.text_ln = nn.LayerNorm(c.text_width)
        self.out = nn.Linear(c.text_width, c.embed_dim)
        self.token_embedding.requires_grad_(False)  # frozen CLIP embedding, as in MARDM

    def encode_motion(self, motion: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        """Unnormalised motion features ``[B, embed_dim]``; frames at or after ``m_lens`` are masked out."""
        padding = (
            torch.arange(motion.shape[1], device=motion.device)[None, :] >= m_lens.to(motion.device)[:, None]
        )
        return self.motion_encoder(motion, padding)

    def encode_text(self, token_ids: torch.Tensor, eot_positions: torch.Tensor) -> torch.Tensor:
        """Unnormalised text features ``[B, embed_dim]`` of CLIP ids ``[B, context]`` (no attention mask)."""
        hidden = self.token_embedding(token_ids).float() + self.positional_embedding.float()
        hidden = self.text_ln(self.textTransEncoder(hidden))
        return self.out(hidden[torch.arange(hidden.shape[0], device=hidden.device), eot_positions])

    def init_text_embeddings_from_clip(self, clip_text_model_path: str | Path) -> None:
        """Copy token/position embeddings from a local transformers ``CLIPTextModel`` (to train a new one)."""
        from transformers import CLIPTextModel

        model = CLIPTextModel.from_pretrained(str(clip_text_model_path))
        embeddings = getattr(model, "text_model", model).embeddings  # transformers 4 nests, 5 does not
        with torch.no_grad():
            self.token_embedding.weight.copy_(embeddings.token_embedding.weight)
            self.positional_embedding.copy_(
                embeddings.position_embedding.weight[: self.config.context_length]
            )


def clip_token_ids(
    captions: Sequence[str], tokenizer: Any, context_length: int = CLIP_CONTEXT_LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """``clip.tokenize(captions, truncate=True)`` with a transformers CLIP tokenizer.

    Returns ``ids [B, context_length]`` (``<sot> bpe <eot>``, zero-padded; when truncated ``<eot>`` stays
    last) and the ``<eot>`` position of each row ``[B]``.
    """
    if not captions or any(not isinstance(c, str) or not c.strip() for c in captions):
        raise DataError("CLIP captions must be non-empty strings", field="caption")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids = torch.zeros(len(captions), context_length, dtype=torch.long)
    eot = torch.empty(len(captions), dtype=torch.long)
    for row, caption in enumerate(captions):
        sequence = [bos, *tokenizer(caption, add_special_tokens=False)["input_ids"], eos][:context_length]
        sequence[-1] = eos
        ids[row, : len(sequence)] = torch.tensor(sequence)
        eot[row] = len(sequence) - 1
    return ids, eot


# ---------------------------------------------------------------------------------------------- evaluator
class MARDMEvaluator:
    """MARDM's Guo-architecture evaluator (common interface) plus its optional MotionCLIP evaluator.

    Motions are MARDM-normalised ``[B, T, 67]`` (see :class:`MARDMNormalizer`), lengths in frames.
    """

    def __init__(self, guo: T2MEvaluator, clip: MotionCLIP | None = None, tokenizer: Any = None) -> None:
        if (clip is None) != (tokenizer is None):
            raise ValueError("the CLIP evaluator needs both its MotionCLIP weights and a CLIP tokenizer")
        self.guo = guo
        self.clip = clip
        self.tokenizer = tokenizer

    @classmethod
    def load(
        cls,
        guo_checkpoint: str | Path,
        clip_checkpoint: str | Path | None = None,
        clip_tokenizer: str | Path | None = None,
        dataset: str = "t2m",
        device: str | torch.device = "cpu",
        guo_config: T2MEvaluatorConfig | None = None,
        clip_config: MotionCLIPConfig | None = None,
    ) -> MARDMEvaluator:
        """Load MARDM's ``text_mot_match/model/finest.tar`` and, when both are given, the
        ``text_mot_match_clip/model/finest.tar`` MotionCLIP with a local CLIP tokenizer folder.

        Configs default to MARDM's released sizes for ``dataset``; pass others for retrained evaluators.
        """
        guo = T2MEvaluator.load(guo_checkpoint, guo_config or mardm_guo_config(dataset), device)
        if clip_checkpoint is None or clip_tokenizer is None:
            logger.info("MARDM CLIP evaluator not loaded (needs clip_checkpoint and clip_tokenizer)")
            return cls(guo)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(clip_tokenizer))
        clip = MotionCLIP(clip_config or MotionCLIPConfig(input_dim=MARDM_FEATURE_DIMS[dataset]))
        load_module_states(
            {"contrast_model": clip}, load_checkpoint_safely(clip_checkpoint), path=clip_checkpoint
        )
        return cls(guo, clip.to(device).eval().requires_grad_(False), tokenizer)

    @property
    def has_clip(self) -> bool:
        return self.clip is not None

    # Common evaluator interface (Guo architecture) -----------------------------------------------------
    def text_embeddings(
        self,
        word_embs: ArrayLike,
        pos_ohot: ArrayLike,
        cap_lens: ArrayLike | list[int],
        batch_size: int | None = None,
    ) -> torch.Tensor:
        return self.guo.text_embeddings(word_embs, pos_ohot, cap_lens, batch_size)

    def motion_embeddings(
        self, motions: ArrayLike, m_lens: ArrayLike | list[int], batch_size: int | None = None
    ) -> torch.Tensor:
        return self.guo.motion_embeddings(motions, m_lens, batch_size)

    def get_co_embeddings(
        self,
        word_embs: ArrayLike,
        pos_ohot: ArrayLike,
        cap_lens: ArrayLike | list[int],
        motions: ArrayLike,
        m_lens: ArrayLike | list[int],
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.guo.get_co_embeddings(word_embs, pos_ohot, cap_lens, motions, m_lens, batch_size)

    # CLIP evaluator --------------------------------------------------------------------------------------
    def _require_clip(self) -> MotionCLIP:
        if self.clip is None:
            raise RuntimeError("MARDM CLIP evaluator not loaded (give clip_checkpoint and clip_tokenizer)")
        return self.clip

    @torch.inference_mode()
    def clip_text_embeddings(self, captions: Sequence[str]) -> torch.Tensor:
        """L2-normalised CLIP-side text embeddings ``[B, 512]`` of raw caption strings."""
        clip = self._require_clip()
        device = clip.out.weight.device
        ids, eot = clip_token_ids(captions, self.tokenizer, clip.config.context_length)
        return nn.functional.normalize(clip.encode_text(ids.to(device), eot.to(device)), dim=-1)

    @torch.inference_mode()
    def clip_motion_embeddings(self, motions: ArrayLike, m_lens: ArrayLike | list[int]) -> torch.Tensor:
        """L2-normalised CLIP-side motion embeddings ``[B, 512]``."""
        clip = self._require_clip()
        device = clip.out.weight.device
        motion = torch.as_tensor(motions).to(device, torch.float32)
        lengths = torch.as_tensor(m_lens).to(device, torch.int64)
        if motion.ndim != 3 or motion.shape[-1] != clip.config.input_dim or lengths.shape != motion.shape[:1]:
            raise ValueError(
                f"expected motions [B, T, {clip.config.input_dim}] and m_lens [B], got "
                f"{tuple(motion.shape)} and {tuple(lengths.shape)}"
            )
        return nn.functional.normalize(clip.encode_motion(motion, lengths), dim=-1)

    def clip_scores(
        self, captions: Sequence[str], motions: ArrayLike, m_lens: ArrayLike | list[int]
    ) -> torch.Tensor:
        """Per-pair cosine similarity ``[B]``; MARDM's CLIP-score is their mean."""
        return (self.clip_text_embeddings(captions) * self.clip_motion_embeddings(motions, m_lens)).sum(-1)


__all__ = [
    "MARDM_FEATURE_DIMS",
    "MARDMEvaluator",
    "MARDMNormalizer",
    "MotionCLIP",
    "MotionCLIPConfig",
    "clip_token_ids",
    "mardm_guo_config",
]

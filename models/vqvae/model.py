"""``MotionVQVAE``: the T2M-GPT motion tokenizer with batched, validated encode/decode.

The state dict has exactly the released key names (``vqvae.encoder.model.0.weight``, ...,
``vqvae.quantizer.codebook``), so T2M-GPT / Motion-Agent / IRG-MotionLLM checkpoints load strictly.

Batching without changing codes: the convolutions see zero padding at the sequence ends, so padding a
short motion to a longer one changes its last codes (and decoding padded code sequences changes the
last frames). ``encode`` and ``decode`` therefore batch together only items of *equal length*; each
item's result equals the one-at-a-time upstream ``encode`` / ``forward_decoder``. Datasets with many
distinct lengths still get large batches (HumanML3D has ~160 distinct lengths for ~29k clips).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from models.common.errors import DataError
from models.vqvae.config import VQVAEConfig
from models.vqvae.modules import Decoder, Encoder
from models.vqvae.quantizer import EMAResetQuantizer

MotionBatch = torch.Tensor | Sequence[torch.Tensor]
CodeBatch = torch.Tensor | Sequence[torch.Tensor]


class VQVAEOutput(NamedTuple):
    """Training forward output; unpacks like upstream's ``(x_out, loss, perplexity)``."""

    reconstruction: torch.Tensor  # [B, T', D] with T' = (T // unit_length) * unit_length
    commit_loss: torch.Tensor  # scalar, MSE(latent, sg[code vector])
    perplexity: torch.Tensor  # scalar, of the batch's code histogram


class DecodedMotions(NamedTuple):
    """Decoded motions, zero-padded to the longest: ``motions[i, :lengths[i]]`` is item ``i``."""

    motions: torch.Tensor  # [B, T_max, D] normalised features
    lengths: torch.Tensor  # [B] frames, = number of codes * unit_length

    def unpad(self) -> list[torch.Tensor]:
        """One ``[T_i, D]`` tensor per item (views)."""
        return [m[:n] for m, n in zip(self.motions, self.lengths.tolist())]


class VQVAE(nn.Module):
    """Encoder, quantizer and decoder under the names the released state dict uses."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantizer = EMAResetQuantizer(config.nb_code, config.code_dim, config.mu)


def _label(index: int, names: Sequence[str] | None) -> str:
    return f"{index} ({names[index]})" if names is not None else str(index)


def _group_by_length(lengths: torch.Tensor, chunk: int) -> list[tuple[int, torch.Tensor]]:
    """``(length, item indices)`` groups of equal length, each at most ``chunk`` items, in input order."""
    values, inverse = torch.unique(lengths, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    sizes = torch.bincount(inverse, minlength=len(values)).tolist()
    groups = []
    for value, members in zip(values.tolist(), torch.split(order, sizes)):
        groups.extend((value, part) for part in torch.split(members, chunk))
    return groups


class MotionVQVAE(nn.Module):
    """T2M-GPT VQ-VAE (``HumanVQVAE`` upstream) over normalised motion features ``[B, T, input_dim]``."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.vqvae = VQVAE(config)

    @property
    def unit_length(self) -> int:
        return self.config.unit_length

    @property
    def nb_code(self) -> int:
        return self.config.nb_code

    @property
    def device(self) -> torch.device:
        return self.vqvae.quantizer.codebook.device

    @property
    def dtype(self) -> torch.dtype:
        return self.vqvae.encoder.model[0].weight.dtype

    # ----- training --------------------------------------------------------------------------------
    def forward(self, motions: torch.Tensor) -> VQVAEOutput:
        """Reconstruct ``[B, T, D]`` motions through the quantized bottleneck (upstream ``forward``).

        In training mode this also initialises / EMA-updates the codebook.
        """
        self._check_width(motions.shape[-1])
        latents = self.vqvae.encoder(motions.to(self.dtype).permute(0, 2, 1))
        quantized, commit_loss, perplexity = self.vqvae.quantizer(latents)
        reconstruction = self.vqvae.decoder(quantized).permute(0, 2, 1)
        return VQVAEOutput(reconstruction, commit_loss, perplexity)

    # ----- inference -------------------------------------------------------------------------------
    # Outputs are allocated outside ``torch.inference_mode`` and filled inside it, so callers get
    # ordinary tensors (inference tensors cannot be saved for backward, e.g. by an embedding lookup).

    def encode(
        self,
        motions: MotionBatch,
        lengths: torch.Tensor | Sequence[int] | None = None,
        names: Sequence[str] | None = None,
        batch_size: int = 256,
    ) -> list[torch.Tensor]:
        """Code indices of each motion: a list of CPU LongTensors ``[T_i // unit_length]``.

        ``motions`` is a zero-padded ``[B, T, D]`` tensor (with ``lengths``; all ``T`` frames when
        omitted) or a list of ``[T_i, D]`` tensors / arrays. ``names`` label items in error messages.
        Lengths need not be multiples of ``unit_length`` (trailing frames are floored away, as upstream).
        Equal-length items are encoded together, at most ``batch_size`` at a time (see module doc).
        """
        padded, item_list, lengths_t = self._validate_motions(motions, lengths, names)
        counts = lengths_t // self.unit_length  # each stride-2 level floors: floor(floor(T/2)/2) = T // 4
        starts = torch.cumsum(counts, 0) - counts
        flat = torch.empty(int(counts.sum()), dtype=torch.long)
        with torch.inference_mode():
            for length, members in _group_by_length(lengths_t, batch_size):
                if padded is not None:
                    batch = padded[members.to(padded.device), :length]
                else:
                    batch = torch.stack([item_list[i] for i in members.tolist()])
                latents = self.vqvae.encoder(batch.to(device=self.device, dtype=self.dtype).permute(0, 2, 1))
                b, channels, n = latents.shape
                idx = self.vqvae.quantizer.quantize(latents.permute(0, 2, 1).reshape(-1, channels))
                flat[starts[members][:, None] + torch.arange(n)] = idx.view(b, n).cpu()
        return list(torch.split(flat, counts.tolist()))

    def decode(
        self,
        codes: CodeBatch,
        lengths: torch.Tensor | Sequence[int] | None = None,
        batch_size: int = 256,
    ) -> DecodedMotions:
        """Normalised motions of code sequences (upstream ``forward_decoder``, batched).

        ``codes`` is a ``[B, N]`` integer tensor (with optional ``lengths`` in codes) or a list of 1-D
        tensors. Returns ``DecodedMotions(motions [B, max N_i * unit_length, D], lengths in frames)``
        on the model's device, zero after each item's length.
        """
        padded, lengths_t = self._validate_codes(codes, lengths)
        unit = self.unit_length
        out = torch.zeros(len(lengths_t), int(lengths_t.max()) * unit, self.config.input_dim,
                          device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            for length, members in _group_by_length(lengths_t, batch_size):
                batch = padded[members.to(padded.device), :length]
                vectors = self.vqvae.quantizer.dequantize(batch.to(self.device))  # [b, n, C]
                frames = self.vqvae.decoder(vectors.permute(0, 2, 1).contiguous()).permute(0, 2, 1)
                out[members.to(self.device), : length * unit] = frames
        return DecodedMotions(out, lengths_t * unit)

    # ----- validation ------------------------------------------------------------------------------
    def _check_width(self, width: int) -> None:
        if width != self.config.input_dim:
            raise DataError(f"motion features have width {width}, the VQ-VAE expects {self.config.input_dim}",
                            field="motion")

    def _validate_motions(
        self, motions: MotionBatch, lengths: torch.Tensor | Sequence[int] | None, names: Sequence[str] | None
    ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None, torch.Tensor]:
        """Check widths, lengths and finiteness; return (padded tensor | item list, lengths)."""
        if names is not None and len(names) != len(motions):
            raise ValueError(f"got {len(names)} names for {len(motions)} motions")
        if isinstance(motions, torch.Tensor):
            if motions.dim() != 3:
                raise DataError(f"expected motions [B, T, D], got shape {tuple(motions.shape)}",
                                field="motion")
            count, frames = motions.shape[:2]
            self._check_width(motions.shape[-1])
            lengths_t = (torch.full((count,), frames, dtype=torch.long) if lengths is None
                         else torch.as_tensor(lengths, dtype=torch.long).cpu())
            if lengths_t.shape != (count,) or bool((lengths_t > frames).any()):
                raise DataError(f"lengths {lengths_t.tolist()} do not fit motions of shape "
                                f"{tuple(motions.shape)}", field="lengths")
            item_list = None
        else:
            if lengths is not None:
                raise ValueError("lengths is only used with a padded [B, T, D] tensor; "
                                 "a list carries its own")
            item_list = [torch.as_tensor(item) for item in motions]  # numpy arrays welcome, not copied
            for i, item in enumerate(item_list):
                if item.dim() != 2 or item.shape[-1] != self.config.input_dim:
                    raise DataError(f"expected a [T, {self.config.input_dim}] motion, "
                                    f"got shape {tuple(item.shape)}", record=_label(i, names))
            lengths_t = torch.tensor([item.shape[0] for item in item_list], dtype=torch.long)
        if len(lengths_t) == 0:
            raise DataError("no motions to encode", field="motion")

        short = torch.nonzero(lengths_t < self.unit_length).flatten().tolist()
        if short:
            i = short[0]
            n = int(lengths_t[i])
            what = "is empty (0 frames)" if n == 0 else f"has {n} frames"
            raise DataError(f"motion {what}, fewer than one VQ unit ({self.unit_length} frames); "
                            f"{len(short)} such item(s): {short[:10]}", record=_label(i, names))

        if item_list is None:
            valid = torch.arange(motions.shape[1]) < lengths_t[:, None]
            finite = torch.isfinite(motions).all(dim=-1).cpu() | ~valid
            bad = torch.nonzero(~finite.all(dim=1)).flatten().tolist()
        else:
            bad = [i for i, item in enumerate(item_list) if not bool(torch.isfinite(item).all())]
        if bad:
            raise DataError(f"motion contains NaN or Inf values; {len(bad)} such item(s): {bad[:10]}",
                            record=_label(bad[0], names))
        return (motions if item_list is None else None), item_list, lengths_t

    def _validate_codes(
        self, codes: CodeBatch, lengths: torch.Tensor | Sequence[int] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Check shapes, dtype and range; return (padded ``[B, N]`` codes, lengths in codes)."""
        if isinstance(codes, torch.Tensor):
            if codes.dim() != 2:
                hint = " (wrap a single sequence as codes[None])" if codes.dim() == 1 else ""
                raise DataError(f"expected codes [B, N] or a list of 1-D code tensors, "
                                f"got shape {tuple(codes.shape)}{hint}", field="codes")
            padded = codes
            lengths_t = (torch.full((len(codes),), codes.shape[1], dtype=torch.long) if lengths is None
                         else torch.as_tensor(lengths, dtype=torch.long).cpu())
            if lengths_t.shape != (len(codes),) or bool((lengths_t > codes.shape[1]).any()):
                raise DataError(f"lengths {lengths_t.tolist()} do not fit codes of shape "
                                f"{tuple(codes.shape)}", field="lengths")
        else:
            if lengths is not None:
                raise ValueError("lengths is only used with a padded [B, N] tensor; a list carries its own")
            items = [torch.as_tensor(c) for c in codes]
            for i, item in enumerate(items):
                if item.dim() != 1:
                    raise DataError(f"expected a 1-D code sequence, got shape {tuple(item.shape)}",
                                    record=i)
            if not items:
                raise DataError("no code sequences to decode", field="codes")
            lengths_t = torch.tensor([len(c) for c in items], dtype=torch.long)
            padded = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
        if len(lengths_t) == 0:
            raise DataError("no code sequences to decode", field="codes")
        if padded.dtype.is_floating_point or padded.dtype.is_complex or padded.dtype == torch.bool:
            raise DataError(f"codes must be integers, got dtype {padded.dtype}", field="codes")
        empty = torch.nonzero(lengths_t == 0).flatten().tolist()
        if empty:
            raise DataError(f"empty code sequence; {len(empty)} such item(s): {empty[:10]}", record=empty[0])
        valid = torch.arange(padded.shape[1]) < lengths_t[:, None]
        out_of_range = ((padded < 0) | (padded >= self.nb_code)).cpu() & valid
        bad = torch.nonzero(out_of_range.any(dim=1)).flatten().tolist()
        if bad:
            first = int(padded[bad[0]].cpu()[out_of_range[bad[0]]][0])
            raise DataError(f"code {first} outside the codebook [0, {self.nb_code}); "
                            f"{len(bad)} such item(s): {bad[:10]}", record=bad[0])
        return padded, lengths_t

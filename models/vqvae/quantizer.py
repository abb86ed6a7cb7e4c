"""EMA vector quantizer with dead-code reset (T2M-GPT ``QuantizeEMAReset``).

The codebook is a buffer updated by exponential moving averages of the latents assigned to each code
(no gradient); a code whose EMA usage count drops below 1 is replaced by a latent of the current
batch. Only ``codebook`` is in the state dict (as upstream); the EMA statistics are non-persistent
buffers that a training checkpoint stores separately via ``training_state``.

Faithful details: the first training batch initialises the codebook; replacement latents are the
batch's first ``nb_code`` latents in (sequence, time) order, or the batch tiled with small noise when
it has fewer; perplexity uses ``exp(-sum p log(p + 1e-7))`` of the batch's code histogram.
One fix: the codebook update selects with ``torch.where`` instead of upstream's arithmetic blend, which
turns a code into NaN once its EMA count underflows to 0 (after ~10k steps unused).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PERPLEXITY_EPS = 1e-7


class EMAResetQuantizer(nn.Module):
    """Nearest-neighbour quantizer over a ``[nb_code, code_dim]`` codebook."""

    def __init__(self, nb_code: int, code_dim: int, mu: float = 0.99) -> None:
        super().__init__()
        self.nb_code = nb_code
        self.code_dim = code_dim
        self.mu = mu
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)
        self.register_buffer("last_reset_count", torch.zeros((), dtype=torch.long), persistent=False)
        self.initialized = False

    # ----- inference -------------------------------------------------------------------------------
    def quantize(self, latents: torch.Tensor) -> torch.Tensor:
        """``[N, code_dim]`` latents -> ``[N]`` indices of the nearest code (squared L2, first on ties)."""
        with torch.autocast(device_type=latents.device.type, enabled=False):
            x = latents.to(self.codebook.dtype)
            codes_t = self.codebook.t()
            distance = (x.pow(2).sum(dim=-1, keepdim=True) - 2 * (x @ codes_t)
                        + codes_t.pow(2).sum(dim=0, keepdim=True))
            return distance.argmin(dim=-1)

    def dequantize(self, code_idx: torch.Tensor) -> torch.Tensor:
        """Indices of any shape -> their code vectors, shape ``code_idx.shape + (code_dim,)``."""
        return F.embedding(code_idx, self.codebook)

    def usage_counts(self, code_idx: torch.Tensor) -> torch.Tensor:
        """How often each code occurs in ``code_idx`` (float ``[nb_code]``)."""
        return torch.bincount(code_idx.reshape(-1), minlength=self.nb_code).to(self.codebook.dtype)

    @staticmethod
    def perplexity_from_counts(counts: torch.Tensor) -> torch.Tensor:
        prob = counts / counts.sum()
        return torch.exp(-(prob * torch.log(prob + PERPLEXITY_EPS)).sum())

    @torch.no_grad()
    def compute_perplexity(self, code_idx: torch.Tensor) -> torch.Tensor:
        """Perplexity of the code histogram of ``code_idx`` (number of equally used codes it amounts to)."""
        return self.perplexity_from_counts(self.usage_counts(code_idx))

    # ----- training --------------------------------------------------------------------------------
    def _candidates(self, latents: torch.Tensor) -> torch.Tensor:
        """``nb_code`` replacement vectors: the first latents, or the batch tiled plus small noise.

        The noise has std ``0.01 / sqrt(code_dim)`` and is only added when tiling (as upstream).
        """
        n = latents.shape[0]
        if n >= self.nb_code:
            return latents[: self.nb_code]
        repeats = -(-self.nb_code // n)
        tiled = latents.repeat(repeats, 1)
        tiled = tiled + torch.randn_like(tiled) * (0.01 / self.code_dim**0.5)
        return tiled[: self.nb_code]

    @torch.no_grad()
    def init_codebook(self, latents: torch.Tensor) -> None:
        """Initialise the codebook from a batch of ``[N, code_dim]`` latents (first training step)."""
        self.codebook.copy_(self._candidates(latents.to(self.codebook.dtype)))
        self.mark_initialized()

    @torch.no_grad()
    def mark_initialized(self) -> None:
        """Start EMA statistics from the current codebook (each code counted once), as ``init_codebook`` does.

        Called after loading trained weights, so training continues from them instead of
        re-initialising the codebook from the next batch.
        """
        self.code_sum.copy_(self.codebook)
        self.code_count.fill_(1.0)
        self.initialized = True

    @torch.no_grad()
    def update_codebook(self, latents: torch.Tensor, code_idx: torch.Tensor) -> torch.Tensor:
        """One EMA step on ``[N, code_dim]`` latents and their codes; resets dead codes; returns perplexity.

        A code is dead when its EMA count drops below 1; it is replaced by a batch latent (``_candidates``).
        """
        x = latents.detach().to(self.codebook.dtype)
        onehot = F.one_hot(code_idx, self.nb_code).to(x.dtype)  # [N, nb_code]; matmul is deterministic on GPU
        batch_sum = onehot.t() @ x
        batch_count = onehot.sum(dim=0)
        candidates = self._candidates(x)

        self.code_sum.mul_(self.mu).add_(batch_sum, alpha=1.0 - self.mu)
        self.code_count.mul_(self.mu).add_(batch_count, alpha=1.0 - self.mu)
        alive = self.code_count >= 1.0
        centres = self.code_sum / self.code_count.unsqueeze(1)
        # Upstream blends ``alive * centres + (1 - alive) * candidates``; ``where`` gives the same values
        # but no NaN once a long-dead code's EMA count underflows to 0 (0/0 * 0 = NaN).
        self.codebook.copy_(torch.where(alive.unsqueeze(1), centres, candidates))
        self.last_reset_count.copy_((~alive).sum())
        return self.perplexity_from_counts(batch_count)

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, C, T]`` latents -> (straight-through quantized ``[B, C, T]``, commitment MSE, perplexity).

        In training mode the codebook is initialised on the first call and EMA-updated on every call.
        """
        batch, channels, length = latents.shape
        x = latents.permute(0, 2, 1).reshape(-1, channels)
        if self.training and not self.initialized:
            self.init_codebook(x.detach())
        code_idx = self.quantize(x)
        x_d = self.dequantize(code_idx)
        if self.training:
            perplexity = self.update_codebook(x, code_idx)
        else:
            perplexity = self.compute_perplexity(code_idx)
        commit_loss = F.mse_loss(x, x_d.detach())
        x_d = x + (x_d - x).detach()  # straight-through estimator; kept literally so outputs match upstream
        return x_d.view(batch, length, channels).permute(0, 2, 1).contiguous(), commit_loss, perplexity

    # ----- resume ----------------------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """EMA statistics that are not in the state dict, for exact training resume."""
        return {"initialized": self.initialized, "code_sum": self.code_sum.detach().cpu().clone(),
                "code_count": self.code_count.detach().cpu().clone()}

    @torch.no_grad()
    def load_training_state(self, state: dict[str, Any]) -> None:
        for name in ("code_sum", "code_count"):
            value = state[name]
            target = getattr(self, name)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"quantizer training state {name!r}: shape {tuple(value.shape)}, "
                                 f"expected {tuple(target.shape)}")
            target.copy_(value)
        self.initialized = bool(state["initialized"])

    def extra_repr(self) -> str:
        return f"nb_code={self.nb_code}, code_dim={self.code_dim}, mu={self.mu}"

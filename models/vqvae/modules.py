"""Convolutional encoder and decoder of the T2M-GPT VQ-VAE (1-D convolutions over time).

Module names and nesting reproduce the released checkpoints' state-dict keys exactly
(``encoder.model.2.1.model.0.conv1.weight``, ...); tensors are channel-first ``[B, C, T]``.
Each stride-2 downsampling conv (kernel 4, padding 1) maps ``L`` frames to ``floor(L / 2)``.
"""

from __future__ import annotations

import torch
from torch import nn

from models.vqvae.config import GROUP_NORM_GROUPS, VQVAEConfig


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``[B, C, T]`` tensor (upstream transposes around ``nn.LayerNorm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_activation(name: str) -> nn.Module:
    # Upstream "silu" is a hand-written x * sigmoid(x), i.e. nn.SiLU.
    return {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}[name]()


def make_norm(name: str | None, channels: int) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name == "LN":
        return ChannelLayerNorm(channels)
    if name == "GN":
        return nn.GroupNorm(GROUP_NORM_GROUPS, channels, eps=1e-6, affine=True)
    if name == "BN":
        return nn.BatchNorm1d(channels, eps=1e-6, affine=True)
    raise ValueError(f"unknown norm {name!r}")


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: norm, act, dilated conv k3, norm, act, conv k1, plus the input."""

    def __init__(self, channels: int, dilation: int, activation: str, norm: str | None) -> None:
        super().__init__()
        # Registration order = upstream order, so state-dict keys come out in the released order.
        self.norm1 = make_norm(norm, channels)
        self.norm2 = make_norm(norm, channels)
        self.activation1 = make_activation(activation)
        self.activation2 = make_activation(activation)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.activation1(self.norm1(x)))
        h = self.conv2(self.activation2(self.norm2(h)))
        return x + h


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations ``growth**(depth-1), ..., growth, 1`` (largest first).

    Upstream builds dilations ``1, growth, ...`` and reverses them by default, in the encoder too.
    """

    def __init__(self, channels: int, depth: int, growth: int, activation: str, norm: str | None) -> None:
        super().__init__()
        dilations = [growth**level for level in reversed(range(depth))]
        self.model = nn.Sequential(*(ResConv1DBlock(channels, d, activation, norm) for d in dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """``[B, input_dim, T]`` -> ``[B, output_emb_width, T // 2**down_t]`` (floor at every level)."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        kernel, padding = 2 * cfg.stride_t, cfg.stride_t // 2
        layers: list[nn.Module] = [nn.Conv1d(cfg.input_dim, cfg.width, 3, 1, 1), nn.ReLU()]
        for _ in range(cfg.down_t):
            layers.append(nn.Sequential(
                nn.Conv1d(cfg.width, cfg.width, kernel, cfg.stride_t, padding),
                Resnet1D(cfg.width, cfg.depth, cfg.dilation_growth_rate, cfg.activation, cfg.norm),
            ))
        layers.append(nn.Conv1d(cfg.width, cfg.output_emb_width, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """``[B, output_emb_width, N]`` -> ``[B, input_dim, N * 2**down_t]`` (nearest upsampling + convs)."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.output_emb_width, cfg.width, 3, 1, 1), nn.ReLU()]
        for _ in range(cfg.down_t):
            layers.append(nn.Sequential(
                Resnet1D(cfg.width, cfg.depth, cfg.dilation_growth_rate, cfg.activation, cfg.norm),
                nn.Upsample(scale_factor=cfg.stride_t, mode="nearest"),
                nn.Conv1d(cfg.width, cfg.width, 3, 1, 1),
            ))
        layers += [nn.Conv1d(cfg.width, cfg.width, 3, 1, 1), nn.ReLU(),
                   nn.Conv1d(cfg.width, cfg.input_dim, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

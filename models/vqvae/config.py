"""Hyper-parameters of the T2M-GPT motion VQ-VAE, with named presets.

Field names follow the upstream argparse flags (``--nb-code``, ``--code-dim``, ``--down-t``, ...), so
a released config can be written down one to one. ``input_dim`` replaces upstream's ``dataname``
switch (263 for HumanML3D, 251 for KIT-ML).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "silu", "gelu")
NORMS = (None, "LN", "GN", "BN")
QUANTIZERS = ("ema_reset",)
GROUP_NORM_GROUPS = 32  # upstream GroupNorm(num_groups=32, ...)

# Upstream ``dataname`` values accepted by ``VQVAEConfig.from_dict`` and the input width they imply.
_UPSTREAM_INPUT_DIMS = {"t2m": 263, "kit": 251}


@dataclass
class VQVAEConfig:
    """Architecture of ``MotionVQVAE``; the defaults are the released HumanML3D tokenizer."""

    nb_code: int = 512
    code_dim: int = 512
    output_emb_width: int = 512
    down_t: int = 2
    stride_t: int = 2
    width: int = 512
    depth: int = 3
    dilation_growth_rate: int = 3
    activation: str = "relu"
    norm: str | None = None
    quantizer: str = "ema_reset"
    mu: float = 0.99
    input_dim: int = 263

    def __post_init__(self) -> None:
        positive = ("nb_code", "code_dim", "output_emb_width", "down_t", "width", "depth",
                    "dilation_growth_rate", "input_dim")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VQVAEConfig.{name} must be a positive integer, got {value!r}")
        if self.stride_t != 2:
            # The decoder upsamples by a fixed factor of 2 per level (as upstream), and the
            # kernel 2*stride / padding stride//2 downsampling only halves lengths exactly for stride 2.
            raise ValueError(f"VQVAEConfig.stride_t must be 2 (the T2M-GPT architecture), "
                             f"got {self.stride_t!r}")
        if self.code_dim != self.output_emb_width:
            raise ValueError(
                f"VQVAEConfig.code_dim ({self.code_dim}) must equal output_emb_width "
                f"({self.output_emb_width}): "
                "the quantizer works on the encoder output channels"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"VQVAEConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.norm not in NORMS:
            raise ValueError(f"VQVAEConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if self.norm == "GN" and self.width % GROUP_NORM_GROUPS:
            raise ValueError(f"VQVAEConfig.norm 'GN' uses {GROUP_NORM_GROUPS} groups; "
                             f"width {self.width} is not a multiple")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"VQVAEConfig.quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        if not 0.0 < float(self.mu) < 1.0:
            raise ValueError(f"VQVAEConfig.mu (EMA decay) must be in (0, 1), got {self.mu!r}")

    @property
    def unit_length(self) -> int:
        """Frames per code: the encoder downsamples time by ``stride_t ** down_t``."""
        return self.stride_t**self.down_t

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> VQVAEConfig:
        """Build from our stored dict or an upstream-style one (``dataname``/``nb_joints`` accepted).

        Unknown keys raise, so a typo in a config file is not silently ignored.
        """
        values = dict(values)
        dataname = values.pop("dataname", None)
        values.pop("nb_joints", None)
        if dataname is not None:
            if dataname not in _UPSTREAM_INPUT_DIMS:
                raise ValueError(f"unknown upstream dataname {dataname!r}; "
                                 f"expected one of {sorted(_UPSTREAM_INPUT_DIMS)}")
            implied = _UPSTREAM_INPUT_DIMS[dataname]
            if values.setdefault("input_dim", implied) != implied:
                raise ValueError(f"dataname {dataname!r} implies input_dim {implied}, "
                                 f"got {values['input_dim']}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown VQVAEConfig field(s) {unknown}; valid: {sorted(names)}")
        return cls(**values)


# The released T2M-GPT / Motion-Agent / IRG-MotionLLM tokenizers (argparse defaults of train_vq.py).
_RELEASED = dict(nb_code=512, code_dim=512, output_emb_width=512, down_t=2, stride_t=2, width=512, depth=3,
                 dilation_growth_rate=3, activation="relu", norm=None, quantizer="ema_reset", mu=0.99)

PRESETS: dict[str, dict[str, Any]] = {
    "humanml3d": {**_RELEASED, "input_dim": 263},
    "kit": {**_RELEASED, "input_dim": 251},
    # CPU-sized tokenizer for the toy pipeline: the released architecture (depth 3, growth 3, unit
    # length 4, 512 codes, so the LLM token layout is unchanged) at width 64: 0.39M parameters instead
    # of 19.7M. One AdamW step on 64 windows of 64 frames takes ~60-80 ms on 2 CPU cores, so ~1k steps
    # (~30 epochs of 2k clips of ~100 frames) fit in 1-2 minutes.
    "toy": {**_RELEASED, "code_dim": 64, "output_emb_width": 64, "width": 64, "input_dim": 263},
    # The configuration of fixtures/vqvae_small.pt.
    "small_fixture": {**_RELEASED, "nb_code": 64, "code_dim": 32, "output_emb_width": 32, "width": 32,
                      "input_dim": 263},
}


def get_vqvae_config(name: str, **overrides: Any) -> VQVAEConfig:
    """A preset by name (``humanml3d``, ``kit``, ``toy``, ``small_fixture``), optionally overridden."""
    if name not in PRESETS:
        raise KeyError(f"unknown VQ-VAE preset {name!r}; choose one of {sorted(PRESETS)}")
    return VQVAEConfig(**{**PRESETS[name], **overrides})

"""The frozen motion tokenizer: T2M-GPT's VQ-VAE, checkpoint-compatible with the released weights.

>>> from models.vqvae import get_vqvae_config, MotionVQVAE
>>> model = MotionVQVAE(get_vqvae_config("small_fixture")).eval()
>>> model.unit_length
4
"""

from models.vqvae.checkpoint import (
    check_state_dict,
    export_released,
    infer_config,
    load_vqvae,
    read_checkpoint,
    save_vqvae,
)
from models.vqvae.config import PRESETS, VQVAEConfig, get_vqvae_config
from models.vqvae.model import DecodedMotions, MotionVQVAE, VQVAEOutput
from models.vqvae.quantizer import EMAResetQuantizer

__all__ = [
    "PRESETS",
    "DecodedMotions",
    "EMAResetQuantizer",
    "MotionVQVAE",
    "VQVAEConfig",
    "VQVAEOutput",
    "check_state_dict",
    "export_released",
    "get_vqvae_config",
    "infer_config",
    "load_vqvae",
    "read_checkpoint",
    "save_vqvae",
]

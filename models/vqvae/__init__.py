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
from models.vqvae.evaluation import ReconstructionMetrics, evaluate_reconstruction, mpjpe
from models.vqvae.model import DecodedMotions, MotionVQVAE, VQVAEOutput
from models.vqvae.quantizer import EMAResetQuantizer
from models.vqvae.token_cache import TokenCache, build_token_cache, vq_weights_sha256
from models.vqvae.training import (
    MotionWindows,
    Normalization,
    TrainingRecipe,
    VQTrainer,
    load_normalization,
    stored_normalization,
    vq_objective,
)

__all__ = [
    "PRESETS",
    "DecodedMotions",
    "EMAResetQuantizer",
    "MotionVQVAE",
    "MotionWindows",
    "Normalization",
    "ReconstructionMetrics",
    "TokenCache",
    "TrainingRecipe",
    "VQTrainer",
    "VQVAEConfig",
    "VQVAEOutput",
    "build_token_cache",
    "check_state_dict",
    "evaluate_reconstruction",
    "export_released",
    "get_vqvae_config",
    "infer_config",
    "load_normalization",
    "load_vqvae",
    "mpjpe",
    "read_checkpoint",
    "save_vqvae",
    "stored_normalization",
    "vq_objective",
    "vq_weights_sha256",
]

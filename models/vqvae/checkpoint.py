"""Loading and saving VQ-VAE checkpoints in the released and in our own format.

Formats read by ``load_vqvae`` (always with ``torch.load(weights_only=True)``):

* released (T2M-GPT ``train_vq.py``, Motion-Agent, IRG-MotionLLM): ``{'net': state_dict}``;
* a bare state dict;
* ours: ``{'format': 'irg-motionllm/vqvae', 'net': state_dict, 'config': {...}, 'quantizer_ema': {...}}``
  (self-describing: the architecture and the codebook's EMA statistics travel with the weights).

Loading is strict; a mismatch raises one ``DataError`` listing every missing, unexpected and
mis-shaped key with shapes. Without a config the architecture is inferred from the tensor shapes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from models.common.errors import DataError
from models.common.io import atomic_torch_save
from models.vqvae.config import VQVAEConfig, get_vqvae_config
from models.vqvae.model import MotionVQVAE

logger = logging.getLogger(__name__)

FORMAT_NAME = "irg-motionllm/vqvae"
FORMAT_VERSION = 1
RELEASED_KEY = "net"
_RESERVED_KEYS = ("format", "format_version", RELEASED_KEY, "config", "quantizer_ema")

# Architecture settings that leave no trace in tensor shapes: assumed unless given.
_NOT_INFERABLE = {"dilation_growth_rate": 3, "activation": "relu", "mu": 0.99}

StateDict = Mapping[str, torch.Tensor]


def _source_label(source: str | Path | None) -> str | None:
    return None if source is None else str(source)


def read_checkpoint(
    path_or_state: str | Path | Mapping[str, Any], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any] | None]:
    """(state dict, stored config or None, quantizer EMA state or None) of any supported format."""
    source = None
    if isinstance(path_or_state, (str, Path)):
        source = Path(path_or_state)
        try:
            obj = torch.load(source, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # pickle errors of non weights-only files, truncated files, ...
            raise DataError(f"cannot read as a weights-only torch checkpoint ({type(err).__name__}: {err})",
                            path=source) from err
    else:
        obj = path_or_state
    if not isinstance(obj, Mapping):
        raise DataError(f"expected a dict checkpoint, got {type(obj).__name__}", path=_source_label(source))
    if RELEASED_KEY in obj:
        state, config, ema = obj[RELEASED_KEY], obj.get("config"), obj.get("quantizer_ema")
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, config, ema = obj, None, None
    else:
        raise DataError(f"no {RELEASED_KEY!r} state dict and not a bare state dict; "
                        f"top-level keys: {sorted(obj)[:20]}", path=_source_label(source))
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{RELEASED_KEY!r} must map key names to tensors", path=_source_label(source))
    return dict(state), (dict(config) if config is not None else None), ema


def _indices(state: StateDict, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in state if (m := regex.fullmatch(key))})


def infer_config(state_dict: StateDict, **assumed: Any) -> VQVAEConfig:
    """The ``VQVAEConfig`` whose shapes match ``state_dict`` (released key names).

    ``nb_code``, ``code_dim``, ``output_emb_width``, ``width``, ``input_dim``, ``down_t``, ``stride_t``,
    ``depth`` and BatchNorm come from shapes; ``dilation_growth_rate``, ``activation`` and ``mu``
    leave no trace and default to the released values unless passed in ``assumed`` (as must ``norm``
    when the blocks hold LayerNorm/GroupNorm weights, which look alike).
    """
    def need(key: str) -> torch.Tensor:
        if key not in state_dict:
            raise DataError(f"cannot infer the VQ-VAE config: no key {key!r} (pass an explicit config)")
        return state_dict[key]

    nb_code, code_dim = need("vqvae.quantizer.codebook").shape
    width, input_dim, _ = need("vqvae.encoder.model.0.weight").shape
    levels = _indices(state_dict, r"vqvae\.encoder\.model\.(\d+)\.0\.weight")
    if not levels:
        raise DataError("cannot infer the VQ-VAE config: "
                        "no downsampling levels 'vqvae.encoder.model.<i>.0.weight'")
    down_t = len(levels)
    stride_t = need(f"vqvae.encoder.model.{levels[0]}.0.weight").shape[-1] // 2
    depth = len(_indices(state_dict, rf"vqvae\.encoder\.model\.{levels[0]}\.1\.model\.(\d+)\.conv1\.weight"))
    output_emb_width = need(f"vqvae.encoder.model.{levels[-1] + 1}.weight").shape[0]

    values = {**_NOT_INFERABLE, **assumed}
    if "norm" not in assumed:
        if any(key.endswith(".norm1.running_mean") for key in state_dict):
            values["norm"] = "BN"
        elif any(key.endswith(".norm1.weight") for key in state_dict):
            raise DataError("the residual blocks have LayerNorm or GroupNorm weights, which the shapes "
                            "do not tell apart; pass norm='LN' or norm='GN' (or an explicit config)")
        else:
            values["norm"] = None
    config = VQVAEConfig(nb_code=nb_code, code_dim=code_dim, output_emb_width=output_emb_width, down_t=down_t,
                         stride_t=stride_t, width=width, depth=depth, input_dim=input_dim, **values)
    logger.info("inferred VQ-VAE config from shapes (assuming %s): %s",
                {k: values[k] for k in _NOT_INFERABLE}, config)
    return config


def check_state_dict(model: torch.nn.Module, state_dict: StateDict, source: str | Path | None = None) -> None:
    """Raise one ``DataError`` listing all missing, unexpected and mis-shaped keys (with shapes)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [k for k in expected
                 if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or misshaped):
        return
    lines = [f"state dict does not match the VQ-VAE: {len(missing)} missing, {len(unexpected)} unexpected, "
             f"{len(misshaped)} mis-shaped key(s)"]
    lines += [f"  missing    {k} {list(expected[k].shape)}" for k in missing]
    lines += [f"  unexpected {k} {list(state_dict[k].shape)}" for k in unexpected]
    lines += [f"  mis-shaped {k}: checkpoint {list(state_dict[k].shape)}, model {list(expected[k].shape)}"
              for k in misshaped]
    raise DataError("\n".join(lines), path=_source_label(source))


def _shape_hint(state: StateDict, config: VQVAEConfig) -> str:
    """A hint naming the config the tensors do fit, when it differs from the one asked for."""
    try:
        fits = infer_config(state)
    except (DataError, ValueError):
        return ""
    if fits == config:
        return ""
    diff = {k: v for k, v in fits.to_dict().items() if v != getattr(config, k)}
    return f"\nthe tensors fit a config with {diff}; pass that config (or none, to infer it from the shapes)"


def load_vqvae(
    path_or_state: str | Path | Mapping[str, Any],
    config: VQVAEConfig | str | None = None,
    map_location: str | torch.device = "cpu",
) -> MotionVQVAE:
    """A ``MotionVQVAE`` in eval mode from a checkpoint file or an in-memory checkpoint / state dict.

    The architecture is, in order of priority: ``config`` (a ``VQVAEConfig`` or preset name), the
    config stored in our format, or ``infer_config`` of the shapes. The codebook's EMA statistics are
    restored when stored, else restarted from the codebook, so training can continue from the weights.
    """
    source = path_or_state if isinstance(path_or_state, (str, Path)) else None
    state, stored_config, ema = read_checkpoint(path_or_state, map_location)
    if isinstance(config, str):
        config = get_vqvae_config(config)
    elif config is None and stored_config is not None:
        try:
            config = VQVAEConfig.from_dict(stored_config)
        except (TypeError, ValueError) as err:
            raise DataError(f"stored VQ-VAE config is invalid: {err}", path=_source_label(source),
                            field="config") from err
    elif config is None:
        config = infer_config(state)

    model = MotionVQVAE(config)
    try:
        check_state_dict(model, state, source)
    except DataError as err:
        raise DataError(err.message + _shape_hint(state, config), path=err.path) from None
    model.load_state_dict(state, strict=True)
    quantizer = model.vqvae.quantizer
    if ema is not None:
        quantizer.load_training_state(ema)
    else:
        quantizer.mark_initialized()
    return model.to(map_location).eval()


def _cpu_state_dict(model: MotionVQVAE) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_vqvae(model: MotionVQVAE, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write our self-describing format atomically.

    ``extra`` adds fields, e.g. ``step`` or normalisation statistics; the format's own keys are reserved.
    """
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        RELEASED_KEY: _cpu_state_dict(model),
        "config": model.config.to_dict(),
    }
    quantizer = model.vqvae.quantizer
    if quantizer.initialized:
        payload["quantizer_ema"] = quantizer.training_state()
    for key, value in (extra or {}).items():
        if key in _RESERVED_KEYS:
            raise ValueError(f"extra key {key!r} is reserved by the checkpoint format ({_RESERVED_KEYS})")
        payload[key] = value
    return atomic_torch_save(payload, path)


def export_released(model: MotionVQVAE, path: str | Path) -> Path:
    """Write exactly ``{'net': state_dict}``, the file T2M-GPT / Motion-Agent / IRG-MotionLLM load."""
    return atomic_torch_save({RELEASED_KEY: _cpu_state_dict(model)}, path)

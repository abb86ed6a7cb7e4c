"""The T2M feature extractor of Guo et al. 2022 ("text_mot_match"), checkpoint-compatible with ``finest.tar``.

Three modules, with exactly the parameter names and shapes of the released checkpoint
(``checkpoints/{t2m,kit}/text_mot_match/model/finest.tar``, keys ``movement_encoder``, ``text_encoder``,
``motion_encoder``):

- ``MovementConvEncoder``: two stride-2 convolutions, ``[B, T, D-4] -> [B, T//4, latent]``;
- ``TextEncoderBiGRUCo``: GloVe word vector + POS embedding -> BiGRU -> co-embedding;
- ``MotionEncoderBiGRUCo``: movement latents -> BiGRU -> co-embedding.

``T2MEvaluator`` bundles them. Both GRUs pack their input with ``enforce_sorted=False``, so inputs may
come in any length order and outputs always come back in input order; the numbers equal upstream's
(which requires descending caption lengths, and in Guo's original code sorts by motion length).
The foot-contact channels (last 4) are dropped before the movement encoder, as upstream does.

Typical use::

    evaluator = T2MEvaluator.load("checkpoints/t2m/text_mot_match/model/finest.tar", "humanml3d")
    text_emb, motion_emb = evaluator.get_co_embeddings(word_embs, pos_ohot, cap_lens, motions, m_lens)
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from evaluators.opt_file import read_opt_file
from models.common.errors import DataError
from models.common.io import atomic_torch_save

logger = logging.getLogger(__name__)

MODULE_KEYS = ("movement_encoder", "text_encoder", "motion_encoder")

ArrayLike = torch.Tensor | np.ndarray


@dataclass
class T2MEvaluatorConfig:
    """Sizes of the T2M evaluator (defaults: the released HumanML3D one, as upstream's wrapper sets them)."""

    dim_pose: int = 263
    dim_word: int = 300
    dim_pos_ohot: int = 15
    dim_text_hidden: int = 512
    dim_coemb_hidden: int = 512
    dim_movement_enc_hidden: int = 512
    dim_movement_latent: int = 512
    dim_motion_hidden: int = 1024
    unit_length: int = 4
    max_motion_length: int = 196
    max_text_len: int = 20
    # Trailing feature channels dropped before the movement encoder (HumanML3D/KIT foot contacts).
    foot_contact_dims: int = 4

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < (0 if field.name == "foot_contact_dims" else 1):
                raise ValueError(f"T2MEvaluatorConfig.{field.name} must be a positive int, got {value!r}")
        if self.foot_contact_dims >= self.dim_pose:
            raise ValueError(
                f"foot_contact_dims ({self.foot_contact_dims}) must be < dim_pose ({self.dim_pose})"
            )
        if self.unit_length != 4:
            raise ValueError(
                f"unit_length must be 4 (the movement encoder downsamples by 4), got {self.unit_length}"
            )

    @property
    def movement_input_dim(self) -> int:
        """Channels seen by the movement encoder (``dim_pose`` minus the foot contacts)."""
        return self.dim_pose - self.foot_contact_dims

    @classmethod
    def preset(cls, name: str) -> T2MEvaluatorConfig:
        """A named configuration: ``humanml3d``/``t2m``, ``kit`` or ``small`` (the golden-fixture sizes)."""
        try:
            return cls(**T2M_EVALUATOR_PRESETS[name])
        except KeyError:
            raise ValueError(
                f"unknown T2M evaluator preset {name!r}; choose one of {sorted(T2M_EVALUATOR_PRESETS)}"
            ) from None

    @classmethod
    def from_opt_file(cls, path: str | Path, dataset_name: str | None = None) -> T2MEvaluatorConfig:
        """Config as upstream's ``EvaluatorModelWrapper`` derives it from ``Comp_v6_KLD005/opt.txt``.

        The wrapper keeps only ``dim_movement_enc_hidden``, ``dim_movement_latent`` and ``unit_length``
        (and ``dataset_name``) from the file and forces every other size.
        """
        options = read_opt_file(path)
        dataset = dataset_name or options.get("dataset_name")
        if dataset not in ("t2m", "kit", "humanml3d"):
            raise DataError(f"dataset_name {dataset!r} is not t2m/kit; pass dataset_name", path=path)
        config = cls.preset(dataset)
        taken = {
            k: options[k]
            for k in ("dim_movement_enc_hidden", "dim_movement_latent", "unit_length")
            if k in options
        }
        return dataclasses.replace(config, **taken)


T2M_EVALUATOR_PRESETS: dict[str, dict[str, Any]] = {
    "humanml3d": {},
    "t2m": {},
    "kit": {"dim_pose": 251},
    "small": {
        "dim_text_hidden": 32,
        "dim_coemb_hidden": 24,
        "dim_movement_enc_hidden": 32,
        "dim_movement_latent": 16,
        "dim_motion_hidden": 32,
    },
}


def _init_weights(module: nn.Module) -> None:
    """Upstream init: xavier-normal Conv1d/Linear weights, zero biases (moot once weights are loaded)."""
    if isinstance(module, (nn.Conv1d, nn.Linear, nn.ConvTranspose1d)):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MovementConvEncoder(nn.Module):
    """``[B, T, input_size] -> [B, T//4, output_size]`` (two kernel-4, stride-2, padding-1 convolutions)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1),
            nn.Dropout(0.2, inplace=True),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1),
            nn.Dropout(0.2, inplace=True),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.out_net = nn.Linear(output_size, output_size)
        self.apply(_init_weights)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.main(inputs.permute(0, 2, 1)).permute(0, 2, 1)  # (B, T//4, output_size)
        return self.out_net(hidden)


class _BiGRUCoEncoder(nn.Module):
    """Shared BiGRU head: input embedding -> packed BiGRU (learned h0) -> [h_fwd ‖ h_bwd] -> MLP.

    ``pos_size`` adds the text encoder's POS embedding; it is registered first so that the state-dict
    key order is upstream's (``hidden, pos_emb, input_emb, gru, output_net``).
    """

    def __init__(
        self, input_size: int, hidden_size: int, output_size: int, pos_size: int | None = None
    ) -> None:
        super().__init__()
        if pos_size is not None:
            self.pos_emb = nn.Linear(pos_size, input_size)
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden_size * 2, hidden_size),
            nn.LayerNorm(hidden_size),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden_size, output_size),
        )
        for layer in (self.input_emb, self.output_net, getattr(self, "pos_emb", None)):
            if layer is not None:
                layer.apply(_init_weights)
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def _encode(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.input_emb(inputs)  # (B, T, H)
        h0 = self.hidden.repeat(1, inputs.shape[0], 1)  # (2, B, H)
        packed = pack_padded_sequence(
            embedded, lengths.detach().to("cpu", torch.int64), batch_first=True, enforce_sorted=False
        )
        _, last = self.gru(packed, h0)  # (2, B, H), back in input order
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class TextEncoderBiGRUCo(_BiGRUCoEncoder):
    """``word_embs [B, L, word]``, ``pos_onehot [B, L, pos]``, ``cap_lens [B]`` -> ``[B, output_size]``."""

    def __init__(self, word_size: int, pos_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__(word_size, hidden_size, output_size, pos_size=pos_size)

    def forward(
        self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, cap_lens: torch.Tensor
    ) -> torch.Tensor:
        return self._encode(word_embs + self.pos_emb(pos_onehot), cap_lens)


class MotionEncoderBiGRUCo(_BiGRUCoEncoder):
    """``movements [B, T', input_size]`` and ``m_lens [B]`` (in movement steps) -> ``[B, output_size]``."""

    def forward(self, inputs: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        return self._encode(inputs, m_lens)


class CheckpointMismatchError(DataError):
    """A checkpoint whose state dicts do not match the evaluator architecture (keys or shapes)."""


def state_dict_mismatches(module: nn.Module, state: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between ``module.state_dict()`` and ``state`` (empty if they match)."""
    own = module.state_dict()
    problems = [f"missing {key} {tuple(own[key].shape)}" for key in own if key not in state]
    problems += [f"unexpected {key}" for key in state if key not in own]
    for key, value in state.items():
        if key in own and tuple(getattr(value, "shape", ())) != tuple(own[key].shape):
            problems.append(
                f"shape of {key}: checkpoint {tuple(getattr(value, 'shape', ()))}, "
                f"model {tuple(own[key].shape)}"
            )
    return problems


def load_module_states(
    modules: Mapping[str, nn.Module], checkpoint: Mapping[str, Any], path: str | Path | None = None
) -> None:
    """Strictly load ``checkpoint[name]`` into each module; one error lists every problem per module."""
    report = []
    for name, module in modules.items():
        state = checkpoint.get(name)
        if not isinstance(state, Mapping):
            report.append(f"[{name}] missing from the checkpoint (top-level keys: {sorted(checkpoint)})")
            continue
        report += [f"[{name}] {problem}" for problem in state_dict_mismatches(module, state)]
    if report:
        raise CheckpointMismatchError(
            "checkpoint does not match the architecture:\n  " + "\n  ".join(report), path=path
        )
    for name, module in modules.items():
        module.load_state_dict(checkpoint[name], strict=True)


def load_checkpoint_safely(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on CPU; a clear ``DataError`` for a non-tensor-only file.

    ``finest.tar`` also stores Adam states, ``epoch`` and ``iter``: these are plain containers and load
    without executing any pickled code; callers simply ignore them.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("checkpoint file not found", path=path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise DataError(
            f"refusing to unpickle non-tensor objects (weights_only=True): {err}", path=path
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise DataError(f"cannot read checkpoint ({err})", path=path) from err
    if not isinstance(checkpoint, dict):
        raise DataError(f"expected a dict checkpoint, got {type(checkpoint).__name__}", path=path)
    return checkpoint


def _as_float_tensor(values: ArrayLike, device: torch.device) -> torch.Tensor:
    tensor = torch.as_tensor(values)
    return tensor.to(device=device, dtype=torch.float32)


def _as_lengths(values: ArrayLike | list[int], name: str, batch: int) -> torch.Tensor:
    lengths = torch.as_tensor(values).to("cpu")
    if lengths.dtype.is_floating_point or lengths.ndim != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"{name} must be a 1-D integer array of length {batch}, got "
            f"{lengths.dtype} {tuple(lengths.shape)}"
        )
    return lengths.to(torch.int64)


def length_sort_order(m_lens: ArrayLike | list[int]) -> np.ndarray:
    """Upstream's ``align_idx``: ``np.argsort(m_lens)[::-1]`` (longest first; ties in reversed stable order).

    Guo's original wrapper and the MultiModality helper ``get_motion_embeddings`` return embeddings in
    this order; ``emb[length_sort_order(m_lens)]`` reproduces them from our input-order outputs.
    """
    return np.argsort(np.asarray(torch.as_tensor(m_lens).cpu().tolist()))[::-1].copy()


class T2MEvaluator(nn.Module):
    """The three T2M evaluator modules plus the embedding API used by the evaluation protocol."""

    def __init__(self, config: T2MEvaluatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or T2MEvaluatorConfig()
        c = self.config
        self.movement_encoder = MovementConvEncoder(
            c.movement_input_dim, c.dim_movement_enc_hidden, c.dim_movement_latent
        )
        self.text_encoder = TextEncoderBiGRUCo(
            c.dim_word, c.dim_pos_ohot, c.dim_text_hidden, c.dim_coemb_hidden
        )
        self.motion_encoder = MotionEncoderBiGRUCo(
            c.dim_movement_latent, c.dim_motion_hidden, c.dim_coemb_hidden
        )

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def load(
        cls,
        path: str | Path,
        config: T2MEvaluatorConfig | str | None = None,
        device: str | torch.device = "cpu",
    ) -> T2MEvaluator:
        """Build from ``config`` (config or preset name; default humanml3d), load ``path`` strictly, eval.

        The file is read with ``weights_only=True``; optimizer states, ``epoch`` and ``iter`` are ignored.
        A checkpoint saved by :meth:`save` carries its config, which is used when ``config`` is None.
        """
        checkpoint = load_checkpoint_safely(path)
        if isinstance(config, str):
            config = T2MEvaluatorConfig.preset(config)
        elif config is None:
            stored = checkpoint.get("config")
            config = T2MEvaluatorConfig(**stored) if isinstance(stored, dict) else T2MEvaluatorConfig()
        evaluator = cls(config)
        evaluator.load_checkpoint_dict(checkpoint, path=path)
        logger.info("loaded T2M evaluator %s (epoch %s)", path, checkpoint.get("epoch", "?"))
        return evaluator.to(device).eval().requires_grad_(False)

    def load_checkpoint_dict(self, checkpoint: Mapping[str, Any], path: str | Path | None = None) -> None:
        """Strictly load a ``finest.tar``-layout dict; ``CheckpointMismatchError`` lists every problem."""
        load_module_states({name: getattr(self, name) for name in MODULE_KEYS}, checkpoint, path=path)

    def save(self, path: str | Path, epoch: int | None = None, iteration: int | None = None) -> Path:
        """Write weights in the ``finest.tar`` layout (plus our ``config``), atomically."""
        checkpoint: dict[str, Any] = {name: getattr(self, name).state_dict() for name in MODULE_KEYS}
        checkpoint.update(
            epoch=-1 if epoch is None else int(epoch),
            iter=-1 if iteration is None else int(iteration),
            config=dataclasses.asdict(self.config),
        )
        return atomic_torch_save(checkpoint, path)

    # ------------------------------------------------------------------ embeddings
    @property
    def device(self) -> torch.device:
        return self.motion_encoder.hidden.device

    def _require_eval(self) -> None:
        if self.training:
            raise RuntimeError(
                "T2MEvaluator is in training mode (dropout active); call .eval() before embedding"
            )

    @torch.inference_mode()
    def text_embeddings(
        self,
        word_embs: ArrayLike,
        pos_ohot: ArrayLike,
        cap_lens: ArrayLike | list[int],
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Text co-embeddings ``[B, dim_coemb_hidden]`` in input order.

        ``word_embs [B, L, dim_word]``, ``pos_ohot [B, L, dim_pos_ohot]``, ``cap_lens [B]`` (1..L, any order).
        """
        self._require_eval()
        words = _as_float_tensor(word_embs, self.device)
        pos = _as_float_tensor(pos_ohot, self.device)
        c = self.config
        if (
            words.ndim != 3
            or words.shape[-1] != c.dim_word
            or pos.shape != (*words.shape[:2], c.dim_pos_ohot)
        ):
            raise ValueError(
                f"expected word_embs [B, L, {c.dim_word}] and pos_ohot [B, L, {c.dim_pos_ohot}], "
                f"got {tuple(words.shape)} and {tuple(pos.shape)}"
            )
        lengths = _as_lengths(cap_lens, "cap_lens", words.shape[0])
        if lengths.numel() and (lengths.min() < 1 or lengths.max() > words.shape[1]):
            raise ValueError(f"cap_lens must lie in [1, {words.shape[1]}], got {lengths.tolist()}")
        step = batch_size or max(1, words.shape[0])
        chunks = [
            self.text_encoder(words[i : i + step], pos[i : i + step], lengths[i : i + step])
            for i in range(0, words.shape[0], step)
        ]
        return torch.cat(chunks) if chunks else words.new_zeros(0, c.dim_coemb_hidden)

    @torch.inference_mode()
    def motion_embeddings(
        self, motions: ArrayLike, m_lens: ArrayLike | list[int], batch_size: int | None = None
    ) -> torch.Tensor:
        """Motion co-embeddings ``[B, dim_coemb_hidden]`` in input order.

        ``motions [B, T, dim_pose]``: evaluator-normalised features, zero-padded after each length (upstream
        pads to T = 196). ``m_lens [B]`` in frames; the GRU runs ``m_len // unit_length`` steps (must be ≥ 1).
        """
        self._require_eval()
        c = self.config
        motion = _as_float_tensor(motions, self.device)
        if motion.ndim != 3 or motion.shape[-1] != c.dim_pose:
            raise ValueError(f"expected motions [B, T, {c.dim_pose}], got {tuple(motion.shape)}")
        lengths = _as_lengths(m_lens, "m_lens", motion.shape[0])
        steps = torch.div(lengths, c.unit_length, rounding_mode="floor")
        max_steps = motion.shape[1] // c.unit_length
        if steps.numel() and (steps.min() < 1 or steps.max() > max_steps):
            raise ValueError(
                f"m_lens // {c.unit_length} must lie in [1, {max_steps}] for T={motion.shape[1]}; "
                f"got m_lens {lengths.tolist()}"
            )
        channels = motion[..., : c.movement_input_dim]
        step = batch_size or max(1, motion.shape[0])
        chunks = [
            self.motion_encoder(self.movement_encoder(channels[i : i + step]), steps[i : i + step])
            for i in range(0, motion.shape[0], step)
        ]
        return torch.cat(chunks) if chunks else motion.new_zeros(0, c.dim_coemb_hidden)

    def get_co_embeddings(
        self,
        word_embs: ArrayLike,
        pos_ohot: ArrayLike,
        cap_lens: ArrayLike | list[int],
        motions: ArrayLike,
        m_lens: ArrayLike | list[int],
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(text_emb, motion_emb)``, both ``[B, dim_coemb_hidden]`` in input order (upstream's call)."""
        return (
            self.text_embeddings(word_embs, pos_ohot, cap_lens, batch_size),
            self.motion_embeddings(motions, m_lens, batch_size),
        )

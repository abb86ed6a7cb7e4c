"""Training Guo et al.'s T2M evaluator, as his ``train_decomp_v3.py`` and ``train_tex_mot_match.py`` do.

Two phases, each a steppable, checkpointable trainer that also runs under ``torchrun`` (DDP):

1. **Movement autoencoder** (:class:`MovementPretrainer`): ``MovementConvEncoder`` (features without the 4
   foot contacts -> latents every 4 frames) and :class:`MovementConvDecoder` (latents -> all features)
   on random snippets of ``window_size`` frames (Guo: 24), shuffled over every snippet position of every
   training motion (Guo's ``MotionDatasetV2``). Loss = L1 reconstruction + ``lambda_sparsity`` ·
   mean|z| + ``lambda_smooth`` · L1(z[t+1], z[t]) (both 0.001), two Adam optimisers (lr 1e-4).
2. **Text-motion matching** (:class:`MatchingTrainer`): the text and motion BiGRU encoders on top of the
   frozen pretrained movement encoder (eval mode, detached), trained on the evaluation-style sampling
   (random caption, single/single/double length coin, random crop, pad to 196) with Guo's margin-based
   contrastive loss: positives ``mean d²``, negatives — the batch's motions shifted by a random offset —
   ``mean max(0, margin - d)²`` (margin 10), two Adam optimisers (lr 1e-4), gradient norm clipped at 0.5
   per encoder. Validation: the same loss and R-precision/MM-Dist on the val split; the best checkpoint
   is saved in the ``finest.tar`` layout (``text_encoder``, ``motion_encoder``, ``movement_encoder``,
   ``opt_text_encoder``, ``opt_motion_encoder``, ``epoch``, ``iter`` + our ``config``).

Upstream quirks kept by default, with a switch: the negative shift is ``randint(0, B-1)``, i.e. in
``[0, B-2]``, so a step with shift 0 pushes every text away from its *own* motion
(``negative_shift="upstream"``; ``"nonzero"`` draws from ``[1, B-1]``); the best checkpoint is chosen by
validation loss (``select_by="val_loss"``; ``"r_precision"`` uses val top-3 R-precision + top-1).
Guo's contrastive loss broadcasts ``[B, 1]`` distances against ``[B]`` labels to a ``[B, B]`` matrix
before the mean; since all labels of a call are equal, the value is the plain mean used here.

Normalisation (spec §2.6): Guo normalises with the dataset's ``Mean``/``Std`` after dividing the std of
the 4 root channels and the 4 foot-contact channels by ``feat_bias=5`` — in place, in both the train and
the val dataset constructors, so effectively by 25 — and saves the result as ``meta/{mean,std}.npy``;
that is the released evaluator's normalisation. :func:`evaluator_statistics` reproduces it with
``feat_bias=25``; ``feat_bias=1`` keeps the dataset's statistics unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import clip_grad_norm_

from data_engine.datasets.reader import MotionDataset
from evaluators.metrics import r_precision
from evaluators.protocol import T2MTestSet, TestRepeat
from evaluators.t2m_extractor import MovementConvEncoder, T2MEvaluator
from models.common.errors import DataError
from models.common.io import atomic_torch_save
from models.motion.layout import feature_layout

logger = logging.getLogger(__name__)

TRAINING_STATE_KEY = "training_state"
NEGATIVE_SHIFTS = ("upstream", "nonzero")
SELECTION_RULES = ("val_loss", "r_precision")


# ---------------------------------------------------------------------------------------------- statistics
def evaluator_statistics(
    mean: np.ndarray, std: np.ndarray, joints_num: int, feat_bias: float = 25.0
) -> tuple[np.ndarray, np.ndarray]:
    """Guo's evaluator normalisation: ``std`` of the root (``[0:4]``) and foot-contact (last 4) channels
    divided by ``feat_bias`` (25 = Guo's ``feat_bias`` 5 applied twice; 1 = unchanged)."""
    if feat_bias <= 0:
        raise ValueError(f"feat_bias must be > 0, got {feat_bias}")
    layout = feature_layout(joints_num)
    std = np.array(std, np.float32, copy=True)
    if std.shape != (layout.dim,):
        raise ValueError(
            f"expected std of shape [{layout.dim}] for {joints_num} joints, got {list(std.shape)}"
        )
    std[layout.root] /= feat_bias
    std[layout.foot_contact] /= feat_bias
    return np.asarray(mean, np.float32).copy(), std


# ---------------------------------------------------------------------------------------------- recipes
@dataclass
class MovementRecipe:
    """Movement autoencoder training (Guo's ``TrainDecompOptions`` + README ``--window_size 24``)."""

    window_size: int = 24
    batch_size: int = 128
    lr: float = 1e-4
    epochs: int = 270  # an epoch visits every snippet position once (Guo's MotionDatasetV2)
    max_steps: int | None = None  # stop earlier than ``epochs`` (toy runs)
    lambda_sparsity: float = 0.001
    lambda_smooth: float = 0.001
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window_size < 4 or self.window_size % 4:
            raise ValueError(f"window_size must be a positive multiple of 4, got {self.window_size}")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"MovementRecipe.{name} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("MovementRecipe.max_steps must be >= 1 or None")


@dataclass
class MatchingRecipe:
    """Text-motion matching (defaults: Guo's ``TrainTexMotMatchOptions`` + README ``--batch_size 8``)."""

    batch_size: int = 8
    lr: float = 1e-4
    epochs: int = 300
    max_steps: int | None = None
    negative_margin: float = 10.0
    grad_clip: float = 0.5
    negative_shift: str = "upstream"
    select_by: str = "val_loss"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError("MatchingRecipe.batch_size must be >= 2 (negatives come from the batch)")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("MatchingRecipe.epochs must be >= 1 and max_steps >= 1 or None")
        if self.negative_shift not in NEGATIVE_SHIFTS:
            raise ValueError(f"negative_shift must be one of {NEGATIVE_SHIFTS}, got {self.negative_shift!r}")
        if self.select_by not in SELECTION_RULES:
            raise ValueError(f"select_by must be one of {SELECTION_RULES}, got {self.select_by!r}")


# ---------------------------------------------------------------------------------------------- modules
def _xavier_init(module: nn.Module) -> None:
    """Guo's ``init_weight``: xavier-normal weights of (transposed) convolutions and linears, zero biases."""
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MovementConvDecoder(nn.Module):
    """``[B, T', latent] -> [B, 4 T', output]``: two stride-2 transposed convolutions + a linear layer
    (Guo's decoder; parameter names ``main.0``, ``main.2``, ``out_net``)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose1d(input_size, hidden_size, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose1d(hidden_size, output_size, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.out_net = nn.Linear(output_size, output_size)
        self.apply(_xavier_init)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(latents.permute(0, 2, 1)).permute(0, 2, 1))


class MovementAutoencoder(nn.Module):
    """Encoder + decoder: ``windows [B, W, D] -> (reconstruction [B, W, D], latents [B, W/4, L])``."""

    def __init__(
        self, encoder: MovementConvEncoder, decoder: MovementConvDecoder, foot_contact_dims: int = 4
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.foot_contact_dims = foot_contact_dims

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = windows[..., : windows.shape[-1] - self.foot_contact_dims]
        latents = self.encoder(kept)
        return self.decoder(latents), latents


def movement_losses(
    reconstruction: torch.Tensor, target: torch.Tensor, latents: torch.Tensor, recipe: MovementRecipe
) -> dict[str, torch.Tensor]:
    """Guo's ``DecompTrainerV3`` objective: L1 reconstruction, latent sparsity and temporal smoothness."""
    rec = F.l1_loss(reconstruction, target)
    sparsity = latents.abs().mean()
    smooth = F.l1_loss(latents[:, 1:], latents[:, :-1])
    loss = rec + recipe.lambda_sparsity * sparsity + recipe.lambda_smooth * smooth
    return {"loss": loss, "rec": rec, "sparsity": sparsity, "smooth": smooth}


class MatchingModule(nn.Module):
    """The trainable forward of the matching phase: ``(text_emb, motion_emb)`` of a batch.

    The movement encoder is frozen (eval mode, no gradients), as in Guo's ``TextMotionMatchTrainer``.
    """

    def __init__(self, evaluator: T2MEvaluator) -> None:
        super().__init__()
        self.text_encoder = evaluator.text_encoder
        self.motion_encoder = evaluator.motion_encoder
        self.movement_encoder = evaluator.movement_encoder.eval().requires_grad_(False)
        self.config = evaluator.config

    def train(self, mode: bool = True) -> MatchingModule:
        super().train(mode)
        self.movement_encoder.eval()
        return self

    def forward(
        self,
        word_embs: torch.Tensor,
        pos_ohot: torch.Tensor,
        sent_lens: torch.Tensor,
        motions: torch.Tensor,
        m_lens: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            movements = self.movement_encoder(motions[..., : self.config.movement_input_dim])
        steps = torch.div(m_lens, self.config.unit_length, rounding_mode="floor")
        return self.text_encoder(word_embs, pos_ohot, sent_lens), self.motion_encoder(movements, steps)


def contrastive_terms(
    text_emb: torch.Tensor, motion_emb: torch.Tensor, shift: int, margin: float
) -> dict[str, torch.Tensor]:
    """Guo's margin loss: positives ``mean d²``; negatives (motions rolled by ``shift``): ``relu(m-d)²``."""
    positive = F.pairwise_distance(text_emb, motion_emb)
    index = (torch.arange(len(motion_emb), device=motion_emb.device) + shift) % len(motion_emb)
    negative = F.pairwise_distance(text_emb, motion_emb[index])
    loss_pos = positive.pow(2).mean()
    loss_neg = torch.clamp(margin - negative, min=0).pow(2).mean()
    return {"loss": loss_pos + loss_neg, "loss_pos": loss_pos, "loss_neg": loss_neg}


def negative_shift(batch_size: int, rng: np.random.Generator, mode: str) -> int:
    """Shift of the negatives: ``"upstream"`` ``randint(0, B-1)``, i.e. ``[0, B-2]`` (0 = the positives
    themselves); ``"nonzero"`` ``[1, B-1]``."""
    if mode == "upstream":
        return int(rng.integers(0, batch_size - 1))
    return int(rng.integers(1, batch_size))


# ---------------------------------------------------------------------------------------------- data
class SnippetSampler:
    """Normalised motions of a split, cut into shuffled batches of fixed-length snippets.

    An epoch is one pass over every snippet start of every motion (``T - window + 1`` per motion;
    motions shorter than the window are skipped and counted). Epoch ``e``'s order is
    ``default_rng([seed, e]).permutation``, so batches depend only on ``(seed, step)``.
    """

    def __init__(self, motions: list[np.ndarray], window_size: int, seed: int) -> None:
        usable = [m for m in motions if len(m) >= window_size]
        self.skipped = len(motions) - len(usable)
        if not usable:
            raise DataError(f"no motion has at least {window_size} frames")
        self.window_size = window_size
        self.seed = seed
        lengths = np.array([len(m) for m in usable], np.int64)
        self.frames = torch.from_numpy(np.concatenate(usable).astype(np.float32, copy=False))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        counts = lengths - window_size + 1
        self.starts = np.concatenate(
            [offset + np.arange(count) for offset, count in zip(offsets, counts, strict=True)]
        )
        self.num_motions = len(usable)
        self._plan: tuple[int, np.ndarray] | None = None

    @classmethod
    def from_dataset(
        cls,
        dataset: MotionDataset,
        split: str,
        mean: np.ndarray,
        std: np.ndarray,
        window_size: int,
        seed: int,
    ) -> SnippetSampler:
        motions = [(dataset.load_features(i) - mean) / std for i in dataset.split_ids(split)]
        sampler = cls(motions, window_size, seed)
        logger.info(
            "%s split %r: %d motions, %d snippets of %d frames (%d shorter motions skipped)",
            dataset.root,
            split,
            sampler.num_motions,
            len(sampler),
            window_size,
            sampler.skipped,
        )
        return sampler

    def __len__(self) -> int:
        return len(self.starts)

    def batches_per_epoch(self, batch_size: int) -> int:
        count = len(self) // batch_size
        if count == 0:
            raise DataError(f"{len(self)} snippets cannot fill one batch of {batch_size}")
        return count

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """``[batch_size // world_size, window, D]`` snippets of 1-based ``step`` for ``rank``."""
        epoch, index = divmod(step - 1, self.batches_per_epoch(batch_size))
        if self._plan is None or self._plan[0] != epoch:
            self._plan = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self)))
        per_rank = batch_size // world_size
        first = index * batch_size + rank * per_rank
        starts = self.starts[self._plan[1][first : first + per_rank]]
        return self.frames[torch.from_numpy(starts[:, None] + np.arange(self.window_size))]

    def fixed_batches(self, batch_size: int, count: int) -> list[torch.Tensor]:
        """Up to ``count`` deterministic batches (validation)."""
        order = np.random.default_rng([self.seed, 10**6]).permutation(len(self))
        batches = []
        for i in range(min(count, max(1, len(self) // batch_size))):
            starts = self.starts[order[i * batch_size : (i + 1) * batch_size]]
            batches.append(self.frames[torch.from_numpy(starts[:, None] + np.arange(self.window_size))])
        return batches


# ---------------------------------------------------------------------------------------------- helpers
def _mean_over_ranks(values: dict[str, float], world_size: int) -> dict[str, float]:
    if world_size == 1:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(list(values.values()), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return dict(zip(values, (tensor.cpu() / world_size).tolist(), strict=True))


def _wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def _check_world(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} is not divisible by the world size {world_size}")


# ---------------------------------------------------------------------------------------------- phase 1
class MovementPretrainer:
    """Phase 1: steppable, resumable movement-autoencoder training (see the module docstring)."""

    def __init__(
        self,
        autoencoder: MovementAutoencoder,
        snippets: SnippetSampler,
        recipe: MovementRecipe,
        *,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        ddp: bool = False,
    ) -> None:
        _check_world(recipe.batch_size, world_size)
        if snippets.window_size != recipe.window_size:
            raise ValueError(
                f"snippets are {snippets.window_size} frames, the recipe says {recipe.window_size}"
            )
        self.device = torch.device(device)
        self.autoencoder = autoencoder.to(self.device).train()
        self.module: nn.Module = _wrap_ddp(self.autoencoder, self.device) if ddp else self.autoencoder
        self.snippets = snippets
        self.recipe = recipe
        self.rank, self.world_size = rank, world_size
        self.opt_encoder = torch.optim.Adam(autoencoder.encoder.parameters(), lr=recipe.lr)
        self.opt_decoder = torch.optim.Adam(autoencoder.decoder.parameters(), lr=recipe.lr)
        self.step = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.snippets.batches_per_epoch(self.recipe.batch_size)

    @property
    def num_steps(self) -> int:
        total = self.recipe.epochs * self.steps_per_epoch
        return min(total, self.recipe.max_steps) if self.recipe.max_steps else total

    @property
    def done(self) -> bool:
        return self.step >= self.num_steps

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def train_step(self) -> dict[str, float]:
        step = self.step + 1
        windows = self.snippets.batch(step, self.recipe.batch_size, self.rank, self.world_size).to(
            self.device
        )
        reconstruction, latents = self.module(windows)
        terms = movement_losses(reconstruction, windows, latents, self.recipe)
        self.opt_encoder.zero_grad(set_to_none=True)
        self.opt_decoder.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.opt_encoder.step()
        self.opt_decoder.step()
        self.step = step
        return _mean_over_ranks({k: float(v.detach()) for k, v in terms.items()}, self.world_size)

    @torch.no_grad()
    def evaluate(self, batches: list[torch.Tensor]) -> dict[str, float]:
        """Mean losses over fixed batches, in eval mode (dropout off)."""
        self.autoencoder.eval()
        sums: dict[str, float] = {}
        for batch in batches:
            windows = batch.to(self.device)
            reconstruction, latents = self.autoencoder(windows)
            terms = movement_losses(reconstruction, windows, latents, self.recipe)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        self.autoencoder.train()
        return {key: value / max(len(batches), 1) for key, value in sums.items()}

    def checkpoint(self) -> dict[str, Any]:
        """Guo's ``Decomp_*/model/latest.tar`` layout plus our training state."""
        return {
            "movement_enc": self.autoencoder.encoder.state_dict(),
            "movement_dec": self.autoencoder.decoder.state_dict(),
            "opt_movement_enc": self.opt_encoder.state_dict(),
            "opt_movement_dec": self.opt_decoder.state_dict(),
            "ep": self.epoch,
            "total_it": self.step,
            TRAINING_STATE_KEY: {
                "step": self.step,
                "recipe": asdict(self.recipe),
                "snippets": len(self.snippets),
                "torch_rng": torch.get_rng_state(),
            },
        }

    def save(self, path: str | Path) -> Path:
        return atomic_torch_save(self.checkpoint(), path)

    def load(self, checkpoint: Mapping[str, Any], path: str | Path | None = None) -> None:
        state = checkpoint.get(TRAINING_STATE_KEY)
        if state is None:
            raise DataError("not a resumable movement checkpoint (no training state)", path=path)
        if state["snippets"] != len(self.snippets) or state["recipe"]["seed"] != self.recipe.seed:
            raise DataError(
                f"checkpoint was trained on other data ({state['snippets']} snippets, seed "
                f"{state['recipe']['seed']}); this run has {len(self.snippets)}, seed {self.recipe.seed}",
                path=path,
            )
        self.autoencoder.encoder.load_state_dict(checkpoint["movement_enc"])
        self.autoencoder.decoder.load_state_dict(checkpoint["movement_dec"])
        self.opt_encoder.load_state_dict(checkpoint["opt_movement_enc"])
        self.opt_decoder.load_state_dict(checkpoint["opt_movement_dec"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])


# ---------------------------------------------------------------------------------------------- phase 2
@dataclass
class MatchingValidation:
    """Validation numbers of the matching phase (losses over batches; R-precision over pools of 32)."""

    loss: float
    loss_pos: float
    loss_neg: float
    r_precision: tuple[float, ...] = ()
    matching_score: float = float("nan")

    def score(self, rule: str) -> float:
        """Higher is better: ``-loss`` or top-3 + top-1 R-precision."""
        if rule == "val_loss" or not self.r_precision:
            return -self.loss
        return self.r_precision[2] + self.r_precision[0]

    def to_dict(self) -> dict[str, float]:
        out = {"loss": self.loss, "loss_pos": self.loss_pos, "loss_neg": self.loss_neg}
        for k, value in enumerate(self.r_precision):
            out[f"R_precision_top{k + 1}"] = value
        if self.r_precision:
            out["matching_score"] = self.matching_score
        return out


class MatchingTrainer:
    """Phase 2: steppable, resumable text-motion matching (see the module docstring).

    ``train_set`` is a :class:`~evaluators.protocol.T2MTestSet` over the training split: epoch ``e`` is
    ``train_set.sample(default_rng([seed, e]))`` cut into batches (drop last), exactly the evaluation-time
    sampling, as Guo trains on ``Text2MotionDatasetV2``.
    """

    def __init__(
        self,
        evaluator: T2MEvaluator,
        train_set: T2MTestSet,
        recipe: MatchingRecipe,
        *,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        ddp: bool = False,
    ) -> None:
        _check_world(recipe.batch_size, world_size)
        if len(train_set) < recipe.batch_size:
            raise DataError(f"{len(train_set)} training items cannot fill a batch of {recipe.batch_size}")
        self.device = torch.device(device)
        self.evaluator = evaluator.to(self.device)
        self.train_set = train_set
        self.recipe = recipe
        self.rank, self.world_size = rank, world_size
        self.matching = MatchingModule(self.evaluator).train()
        self.module: nn.Module = _wrap_ddp(self.matching, self.device) if ddp else self.matching
        self.opt_text = torch.optim.Adam(evaluator.text_encoder.parameters(), lr=recipe.lr)
        self.opt_motion = torch.optim.Adam(evaluator.motion_encoder.parameters(), lr=recipe.lr)
        self.step = 0
        self.best_score = -math.inf
        self.best_step = 0
        self._epoch_repeat: TestRepeat | None = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_set) // self.recipe.batch_size

    @property
    def num_steps(self) -> int:
        total = self.recipe.epochs * self.steps_per_epoch
        return min(total, self.recipe.max_steps) if self.recipe.max_steps else total

    @property
    def done(self) -> bool:
        return self.step >= self.num_steps

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def _tensors(self, batch: Any) -> tuple[torch.Tensor, ...]:
        d = self.device
        return (
            torch.from_numpy(batch.word_embs).to(d),
            torch.from_numpy(batch.pos_ohot).to(d),
            torch.from_numpy(batch.sent_lens),
            torch.from_numpy(batch.motions).to(d),
            torch.from_numpy(batch.lengths).to(d),
        )

    def train_step(self) -> dict[str, float]:
        step = self.step + 1
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        if self._epoch_repeat is None or self._epoch_repeat.index != epoch:
            self._epoch_repeat = self.train_set.sample(
                np.random.default_rng([self.recipe.seed, epoch]), index=epoch
            )
        per_rank = self.recipe.batch_size // self.world_size
        first = index * self.recipe.batch_size + self.rank * per_rank
        batch = self._epoch_repeat.batch(self._epoch_repeat.order[first : first + per_rank])
        text_emb, motion_emb = self.module(*self._tensors(batch))
        shift_rng = np.random.default_rng([self.recipe.seed, epoch, index, self.rank])
        terms = contrastive_terms(
            text_emb,
            motion_emb,
            negative_shift(per_rank, shift_rng, self.recipe.negative_shift),
            self.recipe.negative_margin,
        )
        self.opt_text.zero_grad(set_to_none=True)
        self.opt_motion.zero_grad(set_to_none=True)
        terms["loss"].backward()
        clip_grad_norm_(self.evaluator.text_encoder.parameters(), self.recipe.grad_clip)
        clip_grad_norm_(self.evaluator.motion_encoder.parameters(), self.recipe.grad_clip)
        self.opt_text.step()
        self.opt_motion.step()
        self.step = step
        return _mean_over_ranks({k: float(v.detach()) for k, v in terms.items()}, self.world_size)

    def validate(
        self, val_set: T2MTestSet, repeats: int = 1, seed: int = 0, pool_size: int = 32
    ) -> MatchingValidation:
        """Loss (batches of ``batch_size``) and R-precision/MM-Dist (pools of ``pool_size``) on ``val_set``,
        averaged over ``repeats`` fixed samples (the same every validation, so numbers are comparable)."""
        self.evaluator.eval()
        losses: list[dict[str, float]] = []
        rates, scores = [], []
        batch_size = self.recipe.batch_size
        for r in range(repeats):
            repeat = val_set.sample(np.random.default_rng([seed, 10**6, r]), index=r)
            texts, motions = [], []
            for start in range(0, len(repeat.order), 256):  # bounded memory on real validation splits
                batch = repeat.batch(repeat.order[start : start + 256])
                texts.append(self.evaluator.text_embeddings(batch.word_embs, batch.pos_ohot, batch.sent_lens))
                motions.append(self.evaluator.motion_embeddings(batch.motions, batch.lengths))
            text, motion = torch.cat(texts).cpu(), torch.cat(motions).cpu()
            shift_rng = np.random.default_rng([seed, 10**6, r, 1])
            for i in range(0, len(text) - batch_size + 1, batch_size):
                terms = contrastive_terms(
                    text[i : i + batch_size],
                    motion[i : i + batch_size],
                    negative_shift(batch_size, shift_rng, self.recipe.negative_shift),
                    self.recipe.negative_margin,
                )
                losses.append({k: float(v) for k, v in terms.items()})
            if len(text) >= pool_size:
                result = r_precision(text.numpy(), motion.numpy(), pool_size)
                rates.append(result.rates)
                scores.append(result.matching_score)
        self.matching.train()
        if not losses:
            raise DataError(
                f"validation split has {len(val_set)} items, fewer than one batch of {batch_size}"
            )
        mean = {key: float(np.mean([entry[key] for entry in losses])) for key in losses[0]}
        return MatchingValidation(
            mean["loss"],
            mean["loss_pos"],
            mean["loss_neg"],
            tuple(float(x) for x in np.mean(rates, axis=0)) if rates else (),
            float(np.mean(scores)) if scores else float("nan"),
        )

    def record_validation(self, result: MatchingValidation) -> bool:
        """Remember the best score; True when ``result`` is a new best (save ``finest.tar`` then)."""
        score = result.score(self.recipe.select_by)
        if score > self.best_score:
            self.best_score, self.best_step = score, self.step
            return True
        return False

    def checkpoint(self, with_state: bool = True) -> dict[str, Any]:
        """The ``finest.tar`` layout (+ ``config``; + our training state for ``latest.tar``)."""
        ev = self.evaluator
        payload: dict[str, Any] = {
            "text_encoder": ev.text_encoder.state_dict(),
            "motion_encoder": ev.motion_encoder.state_dict(),
            "movement_encoder": ev.movement_encoder.state_dict(),
            "opt_text_encoder": self.opt_text.state_dict(),
            "opt_motion_encoder": self.opt_motion.state_dict(),
            "epoch": self.epoch,
            "iter": self.step,
            "config": asdict(ev.config),
        }
        if with_state:
            payload[TRAINING_STATE_KEY] = {
                "step": self.step,
                "best_score": self.best_score,
                "best_step": self.best_step,
                "recipe": asdict(self.recipe),
                "train_items": len(self.train_set),
            }
        return payload

    def save(self, path: str | Path, with_state: bool = True) -> Path:
        return atomic_torch_save(self.checkpoint(with_state), path)

    def load(self, checkpoint: Mapping[str, Any], path: str | Path | None = None) -> None:
        state = checkpoint.get(TRAINING_STATE_KEY)
        if state is None:
            raise DataError("not a resumable matching checkpoint (no training state)", path=path)
        if state["train_items"] != len(self.train_set) or state["recipe"]["seed"] != self.recipe.seed:
            raise DataError(
                f"checkpoint was trained on other data ({state['train_items']} items, seed "
                f"{state['recipe']['seed']}); this run has {len(self.train_set)}, seed {self.recipe.seed}",
                path=path,
            )
        self.evaluator.load_checkpoint_dict(checkpoint, path=path)
        self.opt_text.load_state_dict(checkpoint["opt_text_encoder"])
        self.opt_motion.load_state_dict(checkpoint["opt_motion_encoder"])
        self.step = int(state["step"])
        self.best_score = float(state["best_score"])
        self.best_step = int(state["best_step"])


__all__ = [
    "MatchingModule",
    "MatchingRecipe",
    "MatchingTrainer",
    "MatchingValidation",
    "MovementAutoencoder",
    "MovementConvDecoder",
    "MovementPretrainer",
    "MovementRecipe",
    "SnippetSampler",
    "contrastive_terms",
    "evaluator_statistics",
    "movement_losses",
    "negative_shift",
]

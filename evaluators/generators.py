"""What the evaluation protocol asks of a motion generator, two ground-truth generators, and the
conversions into the evaluator's feature space.

A generator turns captions (plus the ground-truth frame counts, which some methods condition on) into
motions. It returns a :class:`GeneratedBatch` saying which space its features are in:

- ``"raw"``: de-normalised features (``new_joint_vecs`` units); the protocol converts them with the
  evaluator's statistics, ``x_eval = (raw - mean_eval) / std_eval`` (spec §2.6);
- ``"evaluator"``: already normalised with the evaluator's statistics (what IRG's VQ decoder emits when the
  VQ was trained with the evaluator's ``meta`` stats, as the released one was).

A model normalised with other statistics converts with :func:`renormalize` (MotionGPT's ``renorm4t2m``)
or simply de-normalises and returns ``"raw"``.

Generators that need the test item itself (the ground-truth reference row) implement
``generate_items(batch)`` instead; the protocol calls it when present.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from models.common.errors import DataError

if TYPE_CHECKING:
    from evaluators.protocol import TestBatch

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("raw", "evaluator")


@dataclass
class GeneratedBatch:
    """Motions for one batch of captions, in input order.

    ``motions``: each ``[T_i, D]`` float32 with ``T_i >= unit_length`` frames (longer than the evaluator's
    196 frames is cropped, and counted). ``info``: optional per-sample extras that end up in the logs and
    in the report's generator statistics (numbers are averaged, booleans counted), e.g. ``num_gens`` or
    ``parse_fallback``.
    """

    motions: list[np.ndarray]
    normalization: str
    info: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.info is not None and len(self.info) != len(self.motions):
            raise ValueError(f"{len(self.info)} info entries for {len(self.motions)} motions")


@runtime_checkable
class MotionGenerator(Protocol):
    """A text-to-motion method under evaluation."""

    def generate(self, captions: Sequence[str], lengths: np.ndarray) -> GeneratedBatch:
        """Motions for ``captions``; ``lengths`` are the ground-truth frame counts of the test items."""
        ...


@runtime_checkable
class ItemAwareGenerator(Protocol):
    """A generator that reads the test items themselves (ground truth, baselines)."""

    def generate_items(self, batch: TestBatch) -> GeneratedBatch: ...


class GroundTruthGenerator:
    """Returns each test item's own ground-truth motion (this repeat's crop): the reference row.

    With it, generated == real, so FID is 0 and R-precision/MM-Dist/Diversity equal their real values.
    """

    def generate_items(self, batch: TestBatch) -> GeneratedBatch:
        return GeneratedBatch(
            [batch.motions[i, : batch.lengths[i]] for i in range(len(batch.lengths))], "evaluator"
        )

    def generate(self, captions: Sequence[str], lengths: np.ndarray) -> GeneratedBatch:
        raise TypeError("GroundTruthGenerator needs the test items; run it through run_protocol")


class RandomGroundTruthGenerator:
    """Returns the ground-truth motion of a uniformly drawn test item (possibly the item itself).

    Upstream's ``pure_random_flip`` baseline: R-precision at chance level with a realistic FID. The draw
    for item ``i`` in repeat ``r`` comes from ``default_rng([seed, r, i])``, so it does not depend on the
    batch size or on how items are split over processes.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def generate_items(self, batch: TestBatch) -> GeneratedBatch:
        repeat = batch.repeat
        size = len(repeat.test_set)
        partners = np.array(
            [np.random.default_rng([self.seed, repeat.index, int(i)]).integers(size) for i in batch.indices]
        )
        other = repeat.batch(partners)
        return GeneratedBatch(
            [other.motions[i, : other.lengths[i]] for i in range(len(partners))],
            "evaluator",
            info=[{"partner": str(name)} for name in other.names],
        )

    def generate(self, captions: Sequence[str], lengths: np.ndarray) -> GeneratedBatch:
        raise TypeError("RandomGroundTruthGenerator needs the test items; run it through run_protocol")


# ---------------------------------------------------------------------------------------------- conversions
def renormalize(
    features: np.ndarray,
    from_mean: np.ndarray,
    from_std: np.ndarray,
    to_mean: np.ndarray,
    to_std: np.ndarray,
) -> np.ndarray:
    """``((x * from_std + from_mean) - to_mean) / to_std`` (MotionGPT's ``renorm4t2m``), float32."""
    raw = np.asarray(features, np.float32) * np.asarray(from_std, np.float32) + np.asarray(
        from_mean, np.float32
    )
    return ((raw - np.asarray(to_mean, np.float32)) / np.asarray(to_std, np.float32)).astype(np.float32)


@dataclass(frozen=True)
class EvaluatorSpace:
    """The evaluator's feature normalisation (``mean``/``std`` over its first ``dim`` feature channels)."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, np.float32).reshape(-1)
        std = np.asarray(self.std, np.float32).reshape(-1)
        if mean.shape != std.shape or (std <= 0).any() or not np.isfinite(mean).all():
            raise ValueError(f"mean {mean.shape} / std {std.shape} must match, be finite, with std > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """Raw ``[..., D >= dim]`` -> ``(raw[..., :dim] - mean) / std`` (float32).

        Evaluators over a prefix of the features (MARDM: the first 67) take the leading channels.
        """
        if raw.shape[-1] < self.dim:
            raise ValueError(f"features have {raw.shape[-1]} channels, the evaluator needs {self.dim}")
        return ((raw[..., : self.dim] - self.mean) / self.std).astype(np.float32, copy=False)

    def denormalize(self, features: np.ndarray) -> np.ndarray:
        return (features * self.std + self.mean).astype(np.float32, copy=False)

    def to_evaluator(self, motion: np.ndarray, normalization: str) -> np.ndarray:
        """One motion in ``normalization`` space -> evaluator space."""
        if normalization == "raw":
            return self.normalize(motion)
        if motion.shape[-1] != self.dim:
            raise ValueError(
                f"evaluator-normalised motions must have exactly {self.dim} channels, got {motion.shape[-1]}"
            )
        return motion.astype(np.float32, copy=False)


@dataclass
class PreparedMotions:
    """Generated motions padded for the evaluator: ``motions [B, max_frames, dim]``, ``lengths [B]``."""

    motions: np.ndarray
    lengths: np.ndarray
    cropped: int  # motions longer than max_frames, cropped to it (upstream's ``pred[:, :196]``)


def prepare_generated(
    generated: GeneratedBatch,
    space: EvaluatorSpace,
    names: Sequence[str],
    captions: Sequence[str],
    *,
    max_frames: int = 196,
    unit_length: int = 4,
) -> PreparedMotions:
    """Check, convert, crop and zero-pad a generator's output (zeros in evaluator space, as upstream).

    Raises ``DataError`` naming the test item for a wrong count, a non-``[T, D]`` or non-finite array, or a
    motion shorter than one unit (``unit_length`` frames; the evaluator runs ``T // unit_length`` GRU steps
    and cannot embed an empty motion — map failed generations to a fallback motion before returning, as
    upstream's ``[0]`` code does).
    """
    if not isinstance(generated, GeneratedBatch):
        raise TypeError(f"generators must return a GeneratedBatch, got {type(generated).__name__}")
    if len(generated.motions) != len(names):
        raise DataError(f"generator returned {len(generated.motions)} motions for {len(names)} captions")
    out = np.zeros((len(names), max_frames, space.dim), np.float32)
    lengths = np.zeros(len(names), np.int64)
    cropped = 0
    for i, raw_motion in enumerate(generated.motions):
        motion = np.asarray(raw_motion)
        where = f"generated motion for item {names[i]!r} (caption {captions[i]!r})"
        if motion.ndim != 2:
            raise DataError(f"{where} must be [T, D], got shape {list(motion.shape)}")
        if motion.shape[0] < unit_length:
            raise DataError(f"{where} has {motion.shape[0]} frames; at least {unit_length} (one unit) needed")
        if not np.isfinite(motion).all():
            raise DataError(f"{where} contains NaN or Inf")
        try:
            converted = space.to_evaluator(motion, generated.normalization)
        except ValueError as err:
            raise DataError(f"{where}: {err}") from err
        if len(converted) > max_frames:
            cropped += 1
            converted = converted[:max_frames]
        out[i, : len(converted)] = converted
        lengths[i] = len(converted)
    return PreparedMotions(out, lengths, cropped)


__all__ = [
    "NORMALIZATIONS",
    "EvaluatorSpace",
    "GeneratedBatch",
    "GroundTruthGenerator",
    "ItemAwareGenerator",
    "MotionGenerator",
    "PreparedMotions",
    "RandomGroundTruthGenerator",
    "prepare_generated",
    "renormalize",
]

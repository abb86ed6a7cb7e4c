"""SFT data: annotation records -> resolved samples -> cached motion codes -> token ids and labels.

One item of :class:`SFTDataset` is produced as upstream's ``Text2MotionDataset.__getitem__`` +
``TextProcessor`` do, with three differences that matter:

* **Motions come from the token cache** (``models.vqvae.token_cache``), not from the VQ-VAE at every step:
  each motion reference ``{motion_name, f_tag, to_tag}`` becomes the cached span
  ``(motion_id, int(f_tag * fps), int(to_tag * fps))`` (whole clip for ``f_tag >= to_tag``) of the id
  parsed with the dataset's rules (``000123``, mirrored ``M000123``, decorated ``A_000123``, KIT-ML
  ``01234``), and one of its crop offsets is drawn per access, exactly where upstream drew its random
  crop. The codes equal upstream's encoder output for that crop.
* **Per-sample determinism.** Every random choice of an item (candidate, crop offsets, text and
  template variants, CoT rounds) is drawn by ``RandomPolicy`` from a ``random.Random`` seeded with
  ``(seed, epoch, index)``. An item is therefore the same whatever the number of DataLoader workers,
  the batch order or a resume; the batch sampler passes ``(epoch, index)`` keys so workers need no
  epoch bookkeeping. (Upstream drew from one global stream, so items depended on everything read
  before them.)
* **Missing data fails loudly, up front.** The constructor checks every motion reference of every
  candidate against the cache and raises a ``DataError`` naming the annotation file, record, field and
  motion (upstream crashed mid-epoch on a missing ``.npy``). Sequences longer than ``max_length``
  (upstream ``max_tgt_len`` 2048, silently truncated) are truncated, skipped (kept in the batch with
  every label ignored, so shapes and distributed steps stay in lockstep) or raise, and are counted.

Batching: :class:`SFTCollator` pads on the right (labels ``-100``) and reports token/padding counts;
:class:`SFTBatchSampler` shuffles per epoch and optionally groups by an estimated length inside
mega-batches (as HF ``group_by_length``), sharding each global batch over the ranks.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from data_engine.annotations.sampling import RandomPolicy, ResolvedSample, resolve_record
from data_engine.annotations.schema import AnnotationRecord, Assessment, MotionRef, parse_motion_id
from data_engine.datasets.spec import DatasetSpec
from models.common.errors import DataError
from models.llm.prompts import TemplateStore, find_placeholders
from models.llm.sequences import (
    IGNORE_INDEX,
    PLAN_SENTENCES,
    SequenceOptions,
    TrainingSequence,
    render_sequence,
    tokenize_sequence,
    used_motion_keys,
)
from models.llm.vocab import MotionVocab

logger = logging.getLogger(__name__)

OVERFLOW_POLICIES = ("truncate", "skip", "error")
Span = tuple[str, int, int | None]


# ----------------------------------------------------------------------------------------------------
# Motion references -> token-cache spans


class MotionCodeSource:
    """Annotation motion references resolved against a token cache (``TokenCache``-like object).

    ``cache`` must offer ``variants(motion_id, start, end)``, ``codes(motion_id, start, end, offset)``,
    ``frames(motion_id)``, ``folder`` and ``metadata['unit_length']``.
    """

    def __init__(self, cache: Any, spec: DatasetSpec) -> None:
        self.cache = cache
        self.spec = spec
        self.unit_length = int(cache.metadata.get("unit_length", spec.unit_length))
        self._spans: dict[MotionRef, Span] = {}

    def span(self, ref: MotionRef) -> Span:
        """``(motion_id, start_frame, end_frame | None)`` of a reference (``None``: the whole clip)."""
        span = self._spans.get(ref)
        if span is None:
            motion_id = parse_motion_id(ref.motion_name, self.spec.id_digits).stem
            frames = ref.frame_span(self.spec.fps)
            span = (motion_id, 0, None) if frames is None else (motion_id, frames[0], frames[1])
            self._spans[ref] = span
        return span

    def variants(self, ref: MotionRef) -> int:
        return self.cache.variants(*self.span(ref))

    def codes(self, ref: MotionRef, offset: int) -> np.ndarray:
        motion_id, start, end = self.span(ref)
        return self.cache.codes(motion_id, start, end, offset)

    def num_codes(self, ref: MotionRef) -> int:
        """Codes per crop variant (``span_frames // unit_length``), without reading them."""
        motion_id, start, end = self.span(ref)
        frames = self.cache.frames(motion_id)
        stop = frames if end is None else min(end, frames)
        return max(stop - start, 0) // self.unit_length

    def has(self, ref: MotionRef) -> bool:
        return self.span(ref) in self.cache


def annotation_spans(records: Sequence[AnnotationRecord], spec: DatasetSpec) -> list[Span]:
    """Every distinct cache span the records reference (e.g. ``extra_spans`` for the cache builder)."""
    spans: set[Span] = set()
    for record in records:
        for candidate in record.candidates:
            for ref in candidate.motions.values():
                if ref is None:
                    continue
                motion_id = parse_motion_id(ref.motion_name, spec.id_digits).stem
                frames = ref.frame_span(spec.fps)
                spans.add((motion_id, 0, None) if frames is None else (motion_id, *frames))
    return sorted(spans, key=lambda s: (s[0], s[1], -1 if s[2] is None else s[2]))


def _motion_field(record: AnnotationRecord, candidate: int, key: str) -> str:
    prefix = f"candidate_motion_text[{candidate}]." if record.from_candidate_list else ""
    return f"{prefix}motions.{key}"


def check_motions_available(records: Sequence[AnnotationRecord], source: MotionCodeSource) -> int:
    """Raise a ``DataError`` (file, record, field, motion) unless every reference is in the cache.

    Returns the number of references checked. The error also counts all missing references.
    """
    checked, missing = 0, []
    for record in records:
        for c, candidate in enumerate(record.candidates):
            for key, ref in candidate.motions.items():
                if ref is None:
                    continue
                checked += 1
                try:
                    present = source.has(ref)
                except ValueError as err:  # unparsable id for this dataset (e.g. 6 digits for KIT-ML)
                    raise DataError(
                        f"{err} (dataset {source.spec.name} uses {source.spec.id_digits}-digit ids)",
                        path=record.source,
                        record=f"#{record.index} (id={record.id!r})",
                        field=_motion_field(record, c, key) + ".motion_name",
                    ) from None
                if not present:
                    missing.append((record, c, key, ref))
    if missing:
        record, c, key, ref = missing[0]
        motion_id, start, end = source.span(ref)
        span = "whole clip" if end is None else f"frames [{start}, {end})"
        raise DataError(
            f"motion {ref.motion_name!r} (cache id {motion_id!r}, {span}) is not in the token cache "
            f"{source.cache.folder}; {len(missing)} of {checked} motion references are missing. Build the "
            "cache for these annotations (prepare/build_token_cache.py; annotation sub-clips go in as "
            "extra spans) or check --data-root/--dataname",
            path=record.source,
            record=f"#{record.index} (id={record.id!r})",
            field=_motion_field(record, c, key),
        )
    return checked


# ----------------------------------------------------------------------------------------------------
# The dataset


@dataclass(frozen=True)
class SFTDataOptions:
    """How items are drawn and tokenised. ``max_length`` is upstream's ``max_tgt_len``."""

    seed: int = 123
    max_length: int = 2048
    on_overflow: Literal["truncate", "skip", "error"] = "truncate"
    sequence: SequenceOptions = field(default_factory=SequenceOptions)

    def __post_init__(self) -> None:
        if self.on_overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {self.on_overflow!r}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")


@dataclass(frozen=True, slots=True)
class SFTExample:
    """One tokenised item. ``skipped``: longer than ``max_length`` under ``on_overflow='skip'`` (all
    labels ignored); ``truncated``: cut to ``max_length``; ``full_length``: tokens before either."""

    input_ids: list[int]
    labels: list[int]
    index: int
    epoch: int
    task: str
    full_length: int
    truncated: bool = False
    skipped: bool = False


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random stream of item ``index`` in ``epoch`` (string seeds hash with SHA-512: stable across
    processes and Python versions, independent of ``PYTHONHASHSEED``)."""
    return random.Random(f"sft/{seed}/{epoch}/{index}")


class SFTDataset(torch.utils.data.Dataset):
    """Annotation records as tokenised training items (see the module docstring).

    Index with an int (epoch 0 draws) or with ``(epoch, index)`` as :class:`SFTBatchSampler` does.
    """

    def __init__(
        self,
        records: Sequence[AnnotationRecord],
        source: MotionCodeSource,
        tokenizer: Any,
        vocab: MotionVocab,
        options: SFTDataOptions | None = None,
        templates: TemplateStore | None = None,
        check_motions: bool = True,
    ) -> None:
        if not records:
            raise DataError("no annotation records to train on")
        self.records = list(records)
        self.source = source
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.options = options or SFTDataOptions()
        self.templates = templates or TemplateStore.load()
        if check_motions:
            checked = check_motions_available(self.records, source)
            logger.info(
                "%d records: all %d motion references are in the token cache", len(self.records), checked
            )
        self._lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.records)

    @staticmethod
    def _key(key: int | tuple[int, int]) -> tuple[int, int]:
        if isinstance(key, tuple):
            return int(key[0]), int(key[1])
        return 0, int(key)

    def resolve(self, index: int, epoch: int = 0) -> ResolvedSample:
        """The record with every per-access choice made for ``(epoch, index)``."""
        policy = RandomPolicy(sample_rng(self.options.seed, epoch, index))
        return resolve_record(self.records[index], policy, self.templates, crop_variants=self.source.variants)

    def motion_codes(self, sample: ResolvedSample) -> dict[str, np.ndarray]:
        """Cached codes of the motions the sequence uses (drawn crop offsets)."""
        codes = {}
        for key in used_motion_keys(sample):
            ref = sample.motions.get(key)
            if ref is not None:
                codes[key] = self.source.codes(ref, sample.crop_offsets[key])
        return codes

    def sequence(self, index: int, epoch: int = 0) -> TrainingSequence:
        """The rendered text sequence of ``(epoch, index)`` (prompt + response pieces)."""
        sample = self.resolve(index, epoch)
        return render_sequence(sample, self.motion_codes(sample), self.options.sequence)

    def __getitem__(self, key: int | tuple[int, int]) -> SFTExample:
        epoch, index = self._key(key)
        sequence = self.sequence(index, epoch)
        overflow = self.options.on_overflow
        tokens = tokenize_sequence(
            sequence,
            self.tokenizer,
            self.vocab,
            max_length=self.options.max_length,
            on_overflow="raise" if overflow == "error" else "truncate",
        )
        labels = tokens.labels
        if tokens.truncated and overflow == "skip":
            labels = [IGNORE_INDEX] * len(labels)
        return SFTExample(
            input_ids=tokens.input_ids,
            labels=labels,
            index=index,
            epoch=epoch,
            task=self.records[index].task,
            full_length=tokens.full_length,
            truncated=tokens.truncated and overflow == "truncate",
            skipped=tokens.truncated and overflow == "skip",
        )

    # ----- length estimates for grouping ------------------------------------------------------------

    @property
    def estimated_lengths(self) -> np.ndarray:
        """Approximate token count per record (expected over its random choices), computed once."""
        if self._lengths is None:
            self._lengths = estimate_lengths(self.records, self.source, self.tokenizer, self.templates)
        return self._lengths


def _chars_per_token(tokenizer: Any, texts: Sequence[str]) -> float:
    sample = [t for t in texts if t][:256]
    if not sample:
        return 4.0
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    return max(sum(map(len, sample)) / max(sum(map(len, ids)), 1), 0.5)


def _text_chars(value: Any) -> float:
    if isinstance(value, str):
        return float(len(value))
    if isinstance(value, Assessment):
        return float(len(value.assessment) + len(value.refinement) + 30)
    return float(np.mean([len(v) for v in value]))


def estimate_lengths(
    records: Sequence[AnnotationRecord],
    source: MotionCodeSource,
    tokenizer: Any,
    templates: TemplateStore,
) -> np.ndarray:
    """Expected token counts: text characters / measured characters-per-token + motion codes + tags.

    Template keys count their mean variant length; list-valued texts their mean; each candidate is
    equally likely. CoT records count the goal motion, analysis and assessment in full and half of the
    intermediate rounds (upstream draws 0-4 rounds uniformly). Only the ordering matters for grouping.
    """
    keys = templates.keys
    mean_template = {k: float(np.mean([len(v) for v in templates.variants(k)])) for k in keys}
    cpt = _chars_per_token(tokenizer, [v for k in keys for v in templates.variants(k)])
    plan_chars = float(sum(len(s) + 16 for s in PLAN_SENTENCES.values()))
    lengths = np.empty(len(records), dtype=np.float64)
    for i, record in enumerate(records):
        turn_chars = 0.0
        used = set(find_placeholders(record.human)) | set(find_placeholders(record.gpt))
        for turn in (record.system, record.human):
            turn_chars += len(turn)
            for key in keys:
                if key in turn:
                    turn_chars += turn.count(key) * (mean_template[key] - len(key))
                    used |= templates.placeholders(key)
        per_candidate = []
        for candidate in record.candidates:
            chars, codes = turn_chars, 0.0
            for key, value in candidate.texts.items():
                if record.is_cot or key in used:
                    weight = 0.5 if "Intermediate" in key else 1.0
                    chars += weight * (_text_chars(value) - len(key))
            for key, ref in candidate.motions.items():
                if ref is not None and (record.is_cot or key in used):
                    weight = 0.5 if "Intermediate" in key else 1.0
                    codes += weight * (source.num_codes(ref) + 2)
            if record.is_cot:
                chars += plan_chars * 2
            per_candidate.append(max(chars, 0.0) / cpt + codes)
        lengths[i] = 2.0 + float(np.mean(per_candidate))
    return lengths


# ----------------------------------------------------------------------------------------------------
# Collation


class SFTCollator:
    """Right-pads items into ``input_ids``/``labels`` (-100)/``attention_mask`` tensors plus counts.

    ``stats`` holds python ints: ``samples``, ``tokens`` (real tokens), ``padded_tokens`` (B x L),
    ``supervised`` (labels != -100, before the causal shift), ``max_length``, ``truncated``, ``skipped``.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: Sequence[SFTExample]) -> dict[str, Any]:
        lengths = [len(e.input_ids) for e in examples]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = math.ceil(width / self.pad_to_multiple_of) * self.pad_to_multiple_of
        count = len(examples)
        input_ids = torch.full((count, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((count, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((count, width), dtype=torch.long)
        for row, example in enumerate(examples):
            n = lengths[row]
            input_ids[row, :n] = torch.as_tensor(example.input_ids, dtype=torch.long)
            labels[row, :n] = torch.as_tensor(example.labels, dtype=torch.long)
            attention_mask[row, :n] = 1
        stats = {
            "samples": count,
            "tokens": sum(lengths),
            "padded_tokens": count * width,
            "supervised": int((labels != IGNORE_INDEX).sum()),
            "max_length": max(lengths),
            "truncated": sum(e.truncated for e in examples),
            "skipped": sum(e.skipped for e in examples),
        }
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            "indices": [e.index for e in examples],
            "tasks": [e.task for e in examples],
            "stats": stats,
        }


# ----------------------------------------------------------------------------------------------------
# Batch sampling


class SFTBatchSampler(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """Per-epoch shuffled batches of ``(epoch, index)`` keys for one rank, optionally length-grouped.

    Each epoch: a permutation drawn from ``(seed, epoch)``; with ``group_by_length`` it is cut into
    mega-batches of ``mega_batch_mult`` global batches, each sorted by estimated length (longest first),
    as HF's ``group_by_length``. The permutation is then cut into global batches of
    ``batch_size * world_size`` items; the global batches are shuffled (the one holding the longest
    item goes first, so memory problems show at step 0) and rank ``r`` takes items ``r, r + W, ...`` of
    each (ranks see similar lengths).

    Sharding without duplicates: an incomplete last global batch is split the same way (micro-batches
    then differ in size by at most one); only when it has fewer items than ranks are those
    ``< world_size`` items left out of the epoch (a different random set each epoch). No item is ever
    repeated to fill a batch (upstream's ``DistributedSampler`` padded by repeating items).
    """

    def __init__(
        self,
        lengths: Sequence[float] | np.ndarray,
        batch_size: int,
        *,
        group_by_length: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        mega_batch_mult: int = 50,
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.lengths = np.asarray(lengths, dtype=np.float64)
        if len(self.lengths) < world_size:
            raise ValueError(f"{len(self.lengths)} items cannot feed {world_size} ranks")
        self.batch_size = batch_size
        self.group_by_length = group_by_length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.mega_batch_mult = mega_batch_mult
        self.epoch = 0
        self.start_batch = 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def dropped_per_epoch(self) -> int:
        """Items left out of each epoch (``len % global_batch`` when that is below ``world_size``)."""
        rest = len(self.lengths) % self.global_batch
        return rest if rest < self.world_size else 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch; ``start_batch`` skips the first batches (resume inside an epoch)."""
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def __len__(self) -> int:
        """Batches per rank per epoch."""
        return (len(self.lengths) - self.dropped_per_epoch + self.global_batch - 1) // self.global_batch

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's global batches (dataset indices), in iteration order, identical on every rank."""
        generator = np.random.Generator(np.random.PCG64([self.seed, epoch, 0x5F7]))
        order = generator.permutation(len(self.lengths))
        size = self.global_batch
        if self.group_by_length:
            mega = size * self.mega_batch_mult
            parts = []
            for start in range(0, len(order), mega):
                chunk = order[start : start + mega]
                parts.append(chunk[np.argsort(-self.lengths[chunk], kind="stable")])
            order = np.concatenate(parts)
        usable = len(order) - self.dropped_per_epoch
        batches = [order[start : min(start + size, usable)] for start in range(0, usable, size)]
        shuffle = generator.permutation(len(batches))
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b]].max())
        shuffle = np.concatenate([[longest], shuffle[shuffle != longest]])
        return [batches[b] for b in shuffle]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        for batch in self.global_batches(epoch)[self.start_batch :]:
            mine = batch[self.rank :: self.world_size]
            yield [(epoch, int(i)) for i in mine]


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Mapping[int, int] | Sequence[int]) -> float:
    """Share of pad positions when each batch is right-padded to its longest item."""
    total = real = 0
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        total += len(sizes) * max(sizes)
        real += sum(sizes)
    return 1.0 - real / total if total else 0.0


def task_counts(records: Sequence[AnnotationRecord]) -> dict[str, int]:
    """Records per task label (for the run log)."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.task] = counts.get(record.task, 0) + 1
    return counts

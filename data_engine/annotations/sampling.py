"""Per-access choices of a training sample: candidate, text variants, template variants, CoT rounds.

Upstream draws all of these from Python's global ``random`` in a fixed order each time a record is
read (``Text2MotionDataset.__getitem__`` then ``build_context_unified_mogen_cot``):

1. the ``candidate_motion_text`` entry (records with candidates only);
2. one crop offset per non-null motion (upstream's motion loader; only when the caller supplies
   ``crop_variants``, since motions here come from a token cache);
3. one choice per list-valued text, in dict order;
4. 36 template choices: for each of the 18 template keys in file order, the system turn then the user
   turn, even for keys the turns do not contain;
5. CoT records: the number of intermediate rounds, then (if > 0) a sample of that many intermediate keys.

:class:`RandomPolicy` makes exactly these calls on a ``random.Random``, so ``random.Random(123)``
reproduces upstream's seeded draws; :class:`FirstVariantPolicy` takes index 0 everywhere (the
deterministic policy of the golden fixtures). :func:`resolve_record` never modifies the record: upstream
deleted ``candidate_motion_text`` from its stored annotation after the first draw (freezing the
candidate when a worker reads an index twice); here every access draws afresh.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from data_engine.annotations.schema import AnnotationRecord, Assessment, MotionRef
from models.llm.prompts import INTERMEDIATE_MOTION_RE, TemplateStore

NO_REFINEMENT_ANSWERS = ("No refinement needed.", "No refinements needed.")


class SamplingPolicy(Protocol):
    """The choices ``resolve_record`` asks for; each returns an index into ``range(count)``."""

    def candidate(self, count: int) -> int: ...

    def crop_offset(self, count: int) -> int: ...

    def text_variant(self, key: str, count: int) -> int: ...

    def template_variant(self, key: str, turn: str, count: int) -> int: ...

    def cot_rounds(self, max_rounds: int) -> int:
        """Number of intermediate rounds in ``0..max_rounds``."""
        ...

    def intermediate_keys(self, population: Sequence[str], k: int) -> list[str]:
        """``k`` distinct keys of ``population`` (any order; they are sorted afterwards)."""
        ...


class FirstVariantPolicy:
    """Index 0 for every choice; CoT records get ``min(cot_rounds, available)`` rounds, the first keys."""

    def __init__(self, cot_rounds: int = 0) -> None:
        if cot_rounds < 0:
            raise ValueError(f"cot_rounds must be >= 0, got {cot_rounds}")
        self.rounds = cot_rounds

    def candidate(self, count: int) -> int:
        return 0

    def crop_offset(self, count: int) -> int:
        return 0

    def text_variant(self, key: str, count: int) -> int:
        return 0

    def template_variant(self, key: str, turn: str, count: int) -> int:
        return 0

    def cot_rounds(self, max_rounds: int) -> int:
        return min(self.rounds, max_rounds)

    def intermediate_keys(self, population: Sequence[str], k: int) -> list[str]:
        return list(population[:k])


class RandomPolicy:
    """Upstream's draws on a ``random.Random`` stream (same calls, same order, same results).

    Give every DataLoader worker its own stream (e.g. seeded from ``torch.initial_seed()`` in a
    ``worker_init_fn``), otherwise forked workers repeat each other's draws.
    """

    def __init__(self, rng: random.Random | int | None = None) -> None:
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)

    def _choice(self, count: int) -> int:
        # random.choice(seq) draws _randbelow(len(seq)); choosing from a range makes the same draw.
        return self.rng.choice(range(count))

    def candidate(self, count: int) -> int:
        return self._choice(count)

    def crop_offset(self, count: int) -> int:
        return self.rng.randint(0, count - 1)

    def text_variant(self, key: str, count: int) -> int:
        return self._choice(count)

    def template_variant(self, key: str, turn: str, count: int) -> int:
        return self._choice(count)

    def cot_rounds(self, max_rounds: int) -> int:
        return self._choice(max_rounds + 1)

    def intermediate_keys(self, population: Sequence[str], k: int) -> list[str]:
        return self.rng.sample(list(population), k)


@dataclass(frozen=True, slots=True)
class CotRounds:
    """The intermediate rounds of a CoT sample: the draw, the (sorted) sampled keys, the kept keys."""

    requested: int
    sampled: tuple[str, ...]
    kept: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolvedSample:
    """A record with every choice made: expanded turns, one text per placeholder, motion references.

    ``system``/``user`` are the turns after template expansion (placeholders still in place);
    ``response`` is the raw gpt turn (never template-expanded; ignored by the CoT builder).
    """

    task: str
    system: str
    user: str
    response: str
    texts: dict[str, str | Assessment]
    motions: dict[str, MotionRef | None]
    candidate_index: int | None
    crop_offsets: dict[str, int]
    cot: CotRounds | None
    where: str = ""

    @property
    def is_cot(self) -> bool:
        return self.cot is not None


def keeps_intermediate(refinement: str) -> bool:
    """Upstream's filter of intermediate rounds: drop "no refinement needed" answers and <= 3-word ones."""
    return (
        refinement not in NO_REFINEMENT_ANSWERS
        and len(refinement.split(" ")) > 3
        and "No refinement needed" not in refinement
        and "No refinements needed" not in refinement
    )


def intermediate_motion_keys(motions: Mapping[str, object]) -> list[str]:
    """``<Intermediate_Motion_k>`` keys present, ordered by ``k`` (upstream's population is k = 0..3)."""
    keyed = [(int(m.group(1)), key) for key in motions if (m := INTERMEDIATE_MOTION_RE.match(key))]
    return [key for _, key in sorted(keyed)]


def _assessment_key(motion_key: str) -> str:
    return motion_key.replace("<", "<Assess_", 1)


def _draw_cot_rounds(
    texts: Mapping[str, str | Assessment], population: list[str], policy: SamplingPolicy
) -> CotRounds:
    requested = policy.cot_rounds(len(population))
    if requested == 0:
        return CotRounds(0, (), ())
    order = {key: i for i, key in enumerate(population)}
    sampled = tuple(sorted(policy.intermediate_keys(population, requested), key=order.__getitem__))
    kept = []
    for key in sampled:
        assessment = texts[_assessment_key(key)]
        if not isinstance(assessment, Assessment):
            raise TypeError(f"{_assessment_key(key)} must be an assessment object")
        if keeps_intermediate(assessment.refinement):
            kept.append(key)
    return CotRounds(requested, sampled, tuple(kept))


def resolve_record(
    record: AnnotationRecord,
    policy: SamplingPolicy,
    templates: TemplateStore | None = None,
    *,
    crop_variants: Callable[[MotionRef], int] | None = None,
) -> ResolvedSample:
    """Make every per-access choice for ``record`` in upstream's order (module docstring); no mutation.

    ``crop_variants(ref)``, when given, is the number of crop offsets available for a motion (upstream
    draws ``randint(0, len % 4)``); the drawn offsets are returned in ``crop_offsets``.
    """
    templates = templates or TemplateStore.load()
    candidate_index = policy.candidate(len(record.candidates)) if record.from_candidate_list else None
    candidate = record.candidates[candidate_index or 0]

    crop_offsets: dict[str, int] = {}
    if crop_variants is not None:
        for key, ref in candidate.motions.items():
            if ref is not None:
                crop_offsets[key] = policy.crop_offset(crop_variants(ref))

    texts: dict[str, str | Assessment] = {
        key: value[policy.text_variant(key, len(value))] if isinstance(value, tuple) else value
        for key, value in candidate.texts.items()
    }

    system, user = record.system, record.human
    for key in templates.keys:
        variants = templates.variants(key)
        system = system.replace(key, variants[policy.template_variant(key, "system", len(variants))])
        user = user.replace(key, variants[policy.template_variant(key, "user", len(variants))])

    cot = None
    if record.is_cot:
        cot = _draw_cot_rounds(texts, intermediate_motion_keys(candidate.motions), policy)
    return ResolvedSample(
        task=record.task,
        system=system,
        user=user,
        response=record.gpt,
        texts=texts,
        motions=dict(candidate.motions),
        candidate_index=candidate_index,
        crop_offsets=crop_offsets,
        cot=cot,
        where=record.where,
    )

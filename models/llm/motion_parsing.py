"""Read motions and the CoT structure back out of generated token ids / text.

* :func:`parse_generated_motion`: find the ``<Motion>...</Motion>`` blocks of a generated id sequence
  and return the final motion (the LAST complete block, or the first one for the initial-generation
  evaluation). Only ``<Motion_k>`` ids inside a block count as codes; other ids are dropped and
  counted. An unclosed block at the end is ignored (counted as truncated). Without any complete block,
  or with an empty one, the result falls back to ``fallback`` (upstream's evaluation uses code ``[0]``).
  Every fallback is counted in a :class:`ParseStats`, which callers log.
* :func:`restricted_argmax_codes`: upstream's scores-based decoding (argmax over the motion logits at
  each step, emitted motion ids kept), for faithfulness checks when the scores are at hand.
* :func:`split_cot`: split an IRMoGen CoT completion into its steps, or report the first violation of
  the trained grammar (used for format checks and the RL format reward).

Token-id arithmetic comes from a ``models.llm.vocab.MotionVocab`` (``motion_start_id``,
``motion_end_id``, ``first_code_id``, ``nb_code``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Selection = Literal["last", "first"]


@dataclass
class ParseStats:
    """Counters over many parsed sequences (log them: every fallback is a substituted motion)."""

    sequences: int = 0
    blocks: int = 0  # complete <Motion>...</Motion> blocks seen
    no_block: int = 0  # no complete block: fallback motion used
    empty: int = 0  # selected block had no codes: fallback motion used
    truncated_block: int = 0  # sequences ending inside an unclosed block (that block is ignored)
    foreign_tokens: int = 0  # non-code ids dropped from selected blocks
    restarted_blocks: int = 0  # <Motion> inside an open block (the block restarts there)
    stray_ends: int = 0  # </Motion> without an open block

    @property
    def fallbacks(self) -> int:
        return self.no_block + self.empty

    def merge(self, other: ParseStats) -> ParseStats:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "fallbacks": self.fallbacks
        }


@dataclass(frozen=True)
class ParsedMotion:
    codes: list[int]  # the final motion (fallback applied)
    num_gens: int  # complete blocks in the sequence
    blocks: list[tuple[int, int]]  # (index of <Motion>, index of </Motion>) per complete block
    fallback: str | None = None  # "no_block" / "empty" when ``codes`` is the fallback
    foreign_tokens: int = 0  # non-code ids dropped from the selected block
    truncated: bool = False  # an unclosed block at the end was ignored


def _as_numpy(ids: Any) -> np.ndarray:
    if hasattr(ids, "detach"):
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def find_motion_blocks(
    ids: Any, vocab: Any, stats: ParseStats | None = None
) -> tuple[list[tuple[int, int]], bool]:
    """Complete blocks as ``(start, end)`` tag positions, and whether an unclosed block ends the sequence.

    A ``<Motion>`` inside an open block restarts it (the innermost block wins, as upstream's shortest
    match); a ``</Motion>`` without an open block is ignored. Both are counted in ``stats``.
    """
    ids = _as_numpy(ids)
    tags = np.flatnonzero((ids == vocab.motion_start_id) | (ids == vocab.motion_end_id))
    blocks: list[tuple[int, int]] = []
    open_at: int | None = None
    for pos in tags.tolist():
        if ids[pos] == vocab.motion_start_id:
            if open_at is not None and stats is not None:
                stats.restarted_blocks += 1
            open_at = pos
        elif open_at is not None:
            blocks.append((open_at, pos))
            open_at = None
        elif stats is not None:
            stats.stray_ends += 1
    return blocks, open_at is not None


def parse_generated_motion(
    ids: Any,
    vocab: Any,
    *,
    select: Selection = "last",
    eos_id: int | None = None,
    fallback: Sequence[int] = (0,),
    stats: ParseStats | None = None,
) -> ParsedMotion:
    """The final motion of one generated completion (``ids`` without the prompt).

    ``eos_id``: ignore everything from the first eos on. ``select="first"`` takes the first complete
    block (initial-generation evaluation). ``fallback`` replaces a missing or empty motion.
    """
    ids = _as_numpy(ids)
    if eos_id is not None:
        eos_at = np.flatnonzero(ids == eos_id)
        if eos_at.size:
            ids = ids[: eos_at[0]]
    local = ParseStats(sequences=1)
    blocks, truncated = find_motion_blocks(ids, vocab, local)
    local.blocks = len(blocks)
    local.truncated_block = int(truncated)
    reason, codes, foreign = None, list(fallback), 0
    if not blocks:
        reason, local.no_block = "no_block", 1
    else:
        start, end = blocks[-1] if select == "last" else blocks[0]
        inner = ids[start + 1 : end]
        is_code = (inner >= vocab.first_code_id) & (inner < vocab.first_code_id + vocab.nb_code)
        foreign = int(inner.size - is_code.sum())
        local.foreign_tokens = foreign
        if is_code.any():
            codes = (inner[is_code] - vocab.first_code_id).tolist()
        else:
            reason, local.empty = "empty", 1
    if stats is not None:
        stats.merge(local)
    return ParsedMotion(codes, len(blocks), blocks, reason, foreign, truncated)


def parse_generated_batch(
    batch: Any,
    vocab: Any,
    *,
    select: Selection = "last",
    eos_id: int | None = None,
    fallback: Sequence[int] = (0,),
    stats: ParseStats | None = None,
) -> list[ParsedMotion]:
    """:func:`parse_generated_motion` for each row of a ``[B, T]`` array/tensor or a list of id lists."""
    rows = batch.detach().cpu().numpy() if hasattr(batch, "detach") else batch
    return [
        parse_generated_motion(row, vocab, select=select, eos_id=eos_id, fallback=fallback, stats=stats)
        for row in rows
    ]


def restricted_argmax_codes(scores: Any, vocab: Any, ids: Any = None) -> list[int]:
    """Upstream's scores-based motion decoding for one span of generation steps.

    ``scores``: ``[T, V]`` logits of the steps (e.g. those of one ``<Motion>...</Motion>`` block).
    At each step the local motion index is the emitted id's (when ``ids`` is given and the id is a
    motion id), else the argmax over the ``nb_code + 2`` motion columns; the sequence is cut at the
    first ``</Motion>``, everything up to the first ``<Motion>`` is dropped, and codes are
    ``local - 2`` clamped at 0. (Upstream slices the LAST ``nb_code + 2`` columns, which are these
    columns when the vocabulary is not padded.)
    """
    width = vocab.nb_code + 2
    motion_scores = scores[:, vocab.motion_start_id : vocab.motion_start_id + width]  # slice before copying
    if hasattr(motion_scores, "detach"):
        motion_scores = motion_scores.detach().float().cpu().numpy()
    local = np.asarray(motion_scores).argmax(axis=-1)
    if ids is not None:
        emitted = _as_numpy(ids) - vocab.motion_start_id
        local = np.where((emitted >= 0) & (emitted < width), emitted, local)
    ends = np.flatnonzero(local == 1)
    if ends.size:
        local = local[: ends[0]]
    starts = np.flatnonzero(local == 0)
    if starts.size:
        local = local[starts[0] + 1 :]
    return np.clip(local - 2, 0, None).tolist()


_CODE_TEXT = re.compile(r"<Motion_(\d+)>")


def codes_from_text(text: str) -> list[int]:
    """Codes of the text after the last ``<Motion>`` up to the next ``</Motion>`` (upstream's
    multimodality variant, which reads decoded text instead of ids)."""
    return [int(c) for c in _CODE_TEXT.findall(text.split("<Motion>")[-1].split("</Motion>")[0])]


@dataclass(frozen=True)
class CotStep:
    kind: str  # "plan", "analyze", "generate" or "assess"
    content: str  # text between the bracket tags
    start: int  # character span of the whole step (tags included) in the parsed text
    end: int
    codes: tuple[int, ...] | None = None  # generate steps
    assessment: str | None = None  # assess steps in the "Assessment: ...\nRefinement: ..." form
    refinement: str | None = None


@dataclass(frozen=True)
class CotTrace:
    """A parsed CoT completion; ``violation`` describes the first departure from the grammar."""

    steps: tuple[CotStep, ...]
    answer_codes: tuple[int, ...] | None = None
    ended_with_eos: bool = False
    violation: str | None = None
    violation_at: int | None = None
    generations: tuple[tuple[int, ...], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.violation is None

    @property
    def final_codes(self) -> tuple[int, ...] | None:
        """The answer motion if there is an answer block, else the last generated motion."""
        if self.answer_codes is not None:
            return self.answer_codes
        return self.generations[-1] if self.generations else None


class _CotViolation(Exception):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position


_BRACKET_TAG = re.compile(r"\[/?(?:plan|analyze|generate|assess)\]|</?think>|</?answer>")
_MOTION_CONTENT = re.compile(r"<Motion>((?:<Motion_\d{1,3}>)+)</Motion>")
_ASSESS_CONTENT = re.compile(r"Assessment: (.*)\nRefinement: (.*)", re.DOTALL)


class _CotReader:
    def __init__(self, text: str, strict: bool) -> None:
        self.text, self.strict, self.pos = text, strict, 0
        self.steps: list[CotStep] = []

    def fail(self, expected: str) -> _CotViolation:
        found = self.text[self.pos : self.pos + 30]
        return _CotViolation(self.pos, f"at character {self.pos}: expected {expected}, found {found!r}")

    def skip_space(self) -> None:
        if not self.strict:
            while self.pos < len(self.text) and self.text[self.pos].isspace():
                self.pos += 1

    def peek(self, literal: str) -> bool:
        return self.text.startswith(literal, self.pos)

    def expect(self, literal: str) -> None:
        if not self.peek(literal):
            raise self.fail(repr(literal))
        self.pos += len(literal)

    def block(self, kind: str) -> CotStep:
        start = self.pos
        self.expect(f"[{kind}]")
        close = self.text.find(f"[/{kind}]", self.pos)
        if close < 0:
            raise self.fail(f"'[/{kind}]' closing the [{kind}] block")
        content = self.text[self.pos : close]
        nested = _BRACKET_TAG.search(content)
        if nested:
            self.pos += nested.start()
            raise self.fail(f"'[/{kind}]' before another tag")
        if self.strict and not content.strip():
            raise self.fail(f"a non-empty [{kind}] block")
        step = self._make_step(kind, content, start, close + len(f"[/{kind}]"))
        self.pos = step.end
        self.steps.append(step)
        if self.strict:
            self.expect("\n")
        else:
            self.skip_space()
        return step

    def _make_step(self, kind: str, content: str, start: int, end: int) -> CotStep:
        if kind == "generate":
            match = _MOTION_CONTENT.fullmatch(content)
            if not match:
                self.pos = start + len("[generate]")
                raise self.fail("<Motion>(<Motion_k>)+</Motion> inside [generate]")
            return CotStep(
                kind, content, start, end, codes=tuple(int(c) for c in _CODE_TEXT.findall(match.group(1)))
            )
        if kind == "assess":
            match = _ASSESS_CONTENT.fullmatch(content)
            if match is None and self.strict:
                self.pos = start + len("[assess]")
                raise self.fail("'Assessment: ...\\nRefinement: ...' inside [assess]")
            if match:
                return CotStep(
                    kind, content, start, end, assessment=match.group(1), refinement=match.group(2)
                )
        return CotStep(kind, content, start, end)

    def parse(self) -> tuple[tuple[int, ...] | None, bool]:
        self.skip_space()
        self.expect("<think>")
        self.skip_space()
        for kind in ("plan", "analyze", "plan"):
            self.block(kind)
        while self.peek("[generate]"):
            for kind in ("generate", "plan", "assess", "plan"):
                self.block(kind)
        self.expect("</think>")
        answer = None
        self.skip_space()
        if self.peek("<answer>"):
            self.expect("<answer>")
            match = _MOTION_CONTENT.match(self.text, self.pos)
            if not match:
                raise self.fail("<Motion>(<Motion_k>)+</Motion> inside <answer>")
            answer = tuple(int(c) for c in _CODE_TEXT.findall(match.group(1)))
            self.pos = match.end()
            self.expect("</answer>")
            self.skip_space()
        eos = self.peek("<eos>")
        if eos:
            self.pos += len("<eos>")
        elif self.pos < len(self.text) and (self.strict or self.text[self.pos :].strip()):
            raise self.fail("'<eos>' or the end of the text after </think>")
        return answer, eos


def split_cot(text: str, *, strict: bool = True) -> CotTrace:
    """Parse a CoT completion (decoded with special tokens kept; anything after ``<eos>`` is ignored)::

        <think>[plan]..[/plan]\\n[analyze]..[/analyze]\\n[plan]..[/plan]\\n
        ( [generate]<Motion>..</Motion>[/generate]\\n[plan]..[/plan]\\n
          [assess]Assessment: ..\\nRefinement: ..[/assess]\\n[plan]..[/plan]\\n )*
        </think>[<answer><Motion>..</Motion></answer>][<eos>]

    ``strict=True`` requires the trained bytes (a "\\n" after every block, non-empty blocks, the
    Assessment/Refinement form); ``strict=False`` allows any whitespace between blocks and any block
    text, like upstream's format regex (which however searches anywhere and lets ``.*?`` span tags).
    Returns the steps read so far and, if the text departs from the grammar, the first violation.
    """
    reader = _CotReader(text, strict)
    answer, eos, violation, at = None, False, None, None
    try:
        answer, eos = reader.parse()
    except _CotViolation as err:
        violation, at = str(err), err.position
    generations = tuple(step.codes for step in reader.steps if step.kind == "generate")
    return CotTrace(tuple(reader.steps), answer, eos, violation, at, generations)

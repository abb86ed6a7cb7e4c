"""Training sequences: a resolved sample -> prompt + response pieces -> token ids and labels.

Two builders, as upstream (``TextProcessor.build_context_naive`` / ``build_context_unified_mogen_cot``):

* atomic tasks (every task whose name lacks ``unified_mogen_cot``)::

      P = system + "\\n\\nUser: " + user + "\\n\\n" + " Response:"      R = response + "<eos>"

  motions are substituted as ``<Motion><Motion_a>...</Motion>`` in the user turn and the response, then
  each text, and after EACH text key the whole user turn and response get ``..`` -> ``.`` (upstream
  quirk, ``collapse_double_periods``); R is one piece, fully supervised.
* IRMoGen CoT (``unified_mogen_cot*``): the gpt turn is ignored and the trace is assembled in code::

      <think>[plan]..[/plan]\\n[analyze]..[/analyze]\\n[plan]..[/plan]\\n
        ( [generate]<Motion>..</Motion>[/generate]\\n[plan]..[/plan]\\n
          [assess]Assessment: ..\\nRefinement: ..[/assess]\\n[plan]..[/plan]\\n )*
        [generate]<Motion>goal</Motion>[/generate]\\n[plan]..[/plan]\\n[assess]..[/assess]\\n[plan]finish[/plan]\\n
      </think>[<answer><Motion>goal</Motion></answer>]<eos>

  with every bracket tag, text, newline and motion part a separate piece (tokenised separately, which
  defines the token stream). With ``ignore_incorrect`` the intermediate ``[generate]..[/generate]\\n``
  pieces stay in the input but are not supervised. Texts are substituted into the prompt only where
  their key occurs, with the ``..`` collapse after each; the trace texts are not collapsed.

Token ids are ``[bos] + tok(P) + tok(piece_1) + tok(piece_2) + ...`` (each call without special tokens);
labels are -100 on ``bos``, P and unsupervised pieces. Motion pieces convert straight from codes when a
``MotionVocab`` is given (identical ids, no tokenizer work).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from models.llm.prompts import (
    MOTION_END,
    MOTION_START,
    collapse_double_periods,
    find_placeholders,
    is_known_placeholder,
    motion_block,
    motion_string,
)

COT_TASK_MARKER = "unified_mogen_cot"
GOAL_MOTION = "<Goal_Motion>"
PROMPT_ANALYSIS = "<Prompt_Analysis>"
GOAL_ASSESSMENT = "<Assess_Goal_Motion>"
EOS_TEXT = "<eos>"
IGNORE_INDEX = -100

PLAN_SENTENCES = {
    "analysis": "I need to analyze the goal and identify the critical aspects to generate the motion.",
    "generation": "I need to generate a motion according to the previous analysis.",
    "assessment": (
        "I need to assess the alignment between the generated motion and the goal text, "
        "then provide specific refinement instructions for improvement."
    ),
    "refinement": "I need to refine the motion according to the instruction.",
    "finish": "I need to finish thinking as the satisfactory motion is generated.",
}


class SampleLike(Protocol):
    """What the builders read from ``data_engine.annotations.sampling.ResolvedSample``."""

    task: str
    system: str
    user: str
    response: str
    texts: Mapping[str, Any]  # str, or an object with .assessment / .refinement
    motions: Mapping[str, Any]  # placeholder -> MotionRef or None (empty motion)
    cot: Any  # None for atomic tasks; .kept = the intermediate motion keys of the trace
    where: str


@dataclass(frozen=True)
class SequenceOptions:
    """Builder flags (upstream's CLI flags). Defaults are upstream's flag defaults; the released
    stage-2 run used ``ignore_incorrect=True, wo_answer=True`` (:data:`RELEASED_STAGE2`)."""

    prompt_w_response: bool = True
    ignore_incorrect: bool = False
    wo_answer: bool = False
    wo_plan: bool = False
    wo_assess_refine: bool = False
    collapse_double_periods: bool = True  # upstream quirk; also rewrites legitimate ellipses


DEFAULT_OPTIONS = SequenceOptions()
RELEASED_STAGE2 = SequenceOptions(ignore_incorrect=True, wo_answer=True)


@dataclass(frozen=True, slots=True)
class Piece:
    """A response segment tokenised on its own. ``direct`` lists its parts as ``<Motion>``/``</Motion>``/
    ``<eos>`` tags and code tuples when the piece consists only of those (ids without the tokenizer)."""

    text: str
    supervised: bool
    direct: tuple[str | tuple[int, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class TrainingSequence:
    prompt: str
    pieces: tuple[Piece, ...]
    where: str = ""

    @property
    def response(self) -> str:
        return "".join(p.text for p in self.pieces)

    def piece_spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` character spans of the pieces within the response."""
        spans, start = [], 0
        for piece in self.pieces:
            spans.append((start, start + len(piece.text)))
            start += len(piece.text)
        return spans

    def supervised_spans(self) -> list[tuple[int, int]]:
        """Maximal runs of supervised (non-empty) pieces, as ``[start, end)`` spans of the response."""
        runs: list[list[int]] = []
        for piece, (start, end) in zip(self.pieces, self.piece_spans(), strict=True):
            if start == end:
                continue
            if piece.supervised and runs and runs[-1][1] == start:
                runs[-1][1] = end
            elif piece.supervised:
                runs.append([start, end])
        return [(a, b) for a, b in runs]


@dataclass(frozen=True, slots=True)
class TokenizedSequence:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    full_length: int = 0  # length before truncation


class SequenceTooLongError(ValueError):
    pass


def _codes_for(key: str, sample: SampleLike, motion_codes: Mapping[str, Sequence[int]]) -> tuple[int, ...]:
    if key in sample.motions and sample.motions[key] is None:
        return ()  # a null motion is an empty motion
    if key not in motion_codes:
        raise KeyError(f"{sample.where}: no motion codes given for {key}")
    codes = motion_codes[key]
    return tuple(codes.tolist() if hasattr(codes, "tolist") else (int(c) for c in codes))


def _check_no_leftovers(sample: SampleLike, **parts: str) -> None:
    for name, text in parts.items():
        leftover = [p for p in find_placeholders(text) if is_known_placeholder(p) or p.endswith("_Template>")]
        if leftover:
            raise ValueError(f"{sample.where}: placeholder(s) {leftover} left unfilled in the {name}")


def _frame_prompt(system: str, user: str, options: SequenceOptions) -> str:
    return f"{system}\n\nUser: {user}\n\n" + (" Response:" if options.prompt_w_response else "")


def used_motion_keys(sample: SampleLike) -> list[str]:
    """The motion placeholders the builder will render (fetch codes only for these)."""
    if COT_TASK_MARKER in sample.task:
        return [*sample.cot.kept, GOAL_MOTION]
    return [key for key in sample.motions if key in sample.user or key in sample.response]


def _render_atomic(
    sample: SampleLike, motion_codes: Mapping[str, Sequence[int]], options: SequenceOptions
) -> TrainingSequence:
    user, response = sample.user, sample.response
    codes_of = {}
    for key in sample.motions:
        if key in user or key in response:
            codes_of[key] = _codes_for(key, sample, motion_codes)
            block = motion_block(codes_of[key])
            user, response = user.replace(key, block), response.replace(key, block)
    for key, text in sample.texts.items():
        if not isinstance(text, str):
            raise TypeError(f"{sample.where}: {key} is not a text; atomic tasks take plain texts only")
        user, response = user.replace(key, text), response.replace(key, text)
        if options.collapse_double_periods:
            user, response = collapse_double_periods(user), collapse_double_periods(response)
    _check_no_leftovers(sample, system=sample.system, user=user, response=response)
    gpt = sample.response.strip()
    direct = (
        (MOTION_START, codes_of[gpt], MOTION_END, EOS_TEXT)
        if gpt == sample.response and gpt in codes_of
        else None
    )
    piece = Piece(response + EOS_TEXT, True, direct)
    return TrainingSequence(_frame_prompt(sample.system, user, options), (piece,), sample.where)


class _CotWriter:
    """Accumulates CoT pieces with upstream's per-segment split."""

    def __init__(
        self, sample: SampleLike, motion_codes: Mapping[str, Sequence[int]], options: SequenceOptions
    ) -> None:
        self.sample, self.motion_codes, self.options = sample, motion_codes, options
        self.pieces: list[Piece] = []

    def add(self, text: str, supervised: bool = True, direct: tuple | None = None) -> None:
        self.pieces.append(Piece(text, supervised, direct))

    def block(self, open_tag: str, content: str, close_tag: str) -> None:
        for text in (open_tag, content, close_tag, "\n"):
            self.add(text)

    def plan(self, kind: str) -> None:
        if not self.options.wo_plan:
            self.block("[plan]", PLAN_SENTENCES[kind], "[/plan]")

    def analyze(self) -> None:
        analysis = self.sample.texts[PROMPT_ANALYSIS]
        if not isinstance(analysis, str):
            raise TypeError(f"{self.sample.where}: {PROMPT_ANALYSIS} must be a text")
        self.block("[analyze]", analysis, "[/analyze]")

    def assess(self, motion_key: str) -> None:
        entry = self.sample.texts[motion_key.replace("<", "<Assess_", 1)]
        self.block("[assess]", f"Assessment: {entry.assessment}\nRefinement: {entry.refinement}", "[/assess]")

    def generate(self, motion_key: str, in_think: bool = True) -> None:
        codes = _codes_for(motion_key, self.sample, self.motion_codes)
        supervised = motion_key == GOAL_MOTION or not self.options.ignore_incorrect
        if in_think:
            self.add("[generate]", supervised)
        self.add(MOTION_START, supervised, (MOTION_START,))
        self.add(motion_string(codes), supervised, (codes,))
        self.add(MOTION_END, supervised, (MOTION_END,))
        if in_think:
            self.add("[/generate]", supervised)
            self.add("\n", supervised)


def _render_cot(
    sample: SampleLike, motion_codes: Mapping[str, Sequence[int]], options: SequenceOptions
) -> TrainingSequence:
    system, user = sample.system, sample.user
    for key, text in sample.texts.items():
        for_system, for_user = key in system, key in user
        if (for_system or for_user) and not isinstance(text, str):
            raise TypeError(f"{sample.where}: {key} is not a text and cannot fill the prompt")
        if for_system:
            system = system.replace(key, text)
            system = collapse_double_periods(system) if options.collapse_double_periods else system
        if for_user:
            user = user.replace(key, text)
            user = collapse_double_periods(user) if options.collapse_double_periods else user
    _check_no_leftovers(sample, system=system, user=user)

    out = _CotWriter(sample, motion_codes, options)
    out.add("<think>")
    out.plan("analysis")
    out.analyze()
    out.plan("generation")
    if options.wo_assess_refine and options.wo_answer:
        out.generate(GOAL_MOTION)
    else:
        for key in sample.cot.kept:
            out.generate(key)
            out.plan("assessment")
            out.assess(key)
            out.plan("refinement")
        out.generate(GOAL_MOTION)
        out.plan("assessment")
        out.assess(GOAL_MOTION)
        out.plan("finish")
    out.add("</think>")
    if not options.wo_answer:
        out.add("<answer>")
        out.generate(GOAL_MOTION, in_think=False)
        out.add("</answer>")
    out.add(EOS_TEXT, True, (EOS_TEXT,))
    return TrainingSequence(_frame_prompt(system, user, options), tuple(out.pieces), sample.where)


def render_sequence(
    sample: SampleLike,
    motion_codes: Mapping[str, Sequence[int]],
    options: SequenceOptions = DEFAULT_OPTIONS,
) -> TrainingSequence:
    """Render a resolved sample; ``motion_codes`` maps motion placeholders to VQ code lists (keys of
    null motions and unused motions may be absent, see :func:`used_motion_keys`)."""
    if COT_TASK_MARKER in sample.task:
        if sample.cot is None:
            raise ValueError(f"{sample.where}: CoT task {sample.task!r} without drawn rounds")
        return _render_cot(sample, motion_codes, options)
    return _render_atomic(sample, motion_codes, options)


def _direct_ids(piece: Piece, vocab: Any, eos_id: int) -> list[int]:
    ids: list[int] = []
    for part in piece.direct or ():
        if part == MOTION_START:
            ids.append(vocab.motion_start_id)
        elif part == MOTION_END:
            ids.append(vocab.motion_end_id)
        elif part == EOS_TEXT:
            ids.append(eos_id)
        else:
            if part and not (0 <= min(part) and max(part) < vocab.nb_code):
                raise ValueError(
                    f"motion codes outside [0, {vocab.nb_code}): "
                    f"{[c for c in part if not 0 <= c < vocab.nb_code][:5]}"
                )
            first = vocab.first_code_id
            ids.extend(first + code for code in part)
    return ids


def tokenize_sequence(
    sequence: TrainingSequence,
    tokenizer: Any,
    vocab: Any = None,
    *,
    max_length: int | None = None,
    on_overflow: Literal["raise", "truncate"] = "raise",
) -> TokenizedSequence:
    """``[bos] + tok(P) + tok(piece)...`` and labels (-100 on bos, P and unsupervised pieces).

    ``vocab`` (a ``models.llm.vocab.MotionVocab``) turns motion pieces into ids directly. Sequences
    longer than ``max_length`` raise :class:`SequenceTooLongError`, or with ``on_overflow="truncate"``
    are cut and flagged ``truncated`` (upstream cut at 2048 silently).
    """
    if tokenizer.bos_token_id is None:
        raise ValueError("the tokenizer has no bos token")
    texts = [sequence.prompt]
    for piece in sequence.pieces:
        if vocab is None or piece.direct is None:
            texts.append(piece.text)
    encoded = iter(tokenizer(texts, add_special_tokens=False)["input_ids"])
    prompt_ids = next(encoded)
    input_ids = [tokenizer.bos_token_id, *prompt_ids]
    labels = [IGNORE_INDEX] * len(input_ids)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TEXT) if vocab is not None else None
    for piece in sequence.pieces:
        ids = next(encoded) if vocab is None or piece.direct is None else _direct_ids(piece, vocab, eos_id)
        input_ids.extend(ids)
        labels.extend(ids if piece.supervised else [IGNORE_INDEX] * len(ids))
    full_length = len(input_ids)
    if max_length is not None and full_length > max_length:
        if on_overflow != "truncate":
            raise SequenceTooLongError(f"{sequence.where}: {full_length} tokens > max_length {max_length}")
        return TokenizedSequence(input_ids[:max_length], labels[:max_length], True, full_length)
    return TokenizedSequence(input_ids, labels, False, full_length)

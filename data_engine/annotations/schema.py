"""Typed annotation records for the SFT stages (and the stage-3 RL ``jsonl``), with precise validation.

An SFT annotation file is ``{"info": {...}, "annotations": [record, ...]}``; each record is::

    {"id": 0, "task": "t2m_direct_generation",
     "conversations": [{"from": "system", "value": "<General_System_Prompt>"},
                       {"from": "human",  "value": "<Text2Motion_Template>"},
                       {"from": "gpt",    "value": "<Goal_Motion>"}],
     "motions": {"<Goal_Motion>": {"motion_name": "000002", "f_tag": 0.0, "to_tag": 0.0}},
     "text": {"<Goal_Caption>": ["a man jumps.", "a person hops."]}}

or, instead of ``motions``/``text``, ``candidate_motion_text``: a list of ``{motions, text[,
meta_inst_name]}`` alternatives of which one is drawn per access. ``text`` (or ``texts``) values are a
string, a list of strings (one drawn per access) or, in CoT data, ``{assessment, refinement}``. A
motion may be ``null`` (an empty motion). Conversation values name template keys of
``prompt_template-2.json`` and content placeholders (``models.llm.prompts``).

Every problem raises :class:`~models.common.errors.DataError` naming the file, the record (index and
id) and the field path, e.g. ``candidate_motion_text[3].text.<Goal_Caption>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from models.common.errors import DataError
from models.llm.prompts import (
    COT_TRACE_PLACEHOLDER,
    INTERMEDIATE_MOTION_RE,
    TemplateStore,
    find_placeholders,
    is_assessment_placeholder,
    is_known_placeholder,
    is_motion_placeholder,
    is_text_placeholder,
    known_placeholder_names,
)

COT_TASK_MARKER = "unified_mogen_cot"  # upstream picks the CoT builder by this substring of the task
ROLES = ("system", "human", "gpt")


class MotionId(NamedTuple):
    """A dataset motion id: the numeric id and whether it is the left/right mirrored copy (``M`` prefix)."""

    base_id: str
    mirrored: bool

    @property
    def stem(self) -> str:
        """The feature-file stem: ``000123`` or ``M000123``."""
        return f"M{self.base_id}" if self.mirrored else self.base_id


_ID_PART = re.compile(r"^(M?)(\d+)$")


def parse_motion_id(name: str, id_digits: int | None = 6) -> MotionId:
    """The dataset id inside an annotation ``motion_name``.

    Accepts ``000123``, the mirrored ``M000123`` and decorated names (``T_007471``, ``A_000123``,
    ``000123_0``): the first ``_``-separated part that is ``M?`` + ``id_digits`` digits wins. KIT-ML
    ids have 5 digits (``id_digits=5``); ``id_digits=None`` accepts 5 or 6. (Upstream took the first
    part of length 6 or 7, which silently rejects KIT-ML names.) Raises ``ValueError`` otherwise.
    """
    allowed = (5, 6) if id_digits is None else (id_digits,)
    for part in name.split("_"):
        match = _ID_PART.match(part)
        if match and len(match.group(2)) in allowed:
            return MotionId(match.group(2), bool(match.group(1)))
    digits = "5 or 6" if id_digits is None else str(id_digits)
    raise ValueError(f"cannot find a {digits}-digit motion id (optionally M-prefixed) in {name!r}")


@dataclass(frozen=True, slots=True)
class MotionRef:
    """A motion of the dataset, optionally a sub-clip ``[f_tag, to_tag)`` in seconds."""

    motion_name: str
    f_tag: float = 0.0
    to_tag: float = 0.0

    @property
    def whole_clip(self) -> bool:
        """Upstream crops only when ``f_tag < to_tag``: ``0/0`` and a degenerate ``t/t`` are whole clips."""
        return not self.f_tag < self.to_tag

    def frame_span(self, fps: float) -> tuple[int, int] | None:
        """Frames ``[int(f*fps), int(t*fps))`` of the sub-clip, or ``None`` for the whole clip."""
        if self.whole_clip:
            return None
        return int(self.f_tag * fps), int(self.to_tag * fps)

    def motion_id(self, id_digits: int | None = 6) -> MotionId:
        return parse_motion_id(self.motion_name, id_digits)


@dataclass(frozen=True, slots=True)
class Assessment:
    """A CoT assessment entry: the alignment analysis and the refinement instruction."""

    assessment: str
    refinement: str


TextValue = str | tuple[str, ...] | Assessment


@dataclass(frozen=True, slots=True)
class Candidate:
    """One alternative (motions + texts) of a record; records without candidates have exactly one."""

    motions: dict[str, MotionRef | None]
    texts: dict[str, TextValue]
    meta_inst_name: str | None = None


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """A validated annotation. ``from_candidate_list`` is False for records with direct motions/text
    (they hold one candidate and no candidate draw happens)."""

    id: int | str
    task: str
    system: str
    human: str
    gpt: str
    candidates: tuple[Candidate, ...]
    from_candidate_list: bool
    index: int = 0
    source: str | None = field(default=None, compare=False)

    @property
    def is_cot(self) -> bool:
        return COT_TASK_MARKER in self.task

    @property
    def where(self) -> str:
        """``file, record #i (id=...)`` for messages."""
        return f"{self.source or '<memory>'}, record #{self.index} (id={self.id!r})"


@dataclass(frozen=True, slots=True)
class RLRecord:
    """One line of a stage-3 RL ``jsonl`` (spec_rl §2.2). Unknown columns pass through in ``extra``."""

    reference_caption: str
    goal_motion: MotionRef | None
    all_prompt: str | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class _Ctx:
    """Where we are while validating one record (for error messages and warnings)."""

    def __init__(
        self,
        path: str | None,
        *,
        index: int | None = None,
        record_id: Any = None,
        line: int | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.record = (
            None if index is None else f"#{index}" if record_id is None else f"#{index} (id={record_id!r})"
        )
        self.warnings = warnings

    def error(self, message: str, field_path: str | None = None) -> DataError:
        return DataError(message, path=self.path, line=self.line, record=self.record, field=field_path)

    def warn(self, message: str, field_path: str) -> None:
        if self.warnings is not None:
            self.warnings.append(str(self.error(message, field_path)))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_text(value: Any, ctx: _Ctx, path: str) -> None:
    if not isinstance(value, str):
        raise ctx.error(f"expected a string, got {type(value).__name__}", path)
    if not value.strip():
        raise ctx.error("empty text", path)


def parse_motion_ref(value: Any, ctx: _Ctx, path: str, id_digits: int | None) -> MotionRef | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ctx.error(f"expected {{motion_name, f_tag, to_tag}} or null, got {type(value).__name__}", path)
    for key in ("motion_name", "f_tag", "to_tag"):
        if key not in value:
            raise ctx.error(f"missing {key!r}", f"{path}.{key}")
    name = value["motion_name"]
    _check_text(name, ctx, f"{path}.motion_name")
    try:
        parse_motion_id(name, id_digits)
    except ValueError as err:
        raise ctx.error(str(err), f"{path}.motion_name") from None
    f_tag, to_tag = value["f_tag"], value["to_tag"]
    for key, tag in (("f_tag", f_tag), ("to_tag", to_tag)):
        if not _is_number(tag):
            raise ctx.error(f"expected a finite number of seconds, got {tag!r}", f"{path}.{key}")
        if tag < 0:
            raise ctx.error(f"negative time {tag!r}", f"{path}.{key}")
    if f_tag > to_tag:
        raise ctx.error(f"f_tag {f_tag} > to_tag {to_tag}: empty sub-clip", path)
    if f_tag == to_tag != 0:
        ctx.warn(f"degenerate span {f_tag}..{to_tag}: used as the whole clip (upstream behaviour)", path)
    return MotionRef(name, float(f_tag), float(to_tag))


def _parse_text_value(key: str, value: Any, ctx: _Ctx, path: str, is_cot: bool) -> TextValue:
    if is_assessment_placeholder(key):
        if not isinstance(value, Mapping):
            raise ctx.error(
                f"expected an {{assessment, refinement}} object, got {type(value).__name__}", path
            )
        if not is_cot:
            raise ctx.error(
                "assessment objects are only used by CoT tasks (the atomic builder cannot substitute them)",
                path,
            )
        for part in ("assessment", "refinement"):
            if part not in value:
                raise ctx.error(f"missing {part!r}", f"{path}.{part}")
            _check_text(value[part], ctx, f"{path}.{part}")
        return Assessment(value["assessment"], value["refinement"])
    if isinstance(value, list):
        if not value:
            raise ctx.error("empty list of texts", path)
        for i, item in enumerate(value):
            _check_text(item, ctx, f"{path}[{i}]")
        return tuple(value)
    _check_text(value, ctx, path)
    return value


def _parse_candidate(
    merged: Mapping[str, Any], prefix_of: Callable[[str], str], ctx: _Ctx, is_cot: bool, id_digits: int | None
) -> Candidate:
    if "text" in merged and "texts" in merged:
        raise ctx.error("both 'text' and 'texts' given; use one", prefix_of("texts") + "texts")
    text_field = "text" if "text" in merged else "texts"
    for name in ("motions", text_field):
        if name not in merged:
            raise ctx.error(f"missing {name!r}", prefix_of(name) + name)
        if not isinstance(merged[name], Mapping):
            raise ctx.error(f"expected an object, got {type(merged[name]).__name__}", prefix_of(name) + name)
    motions_path, texts_path = prefix_of("motions") + "motions", prefix_of(text_field) + text_field
    motions: dict[str, MotionRef | None] = {}
    for key, value in merged["motions"].items():
        if not is_motion_placeholder(key):
            raise ctx.error(
                f"unknown motion placeholder {key!r}; known: {known_placeholder_names()}",
                f"{motions_path}.{key}",
            )
        motions[key] = parse_motion_ref(value, ctx, f"{motions_path}.{key}", id_digits)
    texts: dict[str, TextValue] = {}
    for key, value in merged[text_field].items():
        if not is_text_placeholder(key):
            raise ctx.error(
                f"unknown text placeholder {key!r}; known: {known_placeholder_names()}", f"{texts_path}.{key}"
            )
        texts[key] = _parse_text_value(key, value, ctx, f"{texts_path}.{key}", is_cot)
    meta = merged.get("meta_inst_name")
    if meta is not None and not isinstance(meta, str):
        raise ctx.error("expected a string", prefix_of("meta_inst_name") + "meta_inst_name")
    return Candidate(motions, texts, meta)


def _parse_conversations(value: Any, ctx: _Ctx, templates: TemplateStore) -> tuple[str, str, str]:
    if not isinstance(value, list) or len(value) != 3:
        count = len(value) if isinstance(value, list) else type(value).__name__
        raise ctx.error(f"expected 3 turns (system, human, gpt), got {count}", "conversations")
    turns = []
    for i, (turn, role) in enumerate(zip(value, ROLES, strict=True)):
        path = f"conversations[{i}]"
        if not isinstance(turn, Mapping):
            raise ctx.error("expected {from, value}", path)
        if turn.get("from") != role:
            raise ctx.error(f"expected role {role!r}, got {turn.get('from')!r}", f"{path}.from")
        _check_text(turn.get("value"), ctx, f"{path}.value")
        for token in find_placeholders(turn["value"]):
            if token in templates and role == "gpt":
                raise ctx.error(
                    f"template key {token} in the gpt turn (only system/human turns are expanded)",
                    f"{path}.value",
                )
            if token not in templates and not is_known_placeholder(token):
                raise ctx.error(
                    f"unknown template key or placeholder {token}; template keys: {list(templates.keys)}; "
                    f"placeholders: {known_placeholder_names()}",
                    f"{path}.value",
                )
        turns.append(turn["value"])
    return turns[0], turns[1], turns[2]


def _required_placeholders(
    system: str, human: str, gpt: str, templates: TemplateStore, is_cot: bool
) -> dict[str, str]:
    """Placeholder -> the turn that needs it (any template variant may be drawn, so all count)."""
    needed: dict[str, str] = {}
    for role, turn in (("system", system), ("human", human), ("gpt", gpt)):
        if role == "gpt" and is_cot:
            continue  # the CoT trace is assembled in code; the gpt turn is ignored
        for token in find_placeholders(turn):
            for placeholder in sorted(templates.placeholders(token)) if token in templates else [token]:
                if placeholder != COT_TRACE_PLACEHOLDER:
                    needed.setdefault(placeholder, f"{role} turn {token}")
    return needed


def _check_supplied(
    needed: Mapping[str, str],
    cand: Candidate,
    prefix_of: Callable[[str], str],
    text_field: str,
    ctx: _Ctx,
    is_cot: bool,
) -> None:
    motions_path, texts_path = prefix_of("motions") + "motions", prefix_of(text_field) + text_field
    for placeholder, used_by in needed.items():
        if is_motion_placeholder(placeholder):
            if is_cot:
                raise ctx.error(
                    f"{placeholder} in a CoT prompt: motions are not substituted there", "conversations"
                )
            if placeholder not in cand.motions:
                raise ctx.error(
                    f"{placeholder} is used by the {used_by} but not supplied",
                    f"{motions_path}.{placeholder}",
                )
        elif placeholder not in cand.texts:
            raise ctx.error(
                f"{placeholder} is used by the {used_by} but not supplied", f"{texts_path}.{placeholder}"
            )
    if not is_cot:
        return
    for key, container, base in (
        ("<Goal_Motion>", cand.motions, motions_path),
        ("<Prompt_Analysis>", cand.texts, texts_path),
        ("<Assess_Goal_Motion>", cand.texts, texts_path),
    ):
        if key not in container:
            raise ctx.error(f"{key} is required by the CoT trace builder but not supplied", f"{base}.{key}")
    for key in cand.motions:
        match = INTERMEDIATE_MOTION_RE.match(key)
        if match and f"<Assess_Intermediate_Motion_{match.group(1)}>" not in cand.texts:
            assess = f"<Assess_Intermediate_Motion_{match.group(1)}>"
            raise ctx.error(
                f"{assess} (assessment of {key}) is required by the CoT trace builder",
                f"{texts_path}.{assess}",
            )


def parse_annotation_record(
    obj: Any,
    *,
    index: int = 0,
    path: str | None = None,
    templates: TemplateStore | None = None,
    id_digits: int | None = None,
    warnings: list[str] | None = None,
) -> AnnotationRecord:
    """Validate one raw record (``dict`` from JSON) into an :class:`AnnotationRecord` (input not modified).

    Candidate fields override record-level fields, as upstream merges the drawn candidate into the
    record. Non-fatal findings (a degenerate ``t/t`` span) are appended to ``warnings``.
    """
    templates = templates or TemplateStore.load()
    record_id = obj.get("id") if isinstance(obj, Mapping) else None
    ctx = _Ctx(path, index=index, record_id=record_id, warnings=warnings)
    if not isinstance(obj, Mapping):
        raise ctx.error(f"expected a JSON object, got {type(obj).__name__}")
    if "id" not in obj:
        raise ctx.error("missing 'id'", "id")
    if not isinstance(record_id, (int, str)) or isinstance(record_id, bool):
        raise ctx.error(f"expected an integer or string id, got {record_id!r}", "id")
    task = obj.get("task")
    if "task" not in obj:
        raise ctx.error("missing 'task'", "task")
    _check_text(task, ctx, "task")
    is_cot = COT_TASK_MARKER in task
    if "conversations" not in obj:
        raise ctx.error("missing 'conversations'", "conversations")
    system, human, gpt = _parse_conversations(obj["conversations"], ctx, templates)
    needed = _required_placeholders(system, human, gpt, templates, is_cot)

    base = {k: v for k, v in obj.items() if k != "candidate_motion_text"}
    if "candidate_motion_text" in obj:
        raw = obj["candidate_motion_text"]
        if not isinstance(raw, list) or not raw:
            raise ctx.error("expected a non-empty list of candidates", "candidate_motion_text")
        candidates = []
        for i, cand in enumerate(raw):
            prefix = f"candidate_motion_text[{i}]."
            if not isinstance(cand, Mapping):
                raise ctx.error(f"expected an object, got {type(cand).__name__}", prefix[:-1])
            merged = {**base, **cand}

            def prefix_of(key: str, cand: Mapping[str, Any] = cand, prefix: str = prefix) -> str:
                return prefix if key in cand or key not in base else ""

            candidates.append(_parse_candidate(merged, prefix_of, ctx, is_cot, id_digits))
            _check_supplied(
                needed, candidates[-1], prefix_of, "text" if "text" in merged else "texts", ctx, is_cot
            )
    else:
        candidates = [_parse_candidate(base, lambda key: "", ctx, is_cot, id_digits)]
        _check_supplied(
            needed, candidates[0], lambda key: "", "text" if "text" in base else "texts", ctx, is_cot
        )
    return AnnotationRecord(
        id=record_id,
        task=task,
        system=system,
        human=human,
        gpt=gpt,
        candidates=tuple(candidates),
        from_candidate_list="candidate_motion_text" in obj,
        index=index,
        source=path,
    )


def parse_rl_record(
    obj: Any, *, line: int, path: str | None = None, id_digits: int | None = None
) -> RLRecord:
    """Validate one stage-3 RL ``jsonl`` record (spec_rl §2.2).

    ``reference_caption`` (the text side of the evaluator rewards) is required; ``motions`` is optional
    but must be an object whose ``<Goal_Motion>`` is a bare motion name (``000123``, ``M000123``,
    ``A_000123``; upstream parses the id from it and appends ``.npy`` itself, so a file name or a
    folder breaks it), a ``{motion_name, f_tag, to_tag}`` object, or null. ``all_prompt`` is optional.
    """
    ctx = _Ctx(path, line=line)
    error = ctx.error
    if not isinstance(obj, Mapping):
        raise error(f"expected a JSON object, got {type(obj).__name__}")
    caption = obj.get("reference_caption")
    if not isinstance(caption, str) or not caption.strip():
        raise error("missing or empty 'reference_caption'", "reference_caption")
    prompt = obj.get("all_prompt")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise error("expected a non-empty string", "all_prompt")
    goal: MotionRef | None = None
    if "motions" in obj:
        motions = obj["motions"]
        if not isinstance(motions, Mapping):
            raise error(f"'motions' must be an object, got {type(motions).__name__}", "motions")
        value = motions.get("<Goal_Motion>")
        field_path = "motions.<Goal_Motion>"
        if isinstance(value, str):
            if not value.strip() or value.endswith(".npy") or "/" in value or "\\" in value:
                raise error(f"expected a bare motion name (no folder, no .npy), got {value!r}", field_path)
            try:
                parse_motion_id(value, id_digits)
            except ValueError as err:
                raise error(str(err), field_path) from None
            goal = MotionRef(value)
        elif value is not None:
            goal = parse_motion_ref(value, ctx, field_path, id_digits)
    extra = {k: v for k, v in obj.items() if k not in ("reference_caption", "all_prompt", "motions")}
    return RLRecord(reference_caption=caption, goal_motion=goal, all_prompt=prompt, line=line, extra=extra)

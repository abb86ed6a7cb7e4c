"""Prompt templates: the authors' template file, the content placeholders, and the fixed test-time prompts.

Training prompts are drawn from ``assets/prompt_template-2.json`` (placeholder key -> interchangeable
variants, see :class:`TemplateStore`); annotation turns name a template key (``<Text2Motion_Template>``)
and the variants name content placeholders (``<Goal_Caption>``, ``<Generated_Motion>``, ...) that the
sample fills in. Test-time prompts are ONE fixed variant per task (:data:`TEST_PROMPT_SOURCES`), defined
by reference to the template variant they equal, and rendered by :func:`build_test_prompt` exactly as
the upstream inference code renders them (checkpoints were trained on these bytes)::

    {system}\\n\\nUser: {user}\\n\\n Response:<Motion>
                                  ^^^^^^^^^ only with prompt_w_response; <Motion> only for generation tasks

Upstream quirks kept on purpose (they are part of the trained prompt distribution): ``..`` is collapsed
to ``.`` after every text substitution (a caption ending in "." before a template "."), the
``unified_mogen_cot_v3_wo_assess_refine`` user text itself starts with "User: " ("User: User: ..."), and
``t2m_motionagent`` uses Motion-Agent's framing (no "User: ", "Response: " with a trailing space).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.common.errors import DataError

DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parent / "assets" / "prompt_template-2.json"

MOTION_START = "<Motion>"
MOTION_END = "</Motion>"

# Content placeholders filled from a sample (texts or motions). Intermediate motions and their
# assessments are numbered families (<Intermediate_Motion_0>, <Assess_Intermediate_Motion_0>, ...).
TEXT_PLACEHOLDERS = frozenset(
    {
        "<Goal_Caption>",
        "<Refinement_Instruction>",
        "<Assessment_Analysis>",
        "<Goal_Analysis>",
        "<Prompt_Analysis>",
        "<Analysis_Refinement_Instruction>",
    }
)
ASSESSMENT_PLACEHOLDERS = frozenset({"<Assess_Goal_Motion>"})
MOTION_PLACEHOLDERS = frozenset({"<Goal_Motion>", "<Generated_Motion>", "<Neg_Motion>"})
COT_TRACE_PLACEHOLDER = "<Unified_Mogen_COT_Trace>"  # gpt turn of CoT records; the trace is built in code
INTERMEDIATE_MOTION_RE = re.compile(r"^<Intermediate_Motion_(\d+)>$")
INTERMEDIATE_ASSESSMENT_RE = re.compile(r"^<Assess_Intermediate_Motion_(\d+)>$")

# Anything that looks like a placeholder: "<" + capitalised identifier + ">". Lower-case tags such as
# <think>/<answer> (literal text in the CoT templates) and the motion tokens are not placeholders.
_PLACEHOLDER_LIKE = re.compile(r"<[A-Z][A-Za-z0-9_]*>")
_MOTION_TOKEN = re.compile(r"^<Motion(?:_\d+)?>$")


def is_motion_placeholder(key: str) -> bool:
    """``<Goal_Motion>``, ``<Generated_Motion>``, ``<Neg_Motion>``, ``<Intermediate_Motion_k>``."""
    return key in MOTION_PLACEHOLDERS or INTERMEDIATE_MOTION_RE.match(key) is not None


def is_assessment_placeholder(key: str) -> bool:
    """Placeholders whose value is an ``{assessment, refinement}`` pair (CoT data)."""
    return key in ASSESSMENT_PLACEHOLDERS or INTERMEDIATE_ASSESSMENT_RE.match(key) is not None


def is_text_placeholder(key: str) -> bool:
    """Plain text placeholders (assessment pairs included: they are ``text`` entries in annotations)."""
    return key in TEXT_PLACEHOLDERS or is_assessment_placeholder(key)


def is_known_placeholder(key: str) -> bool:
    return is_text_placeholder(key) or is_motion_placeholder(key) or key == COT_TRACE_PLACEHOLDER


def known_placeholder_names() -> list[str]:
    """Human-readable list of the known placeholders (numbered families shown with ``_k``)."""
    fixed = sorted(
        TEXT_PLACEHOLDERS | ASSESSMENT_PLACEHOLDERS | MOTION_PLACEHOLDERS | {COT_TRACE_PLACEHOLDER}
    )
    return fixed + ["<Intermediate_Motion_k>", "<Assess_Intermediate_Motion_k>"]


def find_placeholders(text: str) -> list[str]:
    """Placeholder-looking tokens in ``text`` in order of appearance (motion tokens excluded)."""
    return [m for m in _PLACEHOLDER_LIKE.findall(text) if not _MOTION_TOKEN.match(m)]


def collapse_double_periods(text: str) -> str:
    """Upstream's ``text.replace('..', '.')``: one left-to-right pass, so ``...`` becomes ``..``."""
    return text.replace("..", ".")


def motion_string(codes: Iterable[int]) -> str:
    """``<Motion_a><Motion_b>...``: what ``tokenizer.decode`` gives for the code ids (no tags)."""
    return "".join(f"<Motion_{int(code)}>" for code in codes)


def motion_block(codes_or_string: Iterable[int] | str) -> str:
    """``<Motion>...</Motion>`` around a motion string or a code list (an empty motion: the bare tags)."""
    inner = codes_or_string if isinstance(codes_or_string, str) else motion_string(codes_or_string)
    return f"{MOTION_START}{inner}{MOTION_END}"


class TemplateStore:
    """The template file: placeholder key -> list of interchangeable variants, in file order.

    Key order matters (upstream draws one variant per key in this order, see
    ``data_engine.annotations.sampling``) and so does variant order (test prompts use fixed indices).
    """

    def __init__(self, templates: Mapping[str, Sequence[str]], source: str | Path | None = None) -> None:
        self.source = None if source is None else str(source)
        checked: dict[str, tuple[str, ...]] = {}
        for key, variants in templates.items():
            if not isinstance(key, str) or not re.fullmatch(r"<[A-Za-z0-9_]+>", key):
                raise DataError(f"template key {key!r} is not of the form <Name>", path=self.source)
            if (
                not isinstance(variants, (list, tuple))
                or not variants
                or not all(isinstance(v, str) and v.strip() for v in variants)
            ):
                raise DataError("expected a non-empty list of non-empty strings", path=self.source, field=key)
            checked[key] = tuple(variants)
        self._templates = checked
        self._placeholders = {
            key: frozenset(p for v in variants for p in find_placeholders(v))
            for key, variants in checked.items()
        }

    @classmethod
    def load(cls, path: str | Path | None = None) -> TemplateStore:
        """Read a template JSON file; without ``path`` the shipped asset (loaded once per process)."""
        if path is None or Path(path).resolve() == DEFAULT_TEMPLATE_PATH:
            return _default_store()
        return cls._read(Path(path))

    @classmethod
    def _read(cls, path: Path) -> TemplateStore:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read the template JSON ({err})", path=path) from err
        if not isinstance(data, dict):
            raise DataError("expected a JSON object {template key: [variants]}", path=path)
        return cls(data, source=path)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._templates)

    def __contains__(self, key: object) -> bool:
        return key in self._templates

    def __len__(self) -> int:
        return len(self._templates)

    def variants(self, key: str) -> tuple[str, ...]:
        try:
            return self._templates[key]
        except KeyError:
            raise KeyError(f"unknown template key {key!r}; known keys: {list(self._templates)}") from None

    def placeholders(self, key: str) -> frozenset[str]:
        """Union of the placeholders used by any variant of ``key`` (a random variant may be drawn)."""
        self.variants(key)
        return self._placeholders[key]

    def render(self, key: str, variant: int = 0, values: Mapping[str, str] | None = None) -> str:
        """Variant ``variant`` of ``key`` with ``values`` (placeholder -> final string) substituted.

        Motion values must already be rendered (``motion_block(codes)``). Raises ``ValueError`` for an
        unknown placeholder in ``values`` or a placeholder of the variant left unfilled.
        """
        variants = self.variants(key)
        if not 0 <= variant < len(variants):
            raise IndexError(f"{key} has {len(variants)} variants; variant {variant} does not exist")
        text = variants[variant]
        for name, value in (values or {}).items():
            if not is_known_placeholder(name):
                raise ValueError(
                    f"unknown placeholder {name!r}; known placeholders: {known_placeholder_names()}"
                )
            text = text.replace(name, value)
        leftover = [p for p in find_placeholders(text) if is_known_placeholder(p) or p in self]
        if leftover:
            raise ValueError(
                f"{key} variant {variant}: placeholder(s) {leftover} not filled; given {list(values or {})}"
            )
        return text

    def test_template(self, task: str) -> InferenceTemplate:
        """The fixed test-time template of ``task`` (see :data:`TEST_PROMPT_SOURCES`)."""
        try:
            source = TEST_PROMPT_SOURCES[task]
        except KeyError:
            raise ValueError(f"unknown test task {task!r}; known: {list(TEST_PROMPT_SOURCES)}") from None
        return InferenceTemplate(
            task=task,
            system=self.variants(source.system_key)[source.system_variant],
            user=source.user_prefix + self.variants(source.user_key)[source.user_variant],
            generation_forcing=source.generation_forcing,
            motionagent_framing=source.motionagent_framing,
        )


@functools.lru_cache(maxsize=1)
def _default_store() -> TemplateStore:
    return TemplateStore._read(DEFAULT_TEMPLATE_PATH)


@dataclass(frozen=True)
class InferencePromptSource:
    """Which template variants a test-time prompt equals, and how it is framed."""

    user_key: str
    user_variant: int = 0
    system_key: str = "<General_System_Prompt>"
    system_variant: int = 0
    user_prefix: str = ""  # "User: " for the wo_assess_refine quirk
    generation_forcing: bool = False  # append "<Motion>" so the model starts a motion at once
    motionagent_framing: bool = False  # Motion-Agent: no "User: ", "Response: " with trailing space


# The nine test tasks of upstream's inference engine. Mostly variant 0; prompt_analysis uses variant 1
# of <Goal_Analysis_Template> and the main CoT evaluation variant 1 of the wo_Answer family.
TEST_PROMPT_SOURCES: dict[str, InferencePromptSource] = {
    "t2m": InferencePromptSource("<Text2Motion_Template>", generation_forcing=True),
    "prompt_analysis": InferencePromptSource("<Goal_Analysis_Template>", 1),
    "refine_instruction": InferencePromptSource("<Text_Motion2Refinement_Instruction_Template>"),
    "instructed_motion_refinement": InferencePromptSource(
        "<Instructed_Motion_Refinement_Template>", generation_forcing=True
    ),
    "m2t": InferencePromptSource("<Motion2X_Template>"),
    "unified_mogen_cot_v3": InferencePromptSource("<Generate_Assess_Refien_Template_wo_Answer>", 1),
    "unified_mogen_cot_v2": InferencePromptSource("<Generate_Assess_Refien_Template>"),
    "unified_mogen_cot_v3_wo_assess_refine": InferencePromptSource(
        "<Motion_R1_Template_wo_Answer>", user_prefix="User: "
    ),
    "t2m_motionagent": InferencePromptSource(
        "<MotionAgent_Mogen_Template>",
        system_key="<MotionAgent_System_Prompt>",
        generation_forcing=True,
        motionagent_framing=True,
    ),
}


@dataclass(frozen=True)
class InferenceTemplate:
    task: str
    system: str
    user: str
    generation_forcing: bool
    motionagent_framing: bool


def _motion_value_to_string(key: str, value: Any, tokenizer: Any, vocab: Any) -> str:
    if isinstance(value, str):
        return value
    ids = value.tolist() if hasattr(value, "tolist") else list(value)
    if vocab is not None:
        return vocab.codes_to_text(vocab.ids_to_codes(ids))
    if tokenizer is not None:
        return tokenizer.decode(ids)
    raise ValueError(f"motion {key} is given as token ids: pass vocab= or tokenizer= to turn them into text")


def build_test_prompt(
    task: str,
    texts: Mapping[str, str] | None = None,
    motions: Mapping[str, str | Sequence[int] | Any] | None = None,
    *,
    prompt_w_response: bool = True,
    templates: TemplateStore | None = None,
    tokenizer: Any = None,
    vocab: Any = None,
    collapse_periods: bool = True,
) -> str:
    """The exact inference prompt string of ``task`` (the model input is ``<bos>`` + this string).

    ``texts``: placeholder -> text, substituted in dict order, each followed by the ``..`` -> ``.``
    collapse (``collapse_periods=False`` turns the quirk off). ``motions``: placeholder -> motion
    string (``<Motion_a><Motion_b>...``, without tags) or LLM token ids of the codes (turned into text
    with ``vocab``, a ``models.llm.vocab.MotionVocab``, or ``tokenizer.decode``). Raises
    ``ValueError`` when a placeholder of the template is left unfilled.
    """
    template = (templates or TemplateStore.load()).test_template(task)
    system, user = template.system, template.user
    for key, text in (texts or {}).items():
        system = system.replace(key, text)
        user = user.replace(key, text)
        if collapse_periods:
            system, user = collapse_double_periods(system), collapse_double_periods(user)
    for key, value in (motions or {}).items():
        block = motion_block(_motion_value_to_string(key, value, tokenizer, vocab))
        system = system.replace(key, block)
        user = user.replace(key, block)
    leftover = [p for p in find_placeholders(system + user) if is_known_placeholder(p)]
    if leftover:
        raise ValueError(
            f"test prompt {task!r}: placeholder(s) {leftover} not filled; "
            f"given texts {list(texts or {})}, motions {list(motions or {})}"
        )
    if template.motionagent_framing:
        prompt = f"{system}\n\n{user}\n\n" + ("Response: " if prompt_w_response else "")
    else:
        prompt = f"{system}\n\nUser: {user}\n\n" + (" Response:" if prompt_w_response else "")
    return prompt + (MOTION_START if template.generation_forcing else "")

"""The text-writer interface of the data engine: typed requests, typed responses, one ``generate`` call.

Four request kinds cover everything the annotations need (IRG-MotionLLM §4, spec_sft §4):

* :class:`GoalAnalysisRequest` — a caption -> ``n`` paraphrased analyses of its key elements
  (``<Goal_Analysis>`` / ``<Prompt_Analysis>``);
* :class:`DetailedPromptRequest` — a caption -> ``n`` detailed lower-case descriptions (the
  ``<Goal_Caption>`` of analysis-guided generation);
* :class:`AssessmentRequest` — the goal caption and **all** captions of a motion -> an alignment
  assessment and a refinement instruction (for the goal motion itself: "... perfectly aligns with the
  goal text." / "No refinements needed.");
* :class:`PromptAugmentationRequest` — a caption -> ``n`` paraphrased prompts (stage-3 RL data).

A writer (:class:`TextWriter`) turns a sequence of requests into ``(position, response or failure)``
pairs, yielded as they complete so that the caller can store each one at once (``writers.cache``).
Requests know how to parse an LLM's JSON reply into their response (:meth:`parse_reply`), so every LLM
writer validates replies the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

NO_REFINEMENT = "No refinements needed."


class MalformedReply(ValueError):
    """An LLM reply that is not the JSON object the request asked for."""


class WriterFatalError(RuntimeError):
    """A failure that every further call would repeat (bad API key, missing model): stop the run."""


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MalformedReply(f"field {field!r} must be a non-empty string, got {value!r:.80}")
    return " ".join(value.split())


def _text_list(obj: Mapping[str, Any], field: str, n: int) -> tuple[str, ...]:
    value = obj.get(field)
    if not isinstance(value, list):
        raise MalformedReply(f"field {field!r} must be a list of {n} strings, got {type(value).__name__}")
    texts = [_text(item, f"{field}[{i}]") for i, item in enumerate(value)]
    if len(texts) < n:
        raise MalformedReply(f"field {field!r} has {len(texts)} strings, expected {n}")
    return tuple(texts[:n])


# ----------------------------------------------------------------------------------------- responses
@dataclass(frozen=True)
class GoalAnalysisResponse:
    analyses: tuple[str, ...]


@dataclass(frozen=True)
class DetailedPromptResponse:
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class AssessmentResponse:
    assessment: str
    refinement: str


@dataclass(frozen=True)
class PromptAugmentationResponse:
    prompts: tuple[str, ...]


WriterResponse = (
    GoalAnalysisResponse | DetailedPromptResponse | AssessmentResponse | PromptAugmentationResponse
)


# ------------------------------------------------------------------------------------------ requests
class _Request:
    kind: ClassVar[str]
    response_type: ClassVar[type]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        return {"kind": self.kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}}

    def response_from_dict(self, data: Mapping[str, Any]) -> WriterResponse:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return self.response_type(**fields)


@dataclass(frozen=True)
class GoalAnalysisRequest(_Request):
    caption: str
    n: int = 4
    kind: ClassVar[str] = "goal_analysis"
    response_type: ClassVar[type] = GoalAnalysisResponse

    def parse_reply(self, obj: Mapping[str, Any]) -> GoalAnalysisResponse:
        return GoalAnalysisResponse(_text_list(obj, "analyses", self.n))


@dataclass(frozen=True)
class DetailedPromptRequest(_Request):
    caption: str
    n: int = 4
    kind: ClassVar[str] = "detailed_prompt"
    response_type: ClassVar[type] = DetailedPromptResponse

    def parse_reply(self, obj: Mapping[str, Any]) -> DetailedPromptResponse:
        return DetailedPromptResponse(tuple(t.lower() for t in _text_list(obj, "prompts", self.n)))


@dataclass(frozen=True)
class AssessmentRequest(_Request):
    """``motion_captions``: every caption of the assessed motion. ``is_goal``: the motion is the goal's
    own (ground truth), so the reply must confirm alignment and the refinement is "No refinements needed."."""

    goal_caption: str
    motion_captions: tuple[str, ...]
    is_goal: bool = False
    kind: ClassVar[str] = "assessment"
    response_type: ClassVar[type] = AssessmentResponse

    def parse_reply(self, obj: Mapping[str, Any]) -> AssessmentResponse:
        assessment = _text(obj.get("assessment"), "assessment")
        if self.is_goal:
            return AssessmentResponse(assessment, NO_REFINEMENT)
        return AssessmentResponse(assessment, _text(obj.get("refinement"), "refinement"))


@dataclass(frozen=True)
class PromptAugmentationRequest(_Request):
    caption: str
    n: int = 1
    kind: ClassVar[str] = "prompt_augmentation"
    response_type: ClassVar[type] = PromptAugmentationResponse

    def parse_reply(self, obj: Mapping[str, Any]) -> PromptAugmentationResponse:
        return PromptAugmentationResponse(_text_list(obj, "prompts", self.n))


WriterRequest = GoalAnalysisRequest | DetailedPromptRequest | AssessmentRequest | PromptAugmentationRequest


def response_to_dict(response: WriterResponse) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(response).items()}


def request_digest(request: WriterRequest) -> str:
    """A stable hash of a request's content (used in cache keys and seeded phrasing)."""
    payload = json.dumps(request.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_json_reply(content: str) -> dict[str, Any]:
    """The JSON object in an LLM reply (a surrounding Markdown code fence is tolerated)."""
    if not isinstance(content, str) or not content.strip():
        raise MalformedReply("empty reply")
    match = _FENCE.match(content)
    text = match.group(1) if match else content.strip()
    if not text.startswith("{"):
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise MalformedReply(f"no JSON object in the reply: {content[:120]!r}")
        text = text[start : end + 1]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise MalformedReply(
            f"reply is not valid JSON ({err.msg} at char {err.pos}): {content[:120]!r}"
        ) from None
    if not isinstance(obj, dict):
        raise MalformedReply(f"reply must be a JSON object, got {type(obj).__name__}")
    return obj


# ------------------------------------------------------------------------------------------- writers
@dataclass(frozen=True)
class WriterFailure:
    """A request the writer gave up on (not cached, so a rerun retries it)."""

    reason: str
    attempts: int = 1


class TextWriter(ABC):
    """Writes the engine's texts. Subclasses set ``kind`` and implement ``model_id``,
    ``template_version`` and ``generate``; the cache key of a call is (kind, model_id, template_version,
    request), so changing the model or the prompts never reuses stale answers."""

    kind: ClassVar[str] = ""
    paid: ClassVar[bool] = False  # True for metered APIs: progress bars show the running cost

    @property
    @abstractmethod
    def model_id(self) -> str:
        """What produced the texts (model name, or rules name + seed)."""

    @property
    @abstractmethod
    def template_version(self) -> str:
        """A hash of the prompt templates (or rules) in use."""

    @abstractmethod
    def generate(
        self, requests: Sequence[WriterRequest]
    ) -> Iterator[tuple[int, WriterResponse | WriterFailure]]:
        """Yield ``(index into requests, response or failure)`` for every request, in any order."""

    @property
    def cost_usd(self) -> float:
        """Estimated spend so far (0 for local writers)."""
        return 0.0

    def describe(self) -> dict[str, Any]:
        """Settings recorded in the ``info`` block of the annotation files (never secrets)."""
        return {"kind": self.kind, "model": self.model_id, "template_version": self.template_version}

    def close(self) -> None:
        """Release resources (thread pools, models)."""

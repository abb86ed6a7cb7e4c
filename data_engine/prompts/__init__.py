"""Prompt templates of the LLM writers (``openai_api``, ``hf_local``): one system prompt and one user
template per request kind, as plain-text files next to this module (``string.Template`` syntax:
``$caption``, ``$n``, ``$motion_captions``).

The template version of a request kind is a hash of its files, so editing a prompt changes the cache
key of every call that uses it and stale answers are never reused.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from string import Template

from data_engine.writers.base import (
    AssessmentRequest,
    DetailedPromptRequest,
    GoalAnalysisRequest,
    PromptAugmentationRequest,
    WriterRequest,
)

PROMPT_DIR = Path(__file__).resolve().parent
SYSTEM_FILE = "system.txt"


def _template_file(request: WriterRequest) -> str:
    if isinstance(request, GoalAnalysisRequest):
        return "goal_analysis.txt"
    if isinstance(request, DetailedPromptRequest):
        return "detailed_prompt.txt"
    if isinstance(request, AssessmentRequest):
        return "goal_assessment.txt" if request.is_goal else "assessment.txt"
    if isinstance(request, PromptAugmentationRequest):
        return "prompt_augmentation.txt"
    raise TypeError(f"no prompt template for {type(request).__name__}")


@functools.cache
def _read(name: str) -> str:
    return (PROMPT_DIR / name).read_text(encoding="utf-8").strip()


def render_messages(request: WriterRequest) -> list[dict[str, str]]:
    """Chat messages (system + user) asking for ``request``'s JSON reply."""
    values = {
        "caption": getattr(request, "caption", None) or getattr(request, "goal_caption", ""),
        "n": str(getattr(request, "n", 1)),
    }
    if isinstance(request, AssessmentRequest):
        values["motion_captions"] = "\n".join(f"- {c}" for c in request.motion_captions)
    user = Template(_read(_template_file(request))).substitute(values)
    return [{"role": "system", "content": _read(SYSTEM_FILE)}, {"role": "user", "content": user}]


@functools.cache
def templates_version() -> str:
    """A hash of every template file (part of the LLM writers' cache keys)."""
    digest = hashlib.sha256()
    for path in sorted(PROMPT_DIR.glob("*.txt")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]

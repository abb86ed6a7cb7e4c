"""Text writers of the data engine: one interface (``base``), three back ends (``offline`` rules,
``openai_api`` chat-completions, ``hf_local`` transformers) and the crash-safe response cache."""

from data_engine.writers.base import (
    AssessmentRequest,
    AssessmentResponse,
    DetailedPromptRequest,
    DetailedPromptResponse,
    GoalAnalysisRequest,
    GoalAnalysisResponse,
    PromptAugmentationRequest,
    PromptAugmentationResponse,
    TextWriter,
    WriterFailure,
    WriterFatalError,
)
from data_engine.writers.cache import ResponseCache, RunResult, run_requests

__all__ = [
    "AssessmentRequest",
    "AssessmentResponse",
    "DetailedPromptRequest",
    "DetailedPromptResponse",
    "GoalAnalysisRequest",
    "GoalAnalysisResponse",
    "PromptAugmentationRequest",
    "PromptAugmentationResponse",
    "ResponseCache",
    "RunResult",
    "TextWriter",
    "WriterFailure",
    "WriterFatalError",
    "run_requests",
]

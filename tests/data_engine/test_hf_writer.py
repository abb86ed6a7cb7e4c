"""The local Hugging Face writer with a tiny random Gemma-2: chat template, batching, malformed replies."""

from __future__ import annotations

import pytest

from data_engine.writers.base import GoalAnalysisRequest, WriterFailure, WriterFatalError
from data_engine.writers.hf_local import HFLocalWriter, HFSettings


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    from models.llm.tiny import make_tiny_llm, tiny_corpus

    captions = ["a person jumps to the left.", "someone waves the right hand.", "a man kicks twice."] * 10
    return make_tiny_llm(
        tmp_path_factory.mktemp("tiny") / "chat",
        tiny_corpus(captions),
        preset="smoke",
        vocab_size=400,
        seed=0,
    )


def test_random_model_replies_are_reported_as_malformed_after_retries(tiny_chat_model):
    writer = HFLocalWriter(
        HFSettings(str(tiny_chat_model), batch_size=3, max_new_tokens=6, malformed_retries=1, temperature=0.0)
    )
    assert writer.model_id.startswith("hf:chat:") and writer.describe()["kind"] == "hf"
    prompt = writer.prompt_text(GoalAnalysisRequest("a person jumps to the left."))
    # Gemma's template has no system turn: the system prompt is folded into the user turn
    assert prompt.startswith("<bos><start_of_turn>user\nYou annotate data") and prompt.endswith(
        "<start_of_turn>model\n"
    )
    assert "a person jumps to the left." in prompt
    requests = [GoalAnalysisRequest(f"a person jumps {n} times.") for n in range(4)]
    results = dict(writer.generate(requests))
    assert sorted(results) == [0, 1, 2, 3]
    assert all(
        isinstance(r, WriterFailure) and r.attempts == 2 and "malformed reply" in r.reason
        for r in results.values()
    )


def test_a_missing_model_folder_is_fatal(tmp_path):
    with pytest.raises(WriterFatalError, match="local model folder"):
        HFLocalWriter(HFSettings(str(tmp_path / "nope")))

"""Sequence builder flags and edge cases beyond the golden lines: wo_plan, wo_assess_refine, null motions,
reported truncation, the ``..`` switch, unfilled placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_engine.annotations import (
    Assessment,
    FirstVariantPolicy,
    MotionRef,
    load_annotation_file,
    resolve_record,
)
from data_engine.annotations.sampling import CotRounds, ResolvedSample
from models.llm.motion_parsing import split_cot
from models.llm.sequences import (
    SequenceOptions,
    SequenceTooLongError,
    render_sequence,
    tokenize_sequence,
    used_motion_keys,
)

CODES = {"<Goal_Motion>": [1, 2, 3], "<Intermediate_Motion_0>": [4, 5], "<Intermediate_Motion_1>": [6]}


@pytest.fixture(scope="module")
def cot_sample(demo_dir: Path) -> ResolvedSample:
    record = load_annotation_file(demo_dir / "stage-2/sft_motion_assess_cot_v2.json")[0]
    return resolve_record(record, FirstVariantPolicy(2))


def _atomic(user: str, response: str, texts: dict, motions: dict) -> ResolvedSample:
    return ResolvedSample(
        task="t2m_direct_generation",
        system="SYS",
        user=user,
        response=response,
        texts=texts,
        motions=motions,
        candidate_index=None,
        crop_offsets={},
        cot=None,
        where="test record",
    )


def test_wo_plan_and_wo_assess_refine(cot_sample, tiny_tokenizer):
    assert used_motion_keys(cot_sample) == [
        "<Intermediate_Motion_0>",
        "<Intermediate_Motion_1>",
        "<Goal_Motion>",
    ]
    no_plan = render_sequence(cot_sample, CODES, SequenceOptions(wo_answer=True, wo_plan=True))
    assert "[plan]" not in no_plan.response and no_plan.response.startswith("<think>[analyze]")
    assert no_plan.response.count("[generate]") == 3

    minimal = render_sequence(cot_sample, CODES, SequenceOptions(wo_answer=True, wo_assess_refine=True))
    assert minimal.response.count("[generate]") == 1 and "[assess]" not in minimal.response
    assert minimal.response.endswith(
        "[generate]<Motion><Motion_1><Motion_2><Motion_3></Motion>[/generate]\n</think><eos>"
    )

    # wo_assess_refine alone keeps the full trace (upstream only shortens it together with wo_answer)
    full = render_sequence(cot_sample, CODES, SequenceOptions(wo_assess_refine=True))
    assert split_cot(full.response).ok and full.response.count("[generate]") == 3


def test_ignore_incorrect_masks_only_intermediate_generations(cot_sample, tiny_tokenizer):
    tokenizer, vocab = tiny_tokenizer
    seq = render_sequence(cot_sample, CODES, SequenceOptions(wo_answer=True, ignore_incorrect=True))
    masked = "".join(p.text for p in seq.pieces if not p.supervised)
    assert (
        masked == "[generate]<Motion><Motion_4><Motion_5></Motion>[/generate]\n"
        "[generate]<Motion><Motion_6></Motion>[/generate]\n"
    )
    tokens = tokenize_sequence(seq, tokenizer, vocab)
    supervised_ids = [t for t, lab in zip(tokens.input_ids, tokens.labels, strict=True) if lab != -100]
    assert vocab.first_code_id + 4 not in supervised_ids and vocab.first_code_id + 1 in supervised_ids


def test_null_motion_is_an_empty_block(tiny_tokenizer):
    tokenizer, vocab = tiny_tokenizer
    sample = _atomic(
        "Refine <Generated_Motion> for <Goal_Caption>",
        "<Goal_Motion>",
        {"<Goal_Caption>": "a man walks."},
        {"<Generated_Motion>": None, "<Goal_Motion>": MotionRef("000001")},
    )
    seq = render_sequence(sample, {"<Goal_Motion>": [7]})
    assert seq.prompt == "SYS\n\nUser: Refine <Motion></Motion> for a man walks.\n\n Response:"
    assert seq.response == "<Motion><Motion_7></Motion><eos>" and seq.pieces[0].direct is not None
    assert tokenize_sequence(seq, tokenizer, vocab) == tokenize_sequence(seq, tokenizer)
    with pytest.raises(KeyError, match="test record: no motion codes given for <Goal_Motion>"):
        render_sequence(sample, {})


def test_double_period_switch_and_leftovers():
    texts = {"<Goal_Caption>": "a man waits..."}
    sample = _atomic("Show <Goal_Caption>.", "<Goal_Caption>", texts, {})
    assert render_sequence(sample, {}).prompt.endswith(
        "Show a man waits..\n\n Response:"
    )  # one pass per text key
    raw = render_sequence(sample, {}, SequenceOptions(collapse_double_periods=False, prompt_w_response=False))
    assert raw.prompt.endswith("Show a man waits....\n\n") and raw.response == "a man waits...<eos>"
    missing = _atomic(
        "Refine for <Goal_Caption> using <Refinement_Instruction>",
        "<Goal_Motion>",
        texts,
        {"<Goal_Motion>": None},
    )
    with pytest.raises(
        ValueError,
        match=r"test record: placeholder\(s\) \['<Refinement_Instruction>'\] left unfilled in the user",
    ):
        render_sequence(missing, {})
    with pytest.raises(TypeError, match="atomic tasks take plain texts only"):
        render_sequence(
            _atomic(
                "x", "<Goal_Motion>", {"<Assess_Goal_Motion>": Assessment("a", "b")}, {"<Goal_Motion>": None}
            ),
            {},
        )


def test_overflow_is_reported(cot_sample, tiny_tokenizer):
    tokenizer, vocab = tiny_tokenizer
    seq = render_sequence(cot_sample, CODES, SequenceOptions(wo_answer=True))
    full = tokenize_sequence(seq, tokenizer, vocab)
    with pytest.raises(SequenceTooLongError, match=r"record #0 \(id=0\): \d+ tokens > max_length 50"):
        tokenize_sequence(seq, tokenizer, vocab, max_length=50)
    cut = tokenize_sequence(seq, tokenizer, vocab, max_length=50, on_overflow="truncate")
    assert cut.truncated and cut.full_length == len(full.input_ids) and cut.input_ids == full.input_ids[:50]
    assert not tokenize_sequence(seq, tokenizer, vocab, max_length=len(full.input_ids)).truncated
    bad_codes = render_sequence(
        cot_sample, {**CODES, "<Goal_Motion>": [600]}, SequenceOptions(wo_answer=True)
    )
    with pytest.raises(ValueError, match=r"motion codes outside \[0, 512\)"):
        tokenize_sequence(bad_codes, tokenizer, vocab)


def test_cot_rounds_without_intermediates(cot_sample):
    sample = ResolvedSample(
        **{
            **{f: getattr(cot_sample, f) for f in cot_sample.__dataclass_fields__},
            "cot": CotRounds(0, (), ()),
        }
    )
    seq = render_sequence(sample, CODES, SequenceOptions(wo_answer=True))
    assert seq.response.count("[generate]") == 1 and split_cot(seq.response).generations == ((1, 2, 3),)

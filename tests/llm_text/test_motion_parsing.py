"""Motion blocks from generated ids (counted fallbacks), upstream's scores variant, the CoT grammar."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_engine.annotations import FirstVariantPolicy, load_annotation_file, resolve_record
from models.llm.motion_parsing import (
    ParseStats,
    codes_from_text,
    parse_generated_batch,
    parse_generated_motion,
    restricted_argmax_codes,
    split_cot,
)
from models.llm.sequences import RELEASED_STAGE2, SequenceOptions, render_sequence, tokenize_sequence
from models.llm.vocab import MotionVocab

VOCAB = MotionVocab(nb_text_tokens=100, nb_code=512)
S, E, EOS = VOCAB.motion_start_id, VOCAB.motion_end_id, 1


def c(*codes: int) -> list[int]:
    return [VOCAB.first_code_id + k for k in codes]


def test_last_complete_block_wins_and_truncated_block_is_ignored():
    ids = [7, S, *c(1, 2), E, 8, S, *c(3, 4, 5), E, 9, S, *c(6)]  # last block cut by max_length
    stats = ParseStats()
    parsed = parse_generated_motion(ids, VOCAB, stats=stats)
    assert parsed.codes == [3, 4, 5] and parsed.num_gens == 2 and parsed.truncated and parsed.fallback is None
    assert parse_generated_motion(ids, VOCAB, select="first").codes == [1, 2]
    assert stats.truncated_block == 1 and stats.blocks == 2 and stats.fallbacks == 0


def test_foreign_tokens_are_dropped_and_counted():
    stats = ParseStats()
    parsed = parse_generated_motion([S, *c(10), 42, 43, *c(11), E, EOS], VOCAB, stats=stats)
    assert parsed.codes == [10, 11] and parsed.foreign_tokens == 2 and stats.foreign_tokens == 2


def test_fallbacks_are_counted():
    stats = ParseStats()
    none = parse_generated_motion([5, 6, 7, EOS], VOCAB, stats=stats)
    empty = parse_generated_motion([S, E], VOCAB, stats=stats)
    only_text = parse_generated_motion([S, 50, E], VOCAB, stats=stats)
    assert (none.codes, none.fallback, none.num_gens) == ([0], "no_block", 0)
    assert (empty.codes, empty.fallback) == ([0], "empty")
    assert (only_text.codes, only_text.fallback, only_text.foreign_tokens) == ([0], "empty", 1)
    assert parse_generated_motion([5], VOCAB, fallback=()).codes == []
    assert stats.as_dict() | {} == {
        "sequences": 3,
        "blocks": 2,
        "no_block": 1,
        "empty": 2,
        "truncated_block": 0,
        "foreign_tokens": 1,
        "restarted_blocks": 0,
        "stray_ends": 0,
        "fallbacks": 3,
    }


def test_restarts_stray_ends_eos_and_batches():
    stats = ParseStats()
    parsed = parse_generated_motion([E, S, *c(1), S, *c(2, 3), E], VOCAB, stats=stats)
    assert parsed.codes == [2, 3] and stats.restarted_blocks == 1 and stats.stray_ends == 1
    after_eos = parse_generated_motion([S, *c(4), E, EOS, S, *c(5), E], VOCAB, eos_id=EOS)
    assert after_eos.codes == [4] and after_eos.num_gens == 1
    batch = torch.tensor([[S, *c(1, 2), E, 0], [S, *c(3), E, EOS, 0]])
    assert [p.codes for p in parse_generated_batch(batch, VOCAB)] == [[1, 2], [3]]


def test_restricted_argmax_matches_upstream_rule():
    width = VOCAB.nb_code + 2
    scores = np.full((6, VOCAB.vocab_size), -5.0, dtype=np.float32)
    prefer = [0, 2 + 7, 2 + 9, 2 + 11, 1, 2 + 13]  # local indices preferred by the logits at each step
    for step, local in enumerate(prefer):
        scores[step, VOCAB.motion_start_id + local] = 3.0
    scores[:, 5] = 10.0  # a text token has the overall argmax: ignored by the motion-restricted argmax
    assert restricted_argmax_codes(scores, VOCAB) == [7, 9, 11]
    emitted = [S, 60, VOCAB.first_code_id + 100, 61, E, 62]  # motion ids emitted are kept, others use scores
    assert restricted_argmax_codes(torch.from_numpy(scores), VOCAB, emitted) == [7, 100, 11]
    scores2 = np.zeros((2, VOCAB.vocab_size), dtype=np.float32)
    scores2[:, VOCAB.motion_start_id + 2] = 1.0  # local 2 -> code 0; no tags at all
    assert restricted_argmax_codes(scores2, VOCAB) == [0, 0]
    assert width == 514


def test_codes_from_text():
    assert codes_from_text(
        "[generate]<Motion><Motion_1></Motion>x<Motion><Motion_5><Motion_77></Motion>"
    ) == [5, 77]


def _cot_sequences(demo_dir, options):
    records = load_annotation_file(demo_dir / "stage-2" / "sft_motion_assess_cot_v2.json")
    for rounds in range(5):
        policy = FirstVariantPolicy(rounds)
        for record in records:
            sample = resolve_record(record, policy)
            codes = {
                k: [(sum(map(ord, r.motion_name)) * (i + 1)) % 512 for i in range(6)]
                for k, r in sample.motions.items()
            }
            yield sample, codes, render_sequence(sample, codes, options)


@pytest.mark.parametrize("options", [RELEASED_STAGE2, SequenceOptions()], ids=["released", "with_answer"])
def test_split_cot_accepts_every_training_trace(options, demo_dir, tiny_tokenizer):
    tokenizer, vocab = tiny_tokenizer
    for sample, codes, seq in _cot_sequences(demo_dir, options):
        trace = split_cot(seq.response)
        assert trace.ok, trace.violation
        expected = [tuple(codes[k]) for k in (*sample.cot.kept, "<Goal_Motion>")]
        assert list(trace.generations) == expected
        assert trace.final_codes == tuple(codes["<Goal_Motion>"]) and trace.ended_with_eos
        assert (trace.answer_codes is None) == options.wo_answer
        assert [s.kind for s in trace.steps][:4] == ["plan", "analyze", "plan", "generate"]
        assert trace.steps[-1].content == "I need to finish thinking as the satisfactory motion is generated."
        # the same final motion from the token ids, as the evaluation reads it
        tokens = tokenize_sequence(seq, tokenizer, vocab)
        completion = tokens.input_ids[len(tokenizer(seq.prompt, add_special_tokens=False).input_ids) + 1 :]
        parsed = parse_generated_motion(completion, vocab, eos_id=tokenizer.eos_token_id)
        assert parsed.codes == codes["<Goal_Motion>"]
        assert parsed.num_gens == len(sample.cot.kept) + 1 + (0 if options.wo_answer else 1)


GOOD = (
    "<think>[plan]P1[/plan]\n[analyze]A[/analyze]\n[plan]P2[/plan]\n"
    "[generate]<Motion><Motion_3><Motion_4></Motion>[/generate]\n[plan]P3[/plan]\n"
    "[assess]Assessment: fine\nRefinement: No refinements needed.[/assess]\n[plan]P4[/plan]\n</think><eos>"
)


def test_split_cot_reports_the_first_violation():
    good = split_cot(GOOD)
    assert good.ok and good.generations == ((3, 4),) and good.steps[5].refinement == "No refinements needed."
    assert split_cot(GOOD.replace("<eos>", "")).ok  # eos already stripped by the caller
    cases = {
        GOOD.replace("[plan]P1[/plan]\n", ""): "expected '[plan]'",
        GOOD.replace("[/analyze]", ""): "'[/analyze]' closing",
        GOOD.replace("<Motion_3>", "x"): "<Motion>(<Motion_k>)+</Motion> inside [generate]",
        GOOD.replace("Refinement: ", "Refine: "): "Assessment: ...",
        GOOD[: GOOD.index("P3") + 2]: "closing the [plan] block",
        GOOD.replace("</think>", "</think> trailing"): "'<eos>' or the end",
        GOOD.replace("[plan]P2[/plan]", "[plan]P2[analyze]x[/plan]"): "before another tag",
    }
    for text, message in cases.items():
        trace = split_cot(text)
        assert not trace.ok and message in trace.violation, (text, trace.violation)
    truncated = split_cot(GOOD[: GOOD.index("[generate]") + 20])  # generation cut off by max_length
    assert [s.kind for s in truncated.steps] == ["plan", "analyze", "plan"]
    assert (
        truncated.violation_at == GOOD.index("<Motion>")
        and "closing the [generate] block" in truncated.violation
        and truncated.generations == ()
    )


def test_split_cot_lenient_whitespace():
    spaced = GOOD.replace("[/plan]\n", "[/plan]\n\n  ").replace("<think>", "<think> ")
    assert not split_cot(spaced).ok
    lenient = split_cot(spaced, strict=False)
    assert lenient.ok and lenient.generations == ((3, 4),)
    assert split_cot(GOOD.replace("Refinement: ", "Refine: "), strict=False).ok

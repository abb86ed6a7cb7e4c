"""MotionLLMEngine on an untrained tiny Gemma-2: prompts, constrained decoding, parsing, caching, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from models.llm.inference import (
    MOTION_TASKS,
    MotionBlockConstraint,
    check_task,
    is_stop_instruction,
    upstream_codes_from_local,
)
from models.llm.motion_parsing import restricted_argmax_codes
from models.llm.prompts import build_test_prompt


def _unpadded_rows(record) -> list[list[int]]:
    rows = []
    for ids, mask in zip(record.input_ids.tolist(), record.attention_mask.tolist(), strict=True):
        first = mask.index(1)
        assert all(mask[first:]) and not any(mask[:first]), "padding must be on the left only"
        rows.append(ids[first:])
    return rows


def test_prompts_handed_to_generate_are_byte_identical(make_engine, llm, toy_captions):
    engine = make_engine(record_inputs=True, max_new_tokens=2)
    captions = [toy_captions[0], toy_captions[1] + " and then waves", toy_captions[2][:12]]
    engine.run("t2m", captions)
    (record,) = engine.stats.calls
    assert record.batch_size == 3
    bos = llm.tokenizer.bos_token_id
    expected = {build_test_prompt("t2m", {"<Goal_Caption>": c}, prompt_w_response=True) for c in captions}
    seen = set()
    for row in _unpadded_rows(record):
        assert row[0] == bos and row.count(bos) == 1
        text = llm.tokenizer.decode(row[1:])
        assert llm.tokenizer(text)["input_ids"] == row  # the string is exactly what was tokenised
        seen.add(text)
    assert seen == expected
    assert all(text.endswith("\n\n Response:<Motion>") for text in seen)


def test_refinement_loop_prompts_follow_previous_outputs(make_engine, llm, toy_captions):
    engine = make_engine(record_inputs=True, max_new_tokens=5, motion_constrained=True, max_motion_codes=3)
    captions = toy_captions[:2]
    results = engine.run("direct_generation-instructed_refinement", captions, max_refine_round=1)
    initial, instruct, refine = engine.stats.calls
    assert [initial.batch_size, instruct.batch_size, refine.batch_size] == [2, 2, 2]
    prompts = {llm.tokenizer.decode(row[1:]) for row in _unpadded_rows(instruct)}
    expected = set()
    for caption, result in zip(captions, results, strict=True):
        motion = llm.vocab.codes_to_text(result.trace[0]["codes"])
        expected.add(
            build_test_prompt(
                "refine_instruction", {"<Goal_Caption>": caption}, {"<Generated_Motion>": motion}
            )
        )
        instruction = result.trace[1]["text"]
        assert result.rounds == 1 and result.num_gens == 2
        refine_prompt = build_test_prompt(
            "instructed_motion_refinement",
            {"<Goal_Caption>": caption, "<Refinement_Instruction>": instruction},
            {"<Generated_Motion>": motion},
        )
        assert refine_prompt.endswith("<Motion>")
        assert refine_prompt in {llm.tokenizer.decode(row[1:]) for row in _unpadded_rows(refine)}
    assert prompts == expected


def test_motion_constrained_sampling_only_emits_codes_inside_blocks(make_engine, toy_captions):
    torch.manual_seed(3)
    engine = make_engine(do_sample=True, motion_constrained=True, max_motion_codes=5, max_new_tokens=12)
    results = engine.run("t2m", toy_captions)
    well_formed = re.compile(r"(?:<Motion_\d+>){1,5}</Motion>")
    assert all(well_formed.fullmatch(r.text) for r in results), [r.text for r in results]
    assert all(r.fallback is None and 1 <= len(r.codes) <= 5 for r in results)
    assert any(len(r.codes) == 5 for r in results)  # the budget closed at least one block
    assert engine.stats.parse.foreign_tokens == 0

    torch.manual_seed(3)
    free = make_engine(do_sample=True, max_new_tokens=12)
    free.run("t2m", toy_captions)
    assert free.stats.parse.foreign_tokens > 0  # without the constraint the random model breaks blocks


def test_block_constraint_masks_by_state(llm):
    v = llm.vocab
    code = v.first_code_id
    text = 40
    rows = [
        [text, text, text, text, text, text, v.motion_start_id, code, code],  # open, 2 codes
        [text, v.motion_start_id, code, v.motion_end_id, text, text, text, text, text],  # closed
        [text, text, text, text, text, text, text, text, v.motion_start_id],  # open, no code yet
        [text, text, text, v.motion_start_id, code, code, code, code, code],  # open, budget of 5 reached
    ]
    scores = torch.randn(4, v.vocab_size)
    out = MotionBlockConstraint(v, max_codes=5)(torch.tensor(rows), scores)
    finite = torch.isfinite(out)
    codes = slice(v.first_code_id, v.vocab_size)
    assert finite[0, codes].all() and finite[0, v.motion_end_id] and finite[0].sum() == v.nb_code + 1
    assert torch.equal(out[1], scores[1])
    assert finite[2, codes].all() and not finite[2, v.motion_end_id] and finite[2].sum() == v.nb_code
    assert finite[3].sum() == 1 and finite[3, v.motion_end_id]


def test_restricted_argmax_reproduces_upstream_scores_decoding(make_engine, llm, toy_captions):
    captions = toy_captions[:4]
    engine = make_engine(restricted_argmax=True, max_new_tokens=10, batch_size=1, cache_greedy=False)
    ours = [r.codes for r in engine.run("t2m", captions)]
    reference = []
    eos = list(engine.eos_ids)
    for caption in captions:
        ids = llm.tokenizer([build_test_prompt("t2m", {"<Goal_Caption>": caption})], return_tensors="pt")
        with torch.no_grad():
            out = llm.model.generate(
                **ids,
                max_new_tokens=10,
                do_sample=False,
                eos_token_id=eos,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=0,
            )
        generated = out.sequences[0, ids["input_ids"].shape[1] :].numpy()
        stop = np.flatnonzero(np.isin(generated, eos))
        end = stop[0] + 1 if stop.size else len(generated)
        codes = restricted_argmax_codes(torch.stack(out.scores)[:end, 0], llm.vocab)
        reference.append(codes or [0])
    assert ours == reference


def test_upstream_tail_rule_matches_restricted_argmax_codes(llm):
    rng = np.random.default_rng(0)
    v = llm.vocab
    for _ in range(20):
        scores = rng.standard_normal((12, v.vocab_size)).astype(np.float32)
        scores[:, v.motion_start_id : v.motion_start_id + 2] += rng.uniform(0, 4, size=(12, 2))
        local = scores[:, v.motion_start_id : v.vocab_size].argmax(axis=1)
        assert upstream_codes_from_local(local) == restricted_argmax_codes(scores, v)


def test_malformed_outputs_are_counted_not_fatal(make_engine, toy_captions):
    engine = make_engine(max_new_tokens=6)
    results = engine.run("unified_mogen_cot_v3", toy_captions[:4])
    assert all(r.codes == [0] and r.fallback == "no_block" and r.num_gens == 0 for r in results)
    summary = engine.stats.summary()
    assert summary["parse"]["no_block"] == 4 and summary["substituted_motions"] == 4
    assert summary["num_gens_histogram"] == {"0": 4}

    t2m = make_engine(max_new_tokens=6)
    results = t2m.run("t2m", toy_captions[:4])
    assert all(r.codes == [0] for r in results if r.fallback)
    assert t2m.stats.substituted == sum(r.fallback is not None for r in results)
    assert t2m.stats.substituted == t2m.stats.parse.fallbacks


def test_greedy_cache_is_exact_for_any_budget(make_engine, toy_captions):
    captions = toy_captions[:3]
    engine = make_engine(max_new_tokens=8)
    first = engine.run("t2m", captions)
    assert engine.run("t2m", captions)[0].text == first[0].text
    assert len(engine.stats.calls) == 1 and engine.stats.cache_hits == 3
    engine.settings.max_new_tokens = 4  # shorter budget: served by truncation
    shorter = [r.text for r in engine.run("t2m", captions)]
    assert len(engine.stats.calls) == 1
    assert shorter == [r.text for r in make_engine(max_new_tokens=4).run("t2m", captions)]
    engine.settings.max_new_tokens = 9  # longer budget: unfinished completions must be regenerated
    engine.run("t2m", captions)
    assert len(engine.stats.calls) == 2


def test_unknown_task_lists_valid_tasks(make_engine):
    with pytest.raises(ValueError) as err:
        make_engine().run("t2m_cot_v9", ["a person walks"])
    message = str(err.value)
    assert "t2m_cot_v9" in message and all(task in message for task in MOTION_TASKS)
    with pytest.raises(ValueError, match="negative motion"):
        make_engine().run("pure_random_flip", ["a person walks"])
    assert check_task("m2t") == "m2t"


def test_stop_sentence_rules():
    assert is_stop_instruction("No refinements needed.", lenient=False)
    assert not is_stop_instruction("No refinement needed.", lenient=False)
    assert is_stop_instruction(" no refinement needed", lenient=True)
    assert not is_stop_instruction("Refinements needed: raise the arm.", lenient=True)


def test_random_flip_continues_after_the_foreign_motion(make_engine, llm, toy_captions):
    v = llm.vocab
    engine = make_engine(record_inputs=True, max_new_tokens=4)
    negatives = [[1, 2, 3], [4, 5]]
    results = engine.run("unified_mogen_cot_v3_random_flip", toy_captions[:2], negative_codes=negatives)
    first, second = engine.stats.calls
    blocks = [[v.motion_start_id, *v.codes_to_ids(np.array(n)).tolist(), v.motion_end_id] for n in negatives]
    rows = _unpadded_rows(second)
    assert sorted(any(row[-len(b) :] == b for row in rows) for b in blocks) == [True, True]
    first_prompts = {tuple(row) for row in _unpadded_rows(first)}
    assert all(any(tuple(row[: len(p)]) == p for p in first_prompts) for row in _unpadded_rows(second))
    # the untrained model makes no block in the continuation: the foreign motion is the answer (upstream)
    assert [r.codes for r in results] == negatives
    assert [r.fallback for r in results] == ["negative_motion"] * 2
    assert engine.stats.flip_without_first_motion == 2

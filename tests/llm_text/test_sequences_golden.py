"""Every line of fixtures/prompts.jsonl reproduced byte for byte: prompt, response, supervised spans, pieces.

The fixture renders motions with a code rule instead of the VQ: code k = (s * (k + 1)) mod 512 for
k = 0..5, s = sum of the ASCII codes of ``motion_name``. Seeded lines re-seed ``random.Random(123)`` at
the start of each file pass (one pass per stage-2 flag setting).
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest

from data_engine.annotations import FirstVariantPolicy, RandomPolicy, load_annotation_file, resolve_record
from models.llm.sequences import SequenceOptions, render_sequence, tokenize_sequence, used_motion_keys


def fixture_codes(motion_name: str) -> list[int]:
    s = sum(ord(c) for c in motion_name)
    return [(s * (k + 1)) % 512 for k in range(6)]


def _policy(name: str):
    if name == "seeded-123":
        return RandomPolicy(random.Random(123))
    if name.startswith("first-variant-rounds-"):
        return FirstVariantPolicy(int(name.rsplit("-", 1)[1]))
    assert name == "first-variant"
    return FirstVariantPolicy()


def _group_key(line: dict) -> tuple:
    return line["file"], line["policy"], line["ignore_incorrect"], line["wo_answer"]


def _groups(lines: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for line in lines:
        groups[_group_key(line)].append(line)
    return groups


def _label_spans(tokenizer, ids: list[int], labels: list[int], prefix: str) -> list[list[int]]:
    """Runs of supervised tokens as character spans of the response, by decoding prefixes (as the fixture)."""

    def offset(k: int) -> int:
        return len(tokenizer.decode(ids[:k], clean_up_tokenization_spaces=False)) - len(prefix)

    spans, k = [], 0
    while k < len(labels):
        if labels[k] == -100:
            k += 1
            continue
        end = k
        while end < len(labels) and labels[end] != -100:
            end += 1
        spans.append([offset(k), offset(end)])
        k = end
    return spans


def test_fixture_has_all_lines(golden_lines):
    assert len(golden_lines) == 422
    assert len(_groups(golden_lines)) == 42


GROUP_IDS = [
    f"{f}|{p}|ii={int(i)}|wa={int(w)}"
    for f, p, i, w in [
        *[
            (f"stage-1/{n}", pol, False, False)
            for n in (
                "M2T_motion_caption_annots.json",
                "T2M_detailed_prompt_generation_annots.json",
                "T2M_direct_generation_annots.json",
                "T2T_prompt_analysis_annots.json",
                "TM2M_direct_refinement_annots.json",
                "TM2M_instructed_motion_refinement_annots.json",
                "TM2T_assessment_analysis_annots.json",
                "TM2T_refinement_instruction_annots.json",
            )
            for pol in ("first-variant", "seeded-123")
        ],
        *[("stage_0_annotations_demo.json", pol, False, False) for pol in ("first-variant", "seeded-123")],
        *[
            ("stage-2/sft_motion_assess_cot_v2.json", pol, i, w)
            for pol in [f"first-variant-rounds-{n}" for n in range(5)] + ["seeded-123"]
            for i in (True, False)
            for w in (True, False)
        ],
    ]
]


@pytest.mark.parametrize("group_id", GROUP_IDS)
def test_golden_group(group_id: str, golden_lines, demo_dir: Path, tiny_tokenizer):
    tokenizer, vocab = tiny_tokenizer
    file, policy_name, ii, wa = group_id.split("|")
    key = (file, policy_name, ii == "ii=1", wa == "wa=1")
    expected = {line["record_index"]: line for line in _groups(golden_lines)[key]}
    records = load_annotation_file(demo_dir / file)
    assert sorted(expected) == list(range(len(records)))

    policy = _policy(policy_name)  # one stream per file pass, records in file order
    options = SequenceOptions(prompt_w_response=True, ignore_incorrect=key[2], wo_answer=key[3])
    for record in records:
        line = expected[record.index]
        sample = resolve_record(record, policy)
        codes = {k: fixture_codes(ref.motion_name) for k, ref in sample.motions.items() if ref is not None}
        seq = render_sequence(sample, {k: codes[k] for k in used_motion_keys(sample)}, options)

        where = f"{file} record {record.index} ({policy_name})"
        assert seq.prompt == line["prompt"], where
        assert seq.response == line["response"], where
        assert [list(s) for s in seq.piece_spans()] == line["response_pieces"], where
        assert [list(s) for s in seq.supervised_spans()] == line["supervised_spans"], where
        assert sample.candidate_index == line["candidate_index"], where
        assert {k: [r.motion_name, r.f_tag, r.to_tag, codes[k]] for k, r in sample.motions.items()} == {
            k: [m["motion_name"], m["f_tag"], m["to_tag"], m["codes"]] for k, m in line["motions"].items()
        }, where
        if "rounds_requested" in line:
            assert sample.cot.requested == line["rounds_requested"], where
            assert list(sample.cot.sampled) == line["intermediate_keys_sampled"], where
            assert list(sample.cot.kept) == line["intermediate_keys_kept"], where

        by_text = tokenize_sequence(seq, tokenizer)
        by_codes = tokenize_sequence(seq, tokenizer, vocab)
        assert by_codes == by_text, where
        prefix = "<bos>" + seq.prompt
        assert (
            tokenizer.decode(by_text.input_ids, clean_up_tokenization_spaces=False) == prefix + seq.response
        ), where
        assert (
            _label_spans(tokenizer, by_text.input_ids, by_text.labels, prefix) == line["supervised_spans"]
        ), where
        assert all(lab in (-100, tok) for lab, tok in zip(by_text.labels, by_text.input_ids, strict=True))

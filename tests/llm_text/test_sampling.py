"""Sampling policies: upstream's exact draw sequence, no mutation of the loaded data, crop offsets."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

from data_engine.annotations import FirstVariantPolicy, RandomPolicy, load_annotation_file, resolve_record
from data_engine.annotations.loader import read_annotation_list
from data_engine.annotations.sampling import keeps_intermediate
from data_engine.annotations.schema import parse_annotation_record


class RecordingPolicy(RandomPolicy):
    """RandomPolicy that logs each draw in the fixture's ``random_calls`` format."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.calls: list[dict] = []

    def _choice(self, count: int) -> int:
        index = super()._choice(count)
        self.calls.append({"fn": "choice", "len": count, "result_index": index})
        return index

    def intermediate_keys(self, population, k):
        result = super().intermediate_keys(population, k)
        self.calls.append({"fn": "sample", "population": list(population), "k": k, "result": result})
        return result


def test_draw_sequence_equals_upstream_random_calls(golden_lines, demo_dir: Path):
    seeded = [line for line in golden_lines if line["policy"] == "seeded-123"]
    passes: dict[tuple, list[dict]] = {}
    for line in seeded:
        passes.setdefault((line["file"], line["ignore_incorrect"], line["wo_answer"]), []).append(line)
    assert len(passes) == 13 and sum(map(len, passes.values())) == 131
    for (file, _, _), lines in passes.items():
        policy = RecordingPolicy(random.Random(123))
        for record, line in zip(load_annotation_file(demo_dir / file), lines, strict=True):
            policy.calls.clear()
            resolve_record(record, policy)
            expected = [{k: v for k, v in call.items() if k != "site"} for call in line["random_calls"]]
            assert policy.calls == expected, f"{file} record {record.index}"


def test_resolving_never_mutates_the_data(demo_dir: Path):
    path = demo_dir / "stage-1/TM2M_instructed_motion_refinement_annots.json"
    raw = read_annotation_list(path)
    pristine = copy.deepcopy(raw)
    records = [parse_annotation_record(obj, index=i, path=str(path)) for i, obj in enumerate(raw)]
    snapshot = copy.deepcopy(records)
    policy = RandomPolicy(7)
    picks = {resolve_record(records[0], policy).candidate_index for _ in range(40)}
    assert len(picks) > 5  # the same record gives different candidates on different accesses
    assert raw == pristine and records == snapshot
    counts = [len(obj["candidate_motion_text"]) for obj in raw]
    assert [len(r.candidates) for r in records] == counts


def test_first_variant_policy_and_crop_offsets(demo_dir: Path):
    record = load_annotation_file(demo_dir / "stage-2/sft_motion_assess_cot_v2.json")[0]
    sample = resolve_record(record, FirstVariantPolicy(9))
    assert sample.cot.requested == 4 and sample.candidate_index == 0 and sample.crop_offsets == {}
    assert sample.texts["<Prompt_Analysis>"] == record.candidates[0].texts["<Prompt_Analysis>"][0]
    with pytest.raises(ValueError):
        FirstVariantPolicy(-1)

    lengths = {"000002": 3, "M002664": 1}
    sample = resolve_record(
        record, RandomPolicy(0), crop_variants=lambda ref: lengths.get(ref.motion_name, 4)
    )
    assert list(sample.crop_offsets) == list(sample.motions)
    assert all(
        0 <= off < lengths.get(sample.motions[k].motion_name, 4) for k, off in sample.crop_offsets.items()
    )
    assert sample.crop_offsets["<Intermediate_Motion_0>"] == 0  # one variant only


def test_intermediate_filter():
    assert not keeps_intermediate("No refinements needed.")
    assert not keeps_intermediate("No refinement needed.")
    assert not keeps_intermediate("Looks good overall. No refinement needed here.")
    assert not keeps_intermediate("Raise the arm.")  # three words
    assert keeps_intermediate("Raise the left arm higher.")


def test_turns_are_expanded_and_the_gpt_turn_is_not(demo_dir: Path):
    record = load_annotation_file(demo_dir / "stage-1/T2M_direct_generation_annots.json")[0]
    sample = resolve_record(record, FirstVariantPolicy())
    assert sample.user == "Generate a motion that depicts <Goal_Caption>."
    assert sample.system.startswith("You are an assistant") and sample.response == "<Goal_Motion>"
    assert sample.texts == {"<Goal_Caption>": "a man full-body sideways jumps to his left."}

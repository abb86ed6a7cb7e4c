"""Built annotation files: valid, in the authors' schema (field by field against the demo files), ordered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_engine.annotations import load_rl_jsonl, validate_annotation_file
from data_engine.builders import STAGE1_FILES, STAGE2_FILE, build_stage0
from data_engine.negatives import load_negatives, normalize_caption


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_file_is_written_and_passes_schema_validation(toy_annotations):
    out, summary = toy_annotations
    expected = [
        "stage-0/stage_0_t2m_annots.json",
        "stage-0/stage_0_m2t_annots.json",
        *(f"stage-1/{name}" for name in STAGE1_FILES),
        f"stage-2/{STAGE2_FILE}",
    ]
    for name in expected:
        result = validate_annotation_file(out / name, id_digits=6)
        assert result.records > 0 and result.records == summary["counts"][name], name
        info = load(out / name)["info"]
        assert info["num_instances"] == result.records and info["engine"]["version"]
        assert info["writer"]["kind"] == "offline" and "time" in info
    records = load_rl_jsonl(out / "stage-3" / "rl_prompts.jsonl", id_digits=6)
    assert len(records) == summary["counts"]["stage-3/rl_prompts.jsonl"]
    assert (out / "quality_report.json").is_file() and (out / "build_info.json").is_file()


def _shape(record: dict) -> dict:
    """Keys and conversation of a record, and the key sets of its first candidate."""
    shape = {"keys": list(record), "task": record["task"], "conversations": record["conversations"]}
    item = record["candidate_motion_text"][0] if "candidate_motion_text" in record else record
    shape["item_keys"] = sorted(item)
    shape["motions"] = sorted(item["motions"])
    shape["texts"] = sorted(item["text"])
    shape["ref_keys"] = [sorted(v) for v in item["motions"].values()]
    shape["text_types"] = sorted({type(v).__name__ for v in item["text"].values()})
    return shape


@pytest.mark.parametrize("name", sorted(STAGE1_FILES))
def test_stage1_files_match_the_demo_schema(toy_annotations, upstream_data_dir, name):
    out, _ = toy_annotations
    demo = load(upstream_data_dir / "annotations_demo" / "stage-1" / name)["annotations"][0]
    ours = load(out / "stage-1" / name)["annotations"][0]
    demo_shape, our_shape = _shape(demo), _shape(ours)
    assert sorted(our_shape.pop("keys")) == sorted(demo_shape.pop("keys"))
    assert our_shape == demo_shape


def test_stage0_and_stage2_match_the_demo_schema(toy_annotations, upstream_data_dir):
    out, _ = toy_annotations
    demo0 = load(upstream_data_dir / "annotations_demo" / "stage_0_annotations_demo.json")["annotations"][0]
    ours0 = load(out / "stage-0" / "stage_0_t2m_annots.json")["annotations"][0]
    assert ours0["conversations"] == demo0["conversations"] and ours0["task"] == demo0["task"]
    assert sorted(ours0) == sorted(demo0)
    demo2 = load(upstream_data_dir / "annotations_demo" / "stage-2" / STAGE2_FILE)["annotations"][0]
    ours2 = load(out / "stage-2" / STAGE2_FILE)["annotations"]
    assert ours2[0]["conversations"] == demo2["conversations"] and ours2[0]["task"] == demo2["task"]
    full = next(c for r in ours2 for c in r["candidate_motion_text"] if len(c["motions"]) == 4)
    assert sorted(full) == sorted(demo2["candidate_motion_text"][0])
    assert isinstance(full["text"]["<Goal_Caption>"], str) and len(full["text"]["<Prompt_Analysis>"]) == 4
    assert full["text"]["<Assess_Goal_Motion>"]["refinement"] == "No refinements needed."
    assert set(full["text"]["<Assess_Intermediate_Motion_0>"]) == {"assessment", "refinement"}


def test_toy_preset_writes_stage0_t2m_with_the_stage1_template(toy_root, toy_negatives, tmp_path):
    from data_engine.build_annotations import BuildAnnotationsConfig, main

    main(["--preset", "toy", "--dataset-root", str(toy_root), "--negatives", str(toy_negatives),
          "--out", str(tmp_path / "ann"), "--stages", "0", "--max-goals", "3", "--no-progress"])
    record = load(tmp_path / "ann" / "stage-0" / "stage_0_t2m_annots.json")["annotations"][0]
    assert [turn["value"] for turn in record["conversations"]] == [
        "<General_System_Prompt>", "<Text2Motion_Template>", "<Goal_Motion>"]
    with pytest.raises(ValueError, match="stage-0 prompts"):
        build_stage0([], "motion-agent")
    with pytest.raises(SystemExit, match="--stage0-prompts"):
        BuildAnnotationsConfig(dataset_root="d", negatives="n.json", out="o", stage0_prompts="x")


def test_candidates_are_ordered_far_to_near_with_the_goal_last(toy_annotations, toy_negatives):
    out, _ = toy_annotations
    negatives = load_negatives(toy_negatives).negatives
    refs = {}  # clip name -> motion ref, from the stage-2 goals
    tm2t = load(out / "stage-1" / "TM2T_assessment_analysis_annots.json")["annotations"]
    stage2 = load(out / "stage-2" / STAGE2_FILE)["annotations"]
    for record in tm2t:
        meta = record["candidate_motion_text"][0]["meta_inst_name"]
        clip = meta.rsplit("_", 1)[0]
        by_caption: dict[str, list] = {}
        for cand in record["candidate_motion_text"]:
            assert cand["meta_inst_name"].rsplit("_", 1)[0] == clip
            by_caption.setdefault(cand["meta_inst_name"], []).append(cand)
        for cands in by_caption.values():
            goal = cands[-1]
            if goal["text"]["<Refinement_Instruction>"] == ["No refinements needed."]:
                refs[clip] = goal["motions"]["<Generated_Motion>"]
    checked = 0
    for record in stage2:
        for cand in record["candidate_motion_text"]:
            goal_ref = cand["motions"]["<Goal_Motion>"]
            clip = next((c for c, r in refs.items() if r == goal_ref and c in negatives), None)
            if clip is None:
                continue
            order = [n.name for n in negatives[clip]]
            names = [
                cand["motions"][f"<Intermediate_Motion_{k}>"]["motion_name"]
                for k in range(len(cand["motions"]) - 1)
            ]
            expected = [n.split("_")[-1] for n in order]
            positions = [expected.index(n) for n in names]
            assert positions == sorted(positions), "intermediates keep the far -> near order"
            checked += 1
    assert checked > 20


def test_rl_prompts_pair_motions_1_to_1_with_text_only_and_avoid_test_captions(toy_annotations, toy_root):
    out, _ = toy_annotations
    records = [json.loads(line) for line in (out / "stage-3" / "rl_prompts.jsonl").read_text().splitlines()]
    paired = [r for r in records if r["source"] == "paired"]
    text_only = [r for r in records if r["source"] == "augmented"]
    assert paired and text_only and 0.5 <= len(text_only) / len(paired) <= 1.0
    for record in paired:
        name = record["motions"]["<Goal_Motion>"]
        assert isinstance(name, str) and (toy_root / "new_joint_vecs" / f"{name}.npy").is_file()
        assert record["all_prompt"].endswith(f"Goal Text: {record['prompt']}\n\n")
    assert all("motions" not in r and r["reference_caption"] == r["prompt"] for r in text_only)
    test_ids = (toy_root / "test.txt").read_text().split()
    test_captions = {
        normalize_caption(line.split("#")[0])
        for i in test_ids
        for line in (toy_root / "texts" / f"{i}.txt").read_text().splitlines()
        if line
    }
    assert not {normalize_caption(r["prompt"]) for r in records} & test_captions
    assert len({normalize_caption(r["prompt"]) for r in records}) == len(records)


def test_quality_report_counts_what_was_dropped(toy_annotations):
    out, _ = toy_annotations
    report = load(out / "quality_report.json")
    tm2t = report["tasks"]["TM2T_assessment_analysis_annots.json"]
    assert tm2t["items_in"] == tm2t["items_out"] + sum(tm2t["dropped"].values())
    for reason, examples in report["examples"].get("TM2T_assessment_analysis_annots.json", {}).items():
        assert examples and reason in tm2t["dropped"]
    # no kept negative says it needs no refinement, and every goal item does
    for record in load(out / "stage-1" / "TM2M_instructed_motion_refinement_annots.json")["annotations"]:
        for cand in record["candidate_motion_text"]:
            is_goal = cand["motions"]["<Generated_Motion>"] == cand["motions"]["<Goal_Motion>"]
            assert (cand["text"]["<Refinement_Instruction>"] == ["No refinements needed."]) == is_goal


def test_toy_assessments_contrast_the_true_attributes_of_goal_and_negative(toy_annotations, toy_root):
    """Against toy_world.json: for single-action goals and negatives, the instruction names the goal's
    action when the families differ, and the goal's value of every attribute that differs."""
    from data_engine.writers.offline import FAMILY_WORDS, count_adverb

    out, _ = toy_annotations
    manifest = json.loads((toy_root / "toy_world.json").read_text())
    fps = manifest["fps"]

    def parts(ref: dict) -> list[dict]:
        motion_parts = manifest["motions"][ref["motion_name"]]["parts"]
        if ref["to_tag"] == 0.0:
            return motion_parts
        span = (ref["f_tag"] * fps, ref["to_tag"] * fps)
        return [max(motion_parts, key=lambda p: min(p["end"], span[1]) - max(p["start"], span[0]))]

    goals = {r["id"]: r for r in load(out / "stage-1" / "TM2M_direct_refinement_annots.json")["annotations"]}
    families = attributes = 0
    for record in goals.values():
        for cand in record["candidate_motion_text"]:
            goal_ref, motion_ref = cand["motions"]["<Goal_Motion>"], cand["motions"]["<Generated_Motion>"]
            goal, motion = parts(goal_ref), parts(motion_ref)
            refinement = cand["text"]["<Refinement_Instruction>"][0]
            if goal_ref == motion_ref or len(goal) != 1 or len(motion) != 1:
                continue
            g, m = goal[0], motion[0]
            if g["family"] != m["family"]:
                words = FAMILY_WORDS[g["family"]]
                assert words.noun and words.noun in refinement or words.gerund in refinement, refinement
                families += 1
                continue
            for attr in ("direction", "side", "count"):
                if g[attr] is not None and m[attr] is not None and g[attr] != m[attr]:
                    value = g[attr]
                    word = count_adverb(value) if attr == "count" else value.replace("in_place", "in place")
                    assert word in refinement, (attr, g, m, refinement)
                    attributes += 1
    assert families > 100 and attributes > 10

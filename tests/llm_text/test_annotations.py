"""Annotation schema: every demo file validates; corrupted copies fail naming file, record and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from data_engine.annotations import (
    MotionRef,
    load_annotation_file,
    load_annotation_files,
    load_rl_jsonl,
    parse_motion_id,
    validate_annotation_file,
    validate_file,
    validate_rl_jsonl,
)
from models.common.errors import DataError

DEMO_COUNTS = {
    "stage-1/M2T_motion_caption_annots.json": ("m2t_motion_caption", 11, 11),
    "stage-1/T2M_detailed_prompt_generation_annots.json": ("t2m_detailed_prompt_generation", 11, 11),
    "stage-1/T2M_direct_generation_annots.json": ("t2m_direct_generation", 11, 11),
    "stage-1/T2T_prompt_analysis_annots.json": ("t2t_prompt_analysis", 11, 11),
    "stage-1/TM2M_direct_refinement_annots.json": ("tm2m_direct_refinement", 11, 152),
    "stage-1/TM2M_instructed_motion_refinement_annots.json": ("tm2m_direct_refinement", 11, 152),
    "stage-1/TM2T_assessment_analysis_annots.json": ("tm2t_assessment_analysis", 11, 155),
    "stage-1/TM2T_refinement_instruction_annots.json": ("tm2t_refinement_instruction", 11, 155),
    "stage-2/sft_motion_assess_cot_v2.json": ("unified_mogen_cot_v2", 10, 28),
    "stage_0_annotations_demo.json": ("t2m_direct_generation", 3, 3),
}


def test_every_demo_file_validates(demo_dir: Path):
    found = sorted(str(p.relative_to(demo_dir)) for p in demo_dir.rglob("*.json"))
    assert found == sorted(DEMO_COUNTS)
    for name, (task, records, candidates) in DEMO_COUNTS.items():
        summary = validate_file(demo_dir / name)
        assert (dict(summary.tasks), summary.records, summary.candidates) == (
            {task: records},
            records,
            candidates,
        )
    cot = validate_annotation_file(demo_dir / "stage-2/sft_motion_assess_cot_v2.json")
    assert len(cot.warnings) == 2 and all("degenerate span 8.0..8.0" in w for w in cot.warnings)
    with pytest.raises(
        DataError, match=r"motions\.<Goal_Motion>\.motion_name.*6-digit motion id.*02471"
    ):  # KIT names
        load_annotation_file(demo_dir / "stage_0_annotations_demo.json", id_digits=6)
    assert len(load_annotation_file(demo_dir / "stage_0_annotations_demo.json", id_digits=5)) == 3


def test_colon_separated_lists_concatenate(demo_dir: Path):
    files = [
        demo_dir / "stage-1/T2M_direct_generation_annots.json",
        demo_dir / "stage_0_annotations_demo.json",
    ]
    records = load_annotation_files(":".join(map(str, files)))
    assert len(records) == 14 and records[11].source == str(files[1]) and records[11].index == 0


def test_motion_ids_and_spans():
    assert parse_motion_id("000123") == ("000123", False)
    assert parse_motion_id("M000123") == ("000123", True) and parse_motion_id("M000123").stem == "M000123"
    assert parse_motion_id("T_007471") == ("007471", False)
    assert parse_motion_id("F_006999") == ("006999", False)
    assert parse_motion_id("A_000123") == ("000123", False)
    assert parse_motion_id("000123_0") == ("000123", False)
    assert parse_motion_id("02471", id_digits=5) == ("02471", False)
    assert parse_motion_id("M03077", id_digits=5) == ("03077", True)
    assert parse_motion_id("02471", id_digits=None) == ("02471", False)
    for bad, digits in (("02471", 6), ("000123", 5), ("abcdef", 6), ("M_12345a", None), ("", 6)):
        with pytest.raises(ValueError, match="motion id"):
            parse_motion_id(bad, digits)
    assert MotionRef("000006", 0.0, 5.0).frame_span(20) == (0, 100)
    assert MotionRef("000006", 6.0, 9.0).frame_span(12.5) == (75, 112)
    assert MotionRef("000006").frame_span(20) is None and MotionRef("000006", 8.0, 8.0).whole_clip


def _write(tmp_path: Path, data, name="annots.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tm2t(demo_dir: Path) -> dict:
    return json.loads(
        (demo_dir / "stage-1/TM2T_refinement_instruction_annots.json").read_text(encoding="utf-8")
    )


@pytest.fixture(scope="module")
def cot(demo_dir: Path) -> dict:
    return json.loads((demo_dir / "stage-2/sft_motion_assess_cot_v2.json").read_text(encoding="utf-8"))


def _corrupt(data: dict, record: int, edit) -> dict:
    data = copy.deepcopy(data)
    edit(data["annotations"][record])
    return data


CORRUPTIONS = {
    "missing task": (lambda a: a.pop("task"), "record #2 (id=2), field 'task': missing 'task'"),
    "wrong role": (
        lambda a: a["conversations"][1].update({"from": "user"}),
        "record #2 (id=2), field 'conversations[1].from': expected role 'human', got 'user'",
    ),
    "two turns": (
        lambda a: a["conversations"].pop(),
        "field 'conversations': expected 3 turns (system, human, gpt), got 2",
    ),
    "unknown template key": (
        lambda a: a["conversations"][1].update({"value": "<Text_Motion2Refinment_Template>"}),
        "field 'conversations[1].value': unknown template key or placeholder "
        "<Text_Motion2Refinment_Template>",
    ),
    "unsupplied placeholder": (
        lambda a: a["candidate_motion_text"][3]["text"].pop("<Goal_Caption>"),
        "record #2 (id=2), field 'candidate_motion_text[3].text.<Goal_Caption>': "
        "<Goal_Caption> is used by the "
        "human turn <Text_Motion2Refinement_Instruction_Template> but not supplied",
    ),
    "unsupplied motion": (
        lambda a: a["candidate_motion_text"][1].update({"motions": {}}),
        "field 'candidate_motion_text[1].motions.<Generated_Motion>': <Generated_Motion> is used",
    ),
    "empty text": (
        lambda a: a["candidate_motion_text"][3]["text"]["<Goal_Caption>"].__setitem__(0, "  "),
        "field 'candidate_motion_text[3].text.<Goal_Caption>[0]': empty text",
    ),
    "unknown text key": (
        lambda a: a["candidate_motion_text"][0]["text"].update({"<Goal_Captoin>": "x"}),
        "field 'candidate_motion_text[0].text.<Goal_Captoin>': unknown text placeholder",
    ),
    "non-numeric tag": (
        lambda a: a["candidate_motion_text"][4]["motions"]["<Generated_Motion>"].update({"f_tag": "abc"}),
        "field 'candidate_motion_text[4].motions.<Generated_Motion>.f_tag': "
        "expected a finite number of seconds, got 'abc'",
    ),
    "reversed tags": (
        lambda a: a["candidate_motion_text"][4]["motions"]["<Generated_Motion>"].update(
            {"f_tag": 5.0, "to_tag": 2.0}
        ),
        "field 'candidate_motion_text[4].motions.<Generated_Motion>': f_tag 5.0 > to_tag 2.0",
    ),
    "missing tag": (
        lambda a: a["candidate_motion_text"][4]["motions"]["<Generated_Motion>"].pop("to_tag"),
        "field 'candidate_motion_text[4].motions.<Generated_Motion>.to_tag': missing 'to_tag'",
    ),
    "bad id": (
        lambda a: a["candidate_motion_text"][5]["motions"]["<Generated_Motion>"].update(
            {"motion_name": "walk_01"}
        ),
        "field 'candidate_motion_text[5].motions.<Generated_Motion>.motion_name': "
        "cannot find a 6-digit motion id",
    ),
    "assessment in an atomic task": (
        lambda a: a["candidate_motion_text"][0]["text"].update(
            {"<Assess_Goal_Motion>": {"assessment": "a", "refinement": "b"}}
        ),
        "field 'candidate_motion_text[0].text.<Assess_Goal_Motion>': "
        "assessment objects are only used by CoT tasks",
    ),
    "no candidates": (
        lambda a: a.update({"candidate_motion_text": []}),
        "field 'candidate_motion_text': expected a non-empty list",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_record_names_file_record_and_field(case: str, tm2t: dict, tmp_path: Path):
    edit, message = CORRUPTIONS[case]
    path = _write(tmp_path, _corrupt(tm2t, 2, edit))
    with pytest.raises(DataError) as err:
        load_annotation_file(path, id_digits=6)
    assert str(err.value).startswith(f"{path}, record #2 (id=2), field ")
    assert message in str(err.value)


def test_cot_specific_errors(cot: dict, tmp_path: Path):
    def drop_assessment(a):
        a["candidate_motion_text"][1]["text"].pop("<Assess_Intermediate_Motion_2>")

    with pytest.raises(
        DataError,
        match=r"record #6 \(id=6\), field 'candidate_motion_text\[1\]\.text\.<Assess_Intermediate_Motion_2>'",
    ):
        load_annotation_file(_write(tmp_path, _corrupt(cot, 6, drop_assessment)))

    def list_assessment(a):
        a["candidate_motion_text"][0]["text"]["<Assess_Goal_Motion>"] = ["x"]

    with pytest.raises(
        DataError, match=r"\.text\.<Assess_Goal_Motion>': expected an \{assessment, refinement\} object"
    ):
        load_annotation_file(_write(tmp_path, _corrupt(cot, 0, list_assessment)))


def test_file_level_errors(tmp_path: Path):
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        load_annotation_file(_write(tmp_path, "{not json", "bad.json"))
    with pytest.raises(DataError, match=r"field 'annotations': missing top-level 'annotations'"):
        load_annotation_file(_write(tmp_path, {"info": {}}))
    with pytest.raises(DataError, match="cannot read the file"):
        load_annotation_file(tmp_path / "absent.json")


def test_rl_jsonl(tmp_path: Path):
    rows = [
        {
            "reference_caption": "a man walks.",
            "motions": {"<Goal_Motion>": "A_000123"},
            "all_prompt": "x",
            "split": "train",
        },
        {
            "reference_caption": "a man runs.",
            "motions": {"<Goal_Motion>": {"motion_name": "M000124", "f_tag": 1.0, "to_tag": 3.0}},
        },
        {"reference_caption": "a man sits.", "motions": {"<Goal_Motion>": None}},
    ]
    path = _write(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n\n", "rl.jsonl")
    records = load_rl_jsonl(path)
    assert [r.goal_motion for r in records] == [MotionRef("A_000123"), MotionRef("M000124", 1.0, 3.0), None]
    assert records[0].extra == {"split": "train"} and records[1].line == 2
    summary = validate_file(path)
    assert (
        summary.kind == "rl"
        and summary.records == 3
        and summary.blank_lines == 1
        and len(summary.warnings) == 1
    )

    bad_rows = {
        '{"motions": {}}': "line 1, field 'reference_caption': missing or empty 'reference_caption'",
        '{"reference_caption": "x", "motions": ["000001"]}': "field 'motions': 'motions' must be an object",
        '{"reference_caption": "x", "motions": {"<Goal_Motion>": "000001.npy"}}': "a bare motion name",
        '{"reference_caption": "x", "motions": {"<Goal_Motion>": "walk"}}': "cannot find a",
        '{"reference_caption": "x", "motions": {"<Goal_Motion>": '
        '{"motion_name": "000001", "f_tag": 2, "to_tag": 1}}}': "f_tag 2 > to_tag 1",
        '{"reference_caption": "x"': "line 1: not valid JSON",
    }
    for row, message in bad_rows.items():
        with pytest.raises(DataError) as err:
            validate_rl_jsonl(_write(tmp_path, row, "bad.jsonl"))
        assert message in str(err.value) and "bad.jsonl, line 1" in str(err.value)

"""The quality filter drops hand-made bad items and reports every reason with examples."""

from __future__ import annotations

from data_engine.quality import QualityFilter, QualityReport, claims_alignment

GOAL = {"motion_name": "000001", "f_tag": 0.0, "to_tag": 0.0}
NEG = {"motion_name": "000002", "f_tag": 0.0, "to_tag": 0.0}
NEG2 = {"motion_name": "M000003", "f_tag": 0.0, "to_tag": 0.0}
TWIN = {"motion_name": "000004", "f_tag": 0.0, "to_tag": 0.0}
SUB = {"motion_name": "000005", "f_tag": 1.0, "to_tag": 4.5}
CAPTIONS = {
    "000001": ["a person jumps to the left twice.", "someone leaps to the left two times."],
    "000002": ["a person waves the right hand."],
    "M000003": ["a man kicks with the left leg."],
    "000004": ["a figure jumps to their left twice."],  # says the same as the goal caption
}
CAPTION = "a person jumps to the left twice."


def captions_of(ref):
    if ref["to_tag"]:
        return ["a person punches."] if ref["motion_name"] == "000005" else None
    return CAPTIONS.get(ref["motion_name"])


def candidate(ref, assessment, refinement, caption=CAPTION, meta="000001_0"):
    return {
        "meta_inst_name": meta,
        "motions": {"<Generated_Motion>": ref},
        "text": {
            "<Goal_Caption>": [caption],
            "<Assessment_Analysis>": [assessment],
            "<Refinement_Instruction>": [refinement],
        },
    }


GOOD_NEG = candidate(
    NEG,
    "The generated motion shows a person waving the right hand, which misses the jump.",
    "Replace the wave with two jumps to the left.",
)
GOOD_GOAL = candidate(
    GOAL, "The generated motion perfectly aligns with the goal text.", "No refinements needed."
)


def tm2t_record():
    return {
        "id": 0,
        "task": "tm2t_assessment_analysis",
        "conversations": [],
        "candidate_motion_text": [
            GOOD_NEG,
            candidate(
                NEG2,
                "The generated motion shows a kick. It fails to show the jump.",
                "No refinements needed.",
            ),
            candidate(
                NEG2,
                "The generated motion of a kick perfectly aligns with the goal.",
                "Replace the kick with jumps.",
            ),
            candidate(SUB, "The generated motion shows a punch, not a jump.", "Jump instead."),
            candidate(SUB, "", "Replace the punch with two jumps to the left."),
            candidate(
                TWIN,
                "The generated motion shows a jump to the left, repeated.",
                "Make the jumps higher and slower.",
            ),
            GOOD_NEG,
            candidate(
                GOAL,
                "The generated motion perfectly aligns with the goal text.",
                "Jump a bit higher next time.",
            ),
            GOOD_GOAL,
        ],
    }


def test_assessment_candidates_are_dropped_for_each_reason():
    report = QualityReport()
    kept = QualityFilter(captions_of, report).filter(
        "TM2T_assessment_analysis_annots.json", "assessment", [tm2t_record()], goal_refs={0: GOAL}
    )
    assert [c["motions"]["<Generated_Motion>"] for c in kept[0]["candidate_motion_text"]] == [NEG, GOAL]
    dropped = report.tasks["TM2T_assessment_analysis_annots.json"].dropped
    assert dict(dropped) == {
        "no_refinement_for_negative": 1,
        "negative_claimed_aligned": 1,
        "instruction_too_short": 1,
        "empty_response": 1,
        "negative_matches_goal": 1,
        "duplicate": 1,
        "instruction_on_goal": 1,
    }
    report_dict = report.to_dict()
    example = report_dict["examples"]["TM2T_assessment_analysis_annots.json"]["instruction_on_goal"][0]
    assert example["refinement"] == "Jump a bit higher next time." and example["motion"] == GOAL
    assert report_dict["tasks"]["TM2T_assessment_analysis_annots.json"]["items_out"] == 2
    assert "dropped" in report.lines()[0]


def test_without_goal_refs_the_goal_is_recognised_by_its_captions():
    report = QualityReport()
    kept = QualityFilter(captions_of, report).filter("x", "assessment", [tm2t_record()])
    names = [c["motions"]["<Generated_Motion>"]["motion_name"] for c in kept[0]["candidate_motion_text"]]
    assert "000001" in names and report.tasks["x"].dropped["instruction_on_goal"] == 1


def test_text_lists_lose_empty_duplicate_and_short_entries_and_empty_records_go():
    records = [
        {
            "id": 0,
            "motions": {},
            "text": {
                "<Goal_Caption>": [CAPTION],
                "<Goal_Analysis>": [
                    "The goal is to generate two jumps to the left.",
                    "",
                    "The goal is to generate two jumps to the left.",
                    "Jump left.",
                    "The key elements are the leftward direction and two repetitions.",
                ],
            },
        },
        {"id": 1, "motions": {}, "text": {"<Goal_Caption>": [CAPTION], "<Goal_Analysis>": ["", "ok"]}},
    ]
    report = QualityReport()
    kept = QualityFilter(captions_of, report).filter("T2T", "texts", records)
    assert len(kept) == 1 and len(kept[0]["text"]["<Goal_Analysis>"]) == 2
    assert dict(report.tasks["T2T"].dropped) == {"empty_response": 2, "duplicate": 1, "too_short": 2}
    assert report.tasks["T2T"].records_out == 1


def test_cot_intermediates_are_dropped_and_renumbered():
    record = {
        "id": 0,
        "task": "unified_mogen_cot_v2",
        "conversations": [],
        "candidate_motion_text": [
            {
                "motions": {
                    "<Goal_Motion>": GOAL,
                    "<Intermediate_Motion_0>": NEG,
                    "<Intermediate_Motion_1>": TWIN,
                    "<Intermediate_Motion_2>": NEG2,
                },
                "text": {
                    "<Goal_Caption>": CAPTION,
                    "<Prompt_Analysis>": ["The goal is to generate two jumps to the left."] * 2,
                    "<Assess_Goal_Motion>": {
                        "assessment": "The generated motion perfectly aligns with the goal text.",
                        "refinement": "No refinements needed.",
                    },
                    "<Assess_Intermediate_Motion_0>": {
                        "assessment": "It shows a wave.",
                        "refinement": "Replace the wave with jumps.",
                    },
                    "<Assess_Intermediate_Motion_1>": {
                        "assessment": "It shows jumps.",
                        "refinement": "Make the jumps higher.",
                    },
                    "<Assess_Intermediate_Motion_2>": {
                        "assessment": "It shows a kick.",
                        "refinement": "Replace the kick with jumps.",
                    },
                },
            }
        ],
    }
    report = QualityReport()
    kept = QualityFilter(captions_of, report).filter("cot", "cot", [record])[0]["candidate_motion_text"][0]
    assert kept["motions"] == {
        "<Goal_Motion>": GOAL,
        "<Intermediate_Motion_0>": NEG,
        "<Intermediate_Motion_1>": NEG2,
    }
    assert kept["text"]["<Assess_Intermediate_Motion_1>"]["refinement"] == "Replace the kick with jumps."
    assert "<Assess_Intermediate_Motion_2>" not in kept["text"]
    assert dict(report.tasks["cot"].dropped) == {"negative_matches_goal": 1, "duplicate": 1}


def test_alignment_claims_ignore_negations():
    assert claims_alignment("The generated motion perfectly captures the jump, fully aligning with the goal.")
    assert claims_alignment("The generated motion of a person jumping aligns with the goal text.")
    assert not claims_alignment("It is a hop, not fully aligning with the more powerful jump.")
    assert not claims_alignment("The generated motion completely fails to match the prompt.")

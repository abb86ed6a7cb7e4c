"""Test-time prompts byte-identical to fixtures/test_prompts.json; the template store and its errors."""

from __future__ import annotations

import json

import pytest

from models.llm.prompts import (
    TEST_PROMPT_SOURCES,
    TemplateStore,
    build_test_prompt,
    collapse_double_periods,
    motion_block,
)


def test_nine_test_tasks(golden_test_prompts):
    assert set(TEST_PROMPT_SOURCES) == set(golden_test_prompts["tasks"])


@pytest.mark.parametrize("task", sorted(TEST_PROMPT_SOURCES))
def test_test_prompt_matches_fixture(task, golden_test_prompts, tiny_tokenizer):
    tokenizer, vocab = tiny_tokenizer
    entry = golden_test_prompts["tasks"][task]
    template = TemplateStore.load().test_template(task)
    assert template.system == entry["system_prompt"]
    assert template.user == entry["user_prompt_template"]
    assert template.generation_forcing == entry["generation_forcing"]

    texts = entry["inputs"].get("texts", [{}])[0]
    motion_strings = entry["inputs"].get("motions", [{}])[0]
    codes = golden_test_prompts["inputs"]["motion_codes"]
    as_ids = {key: vocab.codes_to_ids(codes) for key in motion_strings}
    for w_response, expected in ((True, entry["prompt"]), (False, entry["prompt_without_prompt_w_response"])):
        assert build_test_prompt(task, texts, motion_strings, prompt_w_response=w_response) == expected
        assert build_test_prompt(task, texts, as_ids, prompt_w_response=w_response, vocab=vocab) == expected
        assert (
            build_test_prompt(task, texts, as_ids, prompt_w_response=w_response, tokenizer=tokenizer)
            == expected
        )
    assert tokenizer.decode(tokenizer(entry["prompt"]).input_ids) == "<bos>" + entry["prompt"]


def test_quirks_are_visible():
    caption = {"<Goal_Caption>": "a person walks forward and waves."}
    assert "User: User: " in build_test_prompt("unified_mogen_cot_v3_wo_assess_refine", caption)
    assert "waves.\n\n" in build_test_prompt("t2m_motionagent", caption)
    assert build_test_prompt("t2m_motionagent", caption).endswith("\n\nResponse: <Motion>")
    assert "waves.." in build_test_prompt("t2m", caption, collapse_periods=False)
    assert collapse_double_periods("wait...") == "wait.."  # single pass, as upstream


def test_missing_input_is_an_error_not_a_debugger():
    with pytest.raises(ValueError, match=r"<Goal_Caption>.*not filled"):
        build_test_prompt("t2m", {"<Refinement_Instruction>": "x"})
    with pytest.raises(ValueError, match="<Generated_Motion>"):
        build_test_prompt("refine_instruction", {"<Goal_Caption>": "a man walks."})
    with pytest.raises(ValueError, match="vocab= or tokenizer="):
        build_test_prompt("m2t", motions={"<Goal_Motion>": [5, 6]})
    with pytest.raises(ValueError, match="unknown test task 't2x'"):
        build_test_prompt("t2x", {})


def test_text_order_does_not_trigger_a_trap():
    """Upstream stopped in pdb when <Refinement_Instruction> preceded <Goal_Caption>; we just render."""
    texts = {"<Refinement_Instruction>": "Raise the left arm higher.", "<Goal_Caption>": "a person waves."}
    prompt = build_test_prompt("instructed_motion_refinement", texts, {"<Generated_Motion>": "<Motion_1>"})
    assert "Goal text: a person waves. Refine" in prompt and prompt.endswith(" Response:<Motion>")


def test_template_store(tmp_path):
    store = TemplateStore.load()
    assert len(store) == 18 and store.keys[0] == "<Motion2X_Template>"
    assert len(store.variants("<Text2Motion_Template>")) == 360
    assert store.placeholders("<Instructed_Motion_Refinement_Template>") == {
        "<Generated_Motion>",
        "<Goal_Caption>",
        "<Refinement_Instruction>",
    }
    rendered = store.render("<Text2Motion_Template>", 0, {"<Goal_Caption>": "a man runs"})
    assert rendered == "Generate a motion that depicts a man runs."
    assert store.render("<Motion2X_Template>", 0, {"<Goal_Motion>": motion_block([3, 4])}).startswith(
        "<Motion><Motion_3><Motion_4></Motion>\n"
    )
    with pytest.raises(
        ValueError, match=r"unknown placeholder '<Goal_Captoin>'; known placeholders: \[.*<Goal_Caption>"
    ):
        store.render("<Text2Motion_Template>", 0, {"<Goal_Captoin>": "x"})
    with pytest.raises(ValueError, match="not filled"):
        store.render("<Text2Motion_Template>", 0, {})
    with pytest.raises(KeyError, match="unknown template key '<Nope>'"):
        store.variants("<Nope>")

    bad = tmp_path / "templates.json"
    bad.write_text(json.dumps({"<A_Template>": []}), encoding="utf-8")
    with pytest.raises(Exception, match=r"templates.json, field '<A_Template>': expected a non-empty list"):
        TemplateStore.load(bad)

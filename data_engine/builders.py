"""Annotation files of every training stage, in the authors' schema (spec_sft §4, spec_rl §2).

Inputs: goal clips with their negatives (far -> near) and the writer's texts, looked up by request.
Outputs (file names and task labels as upstream; ``motions`` reference clips as ``{motion_name, f_tag,
to_tag}`` with seconds for sub-clips; ids count from 0 per file):

* stage 0 — ``stage_0_t2m_annots.json`` (caption -> motion with Motion-Agent's templates, the base
  model's recipe) and ``stage_0_m2t_annots.json`` (motion -> caption);
* stage 1 — the eight task files (:data:`STAGE1_FILES`): one record per clip for M2T / T2M (all its
  captions, one drawn per access), one per caption for prompt analysis and detailed-prompt generation
  (4 texts each), one per clip for the four assessment/refinement tasks with one candidate per
  (caption, motion): the negatives far -> near, then the goal itself (``meta_inst_name`` =
  ``<clip>_<caption index>`` in TM2T, as upstream);
* stage 2 — ``sft_motion_assess_cot_v2.json``: one record per clip, one candidate per caption with
  ``<Goal_Motion>``, ``<Intermediate_Motion_0..3>`` (far -> near), ``<Prompt_Analysis>`` (4) and the
  ``{assessment, refinement}`` of every motion;
* stage 3 — ``rl_prompts.jsonl``: text-motion pairs (``reference_caption`` + ``motions.<Goal_Motion>``
  as a bare motion name) and, about 1:1, text-only augmented prompts (no ``motions``), none equal to a
  test caption after lower-casing and removing punctuation.

Captions per clip are capped (``max_captions``, default 3 like the demo data) for the per-caption
tasks. Items whose texts the writer failed to produce are left out and counted (``writer_failed``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_engine.datasets.reader import Clip
from data_engine.negatives import normalize_caption
from data_engine.quality import QualityReport
from data_engine.writers.base import (
    NO_REFINEMENT,
    AssessmentRequest,
    AssessmentResponse,
    DetailedPromptRequest,
    DetailedPromptResponse,
    GoalAnalysisRequest,
    GoalAnalysisResponse,
    PromptAugmentationRequest,
    PromptAugmentationResponse,
    WriterRequest,
    WriterResponse,
)
from models.common.io import atomic_write_json, atomic_write_text

ENGINE_NAME = "irg-motionllm data engine"
ENGINE_VERSION = "1.0"
N_TEXTS = 4  # paraphrases per analysis / detailed prompt (as the demo data)

SYSTEM = "<General_System_Prompt>"
STAGE0_T2M_FILE = "stage_0_t2m_annots.json"
STAGE0_M2T_FILE = "stage_0_m2t_annots.json"
STAGE2_FILE = "sft_motion_assess_cot_v2.json"
RL_FILE = "rl_prompts.jsonl"
# file -> (task label, human template, gpt placeholder); the instructed-refinement label is upstream's
STAGE1_FILES: dict[str, tuple[str, str, str]] = {
    "M2T_motion_caption_annots.json": ("m2t_motion_caption", "<Motion2X_Template>", "<Goal_Caption>"),
    "T2M_direct_generation_annots.json": ("t2m_direct_generation", "<Text2Motion_Template>", "<Goal_Motion>"),
    "T2M_detailed_prompt_generation_annots.json": (
        "t2m_detailed_prompt_generation",
        "<Text2Motion_Template>",
        "<Goal_Motion>",
    ),
    "T2T_prompt_analysis_annots.json": ("t2t_prompt_analysis", "<Goal_Analysis_Template>", "<Goal_Analysis>"),
    "TM2T_assessment_analysis_annots.json": (
        "tm2t_assessment_analysis",
        "<Text_Motion2Alignment_Analysis_Template>",
        "<Assessment_Analysis>",
    ),
    "TM2T_refinement_instruction_annots.json": (
        "tm2t_refinement_instruction",
        "<Text_Motion2Refinement_Instruction_Template>",
        "<Refinement_Instruction>",
    ),
    "TM2M_direct_refinement_annots.json": (
        "tm2m_direct_refinement",
        "<Direct_Motion_Refinement_Template>",
        "<Goal_Motion>",
    ),
    "TM2M_instructed_motion_refinement_annots.json": (
        "tm2m_direct_refinement",
        "<Instructed_Motion_Refinement_Template>",
        "<Goal_Motion>",
    ),
}
# quality-filter kind of every file
FILE_KINDS = {
    STAGE0_T2M_FILE: "captions",
    STAGE0_M2T_FILE: "captions",
    "M2T_motion_caption_annots.json": "captions",
    "T2M_direct_generation_annots.json": "captions",
    "T2M_detailed_prompt_generation_annots.json": "texts",
    "T2T_prompt_analysis_annots.json": "texts",
    "TM2T_assessment_analysis_annots.json": "assessment",
    "TM2T_refinement_instruction_annots.json": "assessment",
    "TM2M_direct_refinement_annots.json": "assessment",
    "TM2M_instructed_motion_refinement_annots.json": "assessment",
    STAGE2_FILE: "cot",
}


def conversations(system: str, human: str, gpt: str) -> list[dict[str, str]]:
    return [
        {"from": "system", "value": system},
        {"from": "human", "value": human},
        {"from": "gpt", "value": gpt},
    ]


def motion_ref(clip: Clip) -> dict[str, Any]:
    """``{motion_name, f_tag, to_tag}``: the motion id, and the sub-clip's span in seconds (0/0 = whole)."""
    if len(clip.captions) == 1 and not clip.captions[0].whole_clip:
        caption = clip.captions[0]
        return {"motion_name": clip.motion_id, "f_tag": float(caption.start), "to_tag": float(caption.end)}
    return {"motion_name": clip.motion_id, "f_tag": 0.0, "to_tag": 0.0}


def clip_captions(clip: Clip) -> tuple[str, ...]:
    return tuple(c.text for c in clip.captions)


@dataclass(frozen=True)
class Goal:
    """A goal clip and its retrieved negatives (far -> near)."""

    clip: Clip
    negatives: tuple[Clip, ...]

    @property
    def captions(self) -> tuple[str, ...]:
        return clip_captions(self.clip)

    def used_captions(self, max_captions: int) -> tuple[str, ...]:
        captions = self.captions
        return captions[:max_captions] if max_captions > 0 else captions


# ------------------------------------------------------------------------------------------- requests
def analysis_request(caption: str) -> GoalAnalysisRequest:
    return GoalAnalysisRequest(caption, N_TEXTS)


def detailed_request(caption: str) -> DetailedPromptRequest:
    return DetailedPromptRequest(caption, N_TEXTS)


def assessment_request(caption: str, motion: Clip, goal: Clip) -> AssessmentRequest:
    return AssessmentRequest(caption, clip_captions(motion), is_goal=motion.name == goal.name)


def required_requests(goals: Sequence[Goal], stages: Iterable[str], max_captions: int) -> list[WriterRequest]:
    """Every writer request the SFT stages need (duplicates are fine; the runner de-duplicates)."""
    stages = set(stages)
    requests: list[WriterRequest] = []
    for goal in goals:
        for caption in goal.used_captions(max_captions):
            if stages & {"1", "2"}:
                requests.append(analysis_request(caption))
                requests.extend(
                    assessment_request(caption, m, goal.clip) for m in (*goal.negatives, goal.clip)
                )
            if "1" in stages:
                requests.append(detailed_request(caption))
    return requests


Lookup = Callable[[WriterRequest], WriterResponse | None]


class _Texts:
    """Writer responses by request, counting misses (writer failures) per task file."""

    def __init__(self, lookup: Lookup, report: QualityReport) -> None:
        self.lookup, self.report = lookup, report

    def get(self, task: str, request: WriterRequest, where: Mapping[str, Any]) -> WriterResponse | None:
        response = self.lookup(request)
        if response is None:
            self.report.drop(task, "writer_failed", {**where, "request": request.kind})
        return response


def _file(records: list[dict], info: Mapping[str, Any]) -> dict:
    return {
        "info": {"num_instances": len(records), "time": time.strftime("%Y-%m-%d %H:%M:%S"), **info},
        "annotations": records,
    }


# --------------------------------------------------------------------------------------------- stage 0
STAGE0_T2M_TEMPLATES = {
    "motionagent": ("<MotionAgent_System_Prompt>", "<MotionAgent_Mogen_Template>"),
    "general": (SYSTEM, "<Text2Motion_Template>"),
}


def build_stage0(goals: Sequence[Goal], prompts: str = "motionagent") -> dict[str, list[dict]]:
    """Base-model data: T2M and M2T.

    ``prompts="motionagent"`` writes T2M with Motion-Agent's templates, as the authors' stage-0 demo does;
    ``"general"`` uses the stage-1 T2M templates, so the base model answers the standard ``t2m`` test prompt
    (the toy pipeline trains its base model from scratch and evaluates it that way).
    """
    if prompts not in STAGE0_T2M_TEMPLATES:
        raise ValueError(f"stage-0 prompts must be one of {sorted(STAGE0_T2M_TEMPLATES)}, got {prompts!r}")
    t2m_system, t2m_human = STAGE0_T2M_TEMPLATES[prompts]
    t2m, m2t = [], []
    for goal in goals:
        ref, captions = motion_ref(goal.clip), list(goal.captions)
        t2m.append(
            {
                "id": len(t2m),
                "motions": {"<Goal_Motion>": ref},
                "text": {"<Goal_Caption>": captions},
                "task": "t2m_direct_generation",
                "conversations": conversations(t2m_system, t2m_human, "<Goal_Motion>"),
            }
        )
        m2t.append(
            {
                "id": len(m2t),
                "motions": {"<Goal_Motion>": ref},
                "text": {"<Goal_Caption>": captions},
                "task": "m2t_motion_caption",
                "conversations": conversations(SYSTEM, "<Motion2X_Template>", "<Goal_Caption>"),
            }
        )
    return {STAGE0_T2M_FILE: t2m, STAGE0_M2T_FILE: m2t}


# --------------------------------------------------------------------------------------------- stage 1
def _simple(file: str, ref: dict | None, texts: dict, record_id: int) -> dict:
    task, human, gpt = STAGE1_FILES[file]
    return {
        "id": record_id,
        "motions": {} if ref is None else {"<Goal_Motion>": ref},
        "text": texts,
        "task": task,
        "conversations": conversations(SYSTEM, human, gpt),
    }


def _assessed(goal: Goal, caption: str, texts: _Texts, task: str) -> list[tuple[Clip, AssessmentResponse]]:
    """(motion, assessment) for the negatives far -> near, then the goal."""
    out = []
    for motion in (*goal.negatives, goal.clip):
        response = texts.get(
            task,
            assessment_request(caption, motion, goal.clip),
            {"clip": goal.clip.name, "caption": caption, "motion": motion.name},
        )
        if isinstance(response, AssessmentResponse):
            if motion.name == goal.clip.name:
                response = AssessmentResponse(response.assessment, NO_REFINEMENT)
            out.append((motion, response))
    return out


def build_stage1(
    goals: Sequence[Goal], lookup: Lookup, report: QualityReport, max_captions: int = 3
) -> dict[str, list[dict]]:
    """The eight stage-1 task files (records before the quality filter)."""
    texts = _Texts(lookup, report)
    files: dict[str, list[dict]] = {name: [] for name in STAGE1_FILES}
    m2t, t2m, detailed, analysis, tm2t_a, tm2t_r, tm2m_d, tm2m_i = files.values()
    names = list(STAGE1_FILES)
    for goal in goals:
        ref = motion_ref(goal.clip)
        captions = list(goal.captions)
        m2t.append(_simple(names[0], ref, {"<Goal_Caption>": captions}, len(m2t)))
        t2m.append(_simple(names[1], ref, {"<Goal_Caption>": captions}, len(t2m)))
        candidates_t, candidates_m = [], []
        for k, caption in enumerate(goal.used_captions(max_captions)):
            where = {"clip": goal.clip.name, "caption": caption}
            prompts = texts.get(names[2], detailed_request(caption), where)
            if isinstance(prompts, DetailedPromptResponse):
                detailed.append(
                    _simple(names[2], ref, {"<Goal_Caption>": list(prompts.prompts)}, len(detailed))
                )
            analyses = texts.get(names[3], analysis_request(caption), where)
            if isinstance(analyses, GoalAnalysisResponse):
                analysis.append(
                    _simple(
                        names[3],
                        None,
                        {"<Goal_Caption>": [caption], "<Goal_Analysis>": list(analyses.analyses)},
                        len(analysis),
                    )
                )
            for motion, response in _assessed(goal, caption, texts, names[4]):
                shared = {
                    "<Goal_Caption>": [caption],
                    "<Assessment_Analysis>": [response.assessment],
                    "<Refinement_Instruction>": [response.refinement],
                }
                candidates_t.append(
                    {
                        "meta_inst_name": f"{goal.clip.name}_{k}",
                        "motions": {"<Generated_Motion>": motion_ref(motion)},
                        "text": shared,
                    }
                )
                candidates_m.append(
                    {
                        "motions": {"<Generated_Motion>": motion_ref(motion), "<Goal_Motion>": ref},
                        "text": dict(shared),
                    }
                )
        if candidates_t:
            for file, records, candidates in (
                (names[4], tm2t_a, candidates_t),
                (names[5], tm2t_r, candidates_t),
                (names[6], tm2m_d, candidates_m),
                (names[7], tm2m_i, candidates_m),
            ):
                task, human, gpt = STAGE1_FILES[file]
                records.append(
                    {
                        "id": len(records),
                        "task": task,
                        "candidate_motion_text": candidates,
                        "conversations": conversations(SYSTEM, human, gpt),
                    }
                )
    return files


def stage1_goal_refs(goals: Sequence[Goal], records: Sequence[dict]) -> dict[int, dict]:
    """Record id -> goal motion for the TM2T files (their candidates do not name the goal)."""
    by_name = {g.clip.name: motion_ref(g.clip) for g in goals}
    refs = {}
    for record in records:
        meta = record["candidate_motion_text"][0].get("meta_inst_name", "")
        refs[record["id"]] = by_name.get(meta.rsplit("_", 1)[0])
    return refs


# --------------------------------------------------------------------------------------------- stage 2
def build_stage2(
    goals: Sequence[Goal], lookup: Lookup, report: QualityReport, max_captions: int = 3
) -> dict[str, list[dict]]:
    """The IRMoGen CoT file: per caption the goal, the intermediates far -> near and their assessments."""
    texts = _Texts(lookup, report)
    records: list[dict] = []
    for goal in goals:
        candidates = []
        for caption in goal.used_captions(max_captions):
            where = {"clip": goal.clip.name, "caption": caption}
            analyses = texts.get(STAGE2_FILE, analysis_request(caption), where)
            assessed = {m.name: r for m, r in _assessed(goal, caption, texts, STAGE2_FILE)}
            if not isinstance(analyses, GoalAnalysisResponse) or goal.clip.name not in assessed:
                continue
            motions = {"<Goal_Motion>": motion_ref(goal.clip)}
            text: dict[str, Any] = {
                "<Goal_Caption>": caption,
                "<Prompt_Analysis>": list(analyses.analyses),
                "<Assess_Goal_Motion>": _assessment_dict(assessed[goal.clip.name]),
            }
            k = 0
            for negative in goal.negatives:
                if negative.name in assessed:
                    motions[f"<Intermediate_Motion_{k}>"] = motion_ref(negative)
                    text[f"<Assess_Intermediate_Motion_{k}>"] = _assessment_dict(assessed[negative.name])
                    k += 1
            candidates.append({"motions": motions, "text": text})
        if candidates:
            records.append(
                {
                    "id": len(records),
                    "task": "unified_mogen_cot_v2",
                    "candidate_motion_text": candidates,
                    "conversations": conversations(
                        SYSTEM, "<Generate_Assess_Refien_Template_wo_Answer>", "<Unified_Mogen_COT_Trace>"
                    ),
                }
            )
    return {STAGE2_FILE: records}


def _assessment_dict(response: AssessmentResponse) -> dict[str, str]:
    return {"assessment": response.assessment, "refinement": response.refinement}


# --------------------------------------------------------------------------------------------- stage 3
@dataclass(frozen=True)
class RLSettings:
    num_paired: int = 0  # text-motion pairs (0: one per used caption of every goal clip)
    text_only_ratio: float = 1.0  # augmented text-only prompts per pair (paper: ~1:1)
    seed: int = 0
    subclips: str = (
        "skip"  # "skip" sub-clip goals (upstream loads the whole motion) | "object" ({name, tags})
    )
    reference: str = (
        "prompt"  # reference_caption of text-only prompts: the "prompt" itself | its "source" caption
    )


def rl_candidates(goals: Sequence[Goal], settings: RLSettings, max_captions: int) -> list[tuple[Goal, str]]:
    """The (goal, caption) pairs of stage 3, drawn with the seed."""
    pairs = [
        (g, c)
        for g in goals
        for c in g.used_captions(max_captions)
        if settings.subclips == "object" or motion_ref(g.clip)["to_tag"] == 0.0
    ]
    rng = random.Random(settings.seed)
    rng.shuffle(pairs)
    return pairs[: settings.num_paired] if settings.num_paired > 0 else pairs


def text_only_target(pairs: Sequence[tuple[Goal, str]], settings: RLSettings) -> int:
    """How many text-only prompts stage 3 aims for (``text_only_ratio`` x pairs)."""
    return round(len(pairs) * settings.text_only_ratio)


def augmentation_requests(
    pairs: Sequence[tuple[Goal, str]], settings: RLSettings
) -> list[PromptAugmentationRequest]:
    """One request per source caption, each for ``ceil(ratio) + 1`` paraphrases (one spare, so that
    paraphrases dropped as duplicates or test captions can be replaced)."""
    target = text_only_target(pairs, settings)
    if target == 0:
        return []
    per = math.ceil(settings.text_only_ratio) + 1
    needed = min(len(pairs), math.ceil(target / (per - 1)))
    return [PromptAugmentationRequest(caption, per) for _, caption in pairs[:needed]]


def rl_prompt(caption: str) -> str:
    """``all_prompt`` of the RL loader: the stage-2 CoT test prompt with the caption (no " Response:")."""
    from models.llm.prompts import build_test_prompt

    return build_test_prompt("unified_mogen_cot_v3", {"<Goal_Caption>": caption}, prompt_w_response=False)


def build_rl(
    pairs: Sequence[tuple[Goal, str]],
    lookup: Lookup,
    settings: RLSettings,
    test_captions: Iterable[str],
    report: QualityReport,
) -> list[dict]:
    """Stage-3 records: pairs with their goal motion, then text-only augmented prompts; prompts equal to a
    test caption (lower-cased, punctuation removed) and repeated prompts are dropped and counted."""
    banned = {normalize_caption(c) for c in test_captions}
    seen: set[str] = set()
    quality = report.task(RL_FILE)
    records: list[dict] = []

    def admit(prompt: str, where: Mapping[str, Any]) -> bool:
        quality.items_in += 1
        key = normalize_caption(prompt)
        if not key:
            report.drop(RL_FILE, "empty_response", where)
        elif key in banned:
            report.drop(RL_FILE, "test_caption_overlap", {**where, "prompt": prompt})
        elif key in seen:
            report.drop(RL_FILE, "duplicate", {**where, "prompt": prompt})
        else:
            seen.add(key)
            quality.items_out += 1
            return True
        return False

    for goal, caption in pairs:
        if not admit(caption, {"clip": goal.clip.name}):
            continue
        ref = motion_ref(goal.clip)
        motion = ref["motion_name"] if ref["to_tag"] == 0.0 else ref
        records.append(
            {
                "id": len(records),
                "source": "paired",
                "reference_caption": caption,
                "prompt": caption,
                "all_prompt": rl_prompt(caption),
                "motions": {"<Goal_Motion>": motion},
            }
        )
    # ratio to the pairs actually kept (repeated captions and test captions are gone)
    target, augmented = round(len(records) * settings.text_only_ratio), 0
    for request in augmentation_requests(pairs, settings):
        response = lookup(request)
        if not isinstance(response, PromptAugmentationResponse):
            report.drop(RL_FILE, "writer_failed", {"caption": request.caption})
            continue
        for prompt in response.prompts:
            if augmented == target or not admit(prompt, {"caption": request.caption}):
                continue
            reference = prompt if settings.reference == "prompt" else request.caption
            records.append(
                {
                    "id": len(records),
                    "source": "augmented",
                    "reference_caption": reference,
                    "prompt": prompt,
                    "all_prompt": rl_prompt(prompt),
                }
            )
            augmented += 1
    quality.records_in += len(pairs) + target
    quality.records_out += len(records)
    return records


# ------------------------------------------------------------------------------------------------ writing
def write_annotation_file(
    path: str | Path, records: list[dict], info: Mapping[str, Any], indent: int | None = None
) -> Path:
    """``{"info": {...}, "annotations": [...]}`` written atomically (``indent=None``: compact)."""
    return atomic_write_json(_file(records, info), path, indent=indent)


def write_rl_file(path: str | Path, records: list[dict]) -> Path:
    """One JSON object per line, written atomically."""
    import json

    return atomic_write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), path)

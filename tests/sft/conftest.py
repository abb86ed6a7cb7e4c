"""Fixtures for the SFT tests: a tiny toy world with a token cache and stage-0/1 annotation files in the
authors' schema, a dataset folder + cache holding the motion ids of the authors' demo annotations, and
the ``smoke`` tiny Gemma-2."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from data_engine.datasets.layout import read_split_file, read_texts_file

SYSTEM = "<General_System_Prompt>"


def _record(index: int, task: str, human: str, gpt: str, body: dict) -> dict:
    turns = [
        {"from": "system", "value": SYSTEM},
        {"from": "human", "value": human},
        {"from": "gpt", "value": gpt},
    ]
    return {"id": index, "task": task, "conversations": turns, **body}


def _ref(motion_id: str, start: float = 0.0, end: float = 0.0) -> dict:
    return {"motion_name": motion_id, "f_tag": start, "to_tag": end}


def write_toy_annotations(
    data_root: Path, out: Path, split: str = "train", negatives: int = 3, seed: int = 0
) -> dict[str, list[Path]]:
    """Stage-0 (T2M, M2T) and the eight stage-1 files for the toy world, in the authors' schema.

    Captions and sub-clips come from ``texts/``; the "generated" motions of the TM2* tasks are random other
    motions with template assessments/instructions (the data engine writes LLM-quality ones).
    """
    rng = random.Random(seed)
    ids = read_split_file(data_root / f"{split}.txt")
    ids = [i for i in ids + [f"M{i}" for i in ids] if (data_root / "texts" / f"{i}.txt").is_file()]
    clips = []  # (motion ref, captions)
    for motion_id in ids:
        captions = read_texts_file(data_root / "texts" / f"{motion_id}.txt")
        whole = [c.text for c in captions if c.whole_clip]
        if whole:
            clips.append((_ref(motion_id), whole))
        for c in captions:
            if not c.whole_clip and c.start < c.end:
                clips.append((_ref(motion_id, c.start, c.end), [c.text]))

    def plain(caption: str) -> str:
        return caption.rstrip(".")

    files: dict[str, list] = {
        name: []
        for name in (
            "T2M_direct_generation",
            "M2T_motion_caption",
            "T2M_detailed_prompt_generation",
            "T2T_prompt_analysis",
            "TM2T_assessment_analysis",
            "TM2T_refinement_instruction",
            "TM2M_direct_refinement",
            "TM2M_instructed_motion_refinement",
        )
    }
    for n, (ref, captions) in enumerate(clips):
        goal = {"<Goal_Motion>": ref}
        files["T2M_direct_generation"].append(
            _record(
                n,
                "t2m_direct_generation",
                "<Text2Motion_Template>",
                "<Goal_Motion>",
                {"motions": goal, "text": {"<Goal_Caption>": captions}},
            )
        )
        files["M2T_motion_caption"].append(
            _record(
                n,
                "m2t_motion_caption",
                "<Motion2X_Template>",
                "<Goal_Caption>",
                {"motions": goal, "text": {"<Goal_Caption>": captions}},
            )
        )
        detailed = [f"{plain(c)}, performed smoothly with the whole body." for c in captions]
        files["T2M_detailed_prompt_generation"].append(
            _record(
                n,
                "t2m_detailed_prompt_generation",
                "<Text2Motion_Template>",
                "<Goal_Motion>",
                {"motions": goal, "text": {"<Goal_Caption>": detailed}},
            )
        )
        analysis = [
            f"The goal is a motion in which {plain(c)}. The key element is this action and its direction."
            for c in captions
        ]
        files["T2T_prompt_analysis"].append(
            _record(
                n,
                "t2t_prompt_analysis",
                "<Goal_Analysis_Template>",
                "<Goal_Analysis>",
                {"motions": {}, "text": {"<Goal_Caption>": captions[:1], "<Goal_Analysis>": analysis}},
            )
        )
        others = rng.sample([c for c in clips if c[0] is not ref], negatives)
        candidates = []
        for other_ref, other_captions in [*others, (ref, captions)]:
            same = other_ref is ref
            assessment = (
                "The generated motion perfectly aligns with the goal."
                if same
                else f"The generated motion shows that {plain(other_captions[0])}; it misses the goal."
            )
            instruction = (
                "No refinements needed." if same else f"Change the motion so that {plain(captions[0])}."
            )
            for caption in captions[:2]:
                candidates.append(
                    {
                        "meta_inst_name": f"{ref['motion_name']}_0",
                        "motions": {"<Generated_Motion>": other_ref, "<Goal_Motion>": ref},
                        "text": {
                            "<Goal_Caption>": [caption],
                            "<Assessment_Analysis>": [assessment],
                            "<Refinement_Instruction>": [instruction],
                        },
                    }
                )
        for name, task, human, gpt in (
            (
                "TM2T_assessment_analysis",
                "tm2t_assessment_analysis",
                "<Text_Motion2Alignment_Analysis_Template>",
                "<Assessment_Analysis>",
            ),
            (
                "TM2T_refinement_instruction",
                "tm2t_refinement_instruction",
                "<Text_Motion2Refinement_Instruction_Template>",
                "<Refinement_Instruction>",
            ),
            (
                "TM2M_direct_refinement",
                "tm2m_direct_refinement",
                "<Direct_Motion_Refinement_Template>",
                "<Goal_Motion>",
            ),
            (
                "TM2M_instructed_motion_refinement",
                "tm2m_instructed_refinement",
                "<Instructed_Motion_Refinement_Template>",
                "<Goal_Motion>",
            ),
        ):
            files[name].append(_record(n, task, human, gpt, {"candidate_motion_text": candidates}))

    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, records in files.items():
        path = out / f"{name}_annots.json"
        path.write_text(
            json.dumps({"info": {"source": "toy"}, "annotations": records}, indent=1), encoding="utf-8"
        )
        written[name] = path
    return {
        "stage0": [written["T2M_direct_generation"], written["M2T_motion_caption"]],
        "stage1": list(written.values()),
    }


def build_random_cache(root: Path, folder: Path, dataset: str, extra_spans: Sequence = (), seed: int = 0):
    """Token cache of every motion of ``root`` with a small randomly initialised VQ-VAE (64 codes)."""
    from data_engine.datasets.reader import MotionDataset
    from models.vqvae.config import get_vqvae_config
    from models.vqvae.model import MotionVQVAE
    from models.vqvae.token_cache import build_token_cache

    spec_dim = {"humanml3d": 263, "kit": 251}[dataset]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        vq = MotionVQVAE(
            get_vqvae_config(
                "small_fixture", input_dim=spec_dim, width=16, code_dim=16, output_emb_width=16, depth=1
            )
        ).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    data = MotionDataset(root, dataset)
    mean = np.zeros(spec_dim, np.float32)
    std = np.full(spec_dim, 0.05, np.float32)  # spreads the random latents over several codes
    return build_token_cache(data, vq, folder, mean=mean, std=std, extra_spans=extra_spans, progress=False)


def write_id_folder(root: Path, ids: Sequence[str], dim: int, seed: int = 0) -> Path:
    """A features folder holding random motions for exactly ``ids`` (lengths 60-199 frames)."""
    rng = np.random.default_rng(seed)
    (root / "new_joint_vecs").mkdir(parents=True)
    for motion_id in ids:
        frames = int(rng.integers(60, 200))
        np.save(
            root / "new_joint_vecs" / f"{motion_id}.npy",
            rng.standard_normal((frames, dim)).astype(np.float32),
        )
    return root


@pytest.fixture(scope="session")
def demo_dir(upstream_data_dir: Path) -> Path:
    return upstream_data_dir / "annotations_demo"


@pytest.fixture(scope="session")
def smoke_llm(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path, toy_world: dict) -> Path:
    """The ``smoke`` tiny Gemma-2, its tokenizer trained on the toy captions, the toy annotations and the
    demo annotations."""
    from models.llm.tiny import make_tiny_llm, tiny_corpus

    corpus = []
    for path in [*sorted(demo_dir.rglob("*.json")), *toy_world["stage1"]]:
        corpus += re.findall(r'"([^"<>]{12,})"', path.read_text(encoding="utf-8"))
    folder = tmp_path_factory.mktemp("llm") / "smoke"
    return make_tiny_llm(folder, tiny_corpus(corpus), preset="smoke", vocab_size=512, seed=0)


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Tiny toy world (60 motions + mirrors), its token cache and toy stage-0/1 annotation files."""
    from data_engine.toy_world.build import ToyWorldSettings, build_toy_world

    base = tmp_path_factory.mktemp("toyworld")
    root = base / "data"
    build_toy_world(
        root, ToyWorldSettings(dataset="humanml3d", num_motions=60, seed=0), workers=1, progress=False
    )
    cache = build_random_cache(root, root / "token_cache", "humanml3d")
    files = write_toy_annotations(root, base / "annotations", split="all", negatives=2)
    return {"root": root, "cache": root / "token_cache", "cache_obj": cache, **files}


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> dict:
    """Feature folders + token caches holding exactly the motions the authors' demo files reference
    (HumanML3D ids for stages 1-2 with their sub-clips as extra spans, KIT-ML ids for stage 0)."""
    from data_engine.annotations import load_annotation_files
    from data_engine.datasets.spec import get_dataset_spec
    from models.llm.sft_dataset import annotation_spans

    base = tmp_path_factory.mktemp("demo")
    hml_files = sorted((demo_dir / "stage-1").glob("*.json")) + [
        demo_dir / "stage-2" / "sft_motion_assess_cot_v2.json"
    ]
    kit_files = [demo_dir / "stage_0_annotations_demo.json"]
    out = {"hml_files": hml_files, "kit_files": kit_files}
    for name, files, dataset in (("hml", hml_files, "humanml3d"), ("kit", kit_files, "kit")):
        spec = get_dataset_spec(dataset)
        spans = annotation_spans(load_annotation_files(files, id_digits=spec.id_digits), spec)
        root = write_id_folder(base / name, sorted({s[0] for s in spans}), spec.feature_dim)
        build_random_cache(
            root, root / "token_cache", dataset, extra_spans=[s for s in spans if s[2] is not None]
        )
        out[f"{name}_root"], out[f"{name}_cache"] = root, root / "token_cache"
    return out

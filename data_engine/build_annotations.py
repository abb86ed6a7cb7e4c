"""Build the stage-0/1/2/3 annotation files from a dataset and its retrieved negatives (data-engine step 2).

    python -m data_engine.build_annotations --dataset-root data/toy --negatives data/toy_negatives.json \
        --out data/toy_annotations                           # rule-based writer (the default, free)
    OPENAI_API_KEY=... python -m data_engine.build_annotations --preset humanml3d \
        --dataset-root ../HumanML3D --negatives data/negatives_train.json --out data/annotations \
        --writer openai --api-model gpt-4o
    python -m data_engine.build_annotations ... --writer hf --hf-model /models/Qwen2.5-7B-Instruct

Every writer call goes through a crash-safe cache (``--cache``, default ``<out>/writer_cache.sqlite``):
an interrupted run resumes where it stopped, and building another stage later reuses every answer.
Output: the annotation files (``stage-0/``, ``stage-1/``, ``stage-2/``, ``stage-3/``), each validated
with ``data_engine.annotations``; ``quality_report.json`` (what the quality filter dropped and why, with
examples) and ``build_info.json`` (settings, writer, counts).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_engine import builders
from data_engine.annotations import validate_annotation_file, validate_rl_jsonl
from data_engine.builders import FILE_KINDS, Goal, RLSettings
from data_engine.datasets.reader import Clip, MotionDataset
from data_engine.negatives import load_negatives
from data_engine.quality import QualityFilter, QualityReport
from data_engine.retrieve_negatives import collect_clips
from data_engine.writers.base import TextWriter
from data_engine.writers.cache import ResponseCache, run_requests
from models.common.config import config_to_dict, parse_config
from models.common.errors import DataError
from models.common.io import atomic_write_json

logger = logging.getLogger(__name__)

WRITERS = ("offline", "openai", "hf")
STAGES = ("0", "1", "2", "3")
STAGE_DIRS = {"0": "stage-0", "1": "stage-1", "2": "stage-2", "3": "stage-3"}


@dataclass
class BuildAnnotationsConfig:
    dataset_root: str = field(default="", metadata={"help": "dataset root in the HumanML3D layout"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    negatives: str = field(default="", metadata={"help": "negatives JSON of data_engine.retrieve_negatives"})
    out: str = field(default="annotations", metadata={"help": "output folder"})
    stages: list[str] = field(
        default_factory=lambda: list(STAGES), metadata={"help": "stages to build: 0 1 2 3"}
    )
    writer: str = field(
        default="offline", metadata={"help": "offline (rules) | openai (API) | hf (local model)"}
    )
    seed: int = field(default=0, metadata={"help": "phrasing seed (offline), sampling seed (hf), RL draw"})
    cache: str = field(default="", metadata={"help": "writer cache (default <out>/writer_cache.sqlite)"})
    max_captions: int = field(
        default=3, metadata={"help": "captions per clip for per-caption tasks (0: all)"}
    )
    max_goals: int = field(default=0, metadata={"help": "annotate only the first N goal clips (0: all)"})
    test_split: str = field(default="test", metadata={"help": "split whose captions RL prompts must avoid"})
    rl_num_paired: int = field(default=0, metadata={"help": "text-motion RL prompts (0: all used captions)"})
    rl_text_only_ratio: float = field(default=1.0, metadata={"help": "augmented text-only prompts per pair"})
    rl_subclips: str = field(default="skip", metadata={"help": "sub-clip goals in RL: skip | object"})
    rl_reference: str = field(
        default="prompt", metadata={"help": "text-only reference_caption: prompt | source"}
    )
    stage0_prompts: str = field(
        default="motionagent",
        metadata={"help": "stage-0 T2M templates: motionagent (as the authors' demo) | general (stage-1 T2M templates)"},
    )
    indent: int = field(default=-1, metadata={"help": "JSON indent (-1: compact; the demo files use 4)"})
    quality_filter: bool = field(default=True, metadata={"help": "apply the quality filter"})
    progress: bool = True
    # --- openai-compatible API
    api_base_url: str = field(
        default="", metadata={"help": "default $OPENAI_BASE_URL or https://api.openai.com/v1"}
    )
    api_model: str = "gpt-4o"
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable with the key"})
    api_concurrency: int = 8
    api_timeout: float = 60.0
    api_max_retries: int = 6
    api_temperature: float = 0.7
    api_max_tokens: int = 1024
    api_json_mode: bool = field(default=True, metadata={"help": "send response_format=json_object"})
    api_price_input_per_mtok: float = field(default=2.5, metadata={"help": "USD per 1M prompt tokens"})
    api_price_output_per_mtok: float = field(default=10.0, metadata={"help": "USD per 1M completion tokens"})
    # --- local Hugging Face model
    hf_model: str = field(default="", metadata={"help": "local folder of a chat model (no downloads)"})
    hf_batch_size: int = 8
    hf_max_new_tokens: int = 512
    hf_temperature: float = field(default=0.7, metadata={"help": "0: greedy"})
    hf_device: str = "cpu"
    hf_dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})

    def __post_init__(self) -> None:
        if not self.dataset_root or not self.negatives:
            raise SystemExit("--dataset-root and --negatives are required")
        if self.writer not in WRITERS:
            raise SystemExit(f"--writer must be one of {WRITERS}")
        unknown = sorted(set(self.stages) - set(STAGES))
        if unknown or not self.stages:
            raise SystemExit(f"--stages: choose among {STAGES}, got {self.stages}")
        if self.stage0_prompts not in builders.STAGE0_T2M_TEMPLATES:
            raise SystemExit(f"--stage0-prompts: choose among {sorted(builders.STAGE0_T2M_TEMPLATES)}, "
                             f"got {self.stage0_prompts!r}")
        if self.writer == "hf" and not self.hf_model:
            raise SystemExit("--writer hf needs --hf-model (a local folder)")
        if self.rl_subclips not in ("skip", "object") or self.rl_reference not in ("prompt", "source"):
            raise SystemExit("--rl-subclips must be skip|object and --rl-reference prompt|source")
        if self.rl_text_only_ratio < 0 or self.max_captions < 0 or self.max_goals < 0:
            raise SystemExit("--rl-text-only-ratio, --max-captions and --max-goals must be >= 0")


PRESETS = {
    "humanml3d": {"dataset": "humanml3d"},
    "kit": {"dataset": "kit"},
    "toy": {"dataset": "humanml3d", "stage0_prompts": "general"},
}


def make_writer(config: BuildAnnotationsConfig) -> TextWriter:
    if config.writer == "offline":
        from data_engine.writers.offline import OfflineWriter

        return OfflineWriter(seed=config.seed)
    if config.writer == "openai":
        from data_engine.writers.openai_api import OpenAISettings, OpenAIWriter

        return OpenAIWriter(
            OpenAISettings(
                base_url=config.api_base_url
                or os.environ.get("OPENAI_BASE_URL", "")
                or "https://api.openai.com/v1",
                model=config.api_model,
                api_key=os.environ.get(config.api_key_env, ""),
                concurrency=config.api_concurrency,
                timeout=config.api_timeout,
                max_retries=config.api_max_retries,
                temperature=config.api_temperature,
                max_tokens=config.api_max_tokens,
                json_mode=config.api_json_mode,
                price_input_per_mtok=config.api_price_input_per_mtok,
                price_output_per_mtok=config.api_price_output_per_mtok,
            )
        )
    from data_engine.writers.hf_local import HFLocalWriter, HFSettings

    return HFLocalWriter(
        HFSettings(
            model_path=config.hf_model,
            batch_size=config.hf_batch_size,
            max_new_tokens=config.hf_max_new_tokens,
            temperature=config.hf_temperature,
            device=config.hf_device,
            dtype=config.hf_dtype,
            seed=config.seed,
        )
    )


def load_goals(dataset: MotionDataset, negatives_path: str) -> tuple[list[Goal], dict, dict[str, Clip]]:
    """Goal clips (the negatives file's anchors) with their negative clips; all clips by name."""
    negatives = load_negatives(negatives_path)
    settings = negatives.info.get("settings", {})
    splits = settings.get("splits") or ["train"]
    pool_splits = negatives.info.get("pool_splits") or splits
    min_len, max_len = settings.get("min_len", 0), settings.get("max_len", 0)
    clips: dict[str, Clip] = {}
    for clip in collect_clips(dataset, list(dict.fromkeys([*splits, *pool_splits])), min_len, max_len):
        clips.setdefault(clip.name, clip)
    goals, missing = [], 0
    for anchor, items in negatives.negatives.items():
        if anchor not in clips:
            raise DataError(
                f"anchor clip {anchor!r} is not in the dataset's splits {splits}",
                path=negatives_path,
                record=anchor,
            )
        unknown = [n.name for n in items if n.name not in clips]
        if unknown:
            raise DataError(
                f"negative clip(s) {unknown} not in the dataset's splits {pool_splits}",
                path=negatives_path,
                record=anchor,
            )
        goals.append(Goal(clips[anchor], tuple(clips[n.name] for n in items)))
    anchors = set(negatives.negatives)
    for clip in collect_clips(dataset, splits, min_len, max_len):
        missing += clip.name not in anchors
    if missing:
        logger.warning(
            "%d clips of %s have no negatives in %s (not annotated)", missing, splits, negatives_path
        )
    return goals, negatives.info, clips


def motion_caption_lookup(clips: dict[str, Clip]) -> Callable[[Mapping[str, Any]], list[str] | None]:
    """``{motion_name, f_tag, to_tag}`` -> every caption of that motion or sub-clip."""
    table: dict[tuple, list[str]] = {}
    for clip in clips.values():
        ref = builders.motion_ref(clip)
        table.setdefault((ref["motion_name"], ref["f_tag"], ref["to_tag"]), []).extend(
            builders.clip_captions(clip)
        )

    def captions(ref) -> list[str] | None:
        try:
            return table.get((ref["motion_name"], float(ref["f_tag"]), float(ref["to_tag"])))
        except (KeyError, TypeError, ValueError):
            return None

    return captions


def run(config: BuildAnnotationsConfig, writer: TextWriter | None = None) -> dict:
    """Build the requested stages; ``writer`` overrides the one the config describes (tests, notebooks)."""
    started = time.perf_counter()
    out = Path(config.out)
    dataset = MotionDataset(config.dataset_root, config.dataset)
    goals, negatives_info, clips = load_goals(dataset, config.negatives)
    if config.max_goals > 0:
        goals = goals[: config.max_goals]
    stages = [s for s in STAGES if s in config.stages]
    rl_settings = RLSettings(
        num_paired=config.rl_num_paired,
        text_only_ratio=config.rl_text_only_ratio,
        seed=config.seed,
        subclips=config.rl_subclips,
        reference=config.rl_reference,
    )
    requests = builders.required_requests(goals, stages, config.max_captions)
    rl_pairs = builders.rl_candidates(goals, rl_settings, config.max_captions) if "3" in stages else []
    requests += builders.augmentation_requests(rl_pairs, rl_settings)

    own_writer = writer is None
    writer = writer or make_writer(config)
    cache = ResponseCache(config.cache or out / "writer_cache.sqlite")
    try:
        result = run_requests(writer, requests, cache, progress=config.progress, desc=f"{writer.kind} writer")
    finally:
        cache.close()
        if own_writer:
            writer.close()
    responses = {requests[i]: r for i, r in result.responses.items()}

    report = QualityReport()
    quality = QualityFilter(motion_caption_lookup(clips), report)
    info = {
        "engine": {"name": builders.ENGINE_NAME, "version": builders.ENGINE_VERSION},
        "writer": writer.describe(),
        "dataset": {"root": str(config.dataset_root), "name": dataset.spec.name},
        "negatives": {
            k: negatives_info.get(k) for k in ("engine_version", "settings", "encoder", "num_anchors")
        },
        "settings": {k: v for k, v in config_to_dict(config).items() if "key" not in k or k == "api_key_env"},
    }
    files: dict[str, list[dict]] = {}
    if "0" in stages:
        stage0 = builders.build_stage0(goals, config.stage0_prompts)
        files.update({f"{STAGE_DIRS['0']}/{k}": v for k, v in stage0.items()})
    lookup = responses.get
    if "1" in stages:
        stage1 = builders.build_stage1(goals, lookup, report, config.max_captions)
        files.update({f"{STAGE_DIRS['1']}/{k}": v for k, v in stage1.items()})
    if "2" in stages:
        files.update(
            {
                f"{STAGE_DIRS['2']}/{k}": v
                for k, v in builders.build_stage2(goals, lookup, report, config.max_captions).items()
            }
        )
    counts: dict[str, int] = {}
    indent = None if config.indent < 0 else config.indent
    for name, records in files.items():
        base = Path(name).name
        if config.quality_filter:
            goal_refs = builders.stage1_goal_refs(goals, records) if base.startswith("TM2T") else None
            records = quality.filter(base, FILE_KINDS[base], records, goal_refs=goal_refs)
        _renumber(records)
        path = builders.write_annotation_file(out / name, records, {**info, "task_file": base}, indent=indent)
        validate_annotation_file(path, id_digits=dataset.spec.id_digits)
        counts[name] = len(records)
    if "3" in stages:
        test_captions = _test_captions(dataset, config.test_split)
        rl_records = builders.build_rl(rl_pairs, lookup, rl_settings, test_captions, report)
        path = builders.write_rl_file(out / STAGE_DIRS["3"] / builders.RL_FILE, rl_records)
        validate_rl_jsonl(path, id_digits=dataset.spec.id_digits)
        counts[f"{STAGE_DIRS['3']}/{builders.RL_FILE}"] = len(rl_records)
        counts["stage-3 text-motion pairs"] = sum(r["source"] == "paired" for r in rl_records)
        counts["stage-3 text-only prompts"] = sum(r["source"] == "augmented" for r in rl_records)
    summary = {
        "counts": counts,
        "goals": len(goals),
        "writer_calls": result.calls,
        "cached_calls": result.cached,
        "writer_failures": len(result.failures),
        "cost_usd": round(result.cost_usd, 4),
        "dropped": {name: dict(t.dropped) for name, t in report.tasks.items() if t.dropped},
        "seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_json(report.to_dict(), out / "quality_report.json")
    atomic_write_json({**info, "summary": summary}, out / "build_info.json")
    summary["quality_lines"] = report.lines()
    return summary


def _renumber(records: list[dict]) -> None:
    for i, record in enumerate(records):
        record["id"] = i


def _test_captions(dataset: MotionDataset, split: str) -> list[str]:
    if not split:
        return []
    index = dataset.clips(split, min_len=1, max_len=10**9)
    return [c.text for clip in index for c in clip.captions]


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_config(BuildAnnotationsConfig, PRESETS, argv, description=__doc__)
    summary = run(config)
    print(
        f"{summary['goals']} goal clips; writer calls {summary['writer_calls']} "
        f"(cached {summary['cached_calls']}, failed {summary['writer_failures']}, "
        f"cost ${summary['cost_usd']})"
    )
    for name, count in summary["counts"].items():
        print(f"  {name}: {count}")
    print("quality filter:")
    for line in summary["quality_lines"]:
        print(f"  {line}")
    return summary


if __name__ == "__main__":
    main()

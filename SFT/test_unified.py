"""Text-to-motion evaluation of a MotionLLM checkpoint (upstream ``SFT/HumanML3D/test_unified.py``).

Runs one or more evaluation tasks (``--eval-task t2m,direct_generation-instructed_refinement``) through
the T2M protocol (``evaluators.protocol``: 20 repeats of random caption/crop draws, R-precision, FID,
MM-Dist, Diversity, optional MultiModality) on the SAME sampled repeats, and writes one table with a row
per task (the paper's init-gen vs final-gen comparison for stage 1).

    # stage-1 IRMoGen: single pass vs. instructed refinement (Table 3), 20 repeats
    python SFT/test_unified.py --preset humanml3d --llm-backbone checkpoints/gemma-2-2b-it \\
        --llm-ckpt output/stage1/ckpt_epoch5.pth --merge-lora \\
        --eval-task t2m,direct_generation-instructed_refinement --max-refine-round 5
    # stage-2/3 CoT evaluation on 8 GPUs (generation sharded; no DDP wrapper)
    torchrun --nproc_per_node 8 SFT/test_unified.py --preset humanml3d --llm-ckpt output/stage2/hf_final \\
        --eval-task unified_mogen_cot_v3
    # the toy world, untrained vs trained
    python SFT/test_unified.py --preset toy --data-root data/toy --llm-backbone checkpoints/tiny_gemma2_toy \\
        --vq-ckpt output/VQVAE_toy/vqvae.pt --evaluator-dir output/evaluator_toy --glove-dir data/toy/glove
    # one table from finished runs
    python SFT/test_unified.py --compare runA runB --results-dir compare_out

``--llm-ckpt`` takes the authors' ``.pth`` (full or LoRA, ``{'state_dict': ...}`` or bare), a Motion-Agent
LoRA ``.pth``, one of our adapter folders, or one of our full Hugging Face folders (then it IS the backbone);
empty = evaluate the backbone as is (an untrained model is evaluable: malformed outputs fall back to code
``[0]`` and are counted).

Results dir (``--results-dir``, else next to the checkpoint, upstream-style
``evaluation-{stem}_epoch{E}-{eval_set}-{tasks}[-do_sample][-tag][-no_ckpt][-debug]``):
``executed_command.sh``, ``config.json``, ``eval.log``, ``summary.md``/``summary.json`` (all tasks), and
per task ``<task>/``: ``eval_results.json`` (every repeat + mean/std/95% CI), ``eval_results.md``,
``all_eval_results_t2m.json`` (upstream's per-repeat file), ``samples_repeat0.jsonl``, ``txt_io/{name}.json``
(repeat 0, upstream keys) and ``generation_stats.json`` (parse fallbacks, rounds and num_gens histograms,
tokens/s)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import get_dataset_spec
from models.common.config import config_to_dict, parse_config, save_config
from models.common.io import atomic_write_json, atomic_write_text
from models.common.runtime import cpu_threads, seed_everything, setup_logging
from models.llm.generators import (
    EVALUATORS,
    load_evaluator_bundle,
    load_vq_with_statistics,
    make_llm_generator,
)
from models.llm.inference import (
    MOTION_TASKS,
    NEGATIVE_MOTION_TASKS,
    EngineStats,
    GenerationSettings,
    MotionLLMEngine,
    check_task,
    load_inference_llm,
)

logger = logging.getLogger("test_unified")

SAMPLES_FILE = "samples_repeat0.jsonl"


@dataclass
class EvalConfig:
    # ---- upstream flags (option_llm.py names) ------------------------------------------------------
    llm_ckpt: str = field(
        default="",
        metadata={
            "help": "authors' .pth, Motion-Agent LoRA .pth, our adapter "
            "folder or our HF folder ('' = backbone as is)"
        },
    )
    llm_backbone: str = field(default="", metadata={"help": "Gemma-2 model folder (gemma-2-2b-it or tiny)"})
    llm_tokenizer: str = field(default="", metadata={"help": "tokenizer folder ('' = backbone)"})
    eval_task: str = field(
        default="t2m",
        metadata={
            "help": "task or comma-separated tasks, run on the same repeats: " + ", ".join(MOTION_TASKS)
        },
    )
    eval_repeat_times: int = field(default=20, metadata={"help": "evaluation repeats"})
    do_sample: bool = field(
        default=False,
        metadata={"help": "sample (t2m/CoT tasks; loops stay greedy as upstream unless --sample-in-loops)"},
    )
    prompt_w_response: bool = field(
        default=True, metadata={"help": "append ' Response:' (every released stage was trained with it)"}
    )
    eval_set: str = field(default="test", metadata={"help": "split: test | val | train"})
    merge_lora: bool = field(default=False, metadata={"help": "merge the LoRA after loading (faster)"})
    eval_tag: str = field(default="", metadata={"help": "suffix of the results dir name"})
    eval_batch_size: int = field(default=32, metadata={"help": "captions per generate call (per process)"})
    max_refine_round: int = field(default=5, metadata={"help": "max refinement rounds of the loop tasks"})
    w_flash_attention: bool = field(default=False, metadata={"help": "attention = flash_attention_2"})
    dataset_return_neg_motion: bool = field(
        default=False,
        metadata={
            "help": "foreign motions for the random-flip tasks (implied by them; upstream compatibility)"
        },
    )
    debug: bool = field(default=False, metadata={"help": "only the first --debug-ids ids of the split"})
    debug_ids: int = field(default=101, metadata={"help": "ids kept by --debug (upstream: 101)"})
    seed: int = field(default=42, metadata={"help": "seed of the repeats' draws and of sampling"})
    lora_r_t2m: int = field(default=64, metadata={"help": "LoRA rank of LoRA checkpoints"})
    lora_alpha_t2m: int = field(default=64, metadata={"help": "LoRA alpha of LoRA checkpoints"})
    # ---- data, VQ, evaluator ---------------------------------------------------------------------
    data_root: str = field(default="", metadata={"help": "dataset folder (HumanML3D / KIT-ML layout)"})
    dataname: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    vq_ckpt: str = field(default="", metadata={"help": "VQ-VAE checkpoint (released {'net'} or ours)"})
    vq_meta_dir: str = field(
        default="",
        metadata={
            "help": "mean.npy/std.npy the VQ was trained with, when its checkpoint stores none and they "
            "are not the evaluator's (default: stored in the checkpoint, else the evaluator's)"
        },
    )
    evaluator: str = field(default="guo", metadata={"help": "guo | mardm"})
    evaluator_dir: str = field(
        default="",
        metadata={
            "help": "guo: folder with finest.tar + meta/, Guo's checkpoints/<dataname> folder, or the "
            "working root holding checkpoints/ and glove/; mardm: folder with "
            "(text_mot_match/model/)finest.tar and eval_mean.npy/eval_std.npy"
        },
    )
    evaluator_meta_dir: str = field(default="", metadata={"help": "override the evaluator statistics folder"})
    glove_dir: str = field(default="", metadata={"help": "our_vab word vectors ('' = <root>/glove)"})
    mm_num_texts: int = field(
        default=0, metadata={"help": "> 0: MultiModality over that many texts (needs --do-sample)"}
    )
    diversity_times: int = field(
        default=0, metadata={"help": "Diversity pairs (0 = upstream: 300 if more than 300 items, else 100)"}
    )
    fid_method: str = field(default="sqrtm", metadata={"help": "FID square root: sqrtm (upstream) | eigen (~3x faster)"})
    # ---- generation -------------------------------------------------------------------------------
    max_new_tokens: int = field(
        default=0, metadata={"help": "completion budget per call; 0 = upstream's max_length minus the prompt"}
    )
    temperature: float | None = field(default=None, metadata={"help": "sampling temperature (None = model)"})
    top_k: int | None = field(default=None, metadata={"help": "top-k (None = model / HF default 50)"})
    top_p: float | None = field(default=None, metadata={"help": "top-p (None = model / HF default 1.0)"})
    sample_in_loops: bool = field(default=False, metadata={"help": "also sample in the loops/analysis steps"})
    motion_constrained_decoding: bool = field(
        default=False,
        metadata={
            "help": "inside <Motion> blocks allow only codes and </Motion> (recommended with sampling)"
        },
    )
    max_motion_codes: int = field(
        default=49, metadata={"help": "constrained decoding: close a block after this many codes (0 = never)"}
    )
    restricted_argmax: bool = field(
        default=False, metadata={"help": "upstream's scores-based code extraction"}
    )
    strict_stop_sentence: bool = field(
        default=False, metadata={"help": "stop refining only on exactly 'No refinements needed.' (upstream)"}
    )
    # ---- runtime, outputs ------------------------------------------------------------------------
    attn_implementation: str = field(
        default="auto", metadata={"help": "auto | eager | flash_attention_2 | flex_attention"}
    )
    dtype: str = field(default="auto", metadata={"help": "auto | bf16 | fp32"})
    device: str = field(default="auto", metadata={"help": "auto (cuda:LOCAL_RANK if available) | cpu | cuda"})
    results_dir: str = field(default="", metadata={"help": "output folder (default: upstream-style name)"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})
    compare: list[str] = field(
        default_factory=list,
        metadata={
            "help": "only combine finished runs (result dirs or eval_results.json files) into one table"
        },
    )

    def __post_init__(self) -> None:
        if self.compare:
            return
        self.tasks = [t.strip() for t in self.eval_task.split(",") if t.strip()]
        if not self.tasks:
            raise SystemExit("--eval-task is empty")
        for task in self.tasks:
            try:
                check_task(task, MOTION_TASKS)
            except ValueError as err:
                hint = "\n(m2t is evaluated by SFT/test_m2t.py)" if task == "m2t" else ""
                raise SystemExit(f"{err}{hint}") from None
        if len(set(self.tasks)) != len(self.tasks):
            raise SystemExit(f"--eval-task lists a task twice: {self.eval_task}")
        if self.evaluator not in EVALUATORS:
            raise SystemExit(f"--evaluator must be one of {EVALUATORS}, got {self.evaluator!r}")
        if self.eval_set not in ("test", "val", "train"):
            raise SystemExit(f"--eval-set must be test, val or train, got {self.eval_set!r}")
        for name in ("eval_repeat_times", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
        if self.max_refine_round < 0:
            raise SystemExit("--max-refine-round must be >= 0")
        missing = [
            f"--{n.replace('_', '-')}"
            for n in ("llm_backbone", "data_root", "vq_ckpt", "evaluator_dir")
            if not getattr(self, n) and not (n == "llm_backbone" and _is_hf_folder(self.llm_ckpt))
        ]
        if missing:
            raise SystemExit(f"missing required setting(s): {', '.join(missing)}")
        get_dataset_spec(self.dataname)
        if any(t in NEGATIVE_MOTION_TASKS for t in self.tasks):
            self.dataset_return_neg_motion = True

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(
            do_sample=self.do_sample,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            sample_in_loops=self.sample_in_loops,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.eval_batch_size,
            prompt_w_response=self.prompt_w_response,
            motion_constrained=self.motion_constrained_decoding,
            max_motion_codes=self.max_motion_codes,
            restricted_argmax=self.restricted_argmax,
            lenient_stop=not self.strict_stop_sentence,
        )


PRESETS: dict[str, dict[str, Any]] = {
    "humanml3d": {
        "dataname": "humanml3d",
        "data_root": "dataset/HumanML3D",
        "vq_ckpt": "ckpt/vqvae.pth",
        "evaluator_dir": ".",
        "glove_dir": "glove",
        "eval_repeat_times": 20,
    },
    "kit": {
        "dataname": "kit",
        "data_root": "dataset/KIT-ML",
        "vq_ckpt": "ckpt/vqvae_kit.pth",
        "evaluator_dir": ".",
        "glove_dir": "glove",
        "eval_repeat_times": 20,
    },
    # the toy pipeline: few repeats, bounded completions (an untrained model never stops on its own)
    "toy": {
        "dataname": "humanml3d",
        "eval_repeat_times": 3,
        "max_new_tokens": 400,
        "eval_batch_size": 48,
        "max_refine_round": 3,
        "dtype": "fp32",
        "attn_implementation": "eager",
    },
}


def _is_hf_folder(path: str) -> bool:
    return bool(path) and (Path(path) / "config.json").is_file()


# ----------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Runtime:
    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_runtime(device: str) -> Runtime:
    """Join the process group when launched by torchrun (none otherwise); pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return Runtime(rank, world_size, torch.device("cuda", local_rank))
    return Runtime(rank, world_size, torch.device("cpu"))


def gather_stats(stats: EngineStats, runtime: Runtime) -> EngineStats:
    """All processes' engine statistics merged (on every process)."""
    if runtime.world_size == 1:
        return stats
    gathered: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(gathered, stats)
    merged = EngineStats()
    for part in gathered:
        merged.merge(part)
    return merged


# ----------------------------------------------------------------------------------------------------
# Loading


class DebugDataset(MotionDataset):
    """Upstream ``--debug``: only the first ``limit`` ids of each split."""

    def __init__(self, *args: Any, limit: int = 101, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit

    def split_ids(self, split: str, on_missing: str = "error") -> list[str]:
        return super().split_ids(split, on_missing=on_missing)[: self.limit]


# ----------------------------------------------------------------------------------------------------
# Outputs


def default_results_dir(cfg: EvalConfig, checkpoint_info: dict[str, Any]) -> Path:
    """Upstream's naming (checkpoint stem without its last suffix only — upstream cut at the first dot)."""
    if cfg.llm_ckpt:
        ckpt = Path(cfg.llm_ckpt)
        base, stem = ckpt.parent, ckpt.stem if ckpt.is_file() else ckpt.name
    else:
        base, stem = Path("outputs") / "eval", Path(cfg.llm_backbone).name
    epoch = checkpoint_info.get("resume_info", {}).get("epoch", -1)
    name = f"evaluation-{stem}_epoch{epoch}-{cfg.eval_set}-{'+'.join(cfg.tasks)}"
    name += "-do_sample" if cfg.do_sample else ""
    name += f"-{cfg.eval_tag}" if cfg.eval_tag else ""
    name += "-no_ckpt" if not cfg.llm_ckpt else ""
    name += "-debug" if cfg.debug else ""
    return base / name


def write_txt_io(task_dir: Path) -> int:
    """``txt_io/{name}.json`` per repeat-0 sample (upstream keys first), from ``samples_repeat0.jsonl``."""
    samples_path = task_dir / SAMPLES_FILE
    if not samples_path.is_file():
        return 0
    out = task_dir / "txt_io"
    out.mkdir(exist_ok=True)
    count = 0
    for line in samples_path.read_text(encoding="utf-8").splitlines():
        sample = json.loads(line)
        info = sample.get("info", {})
        record = {
            "input_text": info.get("input_text", ""),
            "best_beam_text": info.get("best_beam_text", ""),
            "extracted_motion": info.get("extracted_motion", []),
            "num_gens": info.get("num_gens"),
            "caption": sample.get("caption"),
            **{
                k: v
                for k, v in info.items()
                if k not in ("input_text", "best_beam_text", "extracted_motion", "num_gens")
            },
        }
        safe = str(sample["name"]).replace("/", "_")
        atomic_write_json(record, out / f"{safe}.json")
        count += 1
    return count


def combined_table(reports: Sequence[tuple[str, Any]], interval: str = "ci95") -> str:
    """One markdown table: the "Real motion" row of the first report, then one row per labelled report."""
    from evaluators.protocol import TABLE_COLUMNS, format_interval

    summaries = [(label, report.summary()) for label, report in reports]
    keys = set().union(*(s.keys() for _, s in summaries))
    columns = [c for c in TABLE_COLUMNS if c[2] in keys or (c[1] is not None and c[1] in keys)]
    lines = ["| Method | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---|" * len(columns)]
    rows = [("Real motion", summaries[0][1], 1)] + [(label, s, 2) for label, s in summaries]
    for label, summary, which in rows:
        cells = []
        for column in columns:
            key = column[which]
            cells.append(
                format_interval(summary[key]["mean"], summary[key][interval])
                if key is not None and key in summary
                else "-"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    what = "95% CI 1.96·σ/√R" if interval == "ci95" else "population std σ (upstream)"
    repeats = ", ".join(f"{label}: {len(r.per_repeat)}" for label, r in reports)
    lines += ["", f"± = {what}; repeats per row: {repeats}."]
    return "\n".join(lines)


def generation_lines(stats_by_task: dict[str, dict[str, Any]]) -> str:
    """Markdown lines summarising each task's generation statistics."""
    lines = [
        "",
        "| Task | substituted motions | rounds histogram | num_gens histogram | stop reasons | tokens/s |",
        "|---|---|---|---|---|---|",
    ]
    for task, s in stats_by_task.items():
        lines.append(
            f"| {task} | {s['substituted_motions']} ({s['fallback_reasons'] or 'none'}) | "
            f"{s['rounds_histogram'] or '-'} | {s['num_gens_histogram']} | {s['stop_reasons'] or '-'} | "
            f"{s['tokens_per_second']} |"
        )
    return "\n".join(lines)


def run_compare(paths: Sequence[str], results_dir: str) -> str:
    """Combine finished runs: each path is an ``eval_results.json`` or a folder holding them."""
    from evaluators.protocol import RESULTS_FILE, EvalReport

    reports = []
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(path.rglob(RESULTS_FILE))
        if not files:
            raise SystemExit(f"--compare {path}: no {RESULTS_FILE} found")
        for file in files:
            label = file.parent.name if file.parent != path.parent else file.stem
            reports.append(
                (
                    f"{file.parent.parent.name}/{label}" if len(paths) > 1 else label,
                    EvalReport.from_json(file),
                )
            )
    table = combined_table(reports)
    print(table)
    if results_dir:
        atomic_write_text(table + "\n", Path(results_dir) / "compare.md")
    return table


# ----------------------------------------------------------------------------------------------------
# Main


def evaluate(cfg: EvalConfig, argv: Sequence[str]) -> dict[str, Any]:
    from evaluators.protocol import ProtocolSettings, T2MTestSet, run_protocol

    runtime = init_runtime(cfg.device)
    setup_logging(rank=runtime.rank)
    torch.set_num_threads(cpu_threads())
    seed_everything(cfg.seed)

    model, tokenizer, vocab, ckpt_info = load_inference_llm(
        cfg.llm_backbone,
        cfg.llm_ckpt,
        llm_tokenizer=cfg.llm_tokenizer,
        attn_implementation="flash_attention_2" if cfg.w_flash_attention else cfg.attn_implementation,
        dtype=cfg.dtype,
        merge_lora=cfg.merge_lora,
        lora_r=cfg.lora_r_t2m,
        lora_alpha=cfg.lora_alpha_t2m,
        device=runtime.device,
    )
    results_dir = Path(cfg.results_dir) if cfg.results_dir else default_results_dir(cfg, ckpt_info)
    if runtime.main:
        results_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(results_dir / "eval.log", rank=runtime.rank)
        atomic_write_text(
            shlex.join([sys.executable, *sys.argv[:1], *argv]) + "\n", results_dir / "executed_command.sh"
        )
        save_config(cfg, results_dir / "config.json")
    vq, vq_stats, vq_stats_source = load_vq_with_statistics(cfg.vq_ckpt, cfg.vq_meta_dir, runtime.device)
    evaluator, vectorizer, mean, std, evaluator_sources = load_evaluator_bundle(
        cfg.evaluator,
        cfg.evaluator_dir,
        cfg.dataname,
        meta_dir=cfg.evaluator_meta_dir,
        glove_dir=cfg.glove_dir,
        device=runtime.device,
    )
    spec = get_dataset_spec(cfg.dataname)
    if cfg.debug:
        dataset = DebugDataset(cfg.data_root, spec, limit=cfg.debug_ids)
    else:
        dataset = MotionDataset(cfg.data_root, spec)
    max_text_len = (getattr(evaluator, "config", None) or evaluator.guo.config).max_text_len
    test_set = T2MTestSet(dataset, cfg.eval_set, vectorizer, mean, std, max_text_len=max_text_len)
    settings = ProtocolSettings(
        repeats=cfg.eval_repeat_times,
        seed=cfg.seed,
        batch_size=cfg.eval_batch_size,
        mm_num_texts=cfg.mm_num_texts,
        diversity_times=cfg.diversity_times or None,
        fid_method=cfg.fid_method,
    )
    engine = MotionLLMEngine(model, tokenizer, vocab, cfg.generation_settings())
    logger.info(
        "LLM %s | VQ %s (statistics: %s) | evaluator %s | %d test items | world size %d",
        ckpt_info,
        cfg.vq_ckpt,
        vq_stats_source,
        evaluator_sources,
        len(test_set),
        runtime.world_size,
    )

    reports, stats_by_task = [], {}
    for task in cfg.tasks:
        seed_everything(cfg.seed + runtime.rank)
        generator = make_llm_generator(
            engine,
            vq,
            task,
            vq_stats=vq_stats,
            evaluator_stats=(mean, std),
            max_refine_round=cfg.max_refine_round,
            max_frames=settings.max_frames,
            seed=cfg.seed,
        )
        task_dir = results_dir / task
        logger.info(
            "task %s (%s); generator returns %s features", task, MOTION_TASKS[task], generator.normalization
        )
        report = run_protocol(
            generator, test_set, evaluator, settings, progress=cfg.progress, log_dir=task_dir, label=task
        )
        stats = gather_stats(engine.reset_stats(), runtime).summary()
        stats_by_task[task] = stats
        reports.append((task, report))
        if runtime.main:
            atomic_write_json(stats, task_dir / "generation_stats.json")
            atomic_write_json(
                {f"Repeat-{i}": r for i, r in enumerate(report.per_repeat)},
                task_dir / "all_eval_results_t2m.json",
            )
            write_txt_io(task_dir)
            logger.info("%s\n%s", task, report.format_upstream())
            if stats["substituted_motions"]:
                logger.warning(
                    "%s: %d motion(s) substituted by code [0] (%s)",
                    task,
                    stats["substituted_motions"],
                    stats["fallback_reasons"],
                )
    table = combined_table(reports)
    summary = {
        "tasks": {
            label: {"summary": r.summary(), "generation": stats_by_task[label]} for label, r in reports
        },
        "counts": reports[0][1].counts,
        "checkpoint": ckpt_info,
        "vq_statistics": vq_stats_source,
        "evaluator": evaluator_sources,
        "config": config_to_dict(cfg),
    }
    if runtime.main:
        atomic_write_text(table + "\n" + generation_lines(stats_by_task) + "\n", results_dir / "summary.md")
        atomic_write_json(summary, results_dir / "summary.json")
        logger.info("results in %s\n%s", results_dir, table)
    summary["results_dir"] = str(results_dir)
    summary["table"] = table
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | str:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(EvalConfig, PRESETS, argv, description=__doc__)
    if cfg.compare:
        return run_compare(cfg.compare, cfg.results_dir)
    try:
        return evaluate(cfg, argv)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()

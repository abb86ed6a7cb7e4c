"""The embedded default: IRG-MotionLLM end to end on the procedural toy world, on CPU, no downloads.

    python prepare/run_toy_pipeline.py                     # everything (12-14 min on 2 CPU cores)
    python prepare/run_toy_pipeline.py --out runs/toy2     # another output folder
    python prepare/run_toy_pipeline.py --redo-from stage1  # rerun stage 1 and everything after it

Every stage runs one of the project's real entry points as a subprocess, with the same flags a
researcher uses on HumanML3D plus ``--preset toy``; the exact command is printed and its output goes to
``<out>/logs/<stage>.log``. A stage that finished before is skipped, and an interrupted stage is rerun
over its partial outputs (SFT resumes from its last checkpoint); a stage whose command or settings
changed (e.g. ``--stage1-steps``) reruns from scratch, with every stage after it. At the end the results (toy world, VQ-VAE reconstruction, evaluator reference row, data
engine counts, training curves and the text-to-motion table: untrained vs stage 0 vs stage 1, single
pass vs IRMoGen refinement rounds) are printed and written to ``<out>/RESULTS.md``.

Stages: toy_world, render, tiny_llm, vqvae, token_cache, evaluator, negatives, annotations, stage0,
stage1, eval_untrained, eval_stage0, eval_stage1.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from models.common.config import parse_config
from models.common.io import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[1]


@dataclass
class PipelineConfig:
    out: str = field(default="runs/toy", metadata={"help": "output folder for everything the pipeline makes"})
    redo_from: str = field(default="", metadata={"help": "rerun this stage and all later ones"})
    stage0_steps: int = field(default=1000, metadata={"help": "optimiser steps of stage 0 (toy T2M base model)"})
    stage1_steps: int = field(default=700, metadata={"help": "optimiser steps of stage 1 (eight meta tasks)"})
    eval_repeats: int = field(default=3, metadata={"help": "evaluation repeats (the paper's protocol uses 20)"})
    max_refine_round: int = field(default=2, metadata={"help": "IRMoGen refinement rounds of the stage-1 loop"})
    python: str = field(default=sys.executable, metadata={"help": "interpreter for the stage commands"})


@dataclass(frozen=True)
class Paths:
    out: Path

    @property
    def data(self) -> Path:
        return self.out / "data" / "toy"

    @property
    def llm(self) -> Path:
        return self.out / "tiny_gemma2"

    @property
    def vq_dir(self) -> Path:
        return self.out / "vqvae" / "toy"

    @property
    def vq(self) -> Path:
        return self.vq_dir / "vqvae.pt"

    @property
    def cache(self) -> Path:
        return self.out / "token_cache"

    @property
    def evaluator(self) -> Path:
        return self.out / "evaluator"

    @property
    def matcher(self) -> Path:
        return self.evaluator / "checkpoints" / "t2m" / "text_mot_match"

    @property
    def annotations(self) -> Path:
        return self.out / "annotations"

    @property
    def sft(self) -> Path:
        return self.out / "sft"

    def eval_dir(self, name: str) -> Path:
        return self.out / "eval" / name


@dataclass
class Stage:
    """One step of the pipeline: a real entry point's command, the file that proves it finished, the
    paths it writes (removed before a rerun, so no stale checkpoint is resumed) and its environment."""

    name: str
    title: str
    command: Callable[[Paths, PipelineConfig], list[str]]
    done_when: Callable[[Paths], Path]
    outputs: Callable[[Paths], list[Path]]
    env: Callable[[Paths, PipelineConfig], dict[str, str]] = lambda paths, cfg: {}

    def signature(self, paths: Paths, cfg: PipelineConfig) -> dict:
        """What a finished run is valid for: the command and settings (interpreter and port excluded)."""
        command = ["PYTHON" if part == cfg.python else part for part in self.command(paths, cfg)]
        env = {k: v for k, v in self.env(paths, cfg).items() if k not in ("PYTHON", "MASTER_PORT")}
        return {"command": command, "env": env}


def _py(cfg: PipelineConfig, *args: str | Path) -> list[str]:
    return [cfg.python, *map(str, args)]


def _eval_command(paths: Paths, cfg: PipelineConfig, backbone: Path, tasks: str, name: str) -> list[str]:
    return _py(
        cfg, REPO / "SFT/test_unified.py", "--preset", "toy", "--data-root", paths.data,
        "--llm-backbone", backbone, "--vq-ckpt", paths.vq, "--evaluator-dir", paths.evaluator,
        "--glove-dir", paths.evaluator / "glove", "--eval-task", tasks,
        "--eval-repeat-times", str(cfg.eval_repeats), "--max-refine-round", str(cfg.max_refine_round),
        "--motion-constrained-decoding", "--results-dir", paths.eval_dir(name),
    )


def _sft_env(paths: Paths, cfg: PipelineConfig, steps: int) -> dict[str, str]:
    return {
        "PYTHON": cfg.python, "PRESET": "toy", "DATA_ROOT": str(paths.data), "TOKEN_CACHE": str(paths.cache),
        "LLM_BACKBONE": str(paths.llm), "ANNOT_DIR": str(paths.annotations), "OUT_DIR": str(paths.sft),
        "MAX_STEPS": str(steps), "MASTER_PORT": os.environ.get("MASTER_PORT", "29531"),
    }


STAGES: list[Stage] = [
    Stage(
        "toy_world", "procedural toy world in the HumanML3D layout",
        lambda p, c: _py(c, REPO / "prepare/make_toy_dataset.py", "--out", p.data),
        lambda p: p.data / "toy_world.json",
        lambda p: [p.data],
    ),
    Stage(
        "render", "stick-figure render of a toy motion",
        lambda p, c: _py(
            c, REPO / "prepare/render_motion.py", "--inputs", p.data / "new_joints" / f"{_first_test_id(p)}.npy",
            "--captions", _first_caption(p), "--out", p.out / "renders" / "toy_motion.gif",
        ),
        lambda p: p.out / "renders" / "toy_motion.gif",
        lambda p: [p.out / "renders"],
    ),
    Stage(
        "tiny_llm", "tiny Gemma2 + tokenizer trained on the toy captions and prompt templates",
        lambda p, c: _py(
            c, REPO / "prepare/make_tiny_llm.py", "--data-root", p.data, "--out", p.llm, "--preset", "toy",
            "--caption-split", "train",
        ),
        lambda p: p.llm / "config.json",
        lambda p: [p.llm],
    ),
    Stage(
        "vqvae", "VQ-VAE motion tokenizer (T2M-GPT recipe, toy preset)",
        lambda p, c: _py(
            c, REPO / "prepare/train_vqvae.py", "--preset", "toy", "--data-root", p.data,
            "--out-dir", p.vq_dir.parent, "--exp-name", p.vq_dir.name, "--no-progress",
        ),
        lambda p: p.vq_dir / "metrics.json",
        lambda p: [p.vq_dir],
    ),
    Stage(
        "token_cache", "token cache: every clip, mirror, sub-clip and crop offset tokenised once",
        lambda p, c: _py(
            c, REPO / "prepare/build_token_cache.py", "--data-root", p.data, "--vq", p.vq, "--out", p.cache,
            "--no-progress",
        ),
        lambda p: p.cache / "metadata.json",
        lambda p: [p.cache],
    ),
    Stage(
        "evaluator", "T2M evaluator (word vectors, movement encoder, text-motion matching)",
        lambda p, c: _py(
            c, REPO / "prepare/train_evaluator.py", "--preset", "toy", "--data-root", p.data,
            "--out-dir", p.evaluator,
        ),
        lambda p: p.matcher / "reference_test.json",
        lambda p: [p.evaluator],
    ),
    Stage(
        "negatives", "graded negative motions by evaluator-embedding distance (slice rule, p=0.9)",
        lambda p, c: _py(
            c, "-m", "data_engine.retrieve_negatives", "--preset", "toy", "--dataset-root", p.data,
            "--encoder", "t2m", "--encoder-checkpoint", p.matcher / "model" / "finest.tar",
            "--meta-dir", p.matcher / "meta", "--out", p.annotations / "negatives.json",
        ),
        lambda p: p.annotations / "negatives.json",
        lambda p: [p.annotations / "negatives.json"],
    ),
    Stage(
        "annotations", "stage 0-3 annotations with the offline rule-based writer",
        lambda p, c: _py(
            c, "-m", "data_engine.build_annotations", "--preset", "toy", "--dataset-root", p.data,
            "--negatives", p.annotations / "negatives.json", "--out", p.annotations,
        ),
        lambda p: p.annotations / "build_info.json",
        lambda p: [p.annotations / name for name in ("stage-0", "stage-1", "stage-2", "stage-3", "build_info.json",
                                                     "quality_report.json")],
    ),
    Stage(
        "stage0", "stage 0: the text-to-motion base model from the random-init tiny Gemma2",
        lambda p, c: ["bash", str(REPO / "SFT/train_stage0.sh")],
        lambda p: p.sft / "toy_stage0" / "final" / "config.json",
        lambda p: [p.sft / "toy_stage0"],
        lambda p, c: {
            **_sft_env(p, c, c.stage0_steps),
            "STAGE0_FILES": str(p.annotations / "stage-0" / "stage_0_t2m_annots.json"),
        },
    ),
    Stage(
        "stage1", "stage 1: the eight meta tasks, from the stage-0 model",
        lambda p, c: ["bash", str(REPO / "SFT/train_stage1.sh")],
        lambda p: p.sft / "toy_stage1" / "final" / "config.json",
        lambda p: [p.sft / "toy_stage1"],
        lambda p, c: _sft_env(p, c, c.stage1_steps),
    ),
    Stage(
        "eval_untrained", "evaluate the untrained tiny model (T2M)",
        lambda p, c: _eval_command(p, c, p.llm, "t2m", "untrained"),
        lambda p: p.eval_dir("untrained") / "summary.json",
        lambda p: [p.eval_dir("untrained")],
    ),
    Stage(
        "eval_stage0", "evaluate the stage-0 model (T2M)",
        lambda p, c: _eval_command(p, c, p.sft / "toy_stage0" / "final", "t2m", "stage0"),
        lambda p: p.eval_dir("stage0") / "summary.json",
        lambda p: [p.eval_dir("stage0")],
    ),
    Stage(
        "eval_stage1", "evaluate stage 1: single pass vs IRMoGen refinement rounds",
        lambda p, c: _eval_command(
            p, c, p.sft / "toy_stage1" / "final", "t2m,direct_generation-instructed_refinement", "stage1"
        ),
        lambda p: p.eval_dir("stage1") / "summary.json",
        lambda p: [p.eval_dir("stage1")],
    ),
]


def _first_test_id(paths: Paths) -> str:
    return (paths.data / "test.txt").read_text().split()[0]


def _first_caption(paths: Paths) -> str:
    line = (paths.data / "texts" / f"{_first_test_id(paths)}.txt").read_text().splitlines()[0]
    return line.split("#", 1)[0]


def run_stage(stage: Stage, paths: Paths, cfg: PipelineConfig, index: int, total: int) -> float:
    """Run one stage's command, logging to ``<out>/logs``; raises with the log's tail on failure."""
    command = stage.command(paths, cfg)
    env = {**os.environ, **stage.env(paths, cfg), "TQDM_MININTERVAL": "30", "PYTHONUNBUFFERED": "1"}
    log_path = paths.out / "logs" / f"{index:02d}_{stage.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shown_env = " ".join(f"{k}={shlex.quote(v)}" for k, v in stage.env(paths, cfg).items() if k != "PYTHON")
    print(f"[{index:2d}/{total}] {stage.name}: {stage.title}", flush=True)
    print(f"        $ {shown_env + ' ' if shown_env else ''}{shlex.join(command)}", flush=True)
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - start
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise SystemExit(f"stage {stage.name} failed (exit {result.returncode}); last lines of {log_path}:\n{tail}")
    print(f"        done in {seconds:.0f} s (log: {log_path})", flush=True)
    return seconds


# ---------------------------------------------------------------------------------------------- results
def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _t2m_table(paths: Paths) -> list[str]:
    """Every evaluated model and task in one table (the protocol's columns), the ground-truth row first."""
    from evaluators.protocol import TABLE_COLUMNS, format_interval

    def cell(summary: dict, key: str | None) -> str:
        return "-" if key is None or key not in summary else format_interval(summary[key]["mean"], summary[key]["ci95"])

    results = []
    runs = (("untrained", "untrained tiny Gemma2"), ("stage0", "stage 0 (base)"), ("stage1", "stage 1"))
    for name, label in runs:
        summary_path = paths.eval_dir(name) / "summary.json"
        if summary_path.is_file():
            results += [(label, task, result) for task, result in _load(summary_path)["tasks"].items()]
    if not results:
        return []
    reference = results[0][2]["summary"]
    columns = [column for column in TABLE_COLUMNS if column[2] in reference]
    rows = [
        "| Model | Output | " + " | ".join(name for name, _, _ in columns) + " | parse fallbacks |",
        "|---|---|" + "---|" * (len(columns) + 1),
        "| real motion (reference) | ground truth | " + " | ".join(cell(reference, real) for _, real, _ in columns)
        + " | - |",
    ]
    for label, task, result in results:
        output = "IRMoGen final-gen" if "refinement" in task else "single pass (init-gen)"
        fallbacks = result.get("generation", {}).get("parse", {}).get("fallbacks", "n/a")
        cells = " | ".join(cell(result["summary"], generated) for _, _, generated in columns)
        rows.append(f"| {label} | {output} (`{task}`) | {cells} | {fallbacks} |")
    return rows


def _refinement_rounds(paths: Paths) -> list[str]:
    """How many refinement rounds the IRMoGen samples took (all repeats together), and why they stopped."""
    summary_path = paths.eval_dir("stage1") / "summary.json"
    if not summary_path.is_file():
        return []
    lines = []
    for task, result in _load(summary_path)["tasks"].items():
        stats = result.get("generation", {})
        rounds = stats.get("rounds_histogram")
        if rounds:
            total = sum(rounds.values())
            shares = ", ".join(f"{k} round(s) {v / total:.0%}" for k, v in sorted(rounds.items(), key=lambda x: int(x[0])))
            stops = ", ".join(f"{k} {v}" for k, v in stats.get("stop_reasons", {}).items())
            lines.append(f"\n`{task}`: {shares} of {total} samples, all repeats (stopped by: {stops}).")
    return lines


def collect_results(paths: Paths, timings: dict[str, float], cfg: PipelineConfig) -> str:
    """Markdown report of every stage's figures."""
    lines = ["# Toy pipeline results", ""]
    world = _load(paths.data / "toy_world.json")
    splits = ", ".join(f"{k} {v}" for k, v in world["splits"].items() if k in ("train", "val", "test"))
    lines.append(f"- toy world: {len(world['motions'])} clips with mirrors ({splits}) in `{paths.data}`")
    lines.append(f"- rendered toy motion: `{paths.out / 'renders' / 'toy_motion.gif'}`")
    vq = _load(paths.vq_dir / "metrics.json")
    lines.append(
        f"- VQ-VAE (toy): test MPJPE {vq['mpjpe_mm']:.1f} mm (root-aligned), codebook usage "
        f"{vq['active_codes']}/{vq['nb_code']} codes, perplexity {vq['perplexity']:.1f}; "
        f"reconstruction render `{vq.get('render')}`"
    )
    cache = _load(paths.cache / "metadata.json").get("counts", {})
    lines.append(f"- token cache: {cache.get('spans')} spans, {cache.get('entries')} entries, {cache.get('codes')} codes")
    built = _load(paths.annotations / "build_info.json")["summary"]
    lines.append(f"- data engine (offline writer, {built['goals']} goal clips), records per file:")
    lines.extend(f"  - `{name}`: {count}" for name, count in built["counts"].items())
    quality = _load(paths.annotations / "quality_report.json")["tasks"]
    grouped: dict[str, list[str]] = {}
    for task, report in quality.items():
        if report["dropped"]:
            reasons = ", ".join(f"{reason} {count}" for reason, count in report["dropped"].items())
            grouped.setdefault(f"kept {report['items_out']}/{report['items_in']} items; dropped {reasons}", []).append(task)
    for outcome, tasks in grouped.items():
        lines.append(f"  - quality filter ({', '.join(f'`{t}`' for t in tasks)}): {outcome}")
    for stage in ("stage0", "stage1"):
        metrics = paths.sft / f"toy_{stage}" / "metrics.jsonl"
        if metrics.is_file():
            records = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
            first, last = records[0], records[-1]
            lines.append(
                f"- SFT {stage}: {last['step']} steps, loss {first['loss']:.2f} -> {last['loss']:.2f}, "
                f"motion-token accuracy {first['motion_acc']:.2f} -> {last['motion_acc']:.2f}"
            )
    lines += ["", "## Text-to-motion on the toy test split", ""]
    lines += _t2m_table(paths)
    lines += _refinement_rounds(paths)
    lines += [
        "",
        f"± = 95% CI over {cfg.eval_repeats} repeats (1.96·σ/√R); chance R@1 = 1/32 = 0.031. Evaluator: the toy "
        "T2M extractor trained by this pipeline (reference row: its ground-truth score).",
        "",
        "## Stage times",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in timings.items()]
    lines.append(f"| total | {sum(timings.values()):.0f} |")
    return "\n".join(lines) + "\n"


def _finished(mark: Path, signature: dict) -> bool:
    """``mark`` records a run of the stage with the same command and settings."""
    if not mark.is_file():
        return False
    stored = _load(mark)
    return all(stored.get(key) == value for key, value in signature.items())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def run_stages(stages: list[Stage], paths: Paths, cfg: PipelineConfig) -> dict[str, float]:
    """Run (or skip) every stage in order; returns each stage's seconds (of its finished run)."""
    names = [stage.name for stage in stages]
    if cfg.redo_from and cfg.redo_from not in names:
        raise SystemExit(f"--redo-from: unknown stage {cfg.redo_from!r}; stages: {', '.join(names)}")
    marks = paths.out / ".pipeline"
    timings: dict[str, float] = {}
    rerun_rest = False  # once a stage reruns, every later stage's inputs have changed
    for index, stage in enumerate(stages, start=1):
        mark, started = marks / f"{stage.name}.json", marks / f"{stage.name}.started.json"
        signature = stage.signature(paths, cfg)
        if stage.name == cfg.redo_from:
            rerun_rest = True
        if not rerun_rest and _finished(mark, signature) and stage.done_when(paths).exists():
            timings[stage.name] = _load(mark)["seconds"]
            print(f"[{index:2d}/{len(stages)}] {stage.name}: done before ({timings[stage.name]:.0f} s), skipped")
            continue
        interrupted = not rerun_rest and _finished(started, signature)
        rerun_rest = True
        mark.unlink(missing_ok=True)
        if not interrupted:  # an interrupted stage keeps its outputs, so its entry point resumes
            for path in stage.outputs(paths):
                _remove(path)
        atomic_write_json(signature, started)
        timings[stage.name] = run_stage(stage, paths, cfg, index, len(stages))
        atomic_write_json({"seconds": timings[stage.name], **signature}, mark)
        started.unlink()
    return timings


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(PipelineConfig, {}, argv, description=__doc__)
    paths = Paths(Path(cfg.out).resolve())
    print(f"toy pipeline -> {paths.out}", flush=True)
    timings = run_stages(STAGES, paths, cfg)
    report = collect_results(paths, timings, cfg)
    atomic_write_text(report, paths.out / "RESULTS.md")
    print()
    print(report)
    print(f"results written to {paths.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()

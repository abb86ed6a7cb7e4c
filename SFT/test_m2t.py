"""Motion-to-text evaluation of a MotionLLM checkpoint (upstream's missing ``test_unified_m2t.py``).

Every item of the split (whole clips and sub-clips within the evaluation length filter) is VQ-encoded
(the first ``--max-motion-frames`` frames, rounded down to whole codes), captioned once with the ``m2t``
prompt, and scored against ALL of its reference captions:

* caption metrics (``evaluators.caption_metrics``): BLEU-1/4 (corpus, TF-NMT formula), ROUGE-L, CIDEr-D
  and, with ``--bert-model`` (a local folder or hub name), BERTScore;
* with ``--evaluator-dir``: R-precision top-1/2/3 and MM-Dist of the generated captions against the
  ground-truth motions through the T2M evaluator's text/motion encoders (pools of 32, re-shuffled
  ``--r-precision-repeats`` times; mean, std and 95% CI), next to the same numbers for a random
  reference caption ("Real text"). Generated captions are tokenised into ``word/POS`` with
  ``evaluators.text_processing`` (``--text-backend``); captions without a single word count as
  ``unk`` and are reported.

    python SFT/test_m2t.py --llm-backbone checkpoints/gemma-2-2b-it --llm-ckpt output/stage1/ckpt.pth \\
        --merge-lora --data-root dataset/HumanML3D --vq-ckpt ckpt/vqvae.pth --evaluator-dir . \\
        --glove-dir glove --bert-model checkpoints/roberta-large --bert-num-layers 17
    torchrun --nproc_per_node 8 SFT/test_m2t.py ...   # captions generated in contiguous shards

Writes ``executed_command.sh``, ``config.json``, ``m2t_results.json`` (metrics, counts, generation
statistics), ``m2t_results.md`` and ``predictions.jsonl`` (name, prediction, references, codes) to
``--results-dir`` (default ``<checkpoint dir>/evaluation-<stem>-<eval_set>-m2t[-tag]``).
"""

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

import numpy as np
import torch
import torch.distributed as dist

from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import get_dataset_spec
from models.common.config import parse_config, save_config
from models.common.errors import DataError
from models.common.io import atomic_write_json, atomic_write_text
from models.common.runtime import cpu_threads, seed_everything, setup_logging
from models.llm.generators import EVALUATORS, load_evaluator_bundle, load_vq_with_statistics
from models.llm.inference import GenerationSettings, MotionLLMEngine, load_inference_llm

logger = logging.getLogger("test_m2t")


@dataclass
class M2TConfig:
    llm_ckpt: str = field(default="", metadata={"help": "checkpoint (as for test_unified.py; '' = backbone)"})
    llm_backbone: str = field(default="", metadata={"help": "Gemma-2 model folder"})
    llm_tokenizer: str = field(default="", metadata={"help": "tokenizer folder ('' = backbone)"})
    merge_lora: bool = field(default=False, metadata={"help": "merge the LoRA after loading"})
    lora_r_t2m: int = field(default=64, metadata={"help": "LoRA rank of LoRA checkpoints"})
    lora_alpha_t2m: int = field(default=64, metadata={"help": "LoRA alpha of LoRA checkpoints"})
    w_flash_attention: bool = field(default=False, metadata={"help": "attention = flash_attention_2"})
    attn_implementation: str = field(default="auto", metadata={"help": "auto | eager | flash_attention_2"})
    dtype: str = field(default="auto", metadata={"help": "auto | bf16 | fp32"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    data_root: str = field(default="", metadata={"help": "dataset folder (HumanML3D / KIT-ML layout)"})
    dataname: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    eval_set: str = field(default="test", metadata={"help": "split: test | val | train"})
    vq_ckpt: str = field(default="", metadata={"help": "VQ-VAE checkpoint"})
    vq_meta_dir: str = field(default="", metadata={"help": "the VQ's mean/std if its checkpoint stores none"})
    max_motion_frames: int = field(
        default=196, metadata={"help": "frames of each motion given to the model (0 = the whole clip)"}
    )
    evaluator: str = field(default="guo", metadata={"help": "guo | mardm (for R-precision / MM-Dist)"})
    evaluator_dir: str = field(default="", metadata={"help": "evaluator folder ('' = caption metrics only)"})
    evaluator_meta_dir: str = field(default="", metadata={"help": "override the evaluator statistics"})
    glove_dir: str = field(default="", metadata={"help": "our_vab word vectors"})
    text_backend: str = field(
        default="auto", metadata={"help": "word/POS tagging of generated captions: auto | spacy | rules"}
    )
    r_precision_repeats: int = field(default=20, metadata={"help": "re-shuffles of the R-precision pools"})
    bert_model: str = field(
        default="", metadata={"help": "BERTScore model (local folder or hub name; '' = skip)"}
    )
    bert_num_layers: int = field(default=0, metadata={"help": "BERTScore layer (0 = the model's last)"})
    eval_batch_size: int = field(default=32, metadata={"help": "prompts per generate call"})
    prompt_w_response: bool = field(default=True, metadata={"help": "append ' Response:' to prompts"})
    max_new_tokens: int = field(default=0, metadata={"help": "caption budget (0 = upstream: 256 - prompt)"})
    do_sample: bool = field(default=False, metadata={"help": "sample the captions"})
    temperature: float | None = field(default=None, metadata={"help": "sampling temperature"})
    top_k: int | None = field(default=None, metadata={"help": "top-k"})
    top_p: float | None = field(default=None, metadata={"help": "top-p"})
    seed: int = field(default=42, metadata={"help": "seed (sampling, R-precision shuffles)"})
    eval_tag: str = field(default="", metadata={"help": "suffix of the default results dir"})
    results_dir: str = field(default="", metadata={"help": "output folder"})

    def __post_init__(self) -> None:
        missing = [f"--{n.replace('_', '-')}" for n in ("data_root", "vq_ckpt") if not getattr(self, n)]
        if not self.llm_backbone and not (self.llm_ckpt and (Path(self.llm_ckpt) / "config.json").is_file()):
            missing.append("--llm-backbone")
        if missing:
            raise SystemExit(f"missing required setting(s): {', '.join(missing)}")
        if self.evaluator not in EVALUATORS:
            raise SystemExit(f"--evaluator must be one of {EVALUATORS}, got {self.evaluator!r}")
        if self.text_backend not in ("auto", "spacy", "rules"):
            raise SystemExit(f"--text-backend must be auto, spacy or rules, got {self.text_backend!r}")
        if self.max_motion_frames < 0 or self.r_precision_repeats < 1 or self.eval_batch_size < 1:
            raise SystemExit("--max-motion-frames >= 0, --r-precision-repeats >= 1, --eval-batch-size >= 1")
        get_dataset_spec(self.dataname)


@dataclass
class Item:
    name: str
    motion: np.ndarray  # raw features of the crop given to the model and the evaluator
    references: list[str]
    reference_tokens: list[tuple[str, ...]]


def load_items(dataset: MotionDataset, split: str, max_frames: int, unit: int) -> list[Item]:
    """The split's evaluation items, each cropped to its first ``max_frames`` frames (whole codes)."""
    items, cache = [], {}
    for clip in dataset.clips(split):
        if clip.motion_id not in cache:
            cache.clear()
            cache[clip.motion_id] = dataset.load_features(clip.motion_id)
        frames = clip.length if max_frames == 0 else min(clip.length, max_frames)
        frames -= frames % unit
        motion = cache[clip.motion_id][clip.start : clip.start + frames]
        items.append(
            Item(clip.name, motion, [c.text for c in clip.captions], [c.tokens for c in clip.captions])
        )
    return items


def caption_tokens(text: str, backend: str) -> tuple[list[str], bool]:
    """``word/POS`` tokens of a generated caption; ``(["unk/OTHER"], False)`` when it has no word."""
    from evaluators.text_processing import tokenize_caption

    try:
        return tokenize_caption(text, backend=backend), True  # type: ignore[arg-type]
    except DataError:
        return ["unk/OTHER"], False


def retrieval_metrics(
    evaluator: Any,
    vectorizer: Any,
    mean: np.ndarray,
    std: np.ndarray,
    items: Sequence[Item],
    predictions: Sequence[str],
    cfg: M2TConfig,
) -> dict[str, Any]:
    """R-precision / MM-Dist of generated and of (random) reference captions vs the ground-truth motions."""
    from evaluators.generators import EvaluatorSpace
    from evaluators.metrics import r_precision
    from evaluators.protocol import summarize

    space = EvaluatorSpace(mean, std)
    config = getattr(evaluator, "config", None) or evaluator.guo.config
    max_frames, unit = config.max_motion_length, config.unit_length
    motions = np.zeros((len(items), max_frames, space.dim), np.float32)
    lengths = np.zeros(len(items), np.int64)
    for row, item in enumerate(items):
        crop = item.motion[: max_frames - max_frames % unit]
        motions[row, : len(crop)] = space.normalize(crop)
        lengths[row] = len(crop)
    tagged = [caption_tokens(p, cfg.text_backend) for p in predictions]
    rng = np.random.default_rng([cfg.seed, 1])
    references = [item.reference_tokens[rng.integers(len(item.reference_tokens))] for item in items]
    motion_emb = evaluator.motion_embeddings(motions, lengths).float().cpu().numpy()
    texts = {}
    for key, tokens in (("generated", [t for t, _ in tagged]), ("real", references)):
        batch = vectorizer.batch(tokens, config.max_text_len)
        texts[key] = (
            evaluator.text_embeddings(batch.word_embs, batch.pos_ohot, batch.sent_lens).float().cpu().numpy()
        )
    per_repeat: dict[str, list[float]] = {}
    for repeat in range(cfg.r_precision_repeats):
        order = np.random.default_rng([cfg.seed, 2, repeat]).permutation(len(items))
        for key, text_emb in texts.items():
            result = r_precision(text_emb[order], motion_emb[order])
            for k in range(3):
                per_repeat.setdefault(f"{key}_R_precision_top{k + 1}", []).append(float(result.rates[k]))
            per_repeat.setdefault(f"{key}_matching_score", []).append(result.matching_score)
    return {
        "summary": {key: summarize(values) for key, values in per_repeat.items()},
        "captions_without_words": sum(not ok for _, ok in tagged),
        "pools": len(items) // 32,
    }


def default_results_dir(cfg: M2TConfig) -> Path:
    if cfg.llm_ckpt:
        ckpt = Path(cfg.llm_ckpt)
        base, stem = ckpt.parent, ckpt.stem if ckpt.is_file() else ckpt.name
    else:
        base, stem = Path("outputs") / "eval", Path(cfg.llm_backbone).name
    return base / (f"evaluation-{stem}-{cfg.eval_set}-m2t" + (f"-{cfg.eval_tag}" if cfg.eval_tag else ""))


def markdown(metrics: dict[str, float], retrieval: dict[str, Any] | None, counts: dict[str, Any]) -> str:
    from evaluators.protocol import format_interval

    names = list(metrics)
    lines = [
        "| " + " | ".join(names) + " |",
        "|" + "---|" * len(names),
        "| " + " | ".join(f"{metrics[n]:.4f}" for n in names) + " |",
    ]
    if retrieval is not None:
        s = retrieval["summary"]
        lines += [
            "",
            "| Text | R-Precision Top-1 ↑ | Top-2 ↑ | Top-3 ↑ | MM-Dist ↓ |",
            "|---|---|---|---|---|",
        ]
        for key, label in (("real", "Real text"), ("generated", "Generated")):
            cells = [s[f"{key}_R_precision_top{k}"] for k in (1, 2, 3)] + [s[f"{key}_matching_score"]]
            lines.append(
                f"| {label} | " + " | ".join(format_interval(c["mean"], c["ci95"]) for c in cells) + " |"
            )
    lines += ["", f"{counts['items']} items; ± = 95% CI over pool re-shuffles."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from evaluators.caption_metrics import caption_metrics

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(M2TConfig, argv=argv, description=__doc__)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if use_cuda else torch.device("cpu")
    setup_logging(rank=rank)
    torch.set_num_threads(cpu_threads())
    seed_everything(cfg.seed)
    results_dir = Path(cfg.results_dir) if cfg.results_dir else default_results_dir(cfg)
    if rank == 0:
        results_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(results_dir / "m2t.log", rank=rank)
        atomic_write_text(
            shlex.join([sys.executable, *sys.argv[:1], *argv]) + "\n", results_dir / "executed_command.sh"
        )
        save_config(cfg, results_dir / "config.json")

    model, tokenizer, vocab, info = load_inference_llm(
        cfg.llm_backbone,
        cfg.llm_ckpt,
        llm_tokenizer=cfg.llm_tokenizer,
        attn_implementation="flash_attention_2" if cfg.w_flash_attention else cfg.attn_implementation,
        dtype=cfg.dtype,
        merge_lora=cfg.merge_lora,
        lora_r=cfg.lora_r_t2m,
        lora_alpha=cfg.lora_alpha_t2m,
        device=device,
    )
    vq, vq_stats, vq_source = load_vq_with_statistics(cfg.vq_ckpt, cfg.vq_meta_dir, device)
    evaluator_parts = None
    if cfg.evaluator_dir:
        evaluator_parts = load_evaluator_bundle(
            cfg.evaluator,
            cfg.evaluator_dir,
            cfg.dataname,
            meta_dir=cfg.evaluator_meta_dir,
            glove_dir=cfg.glove_dir,
            device=device,
        )
    if vq_stats is None:
        if evaluator_parts is None or cfg.evaluator != "guo":
            raise SystemExit(
                "the VQ checkpoint stores no statistics: give --vq-meta-dir (or a guo --evaluator-dir, "
                "whose statistics the released VQ uses)"
            )
        vq_stats = (evaluator_parts[2], evaluator_parts[3])
    dataset = MotionDataset(cfg.data_root, get_dataset_spec(cfg.dataname))
    items = load_items(dataset, cfg.eval_set, cfg.max_motion_frames, vq.unit_length)
    if not items:
        raise DataError(
            f"no evaluation items in split {cfg.eval_set!r}", path=dataset.split_path(cfg.eval_set)
        )
    shard = np.array_split(np.arange(len(items)), world_size)[rank]
    mean, std = vq_stats
    codes = [
        c.tolist() for c in vq.encode([((items[i].motion - mean) / std).astype(np.float32) for i in shard])
    ]
    engine = MotionLLMEngine(
        model,
        tokenizer,
        vocab,
        GenerationSettings(
            do_sample=cfg.do_sample,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.eval_batch_size,
            prompt_w_response=cfg.prompt_w_response,
        ),
    )
    texts = [t.strip() for t in engine.text_task("m2t", motions=codes)]
    local = list(zip(shard.tolist(), texts, codes, strict=True))
    stats = engine.stats
    if world_size > 1:
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, (local, stats))
        local = [row for part, _ in gathered for row in part]
        for _, part_stats in gathered[1:]:
            gathered[0][1].merge(part_stats)
        stats = gathered[0][1]
    local.sort(key=lambda row: row[0])
    predictions = [text for _, text, _ in local]
    result: dict[str, Any] = {}
    if rank == 0:
        references = [item.references for item in items]
        bert = {"num_layers": cfg.bert_num_layers} if cfg.bert_num_layers else {}
        metrics = caption_metrics(predictions, references, bert_model=cfg.bert_model or None, **bert)
        retrieval = None
        if evaluator_parts is not None:
            evaluator, vectorizer, eval_mean, eval_std, _ = evaluator_parts
            retrieval = retrieval_metrics(evaluator, vectorizer, eval_mean, eval_std, items, predictions, cfg)
        counts = {
            "items": len(items),
            "empty_predictions": sum(not p for p in predictions),
            "world_size": world_size,
        }
        result = {
            "caption_metrics": metrics,
            "retrieval": retrieval,
            "counts": counts,
            "generation": stats.summary(),
            "checkpoint": info,
            "vq_statistics": vq_source,
        }
        atomic_write_json(result, results_dir / "m2t_results.json")
        atomic_write_text(markdown(metrics, retrieval, counts) + "\n", results_dir / "m2t_results.md")
        rows = [
            {"name": item.name, "prediction": text, "references": item.references, "codes": item_codes}
            for item, (_, text, item_codes) in zip(items, local, strict=True)
        ]
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        atomic_write_text(lines, results_dir / "predictions.jsonl")
        logger.info("results in %s\n%s", results_dir, markdown(metrics, retrieval, counts))
        result["results_dir"] = str(results_dir)
    if dist.is_initialized():
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()

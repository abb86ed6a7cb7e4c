"""SFT throughput: data pipeline, length-grouped vs random batching, and achieved FLOP/s of a train step.

    python benchmarks/bench_sft.py --llm-backbone checkpoints/tiny_gemma2_toy \\
        --token-cache data/toy/token_cache \\
        --data-json-files "$(ls data/toy_annotations/stage-1/*.json | paste -sd:)"

Printed (and written to ``--json-out``):

* data pipeline: items/s and tokens/s of ``SFTDataset`` (resolve + cached codes + render + tokenise), one
  process;
* batching: the padded-token fraction of one epoch with random and with length-grouped batches (real
  token counts of ``--max-items`` records), and the train throughput of ``--steps`` optimiser steps of
  the given model with each (steps/s, real tokens/s, padded tokens/s);
* compute efficiency: a ``small`` tiny Gemma-2 (hidden 256, 4 layers, 8 heads / 2 KV heads, head_dim 32,
  MLP 1024) trained on the same batches; model FLOPs = 6 x parameters x tokens + attention
  (12 x layers x heads x head_dim x sequence^2 per sequence: QK^T and AV, forward + backward, as eager
  attention computes them), counted on the padded batch and on the real tokens, divided by the measured
  fp32 matmul FLOP/s of this machine (``torch.mm`` of 2048^2 matrices, same thread count).

Timings share the machine with whatever else runs; the load average is printed with the figures.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data_engine.annotations import load_annotation_files
from data_engine.datasets.spec import get_dataset_spec
from models.common.config import parse_config
from models.common.runtime import cpu_threads
from models.llm.model import LLMSettings, build_motion_llm, count_parameters, load_tokenizer
from models.llm.sft_dataset import (
    MotionCodeSource,
    SFTBatchSampler,
    SFTCollator,
    SFTDataOptions,
    SFTDataset,
    padding_fraction,
)
from models.llm.tiny import TinyGemma2Shape, build_tiny_gemma2, save_tiny_llm
from models.llm.training import causal_lm_loss
from models.vqvae.token_cache import TokenCache

SMALL = TinyGemma2Shape(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=32,
    intermediate_size=1024,
)


@dataclass
class BenchSFTConfig:
    llm_backbone: str = field(default="checkpoints/tiny_gemma2_toy", metadata={"help": "model folder"})
    token_cache: str = field(default="data/toy/token_cache", metadata={"help": "token cache folder"})
    data_json_files: str = field(default="", metadata={"help": "annotation files, ':'-separated"})
    dataname: str = field(default="t2m", metadata={"help": "t2m | kit"})
    batch_size: int = field(default=32, metadata={"help": "micro-batch size"})
    steps: int = field(default=30, metadata={"help": "timed optimiser steps per batching mode"})
    max_items: int = field(default=4000, metadata={"help": "records used for the padding statistics"})
    max_tgt_len: int = field(default=2048, metadata={"help": "maximum tokens per sequence"})
    seed: int = 0
    json_out: str = field(default="", metadata={"help": "also write the figures here"})

    def __post_init__(self) -> None:
        if not self.data_json_files:
            raise SystemExit("give --data-json-files (e.g. the eight toy stage-1 files, ':'-separated)")


def matmul_flops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 ``torch.mm`` FLOP/s (best of ``repeats``)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def train_flops(model: torch.nn.Module, lengths: list[int], width: int) -> tuple[float, float]:
    """(useful FLOPs on the real tokens, executed FLOPs on the padded batch) of one training step."""
    params, _ = count_parameters(model)
    config = model.config
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim
    useful = 6 * params * sum(lengths) + attention * sum(s * s for s in lengths)
    executed = 6 * params * width * len(lengths) + attention * width * width * len(lengths)
    return float(useful), float(executed)


def time_training(model: torch.nn.Module, batches: list[dict], first_motion_id: int) -> dict[str, float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step(batch: dict) -> None:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, _ = causal_lm_loss(logits, batch["labels"], first_motion_id)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up
    useful = executed = tokens = padded = 0.0
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
        lengths = batch["attention_mask"].sum(1).tolist()
        u, e = train_flops(model, lengths, batch["input_ids"].shape[1])
        useful, executed = useful + u, executed + e
        tokens += batch["stats"]["tokens"]
        padded += batch["stats"]["padded_tokens"]
    seconds = time.perf_counter() - start
    count = len(batches) - 1
    return {
        "steps_per_s": count / seconds,
        "tokens_per_s": tokens / seconds,
        "padded_tokens_per_s": padded / seconds,
        "useful_flops": useful / seconds,
        "executed_flops": executed / seconds,
        "pad_fraction": 1 - tokens / padded,
    }


def small_model(tokenizer_folder: str, folder: Path) -> tuple[torch.nn.Module, int]:
    tokenizer = load_tokenizer(tokenizer_folder)
    base = build_tiny_gemma2(SMALL, tokenizer, seed=0)
    save_tiny_llm(base, tokenizer, folder)
    model, _, vocab = build_motion_llm(
        LLMSettings(
            llm_backbone=str(folder),
            use_lora=False,
            full_tuning=True,
            dtype="fp32",
            attn_implementation="eager",
        )
    )
    return model, vocab.motion_start_id


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(BenchSFTConfig, None, argv, description=__doc__)
    threads = cpu_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    spec = get_dataset_spec(cfg.dataname)
    model, tokenizer, vocab = build_motion_llm(
        LLMSettings(llm_backbone=cfg.llm_backbone, use_lora=False, full_tuning=True, dtype="fp32")
    )
    records = load_annotation_files(cfg.data_json_files, id_digits=spec.id_digits)
    dataset = SFTDataset(
        records,
        MotionCodeSource(TokenCache.open(cfg.token_cache), spec),
        tokenizer,
        vocab,
        SFTDataOptions(seed=cfg.seed, max_length=cfg.max_tgt_len),
    )
    figures: dict = {"threads": threads, "load_average": os.getloadavg()[0], "records": len(dataset)}

    # data pipeline and padding over a random subset of records
    subset = np.random.default_rng(cfg.seed).permutation(len(dataset))[: cfg.max_items]
    start = time.perf_counter()
    items = {int(i): dataset[(0, int(i))] for i in subset}
    seconds = time.perf_counter() - start
    real = {i: len(item.input_ids) for i, item in items.items()}
    figures["data_items_per_s"] = len(items) / seconds
    figures["data_tokens_per_s"] = sum(real.values()) / seconds
    estimated = dataset.estimated_lengths[subset]
    figures["length_estimate_correlation"] = float(
        np.corrcoef(estimated, [real[int(i)] for i in subset])[0, 1]
    )

    collate = SFTCollator(tokenizer.pad_token_id)
    modes = {}
    for mode, group in (("random", False), ("grouped", True)):
        sampler = SFTBatchSampler(estimated, cfg.batch_size, group_by_length=group, seed=cfg.seed)
        batches = [[int(subset[i]) for _, i in batch] for batch in sampler]
        modes[mode] = {
            "epoch_pad_fraction": padding_fraction(batches, real),
            "batches": [collate([items[i] for i in batch]) for batch in batches[: cfg.steps + 1]],
        }

    for mode, entry in modes.items():
        timing = time_training(model, entry["batches"], vocab.motion_start_id)
        figures[f"{mode}_epoch_pad_fraction"] = entry["epoch_pad_fraction"]
        figures[f"{mode}_train"] = {k: v for k, v in timing.items() if "flops" not in k}

    peak = matmul_flops(threads)
    figures["matmul_fp32_flops"] = peak
    with tempfile.TemporaryDirectory() as tmp:
        small, first_motion_id = small_model(cfg.llm_backbone, Path(tmp) / "small")
        figures["small_parameters"] = count_parameters(small)[0]
        for mode, entry in modes.items():
            timing = time_training(small, entry["batches"], first_motion_id)
            figures[f"small_{mode}"] = {
                **timing,
                "useful_fraction_of_matmul_peak": timing["useful_flops"] / peak,
                "executed_fraction_of_matmul_peak": timing["executed_flops"] / peak,
            }
    print(json.dumps(figures, indent=2))
    if cfg.json_out:
        Path(cfg.json_out).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


if __name__ == "__main__":
    main()

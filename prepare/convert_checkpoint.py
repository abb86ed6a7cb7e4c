"""Convert motion-LLM checkpoints between Motion-Agent's, the authors' and our formats.

Inputs (format detected): a Motion-Agent LoRA ``.pth`` (adapters ``t2m``/``m2t``, 514-row embeddings),
an IRG-MotionLLM ``.pth`` (full, or LoRA ``shared``), or one of our Hugging Face folders. ``.pth``
inputs need the base model folder (``--llm-backbone``, e.g. gemma-2-2b-it). The load is strict and its
report is printed.

Outputs (``--to``): ``hf-folder`` (our full folder, LoRA merged), ``authors-pth`` (IRG layout; a LoRA
input stays LoRA ``shared`` unless ``--merge-lora``), ``adapter-folder`` (LoRA inputs), ``motion-agent-pth``.

    # Motion-Agent -> IRG stage-1 init (the README's manual t2m -> shared rename, done and checked)
    python prepare/convert_checkpoint.py --input ckpt/motionllm.pth --llm-backbone gemma-2-2b-it \\
        --to authors-pth --output ckpt/motionllm_shared.pth
    # authors' released .pth -> our folder (then use it as --llm-backbone)
    python prepare/convert_checkpoint.py --input motionllm_unified_sft_latest.pth \\
        --llm-backbone gemma-2-2b-it --to hf-folder --output runs/irg_stage2_hf
    # our folder -> authors' .pth (their test_unified.py --llm-ckpt reads it)
    python prepare/convert_checkpoint.py --input runs/irg_stage2_hf --to authors-pth --output export/irg.pth
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.common.config import parse_config
from models.common.errors import DataError
from models.common.runtime import setup_logging
from models.llm.checkpoints import (
    HF_FOLDER_FORMAT,
    LoadReport,
    detect_format,
    load_authors_checkpoint,
    load_motion_agent_lora,
    read_checkpoint,
    read_motion_llm_metadata,
    save_adapter_folder,
    save_authors_checkpoint,
    save_hf_folder,
    save_motion_agent_lora,
)
from models.llm.model import (
    LLMSettings,
    activate_full_tuning,
    build_motion_llm,
    is_adapter_param,
    is_peft_model,
)

logger = logging.getLogger("convert_checkpoint")

TARGETS = ("hf-folder", "authors-pth", "adapter-folder", "motion-agent-pth")


@dataclass
class ConvertCheckpointConfig:
    input: str = field(default="", metadata={"help": "Motion-Agent/authors .pth, or one of our HF folders"})
    output: str = field(default="", metadata={"help": "file or folder to write"})
    to: str = field(default="hf-folder", metadata={"help": f"output format: {' | '.join(TARGETS)}"})
    llm_backbone: str = field(default="", metadata={"help": "base Gemma-2 folder (required for .pth inputs)"})
    dtype: str = field(default="bf16", metadata={"help": "bf16 (the authors' training dtype) | fp32"})
    lora_alpha: int = field(
        default=64, metadata={"help": "LoRA alpha of a LoRA input (rank is read from it)"}
    )
    nb_code: int = field(default=512, metadata={"help": "VQ codebook size"})
    merge_lora: bool = field(
        default=False, metadata={"help": "authors-pth: merge a LoRA input into a full checkpoint"}
    )
    embedding_rows: str = field(
        default="auto",
        metadata={"help": "authors-pth: all | new (514 motion rows) | auto (new for LoRA, all for full)"},
    )
    epoch: int = field(
        default=0, metadata={"help": "epoch stored in an authors-pth (default: the input's, else 0)"}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output"})

    def __post_init__(self) -> None:
        if not self.input or not self.output:
            raise SystemExit("--input and --output are required")
        if self.to not in TARGETS:
            raise SystemExit(f"--to must be one of {TARGETS}, got {self.to!r}")
        if self.dtype not in ("bf16", "fp32"):
            raise SystemExit(f"--dtype must be bf16 or fp32, got {self.dtype!r}")
        if self.embedding_rows not in ("auto", "all", "new"):
            raise SystemExit(f"--embedding-rows must be auto, all or new, got {self.embedding_rows!r}")
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise SystemExit("--output must differ from --input")
        if Path(self.output).exists() and not self.overwrite:
            raise SystemExit(f"{self.output} exists; pass --overwrite to replace it")


def _lora_rank(state: dict[str, Any]) -> int | None:
    ranks = {v.shape[0] for k, v in state.items() if ".lora_A." in k}
    if len(ranks) > 1:
        ranks = {v.shape[0] for k, v in state.items() if ".lora_A." in k and ".m2t." not in k}
    if len(ranks) > 1:
        raise DataError(f"LoRA tensors of different ranks {sorted(ranks)}; expected one adapter rank")
    return ranks.pop() if ranks else None


def load_input(cfg: ConvertCheckpointConfig) -> tuple[Any, Any, Any, LoadReport | None, dict[str, Any]]:
    """Build the model the input needs and load it: ``(model, tokenizer, vocab, report, resume_info)``."""
    source = Path(cfg.input)
    if source.is_dir():
        if read_motion_llm_metadata(source).get("format") != HF_FOLDER_FORMAT:
            raise DataError(
                "expected one of our full HF folders (adapter folders load with build_motion_llm)",
                path=source,
            )
        settings = LLMSettings(
            llm_backbone=str(source),
            use_lora=False,
            dtype=cfg.dtype,
            attn_implementation="eager",
            nb_code=cfg.nb_code,
        )
        model, tokenizer, vocab = build_motion_llm(settings)
        return model, tokenizer, vocab, None, {}
    if not cfg.llm_backbone:
        raise SystemExit("--llm-backbone (the base Gemma-2 folder) is required to convert a .pth")
    state, resume_info = read_checkpoint(source)
    rank = _lora_rank(state)
    has_lora = any(is_adapter_param(k) for k in state)
    settings = LLMSettings(
        llm_backbone=cfg.llm_backbone,
        use_lora=has_lora,
        lora_r=rank or 64,
        lora_alpha=cfg.lora_alpha,
        dtype=cfg.dtype,
        attn_implementation="eager",
        nb_code=cfg.nb_code,
    )
    model, tokenizer, vocab = build_motion_llm(settings)
    if detect_format(state) == "motion-agent":
        report = load_motion_agent_lora(model, state, vocab, strict=True)
    else:
        report = load_authors_checkpoint(model, state, vocab, strict=True)
    report.source = str(source)
    return model, tokenizer, vocab, report, resume_info


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse_config(ConvertCheckpointConfig, argv=argv, description=__doc__)
    setup_logging()
    model, tokenizer, vocab, report, resume_info = load_input(cfg)
    if report is not None:
        print(report.summary())
    lora = is_peft_model(model)
    provenance = {"converted_from": str(cfg.input), "source_format": report.format if report else "hf-folder"}

    if cfg.to in ("adapter-folder", "motion-agent-pth") and not lora:
        raise SystemExit(f"--to {cfg.to} needs a LoRA input; {cfg.input} holds full weights")
    if cfg.to == "hf-folder":
        written = save_hf_folder(
            activate_full_tuning(model) if lora else model, tokenizer, cfg.output, provenance
        )
    elif cfg.to == "authors-pth":
        if lora and cfg.merge_lora:
            model, lora = activate_full_tuning(model), False
        rows = cfg.embedding_rows if cfg.embedding_rows != "auto" else ("new" if lora else "all")
        epoch = int(resume_info.get("epoch", cfg.epoch))
        written = save_authors_checkpoint(
            model,
            cfg.output,
            epoch=epoch,
            step=resume_info.get("step"),
            lora_only=lora,
            embedding_rows=rows,
            vocab=vocab,
        )
    elif cfg.to == "adapter-folder":
        written = save_adapter_folder(model, tokenizer, cfg.output, provenance)
    else:
        written = save_motion_agent_lora(model, cfg.output, vocab)
    print(
        json.dumps(
            {
                "wrote": str(written),
                "format": cfg.to,
                "lora": lora,
                "vocab": {"nb_text_tokens": vocab.nb_text_tokens, "nb_code": vocab.nb_code},
            },
            indent=2,
        )
    )
    return Path(written)


if __name__ == "__main__":
    main()

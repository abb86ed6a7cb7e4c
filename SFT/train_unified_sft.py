"""Supervised fine-tuning of the motion LLM (stages 0, 1 and 2): one entry point, upstream's flag names.

    python SFT/train_unified_sft.py --preset toy --llm-backbone checkpoints/tiny_gemma2_toy \\
        --token-cache data/toy/token_cache --data-json-files a.json:b.json --exp-name toy_stage1
    torchrun --nproc_per_node 8 SFT/train_unified_sft.py --preset humanml3d --llm-backbone gemma-2-2b-it \\
        --resume-llm ckpt/motionllm_shared.pth --data-root data/HumanML3D --data-json-files ... [--deepspeed]

Settings come from ``--preset`` (humanml3d, kit, toy, smoke), then ``--config run.json``, then flags
(``--foo-bar`` or ``--foo_bar``); ``--help`` lists them all.

Launch: ``python`` (one process) or ``torchrun`` (``--nproc_per_node``, ``--nnodes``, ``--node_rank``,
``--master_addr``, ``--master_port``): DDP over NCCL on GPUs, gloo on CPU. ``--deepspeed --zero-stage 2|3``
uses DeepSpeed ZeRO with our torch optimiser (bf16 on GPU). The learning rate is multiplied by the number
of processes unless ``--wo-scale-lr`` (upstream semantics; the released runs pass it).

Optimiser modes (``--optim-mode``):

* ``faithful`` (default; presets humanml3d/kit): the authors' recipe. All parameters in bf16, so gradients
  and Adam moments are bf16 too (no fp32 master weights, no autocast, no loss scaling);
  ``torch.optim.Adam`` (0.9/0.999, eps 1e-8, no weight decay), constant LR, no warm-up, no clipping.
  It runs in bf16 on CPU as well. Under DeepSpeed, ZeRO's bf16 path keeps fp32 master partitions, so
  pure-bf16 updates exist only with DDP.
* ``recommended`` (presets toy/smoke): fp32 parameters with bf16 autocast on CUDA, AdamW (weight decay
  ``--weight-decay`` on matrices), ``--warmup-steps`` (50) linear warm-up then cosine decay to
  ``--min-lr-ratio`` x LR, gradient clipping at ``--max-grad-norm`` (1.0).

``--lr-schedule``, ``--warmup-steps``, ``--max-grad-norm`` and ``--dtype`` override the mode's defaults.

Loss: Hugging Face's causal-LM loss, the mean over the supervised tokens of each micro-batch (as
upstream); with ``--gradient-accumulation-steps`` the micro-batch means are averaged. Logged every
``--log-every`` optimiser steps (one all-reduce, no per-step syncs): loss, token accuracy, motion-token
and text-token accuracy (labels at/after ``<Motion>`` vs. text, as upstream), LR, gradient norm,
padding fraction, steps/s, tokens/s.

Checkpoints: every ``--save-step-frequency`` steps and every ``--save-frequency`` epochs (kept), written
atomically to ``{out_dir}/{exp_name}/checkpoints/step_XXXXXX/`` with a ``latest`` pointer; each holds
the model (full Hugging Face folder or LoRA adapter folder), optimiser, scheduler, every rank's RNG state,
the data position and the config (DeepSpeed: its own engine checkpoint). ``--resume-from auto`` continues
exactly from ``latest``. The final model goes to ``final/`` (``--save-authors-format``: also the authors'
``.pth``). ``--resume-llm`` keeps upstream's meaning: initial weights, not a training resume.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.common.config import parse_config
from models.llm.sft_trainer import PRESETS, SFTConfig, run_sft


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    cfg = parse_config(SFTConfig, PRESETS, argv, description=__doc__)
    return run_sft(cfg)


if __name__ == "__main__":
    main()

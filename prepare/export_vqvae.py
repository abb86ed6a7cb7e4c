"""Convert a VQ-VAE checkpoint between our format and the released ``{'net': state_dict}`` format.

The released format is what T2M-GPT, Motion-Agent and IRG-MotionLLM load (``ckpt['net']``, strict);
ours also stores the config and the codebook's EMA statistics. The written file is re-read and
checked (strict load, identical tensors) before the summary is printed.

    # ours -> released (for the authors' code)
    python prepare/export_vqvae.py --input runs/vq/vqvae.pt --output export/net_last.pth
    # released -> ours (architecture inferred from shapes, or --vq-preset humanml3d / kit)
    python prepare/export_vqvae.py --input pretrained/net_last.pth --output runs/vq/vqvae.pt --to ours
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.common.config import parse_config
from models.common.io import sha256_file
from models.common.runtime import setup_logging
from models.vqvae import PRESETS, MotionVQVAE, export_released, load_vqvae, read_checkpoint, save_vqvae

logger = logging.getLogger("export_vqvae")

TARGETS = ("released", "ours")


@dataclass
class ExportVQVAEConfig:
    input: str = field(default="", metadata={"help": "checkpoint to convert (released, bare, ours)"})
    output: str = field(default="", metadata={"help": "file to write"})
    to: str = field(default="released", metadata={"help": f"output format: {' | '.join(TARGETS)}"})
    vq_preset: str | None = field(
        default=None,
        metadata={"help": f"architecture preset ({', '.join(sorted(PRESETS))}) when the input stores no "
                          "config; default: inferred from the tensor shapes"},
    )
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file"})

    def __post_init__(self) -> None:
        if not self.input or not self.output:
            raise SystemExit("--input and --output are required")
        if self.to not in TARGETS:
            raise SystemExit(f"--to must be one of {TARGETS}, got {self.to!r}")
        if self.vq_preset is not None and self.vq_preset not in PRESETS:
            raise SystemExit(f"--vq-preset must be one of {sorted(PRESETS)}, got {self.vq_preset!r}")
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise SystemExit("--output must differ from --input")
        if Path(self.output).exists() and not self.overwrite:
            raise SystemExit(f"{self.output} exists; pass --overwrite to replace it")


def _verify(written: Path, model: MotionVQVAE) -> None:
    """Re-read the file: it loads strictly, with the same keys, order and values as ``model``."""
    expected = model.state_dict()
    state, _, _ = read_checkpoint(written)
    if list(state) != list(expected) or not all(torch.equal(state[k], expected[k].cpu()) for k in expected):
        raise RuntimeError(f"verification of {written} failed: tensors differ from the loaded model")
    load_vqvae(written, model.config)


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse_config(ExportVQVAEConfig, argv=argv, description=__doc__)
    setup_logging()
    model = load_vqvae(cfg.input, config=cfg.vq_preset)
    written = export_released(model, cfg.output) if cfg.to == "released" else save_vqvae(model, cfg.output)
    _verify(written, model)
    state = model.state_dict()
    summary = {
        "wrote": str(written),
        "format": "released {'net': state_dict}" if cfg.to == "released" else "ours {'net', 'config', ...}",
        "tensors": len(state),
        "elements": sum(t.numel() for t in state.values()),
        "sha256": sha256_file(written),
        "config": model.config.to_dict(),
    }
    print(json.dumps(summary, indent=2))
    return written


if __name__ == "__main__":
    main()

"""Render motions (``.npy`` of joints ``[T, J, 3]`` or features ``[T, 263/251]``) as stick figures.

One input gives one animation; several inputs are shown side by side (e.g. goal / generated / refined).
mp4 needs ``ffmpeg`` on PATH; without it a gif is written instead.

    python prepare/render_motion.py --inputs HumanML3D/new_joints/012314.npy --captions "a person walks"
    python prepare/render_motion.py --inputs goal.npy gen.npy refined.npy \\
        --captions goal generated refined --mean HumanML3D/Mean.npy --std HumanML3D/Std.npy \\
        --out outputs/render/compare.mp4
    python prepare/render_motion.py --dataset kit --inputs KIT-ML/new_joint_vecs/00001.npy --fps 12.5
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.common.config import parse_config
from models.common.runtime import setup_logging
from models.motion.render import load_motion, render_grid
from models.motion.skeleton import get_skeleton

logger = logging.getLogger("render_motion")


@dataclass
class RenderConfig:
    inputs: list[str] = field(default_factory=list,
                              metadata={"help": "one or more .npy files of joints [T,J,3] or features [T,D]"})
    dataset: str = field(default="humanml3d", metadata={"help": "skeleton: humanml3d (t2m) | kit"})
    captions: list[str] = field(default_factory=list, metadata={"help": "one caption per input (optional)"})
    title: str | None = field(default=None, metadata={"help": "title above all panels"})
    mean: str | None = field(default=None, metadata={"help": "Mean.npy to denormalise feature inputs"})
    std: str | None = field(default=None, metadata={"help": "Std.npy to denormalise feature inputs"})
    out: str | None = field(
        default=None, metadata={"help": "output .gif or .mp4 (default outputs/render/<first input>.gif)"})
    fps: float | None = field(default=None, metadata={"help": "frame rate (default: the dataset's)"})
    ncols: int | None = field(default=None, metadata={"help": "panels per row (default: all in one row)"})

    def __post_init__(self) -> None:
        if not self.inputs:
            raise SystemExit("--inputs needs at least one .npy file")
        if self.captions and len(self.captions) != len(self.inputs):
            raise SystemExit(f"{len(self.inputs)} inputs but {len(self.captions)} captions")
        if (self.mean is None) != (self.std is None):
            raise SystemExit("--mean and --std go together")
        if self.fps is not None and self.fps <= 0:
            raise SystemExit(f"--fps must be positive, got {self.fps}")
        try:
            get_skeleton(self.dataset)
        except KeyError as err:
            raise SystemExit(str(err)) from err


def main(argv: Sequence[str] | None = None) -> Path:
    config = parse_config(RenderConfig, argv=argv, description=__doc__)
    setup_logging()
    skeleton = get_skeleton(config.dataset)
    mean = np.load(config.mean) if config.mean else None
    std = np.load(config.std) if config.std else None
    motions = [load_motion(path, skeleton, mean=mean, std=std) for path in config.inputs]
    out = Path(config.out) if config.out else Path("outputs/render") / f"{Path(config.inputs[0]).stem}.gif"
    written = render_grid(motions, config.captions or None, out, skeleton, ncols=config.ncols, fps=config.fps,
                          title=config.title)
    print(f"wrote {written} ({len(motions)} motion(s), {max(len(m) for m in motions)} frames)")
    return written


if __name__ == "__main__":
    main()

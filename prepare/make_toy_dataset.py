"""Generate the procedural toy motion world in the HumanML3D / KIT-ML layout (no downloads needed).

Motions are joint-angle programs of 20 action families (walk, run, jump, kick, wave, sit, crawl ...)
with directions, speeds, sides and repetition counts, ~22% two-action compositions, run on the real
skeleton and converted with HumanML3D's feature extraction; each has 3 paraphrased captions with
word/POS tokens, and a mirrored copy ``M<id>``. Same settings -> same bytes.

    python prepare/make_toy_dataset.py --out data/toy
    python prepare/make_toy_dataset.py --dataset kit --out data/toy_kit
    python prepare/make_toy_dataset.py --preset small --out /tmp/toy_small --seed 3
    python prepare/make_toy_dataset.py --out data/toy --num-motions 2000 --overwrite
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from data_engine.toy_world.build import BuildSummary, ToyWorldSettings, build_toy_world
from models.common.config import parse_config
from models.common.runtime import setup_logging

logger = logging.getLogger("make_toy_dataset")

PRESETS = {
    "default": {"num_motions": 1200},
    "small": {"num_motions": 128},
    "tiny": {"num_motions": 60},
}


@dataclass
class MakeToyDatasetConfig:
    out: str = field(default="", metadata={"help": "output folder (default data/toy; data/toy_kit for kit)"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d (22 joints, 20 fps, m) | kit "
                                                                "(21 joints, 12.5 fps, mm)"})
    num_motions: int = field(default=1200, metadata={"help": "base motions (each also written mirrored)"})
    seed: int = field(default=0, metadata={"help": "generator seed (same seed and settings -> same bytes)"})
    composition_ratio: float = field(default=0.22, metadata={"help": "share of 'X then Y' motions"})
    subclip_ratio: float = field(default=0.5,
                                 metadata={"help": "share of compositions with a sub-clip caption"})
    val_fraction: float = field(default=0.05, metadata={"help": "share of base motions in val"})
    test_fraction: float = field(default=0.15, metadata={"help": "share in test (at least 48 base motions)"})
    overwrite: bool = field(default=False,
                            metadata={"help": "replace an existing toy world with other settings"})
    workers: int = field(default=0, metadata={"help": "worker processes (0: one per CPU core, at most 4); "
                                                      "the output does not depend on it"})

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise SystemExit(f"--workers must be >= 0, got {self.workers}")
        try:
            self.settings()
        except (ValueError, KeyError) as err:
            raise SystemExit(str(err)) from err

    def settings(self) -> ToyWorldSettings:
        return ToyWorldSettings(dataset=self.dataset, num_motions=self.num_motions, seed=self.seed,
                                composition_ratio=self.composition_ratio, subclip_ratio=self.subclip_ratio,
                                val_fraction=self.val_fraction, test_fraction=self.test_fraction)


def main(argv: Sequence[str] | None = None) -> BuildSummary:
    config = parse_config(MakeToyDatasetConfig, PRESETS, argv=argv, description=__doc__)
    setup_logging()
    settings = config.settings()
    out = config.out or ("data/toy" if settings.dataset == "humanml3d" else f"data/toy_{settings.dataset}")
    workers = config.workers or min(os.cpu_count() or 1, 4)
    try:
        summary = build_toy_world(out, settings, overwrite=config.overwrite, workers=workers)
    except FileExistsError as err:
        raise SystemExit(str(err)) from err
    print(summary.format())
    return summary


if __name__ == "__main__":
    main()

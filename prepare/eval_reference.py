"""Print the ground-truth reference row of a dataset split with a given T2M evaluator.

The generator under evaluation is the ground truth itself, so the table shows the "Real motion" row of
text-to-motion papers (R-precision, FID of two independent crops, MM-Dist, Diversity, with 95% CIs) —
the sanity check of an evaluator port (HumanML3D test, released evaluator: R@1/2/3 ≈ 0.511/0.703/0.797,
MM-Dist ≈ 2.97, Diversity ≈ 9.5) and the ceiling any generator is compared with.

    python prepare/eval_reference.py --data-root data/toy --evaluator-dir output/evaluator_toy --repeats 20
    # the released evaluator, run from a folder holding checkpoints/t2m/... and glove/
    python prepare/eval_reference.py --data-root dataset/HumanML3D --evaluator-dir . --repeats 20
    torchrun --nproc_per_node 2 prepare/eval_reference.py --data-root data/toy \\
        --evaluator-dir output/evaluator_toy

``--evaluator-dir`` is the working folder (``checkpoints/<dataname>/text_mot_match/model/finest.tar``,
``glove/``), the ``text_mot_match`` folder, or the ``finest.tar`` file; statistics and word vectors are
found as ``evaluators.assets`` describes unless ``--meta-dir`` / ``--glove-dir`` say otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import get_dataset_spec
from evaluators.assets import EvaluatorAssets
from evaluators.generators import GroundTruthGenerator
from evaluators.protocol import EvalReport, ProtocolSettings, T2MTestSet, run_protocol
from models.common.config import parse_config
from models.common.errors import DataError
from models.common.runtime import cpu_threads, setup_logging

logger = logging.getLogger("eval_reference")


@dataclass
class EvalReferenceConfig:
    data_root: str = field(default="", metadata={"help": "dataset root in the HumanML3D layout"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    evaluator_dir: str = field(
        default="",
        metadata={
            "help": "working folder with checkpoints/<dataname>/text_mot_match/ and glove/ (or the "
            "text_mot_match folder, or finest.tar)"
        },
    )
    meta_dir: str | None = field(
        default=None, metadata={"help": "evaluator mean.npy/std.npy (default: found)"}
    )
    glove_dir: str | None = field(
        default=None, metadata={"help": "our_vab word vectors (default: <root>/glove)"}
    )
    split: str = field(default="test", metadata={"help": "split to evaluate"})
    repeats: int = field(default=20, metadata={"help": "evaluation repeats"})
    seed: int = field(default=42, metadata={"help": "sampling seed"})
    batch_size: int = field(default=32, metadata={"help": "items embedded together"})
    diversity_times: int | None = field(
        default=None, metadata={"help": "Diversity pairs (default 300 if more than 300 items else 100)"}
    )
    fid_method: str = field(default="sqrtm", metadata={"help": "FID square root: sqrtm (upstream) | eigen (~3x faster)"})
    interval: str = field(default="ci95", metadata={"help": "± in the table: ci95 | std (upstream)"})
    out: str | None = field(default=None, metadata={"help": "folder for eval_results.{json,md} (optional)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: OMP_NUM_THREADS or all cores)"})
    progress: bool = field(default=True, metadata={"help": "tqdm progress bar"})

    def __post_init__(self) -> None:
        if not self.data_root or not self.evaluator_dir:
            raise SystemExit("--data-root and --evaluator-dir are required")
        if self.interval not in ("ci95", "std"):
            raise SystemExit(f"--interval must be ci95 or std, got {self.interval!r}")
        try:
            get_dataset_spec(self.dataset)
            self.settings()
        except (KeyError, ValueError) as err:
            raise SystemExit(str(err)) from err

    def settings(self) -> ProtocolSettings:
        return ProtocolSettings(
            repeats=self.repeats,
            seed=self.seed,
            batch_size=self.batch_size,
            diversity_times=self.diversity_times,
            fid_method=self.fid_method,
        )


def main(argv: Sequence[str] | None = None) -> EvalReport:
    cfg = parse_config(EvalReferenceConfig, argv=argv, description=__doc__)
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    torch.set_num_threads(cfg.threads or cpu_threads())
    setup_logging(rank=rank)
    logging.getLogger("evaluators.metrics").setLevel(logging.WARNING)  # "trailing rows skipped", per repeat
    try:
        dataset = MotionDataset(cfg.data_root, cfg.dataset)
        assets = EvaluatorAssets.load(
            cfg.evaluator_dir, dataset.spec, meta_dir=cfg.meta_dir, glove_dir=cfg.glove_dir, device=device
        )
        test_set = T2MTestSet.from_assets(dataset, cfg.split, assets)
        report = run_protocol(
            GroundTruthGenerator(),
            test_set,
            assets.evaluator,
            cfg.settings(),
            progress=cfg.progress,
            log_dir=cfg.out,
            label="Ground truth",
        )
    except DataError as err:
        raise SystemExit(f"error: {err}") from err
    if rank == 0:
        print(
            f"\nevaluator {assets.sources['weights']} (stats {assets.sources['stats']}, word vectors "
            f"{assets.sources['word_vectors']}); {cfg.split} split of {dataset.root}"
        )
        print(report.to_markdown(label="Ground truth (generated = GT)", interval=cfg.interval))
        print(report.format_upstream())
        if cfg.out:
            print(f"saved to {Path(cfg.out)}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return report


if __name__ == "__main__":
    main()

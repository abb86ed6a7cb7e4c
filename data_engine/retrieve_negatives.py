"""Retrieve graded negative motions for every goal clip (data-engine step 1).

    python -m data_engine.retrieve_negatives --preset humanml3d --dataset-root ../HumanML3D \
        --encoder-checkpoint checkpoints/t2m/text_mot_match/model/finest.tar \
        --meta-dir checkpoints/t2m/Comp_v6_KLD005/meta --out data/negatives_train.json
    python -m data_engine.retrieve_negatives --preset toy --dataset-root data/toy \
        --out data/toy_negatives.json

Anchors are the clips of ``--splits``; negatives come from the clips of ``--pool-splits`` (default: the
same splits), mirrored copies included. The slice rule and the exclusions are documented in
``data_engine/negatives.py``. Writes ``--out`` (JSON: per anchor clip name the negatives far -> near with
their distances, plus the settings) and, with ``--save-npz``, the arrays and embeddings next to it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_engine.datasets.reader import Clip, MotionDataset
from data_engine.encoders import ENCODER_KINDS, build_encoder
from data_engine.negatives import (
    CAPTION_OVERLAP_MODES,
    METRICS,
    ClipKey,
    Negative,
    exclusion_lists,
    retrieve_negatives,
    save_negatives,
    slice_fraction,
    slice_sizes,
)
from models.common.config import config_to_dict, parse_config
from models.common.io import atomic_write

logger = logging.getLogger(__name__)

ENGINE_VERSION = "1.0"


@dataclass
class RetrieveNegativesConfig:
    dataset_root: str = field(default="", metadata={"help": "dataset root in the HumanML3D layout"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    splits: list[str] = field(default_factory=lambda: ["train"], metadata={"help": "anchor (goal) splits"})
    pool_splits: list[str] = field(
        default_factory=list, metadata={"help": "negative pool splits (default: --splits)"}
    )
    encoder: str = field(
        default="t2m", metadata={"help": "t2m (evaluator motion encoder) | features (pooled)"}
    )
    encoder_checkpoint: str = field(default="", metadata={"help": "T2M evaluator finest.tar (encoder t2m)"})
    meta_dir: str = field(default="", metadata={"help": "evaluator meta folder with mean.npy/std.npy"})
    p: float = field(default=0.9, metadata={"help": "slice fraction (paper: 0.9 HumanML3D, 0.875 KIT-ML)"})
    n_neg: int = field(default=4, metadata={"help": "negatives per anchor"})
    seed: int = 0
    metric: str = field(default="euclidean", metadata={"help": "euclidean | cosine"})
    exclude_same_source: bool = field(
        default=True, metadata={"help": "exclude the anchor's mirrored copy and sub-clips of its recording"}
    )
    caption_overlap: str = field(
        default="identical",
        metadata={"help": "exclude clips with identical caption sets | any shared | none"},
    )
    min_len: int = field(default=0, metadata={"help": "min clip frames (0: dataset evaluation filter)"})
    max_len: int = field(default=0, metadata={"help": "max clip frames, exclusive (0: dataset filter)"})
    chunk_size: int = field(default=512, metadata={"help": "anchors per distance block (multiple of 256)"})
    batch_size: int = field(default=256, metadata={"help": "clips per encoder batch"})
    device: str = "cpu"
    out: str = field(default="negatives.json", metadata={"help": "output JSON"})
    save_npz: bool = field(
        default=False, metadata={"help": "also write <out>.npz with indices and embeddings"}
    )

    def __post_init__(self) -> None:
        if not self.dataset_root:
            raise SystemExit("--dataset-root is required")
        if self.encoder not in ENCODER_KINDS:
            raise SystemExit(f"--encoder must be one of {ENCODER_KINDS}, got {self.encoder!r}")
        if self.encoder == "t2m" and not self.encoder_checkpoint:
            raise SystemExit("--encoder t2m needs --encoder-checkpoint (or use --encoder features)")
        if self.metric not in METRICS:
            raise SystemExit(f"--metric must be one of {METRICS}")
        if self.caption_overlap not in CAPTION_OVERLAP_MODES:
            raise SystemExit(f"--caption-overlap must be one of {CAPTION_OVERLAP_MODES}")
        if self.n_neg < 1 or self.chunk_size < 1 or self.batch_size < 1:
            raise SystemExit("--n-neg, --chunk-size and --batch-size must be >= 1")
        try:
            slice_fraction(self.p)
        except ValueError as err:
            raise SystemExit(f"--p: {err}") from None
        if not self.splits:
            raise SystemExit("--splits: give at least one split")


PRESETS = {
    "humanml3d": {"dataset": "humanml3d", "p": 0.9},
    "kit": {"dataset": "kit", "p": 0.875},
    "toy": {"dataset": "humanml3d", "p": 0.9, "encoder": "features"},
}


def collect_clips(dataset: MotionDataset, splits: list[str], min_len: int, max_len: int) -> list[Clip]:
    """Clips of several splits, each name once (in split order)."""
    seen: dict[str, Clip] = {}
    for split in splits:
        index = dataset.clips(split, min_len=min_len or None, max_len=max_len or None)
        logger.info("split %s: %s", split, index.summary())
        for clip in index:
            seen.setdefault(clip.name, clip)
    return list(seen.values())


def clip_key(clip: Clip) -> ClipKey:
    return ClipKey(clip.name, clip.motion_id, tuple(c.text for c in clip.captions))


def run(config: RetrieveNegativesConfig) -> dict:
    """Embed, retrieve, save; returns a summary (counts, timings)."""
    started = time.perf_counter()
    dataset = MotionDataset(config.dataset_root, config.dataset)
    pool_splits = config.pool_splits or config.splits
    anchors = collect_clips(dataset, config.splits, config.min_len, config.max_len)
    pool = (
        anchors
        if pool_splits == config.splits
        else collect_clips(dataset, pool_splits, config.min_len, config.max_len)
    )
    if not anchors or len(pool) < 2:
        raise SystemExit(f"need anchors and a pool of >= 2 clips, got {len(anchors)} and {len(pool)}")
    encoder = build_encoder(
        config.encoder,
        dataset,
        checkpoint=config.encoder_checkpoint or None,
        meta_dir=config.meta_dir or None,
        batch_size=config.batch_size,
        device=config.device,
        progress=True,
    )
    pool_embeddings = encoder.embed(pool)
    if pool is anchors:
        anchor_embeddings = pool_embeddings
    else:
        position = {clip.name: i for i, clip in enumerate(pool)}
        if all(clip.name in position for clip in anchors):
            anchor_embeddings = pool_embeddings[[position[c.name] for c in anchors]]
        else:
            anchor_embeddings = encoder.embed(anchors)
    embedded = time.perf_counter()
    exclusions = exclusion_lists(
        [clip_key(c) for c in anchors],
        [clip_key(c) for c in pool],
        exclude_same_source=config.exclude_same_source,
        caption_overlap=config.caption_overlap,
    )
    result = retrieve_negatives(
        anchor_embeddings,
        pool_embeddings,
        p=config.p,
        n_neg=config.n_neg,
        seed=config.seed,
        exclusions=exclusions,
        metric=config.metric,
        chunk_size=config.chunk_size,
        progress=True,
    )
    retrieved = time.perf_counter()
    negatives = {
        anchor.name: [
            Negative(pool[index].name, float(distance))
            for index, distance in zip(result.indices[a], result.distances[a], strict=True)
            if index >= 0
        ]
        for a, anchor in enumerate(anchors)
    }
    typical = int(np.median(result.pool_sizes))
    info = {
        "engine_version": ENGINE_VERSION,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": config_to_dict(config),
        "pool_splits": pool_splits,
        "encoder": encoder.describe(),
        "slice_rule": "R_0 = M; n_k = max(1, floor(p * R_k)); negative k ~ uniform over ascending ranks "
        "[R_k - n_k, R_k); R_{k+1} = R_k - n_k; missing once R_k = 0",
        "num_anchors": len(anchors),
        "pool_size": len(pool),
        "median_slice_sizes": slice_sizes(typical, config.p, config.n_neg),
        "incomplete_anchors": result.incomplete,
    }
    save_negatives(config.out, info, negatives)
    if config.save_npz:

        def write(handle) -> None:
            np.savez_compressed(
                handle,
                anchor_names=np.array([c.name for c in anchors]),
                pool_names=np.array([c.name for c in pool]),
                indices=result.indices,
                distances=result.distances,
                pool_sizes=result.pool_sizes,
                pool_embeddings=pool_embeddings,
            )

        atomic_write(Path(config.out).with_suffix(".npz"), write)
    return {
        "anchors": len(anchors),
        "pool": len(pool),
        "negatives": int((result.indices >= 0).sum()),
        "incomplete_anchors": result.incomplete,
        "median_slice_sizes": info["median_slice_sizes"],
        "embed_seconds": round(embedded - started, 2),
        "retrieve_seconds": round(retrieved - embedded, 2),
        "out": str(config.out),
    }


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_config(RetrieveNegativesConfig, PRESETS, argv, description=__doc__)
    summary = run(config)
    print(
        f"{summary['anchors']} anchors, pool {summary['pool']}: {summary['negatives']} negatives "
        f"(slice sizes at the median pool: {summary['median_slice_sizes']}; "
        f"{summary['incomplete_anchors']} anchors with fewer than {config.n_neg}); "
        f"embedding {summary['embed_seconds']} s, retrieval {summary['retrieve_seconds']} s "
        f"-> {summary['out']}"
    )
    return summary


if __name__ == "__main__":
    main()

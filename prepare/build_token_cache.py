"""Tokenise a whole dataset once with a frozen VQ-VAE, for fast SFT (see ``models/vqvae/token_cache.py``).

Every motion file (mirrors included), every sub-clip caption of the texts files and every sub-clip an
annotation file refers to, each at every SFT crop offset, batched through the VQ encoder. Re-running with
unchanged inputs returns at once; a changed VQ or dataset rebuilds; an interrupted build resumes.

    python prepare/build_token_cache.py --data-root dataset/HumanML3D --vq ckpt/vqvae.pth \\
        --meta-dir checkpoints/t2m/VQVAEV3_CB1024_CMT_H1024_NRES3/meta --out cache/tokens_t2m
    python prepare/build_token_cache.py --data-root data/toy --vq output/VQVAE_toy/vqvae.pt \\
        --annotations data/toy/annotations/stage1.json          # -> data/toy/token_cache

Normalisation: ``--meta-dir`` if given, else the statistics stored in the VQ checkpoint by
``prepare/train_vqvae.py``, else the dataset's ``Mean.npy``/``Std.npy``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import DatasetSpec, get_dataset_spec
from models.common.config import parse_config
from models.common.errors import DataError
from models.common.runtime import cpu_threads, setup_logging
from models.vqvae import PRESETS as VQ_PRESETS
from models.vqvae import load_vqvae
from models.vqvae.token_cache import TokenCache, build_token_cache
from models.vqvae.training import Normalization, load_normalization, stored_normalization

logger = logging.getLogger("build_token_cache")


@dataclass
class BuildTokenCacheConfig:
    data_root: str = field(default="", metadata={"help": "dataset root in the HumanML3D layout"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    vq: str = field(default="", metadata={"help": "VQ-VAE checkpoint (released net_last.pth or ours)"})
    vq_preset: str | None = field(default=None, metadata={
        "help": f"architecture ({', '.join(VQ_PRESETS)}) when the checkpoint stores none; None: inferred"})
    out: str = field(default="", metadata={
        "help": "cache folder (empty: <data-root>/token_cache, where SFT looks for it)"})
    meta_dir: str | None = field(default=None, metadata={
        "help": "folder with mean.npy/std.npy (the evaluator's meta, as the released VQ)"})
    split: str | None = field(default=None, metadata={
        "help": "only the motions of this split (None: every features file)"})
    annotations: list[str] = field(default_factory=list, metadata={
        "help": "SFT annotation files whose sub-clip motions are added as extra spans (a:b lists accepted)"})
    batch_size: int = field(default=256, metadata={"help": "crops per encoder call"})
    shard_size: int = field(default=1024, metadata={"help": "motions per resumable shard"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    resume: bool = field(default=True, metadata={"help": "continue an interrupted build (--no-resume: "
                                                         "start over)"})
    progress: bool = field(default=True, metadata={"help": "tqdm progress bar"})

    def __post_init__(self) -> None:
        for name in ("data_root", "vq"):
            if not getattr(self, name):
                raise SystemExit(f"--{name.replace('_', '-')} is required")
        if self.vq_preset is not None and self.vq_preset not in VQ_PRESETS:
            raise SystemExit(f"--vq-preset must be one of {sorted(VQ_PRESETS)}, got {self.vq_preset!r}")
        if self.batch_size < 1 or self.shard_size < 1:
            raise SystemExit("--batch-size and --shard-size must be >= 1")
        try:
            get_dataset_spec(self.dataset)
        except KeyError as err:
            raise SystemExit(str(err)) from err


def choose_normalization(cfg: BuildTokenCacheConfig, dataset: MotionDataset) -> Normalization:
    """``--meta-dir``, else the checkpoint's stored statistics, else the dataset's (see the module doc)."""
    stored = stored_normalization(cfg.vq)
    if cfg.meta_dir is not None:
        chosen = load_normalization(dataset, cfg.meta_dir)
        if stored is not None and stored.sha256() != chosen.sha256():
            raise SystemExit(f"--meta-dir {cfg.meta_dir} differs from the statistics {cfg.vq} was trained "
                             f"with ({stored.source}); drop --meta-dir to use the stored ones")
        return chosen
    if stored is not None:
        return stored
    logger.warning("%s stores no normalisation statistics; using the dataset's Mean/Std (the released VQ-VAE "
                   "expects the evaluator's meta statistics: pass --meta-dir)", cfg.vq)
    return load_normalization(dataset)


def annotation_sub_clips(paths: Sequence[str], spec: DatasetSpec) -> list[tuple[str, int, int]]:
    """``(motion_id, start, end)`` of every sub-clip an SFT annotation file refers to (whole clips are cached
    anyway)."""
    from data_engine.annotations.loader import load_annotation_files
    from models.llm.sft_dataset import annotation_spans

    records = [record for path in paths for record in load_annotation_files(path, id_digits=spec.id_digits)]
    return [span for span in annotation_spans(records, spec) if span[2] is not None]


def main(argv: Sequence[str] | None = None) -> TokenCache:
    cfg = parse_config(BuildTokenCacheConfig, argv=argv, description=__doc__)
    setup_logging()
    torch.set_num_threads(cpu_threads())
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    dataset = MotionDataset(cfg.data_root, cfg.dataset)
    normalization = choose_normalization(cfg, dataset)
    vq = load_vqvae(cfg.vq, config=cfg.vq_preset, map_location=device)
    ids = dataset.split_ids(cfg.split) if cfg.split else None
    extra = annotation_sub_clips(cfg.annotations, dataset.spec)
    out = cfg.out or str(Path(cfg.data_root) / "token_cache")
    started = time.perf_counter()
    cache = build_token_cache(dataset, vq, out, mean=normalization.mean, std=normalization.std, ids=ids,
                              extra_spans=extra, batch_size=cfg.batch_size, resume=cfg.resume,
                              progress=cfg.progress, shard_size=cfg.shard_size,
                              normalization_source=normalization.source)
    seconds = time.perf_counter() - started
    print(_summary(cache, seconds, device))
    return cache


def _summary(cache: TokenCache, seconds: float, device: torch.device) -> str:
    meta: dict[str, Any] = cache.metadata
    counts = meta["counts"]
    size = sum(p.stat().st_size for p in Path(cache.folder).iterdir() if p.is_file())
    action = "up to date, opened" if cache.from_existing else f"built on {device}"
    skipped = {k: v for k, v in counts["skipped"].items() if v}
    lines = [
        f"token cache {cache.folder}: {action} in {seconds:.1f} s",
        f"  motions {counts['motions']}, spans {counts['spans']} (whole {counts['whole']}, sub-clips "
        f"{counts['subclip']}, extra {counts['extra']}), entries (span x crop offset) {counts['entries']}",
        f"  codes {counts['codes']} int16 ({size / 2**20:.1f} MiB on disk), unit length "
        f"{meta['unit_length']}, {int((cache.code_histogram() > 0).sum())} of {meta['nb_code']} codebook "
        "entries used",
        f"  VQ sha256 {meta['vq_sha256'][:16]}..., normalisation {meta['normalization']['source']}",
    ]
    if skipped:
        lines.append(f"  skipped: {json.dumps(skipped)}")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        raise SystemExit(f"error: {err}") from err

"""Tokenising a dataset: the batched token-cache builder vs. upstream's one-motion-at-a-time encoding.

    python benchmarks/bench_token_cache.py --data-root /tmp/toy      # builds the default toy world if absent
    python benchmarks/bench_token_cache.py --data-root dataset/HumanML3D --vq ckpt/vqvae.pth --device cuda

Upstream SFT tokenises inside the training loop: for every motion of every sample at every step it
crops one random offset, runs the frozen encoder on that single motion and maps each code to a token id
with a per-element Python loop (on GPU, one device sync per code). The baseline here does exactly that
once per span (every clip and sub-clip), with the features already in memory (so it is not charged for
disk reads). The builder reads the files itself and encodes *every* crop offset of every span, batched by
equal length, into an on-disk cache. Printed: spans/s of both (the builder doing ~2.5x the crops), their
ratio, the build's cost in upstream-style passes (upstream pays one per epoch at least), the cache's load
time and the cost of one cache lookup.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data_engine.datasets.reader import MotionDataset
from data_engine.toy_world import ToyWorldSettings, build_toy_world
from models.common.config import parse_config
from models.common.runtime import cpu_threads
from models.vqvae import PRESETS, MotionVQVAE, get_vqvae_config, load_vqvae
from models.vqvae.token_cache import TokenCache, build_token_cache

NB_TEXT_TOKENS = 256_000  # Gemma-2's vocabulary: motion token id = code + nb_text_tokens + 2 (upstream)


@dataclass
class BenchConfig:
    data_root: str = field(default="data/toy", metadata={"help": "dataset root (the default toy world is "
                                                                  "built here when absent)"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    vq: str | None = field(default=None, metadata={"help": "VQ checkpoint (None: a fresh model)"})
    vq_preset: str = field(default="toy", metadata={"help": f"the fresh model: {' | '.join(PRESETS)}"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    batch_size: int = field(default=256, metadata={"help": "builder: crops per encoder call"})
    seed: int = field(default=0, metadata={"help": "seed of the baseline's random crop offsets"})
    json_out: str | None = field(default=None, metadata={"help": "also write the figures to this JSON file"})

    def __post_init__(self) -> None:
        if self.vq is None and self.vq_preset not in PRESETS:
            raise SystemExit(f"--vq-preset must be one of {sorted(PRESETS)}")


def _vq(cfg: BenchConfig, device: torch.device, sample: list[np.ndarray]) -> MotionVQVAE:
    if cfg.vq is not None:
        return load_vqvae(cfg.vq, map_location=device)
    torch.manual_seed(0)
    vq = MotionVQVAE(get_vqvae_config(cfg.vq_preset)).to(device).eval()
    with torch.no_grad():  # spread the untrained codebook over real latents so many codes occur
        latents = torch.cat([vq.vqvae.encoder(torch.from_numpy(m).to(device)[None].permute(0, 2, 1))[0].t()
                             for m in sample])
        pick = torch.randint(len(latents), (vq.nb_code,), device=device)
        vq.vqvae.quantizer.codebook.copy_(latents[pick])
    return vq


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def upstream_style_tokenise(vq: MotionVQVAE, motion: np.ndarray, offset: int,
                            device: torch.device) -> list[int]:
    """One motion as upstream's training step handles it: crop, encode alone, per-code Python remap."""
    unit = vq.unit_length
    length = len(motion) // unit * unit
    x = torch.from_numpy(motion[offset:offset + length]).to(device).float()[None]
    with torch.no_grad():
        latents = vq.vqvae.encoder(x.permute(0, 2, 1))
        flat = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
        code_idx = vq.vqvae.quantizer.quantize(flat).view(1, -1)
    token_ids = range(NB_TEXT_TOKENS + 2, NB_TEXT_TOKENS + 2 + vq.nb_code)
    return [token_ids[code] for code in code_idx[0]]  # one .item() (a device sync on GPU) per code


def main(argv=None) -> dict:
    cfg = parse_config(BenchConfig, argv=argv, description=__doc__)
    torch.set_num_threads(cpu_threads())
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    root = Path(cfg.data_root)
    if not root.exists():
        print(f"building the default toy world at {root} ...")
        build_toy_world(root, ToyWorldSettings(dataset=cfg.dataset), workers=min(cpu_threads(), 4))
    dataset = MotionDataset(root, cfg.dataset)
    mean, std = dataset.mean_std()

    work = Path(tempfile.mkdtemp(prefix="bench_token_cache_"))
    try:
        # the builder (reads the files itself; every offset of every span)
        ids = sorted(p.stem for p in (root / "new_joint_vecs").glob("*.npy"))
        sample = [((dataset.load_features(i) - mean) / std).astype(np.float32) for i in ids[:8]]
        vq = _vq(cfg, device, sample)
        build_token_cache(dataset, vq, work / "warmup", mean=mean, std=std, ids=ids[:16], progress=False)
        _sync(device)
        started = time.perf_counter()
        cache = build_token_cache(dataset, vq, work / "cache", mean=mean, std=std, batch_size=cfg.batch_size,
                                  progress=False)
        _sync(device)
        build_s = time.perf_counter() - started
        counts = cache.metadata["counts"]

        # the baseline: every span once, one random offset, one motion at a time (features preloaded)
        features = {i: ((dataset.load_features(i) - mean) / std).astype(np.float32) for i in ids}
        spans = [(i, s, e) for i in ids for s, e in cache.spans(i)]
        rng = np.random.default_rng(cfg.seed)
        for motion_id, start, end in spans[:16]:  # warm-up
            upstream_style_tokenise(vq, features[motion_id][start:end], 0, device)
        _sync(device)
        started = time.perf_counter()
        for motion_id, start, end in spans:
            clip = features[motion_id][start:end]
            offset = int(rng.integers(0, len(clip) % vq.unit_length + 1))
            if len(clip) >= vq.unit_length:
                upstream_style_tokenise(vq, clip, offset, device)
        _sync(device)
        baseline_s = time.perf_counter() - started

        # the cache's load time and one lookup (+ vectorised remap to token ids)
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            opened = TokenCache.open(work / "cache")
            loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        for motion_id, start, end in spans:
            opened.codes(motion_id, start, end, 0).astype(np.int64) + NB_TEXT_TOKENS + 2
        lookup_us = (time.perf_counter() - started) / len(spans) * 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)

    figures = {
        "device": str(device), "threads": torch.get_num_threads(),
        "vq": cfg.vq or f"fresh {cfg.vq_preset} preset",
        "motion_files": counts["motions"], "spans": counts["spans"], "crops_cached": counts["entries"],
        "baseline_seconds": round(baseline_s, 3), "baseline_spans_per_s": round(len(spans) / baseline_s, 1),
        "builder_seconds": round(build_s, 3), "builder_spans_per_s": round(counts["spans"] / build_s, 1),
        "builder_crops_per_s": round(counts["entries"] / build_s, 1),
        "speedup_spans_per_s": round(baseline_s / build_s * counts["spans"] / len(spans), 2),
        "speedup_per_crop": round(baseline_s / build_s * counts["entries"] / len(spans), 2),
        "build_cost_in_baseline_passes": round(build_s / baseline_s, 2),
        "cache_load_ms_median": round(1000 * statistics.median(loads), 2),
        "lookup_us_per_span": round(lookup_us, 2),
    }
    print(f"tokenising {root} ({figures['motion_files']} motion files, {figures['spans']} spans) on "
          f"{device}, {figures['vq']}")
    print(f"  upstream-style, one motion at a time : {figures['baseline_spans_per_s']:>9.1f} spans/s "
          f"({baseline_s:.2f} s, one crop per span)")
    print(f"  token-cache builder, batched         : {figures['builder_spans_per_s']:>9.1f} spans/s "
          f"({build_s:.2f} s, all {figures['crops_cached']} crops, incl. reading the files)")
    print(f"  speed-up                             : {figures['speedup_spans_per_s']:>9.2f}x per span, "
          f"{figures['speedup_per_crop']:.2f}x per encoded crop")
    print(f"  one-off build = {figures['build_cost_in_baseline_passes']:.2f} one-at-a-time passes over every "
          "span (upstream pays one per epoch, more when records share motions)")
    print(f"  cache load (TokenCache.open, median) : {figures['cache_load_ms_median']:>9.2f} ms; "
          f"lookup + remap {figures['lookup_us_per_span']:.1f} us per span")
    if cfg.json_out:
        Path(cfg.json_out).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


if __name__ == "__main__":
    main()

"""Train a T2M evaluator (Guo et al.'s text/motion feature extractors) — resumable, ``torchrun``-ready.

    # the toy world: word vectors, movement autoencoder, matching, then the test reference row (<1 min)
    python prepare/train_evaluator.py --preset toy --data-root data/toy --out-dir output/evaluator_toy
    # HumanML3D / KIT-ML with Guo's hyper-parameters (needs glove/ from prepare/download_glove.sh)
    python prepare/train_evaluator.py --preset humanml3d --data-root dataset/HumanML3D \\
        --out-dir output/evaluator_t2m --glove-dir glove
    torchrun --nproc_per_node 4 prepare/train_evaluator.py --preset kit --data-root dataset/KIT-ML \\
        --out-dir output/evaluator_kit --glove-dir glove --batch-size 32

Steps (each skipped when already complete, resumed when interrupted — rerun the same command):

1. word vectors: ``--glove-dir`` (default ``<out-dir>/glove``) ``our_vab`` files, or with
   ``--train-word-vectors`` gensim Word2Vec on the training captions (``--dim-word`` dims);
2. statistics: the dataset's ``Mean``/``Std`` (or ``--meta-dir``), root and foot-contact std divided by
   ``--feat-bias`` (25 reproduces Guo's released ``meta``; 1 keeps the dataset's), saved as ``meta/``;
3. movement autoencoder pretraining (``checkpoints/<dataname>/<decomp-name>/model/latest.tar``, Guo's
   layout), unless ``--movement-checkpoint`` gives one;
4. text-motion matching (``checkpoints/<dataname>/text_mot_match/model/{latest,finest}.tar``), validated
   on the val split every ``--val-every`` steps; the best by ``--select-by`` becomes ``finest.tar``;
5. with ``--reference-repeats N``: the ground-truth reference row on the test split (N repeats).

Everything lands under ``<out-dir>`` in the released working-folder layout, so
``prepare/eval_reference.py --evaluator-dir <out-dir>`` and ``evaluators.assets.EvaluatorAssets.load``
read it like the released evaluator. Also written: ``text_mot_match/opt.txt`` (Guo's format),
``train_config.json``, ``train.log``, ``log.jsonl``, TensorBoard scalars in ``tb/`` and
``train_summary.json`` (phase timings, best validation, reference row).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import get_dataset_spec
from evaluators.assets import EvaluatorAssets, EvaluatorLayout
from evaluators.generators import GroundTruthGenerator
from evaluators.protocol import ProtocolSettings, T2MTestSet, run_protocol
from evaluators.t2m_extractor import T2MEvaluator, T2MEvaluatorConfig, load_checkpoint_safely
from evaluators.toy_word_vectors import WordVectorSettings, build_word_vectors
from evaluators.training import (
    TRAINING_STATE_KEY,
    MatchingRecipe,
    MatchingTrainer,
    MovementAutoencoder,
    MovementConvDecoder,
    MovementPretrainer,
    MovementRecipe,
    SnippetSampler,
    evaluator_statistics,
)
from evaluators.word_vectors import WordVectorizer
from models.common.config import parse_config, save_config
from models.common.errors import DataError
from models.common.io import atomic_write, atomic_write_json, atomic_write_text
from models.common.runtime import cpu_threads, seed_everything, setup_logging

logger = logging.getLogger("train_evaluator")

_GUO = {
    "dim_word": 300,
    "dim_text_hidden": 512,
    "dim_coemb_hidden": 512,
    "dim_movement_enc_hidden": 512,
    "dim_movement_latent": 512,
    "dim_motion_hidden": 1024,
    "dim_movement_dec_hidden": 512,
    "feat_bias": 25.0,
    "window_size": 24,
    "movement_batch_size": 128,
    "movement_lr": 1e-4,
    "movement_epochs": 270,
    "batch_size": 8,
    "lr": 1e-4,
    "epochs": 300,
    "negative_margin": 10.0,
    "negative_shift": "upstream",
    "select_by": "val_loss",
}
PRESETS: dict[str, dict[str, Any]] = {
    # Guo's train_decomp_v3.py / train_tex_mot_match.py options and README commands (batch 8 for matching).
    "humanml3d": {**_GUO, "dataset": "humanml3d"},
    "kit": {**_GUO, "dataset": "kit"},
    # Small dims for the default toy world: ~40 s of training on one CPU thread (two threads are slower
    # for models this small, ~10x on a busy 2-core machine). The dataset's statistics are kept (feat_bias
    # 1) so a toy VQ-VAE trained on Mean/Std feeds the evaluator without conversion.
    "toy": {
        "dataset": "humanml3d",
        "train_word_vectors": True,
        "dim_word": 32,
        "dim_text_hidden": 32,
        "dim_coemb_hidden": 32,
        "dim_movement_enc_hidden": 32,
        "dim_movement_latent": 32,
        "dim_motion_hidden": 64,
        "dim_movement_dec_hidden": 32,
        "feat_bias": 1.0,
        "window_size": 24,
        "movement_batch_size": 64,
        "movement_lr": 1e-3,
        "movement_epochs": 1,
        "movement_max_steps": 150,
        "batch_size": 64,
        "lr": 2e-3,
        "epochs": 20,
        "max_steps": 400,
        "negative_shift": "nonzero",
        "select_by": "r_precision",
        "val_every": 100,
        "val_repeats": 3,
        "word_vector_epochs": 20,
        "log_every": 25,
        "reference_repeats": 20,
        "threads": 1,
    },
}


@dataclass
class TrainEvaluatorConfig:
    data_root: str = field(default="", metadata={"help": "dataset root in the HumanML3D layout"})
    dataset: str = field(default="humanml3d", metadata={"help": "humanml3d | kit"})
    out_dir: str = field(
        default="output/evaluator",
        metadata={"help": "working folder to write checkpoints/<dataname>/... and glove/ into"},
    )
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    val_split: str = field(default="val", metadata={"help": "split to validate on"})
    test_split: str = field(default="test", metadata={"help": "split of the reference row"})
    # word vectors
    glove_dir: str | None = field(
        default=None,
        metadata={"help": "folder with our_vab_{data.npy,words.pkl,idx.pkl} (default <out-dir>/glove)"},
    )
    train_word_vectors: bool = field(
        default=False,
        metadata={"help": "train Word2Vec on the training captions when --glove-dir has no our_vab files"},
    )
    word_vector_epochs: int = field(default=40, metadata={"help": "Word2Vec epochs"})
    # statistics
    meta_dir: str | None = field(
        default=None,
        metadata={
            "help": "folder with mean.npy/std.npy to start from (default: the dataset's Mean.npy/Std.npy)"
        },
    )
    feat_bias: float = field(
        default=25.0,
        metadata={
            "help": "divide the std of the root and foot-contact channels by this (25: Guo's meta; 1: keep)"
        },
    )
    # evaluator sizes
    dim_word: int = field(default=300, metadata={"help": "word vector size (GloVe 300)"})
    dim_text_hidden: int = field(default=512, metadata={"help": "text BiGRU hidden size"})
    dim_coemb_hidden: int = field(default=512, metadata={"help": "co-embedding size"})
    dim_movement_enc_hidden: int = field(default=512, metadata={"help": "movement encoder hidden channels"})
    dim_movement_latent: int = field(default=512, metadata={"help": "movement latent size"})
    dim_motion_hidden: int = field(default=1024, metadata={"help": "motion BiGRU hidden size"})
    max_text_len: int = field(default=20, metadata={"help": "caption tokens kept (plus sos/eos)"})
    # phase 1: movement autoencoder
    decomp_name: str = field(default="Decomp_SP001_SM001_H512", metadata={"help": "movement AE folder name"})
    movement_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "existing movement AE latest.tar (key movement_enc, e.g. Guo's release): skip phase 1"
        },
    )
    window_size: int = field(default=24, metadata={"help": "snippet length (multiple of 4)"})
    movement_batch_size: int = field(default=128, metadata={"help": "snippets per step (global)"})
    movement_lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    movement_epochs: int = field(default=270, metadata={"help": "passes over every snippet position"})
    movement_max_steps: int | None = field(default=None, metadata={"help": "stop phase 1 after N steps"})
    lambda_sparsity: float = field(default=0.001, metadata={"help": "weight of mean |latent|"})
    lambda_smooth: float = field(default=0.001, metadata={"help": "weight of L1(latent[t+1] - latent[t])"})
    dim_movement_dec_hidden: int = field(default=512, metadata={"help": "movement decoder hidden channels"})
    # phase 2: matching
    batch_size: int = field(default=8, metadata={"help": "text-motion pairs per step (global)"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    epochs: int = field(default=300, metadata={"help": "passes over the training items"})
    max_steps: int | None = field(default=None, metadata={"help": "stop phase 2 after N steps"})
    negative_margin: float = field(default=10.0, metadata={"help": "contrastive margin of negatives"})
    grad_clip: float = field(default=0.5, metadata={"help": "gradient norm clip per encoder"})
    negative_shift: str = field(
        default="upstream",
        metadata={"help": "upstream (shift in [0,B-2], 0 = own motion as negative) | nonzero ([1,B-1])"},
    )
    select_by: str = field(
        default="val_loss", metadata={"help": "finest.tar by val_loss (Guo) | r_precision"}
    )
    val_every: int = field(default=0, metadata={"help": "validate every N steps (0: every epoch)"})
    val_repeats: int = field(default=1, metadata={"help": "validation samples averaged"})
    # run
    seed: int = field(default=0, metadata={"help": "seed of weights, sampling and negatives"})
    device: str = field(default="auto", metadata={"help": "auto (cuda:LOCAL_RANK if available) | cpu | cuda"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: OMP_NUM_THREADS or all cores)"})
    log_every: int = field(default=50, metadata={"help": "log train averages every N steps"})
    save_every: int = field(default=500, metadata={"help": "write latest.tar every N steps"})
    progress: bool = field(default=True, metadata={"help": "tqdm progress bars"})
    reference_repeats: int = field(
        default=0, metadata={"help": "repeats of the final test reference row (0: skip)"}
    )
    reference_diversity_times: int | None = field(
        default=None,
        metadata={"help": "Diversity draws of the reference row (default 300 if N > 300 else 100)"},
    )

    def __post_init__(self) -> None:
        if not self.data_root:
            raise SystemExit("--data-root is required")
        try:
            get_dataset_spec(self.dataset)
            self.evaluator_config()
            self.movement_recipe()
            self.matching_recipe()
        except (KeyError, ValueError) as err:
            raise SystemExit(str(err)) from err
        for name in ("log_every", "save_every", "val_repeats", "word_vector_epochs"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
        if self.val_every < 0 or self.reference_repeats < 0 or self.threads < 0:
            raise SystemExit("--val-every, --reference-repeats and --threads must be >= 0")

    def evaluator_config(self) -> T2MEvaluatorConfig:
        return T2MEvaluatorConfig(
            dim_pose=get_dataset_spec(self.dataset).feature_dim,
            dim_word=self.dim_word,
            dim_text_hidden=self.dim_text_hidden,
            dim_coemb_hidden=self.dim_coemb_hidden,
            dim_movement_enc_hidden=self.dim_movement_enc_hidden,
            dim_movement_latent=self.dim_movement_latent,
            dim_motion_hidden=self.dim_motion_hidden,
            max_text_len=self.max_text_len,
        )

    def movement_recipe(self) -> MovementRecipe:
        return MovementRecipe(
            window_size=self.window_size,
            batch_size=self.movement_batch_size,
            lr=self.movement_lr,
            epochs=self.movement_epochs,
            max_steps=self.movement_max_steps,
            lambda_sparsity=self.lambda_sparsity,
            lambda_smooth=self.lambda_smooth,
            seed=self.seed,
        )

    def matching_recipe(self) -> MatchingRecipe:
        return MatchingRecipe(
            batch_size=self.batch_size,
            lr=self.lr,
            epochs=self.epochs,
            max_steps=self.max_steps,
            negative_margin=self.negative_margin,
            grad_clip=self.grad_clip,
            negative_shift=self.negative_shift,
            select_by=self.select_by,
            seed=self.seed,
        )


# ---------------------------------------------------------------------------------------------- processes
@dataclass
class Processes:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def _init_distributed(device_flag: str) -> tuple[Processes, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    procs = Processes(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    use_cuda = device_flag == "cuda" or (device_flag == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{procs.local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return procs, device


class RunLog:
    """Scalars to ``log.jsonl`` and TensorBoard (main process only); resumed runs drop later records."""

    def __init__(self, folder: Path, enabled: bool, phase: str, resume_step: int) -> None:
        self.enabled = enabled
        self.phase = phase
        self.path = folder / "log.jsonl"
        self.writer = None
        self.sums: dict[str, float] = {}
        self.count = 0
        if not enabled:
            return
        if self.path.is_file():
            records = [
                json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line
            ]
            kept = [r for r in records if r["phase"] != phase or r["step"] <= resume_step]
            atomic_write_text("".join(json.dumps(r) + "\n" for r in kept), self.path)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            str(folder / "tb" / phase), purge_step=resume_step + 1 if resume_step else None
        )

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def flush(self, step: int) -> dict[str, float]:
        averages = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        self.write(step, "train", averages)
        return averages

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"phase": self.phase, "step": step, "split": split, **values}) + "\n")
        for key, value in values.items():
            self.writer.add_scalar(f"{split}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------------------------------- steps
def _save_stats(folder: Path, mean: np.ndarray, std: np.ndarray) -> None:
    atomic_write(folder / "mean.npy", lambda handle: np.save(handle, mean))
    atomic_write(folder / "std.npy", lambda handle: np.save(handle, std))


def _word_vectors(
    cfg: TrainEvaluatorConfig, dataset: MotionDataset, layout: EvaluatorLayout, procs: Processes
) -> WordVectorizer:
    folder = Path(cfg.glove_dir) if cfg.glove_dir else layout.glove_dir
    present = (folder / "our_vab_data.npy").is_file()
    if not present and not cfg.train_word_vectors:
        raise SystemExit(
            f"no word vectors in {folder} (our_vab_*); run prepare/download_glove.sh and pass "
            "--glove-dir, or pass --train-word-vectors"
        )
    if not present and procs.main:
        build_word_vectors(
            dataset,
            folder,
            WordVectorSettings(dim=cfg.dim_word, epochs=cfg.word_vector_epochs, seed=cfg.seed),
            split=cfg.train_split,
        )
    procs.barrier()
    vectorizer = WordVectorizer.load_our_vab(folder)
    if vectorizer.dim != cfg.dim_word:
        raise SystemExit(f"word vectors in {folder} are {vectorizer.dim}-d but --dim-word is {cfg.dim_word}")
    if cfg.glove_dir and Path(cfg.glove_dir).resolve() != layout.glove_dir.resolve() and procs.main:
        layout.glove_dir.mkdir(parents=True, exist_ok=True)  # keep the evaluator self-contained
        for name in ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl"):
            data = (folder / name).read_bytes()
            atomic_write(layout.glove_dir / name, lambda handle, data=data: handle.write(data))
    return vectorizer


def _pretrain_movement(
    cfg: TrainEvaluatorConfig,
    dataset: MotionDataset,
    evaluator: T2MEvaluator,
    mean: np.ndarray,
    std: np.ndarray,
    layout: EvaluatorLayout,
    procs: Processes,
    device: torch.device,
) -> dict[str, Any]:
    """Phase 1; leaves the trained weights in ``evaluator.movement_encoder``."""
    if cfg.movement_checkpoint:
        checkpoint = load_checkpoint_safely(cfg.movement_checkpoint)
        if "movement_enc" not in checkpoint:
            raise SystemExit(f"{cfg.movement_checkpoint} has no 'movement_enc' (a Decomp_*/model/latest.tar)")
        evaluator.movement_encoder.load_state_dict(checkpoint["movement_enc"])
        logger.info("movement encoder from %s; phase 1 skipped", cfg.movement_checkpoint)
        return {"source": cfg.movement_checkpoint}
    folder = layout.dataset_dir / cfg.decomp_name
    path = folder / "model" / "latest.tar"
    recipe = cfg.movement_recipe()
    snippets = SnippetSampler.from_dataset(
        dataset, cfg.train_split, mean, std, recipe.window_size, recipe.seed
    )
    val_batches = SnippetSampler.from_dataset(
        dataset, cfg.val_split, mean, std, recipe.window_size, recipe.seed
    ).fixed_batches(recipe.batch_size, 8)
    decoder = MovementConvDecoder(
        cfg.dim_movement_latent, cfg.dim_movement_dec_hidden, dataset.spec.feature_dim
    )
    autoencoder = MovementAutoencoder(evaluator.movement_encoder, decoder, evaluator.config.foot_contact_dims)
    trainer = MovementPretrainer(
        autoencoder,
        snippets,
        recipe,
        device=device,
        rank=procs.rank,
        world_size=procs.world_size,
        ddp=procs.world_size > 1,
    )
    if path.is_file():
        trainer.load(load_checkpoint_safely(path), path)
        logger.info("phase 1: resumed at step %d of %d", trainer.step, trainer.num_steps)
    if procs.main:
        _save_stats(folder / "meta", mean, std)
    log = RunLog(layout.match_dir, procs.main, "movement", trainer.step)
    bar = tqdm(
        total=trainer.num_steps,
        initial=trainer.step,
        desc="movement AE",
        unit="step",
        disable=not (cfg.progress and procs.main),
    )
    while not trainer.done:
        log.add(trainer.train_step())
        bar.update()
        if trainer.step % cfg.log_every == 0 or trainer.done:
            bar.set_postfix(loss=f"{log.flush(trainer.step)['loss']:.4f}")
        if procs.main and (trainer.step % cfg.save_every == 0 or trainer.done):
            trainer.save(path)
    bar.close()
    validation = trainer.evaluate(val_batches) if procs.main else {}
    log.write(trainer.step, "val", validation)
    log.close()
    if procs.main:
        logger.info(
            "phase 1 done (%d steps): val %s",
            trainer.step,
            ", ".join(f"{k} {v:.4f}" for k, v in validation.items()),
        )
    procs.barrier()
    return {"steps": trainer.step, "snippets": len(snippets), "val": validation}


def _check_split_sizes(cfg: TrainEvaluatorConfig, dataset: MotionDataset) -> None:
    """Fail before any training when the matching phase could not run or validate (one batch needed)."""
    for flag, split in (("--train-split", cfg.train_split), ("--val-split", cfg.val_split)):
        items = len(dataset.clips(split))
        if items < cfg.batch_size:
            raise SystemExit(f"{flag} {split!r} of {dataset.root} has {items} evaluation items, fewer than one "
                             f"--batch-size {cfg.batch_size} batch; lower --batch-size or use a larger split")


def _train_matching(
    cfg: TrainEvaluatorConfig,
    dataset: MotionDataset,
    evaluator: T2MEvaluator,
    vectorizer: WordVectorizer,
    mean: np.ndarray,
    std: np.ndarray,
    layout: EvaluatorLayout,
    procs: Processes,
    device: torch.device,
) -> dict[str, Any]:
    recipe = cfg.matching_recipe()
    sets = {
        split: T2MTestSet(dataset, split, vectorizer, mean, std, max_text_len=cfg.max_text_len)
        for split in (cfg.train_split, cfg.val_split)
    }
    trainer = MatchingTrainer(
        evaluator,
        sets[cfg.train_split],
        recipe,
        device=device,
        rank=procs.rank,
        world_size=procs.world_size,
        ddp=procs.world_size > 1,
    )
    if layout.latest_path.is_file():
        checkpoint = load_checkpoint_safely(layout.latest_path)
        if TRAINING_STATE_KEY in checkpoint:
            trainer.load(checkpoint, layout.latest_path)
            logger.info("phase 2: resumed at step %d of %d", trainer.step, trainer.num_steps)
    val_every = cfg.val_every or trainer.steps_per_epoch
    log = RunLog(layout.match_dir, procs.main, "matching", trainer.step)
    best: dict[str, float] = {}
    bar = tqdm(
        total=trainer.num_steps,
        initial=trainer.step,
        desc="matching",
        unit="step",
        disable=not (cfg.progress and procs.main),
    )
    while not trainer.done:
        log.add(trainer.train_step())
        bar.update()
        if trainer.step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{log.flush(trainer.step)['loss']:.3f}")
        validate = trainer.step % val_every == 0 or trainer.done
        if procs.main and validate:
            result = trainer.validate(sets[cfg.val_split], cfg.val_repeats, cfg.seed)
            log.write(trainer.step, "val", result.to_dict())
            if trainer.record_validation(result):
                trainer.save(layout.model_path, with_state=False)
                best = {"step": trainer.step, **result.to_dict()}
                logger.info(
                    "step %d: new best (%s) %s",
                    trainer.step,
                    recipe.select_by,
                    ", ".join(f"{k} {v:.4f}" for k, v in result.to_dict().items()),
                )
        if procs.main and (validate or trainer.step % cfg.save_every == 0):
            trainer.save(layout.latest_path)
    bar.close()
    log.close()
    procs.barrier()
    return {
        "steps": trainer.step,
        "train_items": len(sets[cfg.train_split]),
        "best": best,
        "best_step": trainer.best_step,
    }


def write_opt_file(path: Path, cfg: TrainEvaluatorConfig, config: T2MEvaluatorConfig) -> None:
    """Guo's ``opt.txt`` format (readable by ``evaluators.opt_file.read_opt_file`` and Guo's ``get_opt``)."""
    spec = get_dataset_spec(cfg.dataset)
    options = {
        "name": "text_mot_match",
        "dataset_name": spec.dataname,
        "checkpoints_dir": "./checkpoints",
        "decomp_name": cfg.decomp_name,
        **asdict(config),
        "feat_bias": cfg.feat_bias,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "max_epoch": cfg.epochs,
        "negative_margin": cfg.negative_margin,
        "is_train": True,
    }
    lines = ["------------ Options -------------"]
    lines += [f"{key}: {value}" for key, value in options.items()]
    lines.append("-------------- End ----------------")
    atomic_write_text("\n".join(lines) + "\n", path)


def _reference_row(
    cfg: TrainEvaluatorConfig,
    dataset: MotionDataset,
    layout: EvaluatorLayout,
    procs: Processes,
    device: torch.device,
) -> dict[str, Any]:
    assets = EvaluatorAssets.load(layout.root, dataset.spec, device=device)
    test_set = T2MTestSet.from_assets(dataset, cfg.test_split, assets)
    settings = ProtocolSettings(
        repeats=cfg.reference_repeats, seed=42, diversity_times=cfg.reference_diversity_times
    )
    report = run_protocol(
        GroundTruthGenerator(),
        test_set,
        assets.evaluator,
        settings,
        progress=cfg.progress,
        label="Ground truth",
    )
    if procs.main:
        report.to_json(layout.match_dir / f"reference_{cfg.test_split}.json")
        table = report.to_markdown(label="Ground truth (generated = GT)")
        atomic_write_text(table + "\n", layout.match_dir / f"reference_{cfg.test_split}.md")
        print(f"\nReference row on the {cfg.test_split} split ({layout.model_path}):\n{table}")
    return {name: value["mean"] for name, value in report.summary().items()}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    cfg = parse_config(TrainEvaluatorConfig, PRESETS, argv=argv, description=__doc__)
    procs, device = _init_distributed(cfg.device)
    torch.set_num_threads(cfg.threads or cpu_threads())
    spec = get_dataset_spec(cfg.dataset)
    layout = EvaluatorLayout(Path(cfg.out_dir), spec.dataname)
    if procs.main:
        layout.match_dir.mkdir(parents=True, exist_ok=True)
    procs.barrier()
    setup_logging(layout.match_dir / "train.log", rank=procs.rank)
    if procs.main:
        save_config(cfg, layout.match_dir / "train_config.json")
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 2)
        return time.perf_counter()

    try:
        dataset = MotionDataset(cfg.data_root, cfg.dataset)
        _check_split_sizes(cfg, dataset)
        clock = time.perf_counter()
        vectorizer = _word_vectors(cfg, dataset, layout, procs)
        mean, std = evaluator_statistics(*dataset.mean_std(cfg.meta_dir), spec.joints_num, cfg.feat_bias)
        if procs.main:
            _save_stats(layout.meta_dir, mean, std)
            write_opt_file(layout.opt_path, cfg, cfg.evaluator_config())
        clock = lap("word_vectors_and_stats", clock)
        seed_everything(cfg.seed)
        evaluator = T2MEvaluator(cfg.evaluator_config())
        movement = _pretrain_movement(cfg, dataset, evaluator, mean, std, layout, procs, device)
        clock = lap("movement_autoencoder", clock)
        matching = _train_matching(cfg, dataset, evaluator, vectorizer, mean, std, layout, procs, device)
        clock = lap("matching", clock)
        timings["training_total"] = round(time.perf_counter() - started, 2)
        reference = _reference_row(cfg, dataset, layout, procs, device) if cfg.reference_repeats else {}
        lap("reference_row", clock)
    except DataError as err:
        raise SystemExit(f"error: {err}") from err
    summary = {
        "evaluator": str(layout.model_path),
        "movement": movement,
        "matching": matching,
        "reference": reference,
        "seconds": timings,
    }
    if procs.main:
        atomic_write_json(summary, layout.match_dir / "train_summary.json")
        print(
            f"evaluator written to {layout.root} (training {timings['training_total']:.1f} s: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if k != "training_total")
            + ")"
        )
    if dist.is_initialized():
        dist.destroy_process_group()
    return summary


if __name__ == "__main__":
    main()

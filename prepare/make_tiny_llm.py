"""Build the tiny local Gemma-2 (tokenizer + randomly initialised model) that stands in for gemma-2-2b-it.

The tokenizer is trained on the dataset's captions (``<data-root>/texts/*.txt``, first ``#`` field),
every string of ``models/llm/assets/prompt_template-2.json``, the fixed CoT/format strings, and any
``--extra-corpus`` files (``.json``: every string value, e.g. annotation files; else one text per
line). The folder is laid out like the real gemma-2-2b-it folder; use it as ``--llm-backbone``.

    python prepare/make_tiny_llm.py --data-root data/toy --out checkpoints/tiny_gemma2_toy
    python prepare/make_tiny_llm.py --preset smoke --data-root data/toy --out /tmp/tiny --seed 1
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from data_engine.datasets.layout import TEXTS_DIR, read_split_file, read_texts_file
from models.common.config import parse_config
from models.common.errors import DataError
from models.common.runtime import setup_logging
from models.llm.model import count_parameters, load_backbone, load_tokenizer
from models.llm.tiny import TINY_SHAPES, make_tiny_llm, tiny_corpus
from models.llm.vocab import MotionVocab

logger = logging.getLogger("make_tiny_llm")


@dataclass
class MakeTinyLLMConfig:
    data_root: str = field(
        default="", metadata={"help": "dataset folder with texts/*.txt (HumanML3D layout)"}
    )
    out: str = field(
        default="", metadata={"help": "output folder (default checkpoints/tiny_gemma2_<model-size>)"}
    )
    model_size: str = field(default="toy", metadata={"help": f"architecture: {' | '.join(TINY_SHAPES)}"})
    vocab_size: int = field(
        default=2048, metadata={"help": "base vocabulary (specials + 256 bytes + BPE pieces)"}
    )
    seed: int = field(default=0, metadata={"help": "weight initialisation seed"})
    caption_split: str = field(
        default="all",
        metadata={
            "help": "captions of every texts/*.txt ('all') or only of the ids in <split>.txt and their "
            "M-mirrors (e.g. 'train', to keep test captions out of the tokenizer)"
        },
    )
    extra_corpus: list[str] = field(
        default_factory=list, metadata={"help": "more corpus files (.json or text)"}
    )

    def __post_init__(self) -> None:
        if self.model_size not in TINY_SHAPES:
            raise SystemExit(f"--model-size must be one of {sorted(TINY_SHAPES)}, got {self.model_size!r}")
        if not self.out:
            self.out = f"checkpoints/tiny_gemma2_{self.model_size}"


PRESETS: dict[str, dict[str, Any]] = {
    "toy": {"model_size": "toy", "vocab_size": 2048},  # 2048: prompts ~40% shorter, ~30% faster SFT steps
    "smoke": {"model_size": "smoke", "vocab_size": 512},
}


def read_captions(data_root: str | Path, split: str = "all") -> list[str]:
    """First ``#`` field of every annotation line of ``texts/*.txt`` (or of one split's ids)."""
    texts = Path(data_root) / TEXTS_DIR
    if not texts.is_dir():
        raise DataError(f"no {TEXTS_DIR}/ folder", path=data_root)
    if split == "all":
        files = sorted(texts.glob("*.txt"))
    else:
        ids = read_split_file(Path(data_root) / f"{split}.txt")
        files = [texts / f"{prefix}{i}.txt" for i in ids for prefix in ("", "M")]
        files = [f for f in files if f.is_file()]
    return [caption.text for path in files for caption in read_texts_file(path)]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def read_extra_corpus(path: str | Path) -> list[str]:
    """All string values of a JSON file, or the non-empty lines of a text file."""
    path = Path(path)
    if path.suffix == ".json":
        try:
            return list(_strings(json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON: {err}", path=path) from err
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse_config(MakeTinyLLMConfig, presets=PRESETS, argv=argv, description=__doc__)
    setup_logging()
    captions = read_captions(cfg.data_root, cfg.caption_split) if cfg.data_root else []
    if not captions:
        logger.warning("no captions (no --data-root): the tokenizer learns only the prompt templates")
    extra = [text for path in cfg.extra_corpus for text in read_extra_corpus(path)]
    corpus = tiny_corpus(captions, extra)
    folder = make_tiny_llm(cfg.out, corpus, preset=cfg.model_size, vocab_size=cfg.vocab_size, seed=cfg.seed)

    tokenizer = load_tokenizer(folder)
    model = load_backbone(folder, dtype=torch.float32, attn_implementation="eager")
    total, _ = count_parameters(model)
    with_motion = total + MotionVocab(len(tokenizer)).nb_motion_tokens * model.config.hidden_size
    print(
        json.dumps(
            {
                "folder": str(folder),
                "model_size": cfg.model_size,
                "corpus": {"captions": len(captions), "extra": len(extra), "total_texts": len(corpus)},
                "base_vocab": len(tokenizer),
                "parameters": total,
                "parameters_with_512_motion_codes": with_motion,
            },
            indent=2,
        )
    )
    return folder


if __name__ == "__main__":
    main()

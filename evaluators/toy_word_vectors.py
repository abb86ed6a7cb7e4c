"""Word vectors for a dataset without GloVe: gensim Word2Vec on its training captions, saved as ``our_vab``.

The T2M text encoder reads one vector per caption word (``word/POS`` tokens, word part) from
``glove/our_vab_{data.npy,words.pkl,idx.pkl}``. The real evaluator uses 300-d GloVe; a toy world's
evaluator can use vectors trained on its own captions instead, of any size (the evaluator's ``dim_word``
must match). Rows ``sos``, ``eos``, ``unk`` come first, as in upstream's file: ``sos``/``eos`` are learnt
(every training sentence is framed by them, as the encoder sees captions), ``unk`` is a fixed random
vector of the average norm. Training runs single-threaded, so the same captions and settings give the
same vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_engine.datasets.reader import MotionDataset
from evaluators.word_vectors import EOS, SOS, UNK, WordVectorizer, save_our_vab, split_token

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WordVectorSettings:
    """gensim ``Word2Vec`` settings (skip-gram with negative sampling by default)."""

    dim: int = 300
    window: int = 5
    epochs: int = 40
    min_count: int = 1
    skip_gram: bool = True
    negative: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "window", "epochs", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"WordVectorSettings.{name} must be >= 1, got {getattr(self, name)}")


def caption_sentences(dataset: MotionDataset, split: str = "train") -> list[list[str]]:
    """The word part of every caption token of ``split`` (all annotation lines, whole and sub-clip)."""
    sentences = []
    for motion_id in dataset.split_ids(split):
        for caption in dataset.load_captions(motion_id):
            words = [split_token(token)[0] for token in caption.tokens]
            if words:
                sentences.append(words)
    return sentences


def train_word_vectors(
    sentences: list[list[str]], settings: WordVectorSettings = WordVectorSettings()
) -> tuple[np.ndarray, list[str]]:
    """``(vectors [V, dim] float32, words)`` with ``sos``, ``eos``, ``unk`` in rows 0, 1, 2."""
    from gensim.models import Word2Vec  # lazy: gensim import costs ~1 s

    if not sentences:
        raise ValueError("no caption words to train word vectors on")
    framed = [[SOS, *words, EOS] for words in sentences]
    model = Word2Vec(
        framed,
        vector_size=settings.dim,
        window=settings.window,
        min_count=settings.min_count,
        sg=int(settings.skip_gram),
        negative=settings.negative,
        epochs=settings.epochs,
        seed=settings.seed,
        workers=1,
    )
    keyed = model.wv
    others = [w for w in keyed.index_to_key if w not in (SOS, EOS, UNK)]
    learnt = np.asarray(keyed.vectors, np.float32)
    norm = float(np.linalg.norm(learnt, axis=1).mean())
    unk = np.random.default_rng(settings.seed).standard_normal(settings.dim).astype(np.float32)
    unk *= norm / float(np.linalg.norm(unk))
    vectors = np.stack([keyed[SOS], keyed[EOS], unk] + [keyed[w] for w in others]).astype(np.float32)
    return vectors, [SOS, EOS, UNK, *others]


def build_word_vectors(
    dataset: MotionDataset,
    folder: str | Path,
    settings: WordVectorSettings = WordVectorSettings(),
    split: str = "train",
) -> WordVectorizer:
    """Train on ``split``'s captions, save ``our_vab`` files into ``folder``, return the loaded vectorizer."""
    sentences = caption_sentences(dataset, split)
    vectors, words = train_word_vectors(sentences, settings)
    save_our_vab(vectors, words, folder)
    logger.info(
        "word vectors: %d words x %d dims from %d %s captions -> %s",
        len(words),
        settings.dim,
        len(sentences),
        split,
        folder,
    )
    return WordVectorizer.load_our_vab(folder)


__all__ = ["WordVectorSettings", "build_word_vectors", "caption_sentences", "train_word_vectors"]

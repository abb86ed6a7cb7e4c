"""Toy word vectors: gensim Word2Vec on a dataset's captions, saved and loaded in the our_vab layout."""

from __future__ import annotations

import numpy as np
import pytest

from evaluators.toy_word_vectors import (
    WordVectorSettings,
    build_word_vectors,
    caption_sentences,
    train_word_vectors,
)
from evaluators.word_vectors import WordVectorizer

SETTINGS = WordVectorSettings(dim=8, epochs=3, seed=5)


def test_our_vab_layout_with_special_rows_first(tiny_dataset, tmp_path) -> None:
    vectorizer = build_word_vectors(tiny_dataset, tmp_path / "glove", SETTINGS)
    assert sorted(p.name for p in (tmp_path / "glove").iterdir()) == [
        "our_vab_data.npy",
        "our_vab_idx.pkl",
        "our_vab_words.pkl",
    ]
    assert vectorizer.words[:3] == ["sos", "eos", "unk"] and vectorizer.dim == 8
    sentences = caption_sentences(tiny_dataset, "train")
    vocabulary = {word for sentence in sentences for word in sentence}
    assert vocabulary <= set(vectorizer.words) and len(vectorizer.words) == len(vocabulary) + 3
    norms = np.linalg.norm(vectorizer.vectors, axis=1)
    learnt = np.delete(norms, 2)
    assert norms[2] == pytest.approx(learnt.mean(), rel=1e-5)  # unk: a random vector of the mean norm
    word_embs, _, sent_len = vectorizer.caption_arrays(["a/DET", "person/NOUN", "zzz/VERB"])
    assert sent_len == 5 and word_embs.shape == (22, 8) and vectorizer.unknown_counts["zzz"] == 1
    np.testing.assert_array_equal(word_embs[3], vectorizer.vectors[2])


def test_same_captions_and_settings_give_the_same_bytes(tiny_dataset, tmp_path) -> None:
    build_word_vectors(tiny_dataset, tmp_path / "a", SETTINGS)
    build_word_vectors(tiny_dataset, tmp_path / "b", SETTINGS)
    for name in ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = WordVectorizer.load_our_vab(tmp_path / "a")
    assert other.words == WordVectorizer.load_our_vab(tmp_path / "b").words


def test_no_words_is_an_error() -> None:
    with pytest.raises(ValueError, match="no caption words"):
        train_word_vectors([], SETTINGS)
    with pytest.raises(ValueError, match="dim"):
        WordVectorSettings(dim=0)

"""Free-text tokenization: the rule-based fallback on motion captions (spaCy is not installed here)."""

from __future__ import annotations

import pytest

from evaluators.text_processing import tokenize_caption
from evaluators.word_vectors import WordVectorizer
from models.common.errors import DataError


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        (
            "A person walks forward and waves.",
            ["a/DET", "person/NOUN", "walk/VERB", "forward/ADV", "and/CCONJ", "wave/VERB"],
        ),
        (
            "the man is running in a circle",
            ["the/DET", "man/NOUN", "is/AUX", "run/VERB", "in/ADP", "a/DET", "circle/NOUN"],
        ),
        (
            "someone takes two steps to the left, then sits down",
            [
                "someone/PRON",
                "take/VERB",
                "two/NUM",
                "step/NOUN",
                "to/ADP",
                "the/DET",
                "left/NOUN",
                "then/ADV",
                "sit/VERB",
                "down/ADV",
            ],
        ),
        (
            "a figure raises their left arm slowly",
            ["a/DET", "figure/NOUN", "raise/VERB", "their/PRON", "left/NOUN", "arm/NOUN", "slowly/ADV"],
        ),
        (
            "The person's feet shuffle side-to-side 3 times",
            ["the/DET", "person/NOUN", "foot/NOUN", "shuffle/VERB", "sidetoside/NOUN", "time/NOUN"],
        ),
        ("he doesn't stop jumping", ["he/PRON", "does/AUX", "stop/VERB", "jump/VERB"]),
    ],
)
def test_rule_based_tokenizer_on_motion_captions(caption, expected):
    assert tokenize_caption(caption, backend="rules") == expected


def test_auto_backend_is_deterministic_and_feeds_the_vectorizer(toy_vocabulary):
    first = tokenize_caption("A person turns around and then jumps.")
    assert first == tokenize_caption("A person turns around and then jumps.")
    word_embs, pos_ohot, sent_len = WordVectorizer(*toy_vocabulary).caption_arrays(first)
    assert sent_len == len(first) + 2 and word_embs.shape == (22, 8)


@pytest.mark.parametrize("caption", ["", "   ", "123 !!"])
def test_empty_caption_is_a_clear_error(caption):
    with pytest.raises(DataError, match="caption"):
        tokenize_caption(caption, backend="rules")


def test_spacy_backend_without_the_model_is_a_clear_error():
    from evaluators.text_processing import _spacy_pipeline

    if _spacy_pipeline() is not None:
        pytest.skip("spaCy en_core_web_sm is installed here")
    with pytest.raises(RuntimeError, match="backend='rules'"):
        tokenize_caption("a person walks", backend="spacy")

"""Captions: HumanML3D style, word/POS tokens correct by construction, and every attribute stated."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from data_engine.datasets.layout import read_texts_file
from data_engine.toy_world.actions import FAMILIES, ActionSpec
from data_engine.toy_world.captions import (
    POS_TAGS,
    VERBS,
    CaptionWriter,
    Word,
    mirror_annotation,
    render,
    words,
)

# words that name each family (a caption must contain one of them, as a token lemma)
FAMILY_WORDS = {
    "walk": {"walk", "stroll", "hurry"}, "run": {"run", "jog", "sprint"}, "jump": {"jump", "leap"},
    "hop": {"hop"}, "sidestep": {"sidestep", "sideways", "step"}, "turn": {"turn"}, "spin": {"spin", "twirl"},
    "kick": {"kick"}, "punch": {"punch", "jab"}, "throw": {"throw", "throwing"}, "wave": {"wave"},
    "raise_arm": {"raise", "lift", "up"}, "clap": {"clap"}, "squat": {"squat", "crouch"},
    "sit": {"sit", "seat"},
    "bow": {"bow"}, "crawl": {"crawl"}, "stretch": {"stretch"}, "dance": {"dance"},
    "stumble": {"stumble", "stagger"},
}
SPEED_WORDS = {"slow": {"slowly", "slow", "stroll", "jog"},
               "fast": {"quickly", "fast", "rapidly", "quick", "briskly", "hurry", "sprint", "speed"}}
COUNT_WORDS = {1: {"once", "one", "a"}, 2: {"twice", "two"}, 3: {"three"}}
TOKEN = re.compile(r"^[a-z]+/(" + "|".join(POS_TAGS) + ")$")


def _lemmas(tokens: tuple[str, ...]) -> list[str]:
    return [t.split("/")[0] for t in tokens]


def test_example_from_humanml3d() -> None:
    caption = render(words("a/DET person/NOUN walks/VERB:walk forward/ADV slowly/ADV"))
    assert caption.text == "a person walks forward slowly."
    assert caption.tokens == ("a/DET", "person/NOUN", "walk/VERB", "forward/ADV", "slowly/ADV")
    assert caption.whole_clip
    composed = render(words("someone/PRON first/ADV turns/VERB:turn left/ADV ,/PUNCT then/ADV "
                            "claps/VERB:clap"))
    assert composed.text == "someone first turns left, then claps."
    assert "," not in " ".join(composed.tokens)
    assert Word("left", "VERB", "leave").token == "left/VERB"  # HumanML3D never lemmatises "left"
    assert Word("times", "NOUN", "time").token == "time/NOUN"
    assert Word("times", "ADV", "time").token == "times/ADV"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_spec_gets_three_captions_stating_its_attributes(family: str) -> None:
    writer = CaptionWriter(np.random.default_rng(0))
    for spec in FAMILIES[family].all_specs():
        captions = writer.paraphrases((spec,))
        assert len({c.text for c in captions}) == 3
        for caption in captions:
            text_words = caption.text[:-1].replace(",", "").split()
            assert caption.text.endswith(".") and caption.text == caption.text.lower()
            assert "#" not in caption.text
            assert all(TOKEN.match(t) for t in caption.tokens), caption.tokens
            assert len(caption.tokens) == len(text_words)
            lemmas = set(_lemmas(caption.tokens))
            for token, word in zip(caption.tokens, text_words):
                lemma, pos = token.split("/")
                if pos == "VERB":
                    assert lemma in VERBS or lemma in ("curve", "face"), token
                elif pos != "NOUN":
                    assert lemma == word
            assert lemmas & FAMILY_WORDS[family], caption.text
            _check_attributes(spec, caption.text, lemmas)


def _check_attributes(spec: ActionSpec, text: str, lemmas: set[str]) -> None:
    for speed, vocabulary in SPEED_WORDS.items():
        assert bool(lemmas & vocabulary) == (spec.speed == speed), (spec, text)
    if spec.count is not None:
        assert lemmas & COUNT_WORDS[spec.count], (spec, text)
    if spec.side in ("left", "right"):
        assert spec.side in lemmas and ({"left", "right"} - {spec.side}).isdisjoint(lemmas), text
    if spec.side == "both":
        assert "both" in lemmas, text
    direction_words = {"forward": {"forward", "forwards", "ahead"}, "backward": {"backward", "backwards"},
                       "left": {"left"}, "right": {"right"}, "clockwise": {"clockwise"},
                       "counterclockwise": {"counterclockwise"}, "in_place": {"place", "up"},
                       "around": {"around", "opposite", "half", "hundred"}}
    if spec.direction is not None:
        assert lemmas & direction_words[spec.direction], (spec, text)


def test_compositions_name_both_actions_in_order() -> None:
    writer = CaptionWriter(np.random.default_rng(1))
    parts = (ActionSpec("wave", side="right", speed="normal"), ActionSpec("sit", speed="normal"))
    for caption in writer.paraphrases(parts):
        lemmas = _lemmas(caption.tokens)
        assert "wave" in lemmas and ("sit" in lemmas or "seat" in lemmas)
        assert lemmas.index("wave") < max(i for i, w in enumerate(lemmas) if w in ("sit", "seat"))
        assert {"then", "afterwards", "before"} & set(lemmas)


def test_mirror_swaps_sides_and_spin_direction() -> None:
    caption = render(words("a/DET man/NOUN spins/VERB:spin clockwise/ADV and/CCONJ waves/VERB:wave "
                           "his/PRON left/ADJ hand/NOUN"))
    mirrored = mirror_annotation(caption)
    assert mirrored.text == "a man spins counterclockwise and waves his right hand."
    assert mirrored.tokens[3] == "counterclockwise/ADV" and mirrored.tokens[7] == "right/ADJ"
    assert mirror_annotation(mirrored) == caption


def test_dataset_texts_are_well_formed(toy_hml3d: Path) -> None:
    for path in sorted((toy_hml3d / "texts").glob("*.txt")):
        captions = read_texts_file(path)
        assert 3 <= len(captions) <= 4 and sum(c.whole_clip for c in captions) == 3
        for caption in captions:
            assert caption.text.endswith(".") and all(TOKEN.match(t) for t in caption.tokens)

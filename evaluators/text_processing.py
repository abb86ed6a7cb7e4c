"""Free text -> ``word/POS`` tokens for the T2M text encoder (RL rewards, user prompts, generated captions).

Dataset captions come pre-tokenised; this module covers text that does not. Two backends:

- ``"spacy"``: HumanML3D's ``process_text`` rules with spaCy ``en_core_web_sm`` — remove ``-``, keep tokens
  whose text is purely alphabetic, use the lemma for NOUN/VERB (except the word ``left``), emit
  ``word/POS`` with spaCy's coarse tag. This is how the dataset tokens were made.
- ``"rules"``: a deterministic fallback needing no model: whitespace/punctuation splitting with English
  clitics removed, a closed-class lexicon (determiners, pronouns, prepositions, auxiliaries, numbers), a
  lexicon of common motion verbs/nouns with irregular forms, a left-context rule for words that can be
  both (``a turn`` vs ``turns``), and suffix heuristics. **It differs from spaCy**: it lower-cases,
  and its tags and lemmas are approximations (e.g. ``to`` is ADP unless a known verb follows, unknown
  words default to NOUN). Expect slightly different evaluator embeddings than with spaCy.

``backend="auto"`` uses spaCy when ``en_core_web_sm`` can be loaded and the rules otherwise (logged once).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Literal

from models.common.errors import DataError

logger = logging.getLogger(__name__)

Backend = Literal["auto", "spacy", "rules"]


def tokenize_caption(text: str, backend: Backend = "auto") -> list[str]:
    """``"A person walks forward."`` -> ``["a/DET", "person/NOUN", "walk/VERB", "forward/ADV"]`` (spaCy)."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty caption: {text!r}", field="caption")
    nlp = _spacy_pipeline() if backend in ("auto", "spacy") else None
    if backend == "spacy" and nlp is None:
        raise RuntimeError("spaCy with en_core_web_sm is not available; install it or use backend='rules'")
    tokens = _tokenize_spacy(nlp, text) if nlp is not None else _tokenize_rules(text)
    if not tokens:
        raise DataError(f"caption has no alphabetic words: {text!r}", field="caption")
    return tokens


# ---------------------------------------------------------------------------------------------- spaCy
@functools.lru_cache(maxsize=1)
def _spacy_pipeline() -> Any:
    try:
        import spacy

        return spacy.load("en_core_web_sm")
    except (ImportError, OSError) as err:
        logger.info("spaCy en_core_web_sm unavailable (%s); using the rule-based tokenizer", err)
        return None


def _tokenize_spacy(nlp: Any, text: str) -> list[str]:
    tokens = []
    for token in nlp(text.replace("-", "")):
        if not token.text.isalpha():
            continue
        word = token.lemma_ if token.pos_ in ("NOUN", "VERB") and token.text != "left" else token.text
        tokens.append(f"{word}/{token.pos_}")
    return tokens


# ---------------------------------------------------------------------------------------------- rules
def _words(*groups: str) -> frozenset[str]:
    return frozenset(" ".join(groups).split())


CLOSED_CLASS: dict[str, frozenset[str]] = {
    "DET": _words("a an the this that these those each every some any another either neither no all both"),
    "PRON": _words(
        "i me my mine you your yours he him his himself she her hers herself it its itself we us our",
        "ours ourselves they them their theirs themselves someone somebody something anyone",
        "anything everyone everything nothing who whom whose which what",
    ),
    "ADP": _words(
        "in on at from with by of into onto over under around across through toward towards behind",
        "above below between along against about after before during without upon near beside",
        "inside outside past within throughout via like off than beneath underneath among per",
    ),
    "AUX": _words(
        "is are was were be been being am can could will would shall should may might must do does did"
    ),
    "NUM": _words(
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen",
        "sixteen seventeen eighteen nineteen twenty thirty forty fifty hundred thousand",
    ),
    "CCONJ": _words("and or but nor yet"),
    "SCONJ": _words("while as if because until since though although whether whereas once"),
    "ADV": _words(
        "then again also back away forward forwards backward backwards together very too there here",
        "still just only repeatedly finally twice afterwards sideways upward upwards downward downwards",
        "outward outwards inward inwards slightly almost really quite now later soon first briefly",
        "around down up out in over apart aside ahead behind about counterclockwise clockwise",
        "anticlockwise straight fast far high low",
    ),
    "ADJ": _words(
        "left right other small big large high low same new full circular quick slow several few",
        "many much little long short wide narrow whole entire upright diagonal forth last next",
        "second third final single double heavy light careful happy angry sad tired drunk",
    ),
}
# Base forms of common motion verbs / nouns (verbs also decide whether "to" is an infinitive marker).
MOTION_VERBS = _words(
    "walk run jump turn wave raise lift lower kick throw sit stand squat bend step move hop skip dance swing",
    "spin rotate climb crawl kneel lean stretch reach pick put place hold grab push pull clap shake nod bow",
    "punch stumble stop start begin jog stroll shuffle balance flap rub wash spread bring look carry touch",
    "cross extend bounce slide fall lie roll get go come make take keep continue use perform play pace march",
    "sway twist tilt pivot rise drop tap stomp lunge leap wipe scratch drink eat sip open close pour stir",
    "point gesture catch hit strike block dodge fight box salute shrug skate swim bounce fold unfold flip",
    "hug clean sweep mop paint write draw limp trip tiptoe sidestep shift return face cover rest wait hang",
    "crouch duck dive kneel grasp release toss shoot aim row paddle dribble pass serve swat conduct juggle",
    "lay set sneak wobble wiggle shake hit rotate circle tumble flail flex",
)
MOTION_NOUNS = _words(
    "person man woman figure human body arm hand leg head hip knee elbow shoulder foot feet toe finger wrist",
    "ankle neck chest torso waist back thigh circle direction side ground floor stair stairs step chair ball",
    "object wall time motion position way place front air line path distance pace pose stance jump turn",
    "kick punch wave squat lunge dance table box cup door window car rope bar bench stool rail handrail",
    "cartwheel somersault flip spin walk run jog movement gesture posture level height angle degree right",
    "left middle center corner edge top bottom stage room area spot pair set round lap bit motion boxer",
    "character guy lady child kid",
)
# fmt: off
IRREGULAR_NOUNS = {"feet": "foot", "teeth": "tooth", "men": "man", "women": "woman", "children": "child",
                   "people": "person"}
IRREGULAR_VERBS = {
    "ran": "run", "sat": "sit", "stood": "stand", "threw": "throw", "thrown": "throw", "took": "take",
    "taken": "take", "went": "go", "gone": "go", "came": "come", "fell": "fall", "fallen": "fall",
    "knelt": "kneel", "held": "hold", "got": "get", "gotten": "get", "made": "make", "brought": "bring",
    "caught": "catch", "swung": "swing", "spun": "spin", "leapt": "leap", "lay": "lie", "lain": "lie",
    "began": "begin", "begun": "begin", "rose": "rise", "risen": "rise", "struck": "strike", "shook": "shake",
    "shaken": "shake", "bent": "bend", "kept": "keep",
}
# fmt: on
_CLITIC_RE = re.compile(r"(n't|'s|'re|'ll|'ve|'m|'d|')$", re.IGNORECASE)
_LETTERS_RE = re.compile(r"[^\W\d_]+")
_ADJ_SUFFIXES = ("ful", "ous", "ive", "able", "ible", "ical", "less", "ish", "ary")
_NOUN_SUFFIXES = ("tion", "sion", "ment", "ness", "ity", "ance", "ence", "ship", "ism", "er", "or")
_NOUN_CONTEXT = {"DET", "ADJ", "NUM", "PRON_POSS"}
_POSSESSIVES = _words("my your his her its our their")


def _split_words(text: str) -> list[str]:
    """Lower-case words with '-' removed, clitics ('s, n't, ...) dropped, non-letters split off."""
    words: list[str] = []
    for chunk in text.replace("-", "").lower().split():
        chunk = chunk.strip('.,;:!?"()[]{}')
        if chunk.endswith("n't"):
            words += _LETTERS_RE.findall(chunk[:-3])  # "don't" -> "do" (spaCy: do + n't)
            continue
        words += _LETTERS_RE.findall(_CLITIC_RE.sub("", chunk))
    return words


def _verb_lemma(word: str) -> str | None:
    """Base form of an inflected verb if it can be found in the lexicon (else None)."""
    if word in IRREGULAR_VERBS:
        return IRREGULAR_VERBS[word]
    candidates = []
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            stem = word[: -len(suffix)]
            candidates += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                candidates.append(stem[:-1])  # running -> run
            if stem.endswith("i"):
                candidates.append(stem[:-1] + "y")  # carried -> carry
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        candidates.append(word[:-1])
    return next((c for c in candidates if c in MOTION_VERBS), None)


def _noun_lemma(word: str) -> str:
    if word in IRREGULAR_NOUNS:
        return IRREGULAR_NOUNS[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ches", "shes", "xes", "sses"):
        if word.endswith(suffix):
            return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _tag_word(word: str, previous: str, next_word: str) -> tuple[str, str]:
    """(lemma-or-word, POS) for one lower-case word given its neighbours' context."""
    if word == "to":
        follows_verb = next_word in MOTION_VERBS or _verb_lemma(next_word) == next_word
        return word, "PART" if follows_verb else "ADP"
    if word in ("has", "have", "had"):
        return (word, "AUX") if next_word.endswith(("ed", "en")) else ("have", "VERB")
    for tag, lexicon in CLOSED_CLASS.items():
        if word in lexicon and tag not in ("ADV", "ADJ"):
            return word, tag
    verb_lemma = word if word in MOTION_VERBS else _verb_lemma(word)
    noun_lemma = _noun_lemma(word)
    is_noun = word in MOTION_NOUNS or noun_lemma in MOTION_NOUNS
    if verb_lemma and is_noun:  # ambiguous ("turn", "steps"): nouns follow determiners/adjectives/numbers
        return (noun_lemma, "NOUN") if previous in _NOUN_CONTEXT else (verb_lemma, "VERB")
    if verb_lemma and not word.endswith("ly"):
        return verb_lemma, "VERB"
    if is_noun:
        return noun_lemma, "NOUN"
    for tag in ("ADV", "ADJ"):
        if word in CLOSED_CLASS[tag]:
            return word, tag
    if word.endswith("ly"):
        return word, "ADV"
    if word.endswith(("ing", "ed")):
        return _stem_unknown_verb(word), "VERB"
    if word.endswith(_ADJ_SUFFIXES):
        return word, "ADJ"
    if word.endswith(_NOUN_SUFFIXES):
        return _noun_lemma(word), "NOUN"
    return _noun_lemma(word), "NOUN"


def _stem_unknown_verb(word: str) -> str:
    stem = word[:-3] if word.endswith("ing") else word[:-2]
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "ls":
        stem = stem[:-1]
    return stem


def _tokenize_rules(text: str) -> list[str]:
    words = _split_words(text)
    tokens: list[str] = []
    previous = "START"
    for i, word in enumerate(words):
        next_word = words[i + 1] if i + 1 < len(words) else ""
        lemma, tag = _tag_word(word, previous, next_word)
        if word == "left":
            lemma = word
        tokens.append(f"{lemma}/{tag}")
        previous = "PRON_POSS" if word in _POSSESSIVES else tag
    return tokens

"""Caption -> structured action attributes, with a small hand-written lexicon (no model, no network).

A caption is split into the actions it describes, in temporal order ("walks forward *then* turns left",
"kicks twice *before* waving", "..., *and afterwards* ..."), and each action gets:

* ``family`` — the canonical action (``walk``, ``jump``, ``kick``, ``wave`` ...; ``None`` when no verb of
  the lexicon names it), from the verb (``strolls`` -> walk), or from the object of a light verb
  (``does two jumps``, ``takes a bow``, ``makes a throwing motion``);
* ``direction`` — ``forward``, ``backward``, ``left``, ``right``, ``in_place``, ``around``, ``clockwise``,
  ``counterclockwise``, ``sideways`` or a diagonal (``forward-left``); only for families that travel or
  rotate (a "kick forward" states no direction of travel);
* ``side`` and ``limb`` — ``left``/``right``/``both`` + the limb word (``the left leg``, ``both hands``);
* ``speed`` — ``slow``/``fast`` (stated by an adverb, an adjective or the verb: ``strolls``, ``sprints``);
  ``None`` means no speed is stated;
* ``count`` — repetitions (``twice``, ``three times``, ``two kicks``, ``a bow``).

The toy world's grammar (``data_engine/toy_world/captions.py``) is covered completely, so its captions
parse back to the generating attributes; free-form HumanML3D captions parse partially (unknown verbs
give ``family=None`` and the clause text is kept), which the offline writer turns into generic but
correct contrasts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

# ---------------------------------------------------------------------------------------------- lexicon
# lemma -> family. Families are the toy world's plus common HumanML3D actions.
VERB_FAMILY: dict[str, str] = {
    "walk": "walk",
    "stroll": "walk",
    "hurry": "walk",
    "march": "walk",
    "stride": "walk",
    "wander": "walk",
    "pace": "walk",
    "strut": "walk",
    "tiptoe": "walk",
    "limp": "walk",
    "run": "run",
    "jog": "run",
    "sprint": "run",
    "dash": "run",
    "jump": "jump",
    "leap": "jump",
    "hop": "hop",
    "skip": "skip",
    "sidestep": "sidestep",
    "shuffle": "shuffle",
    "step": "step",
    "turn": "turn",
    "rotate": "turn",
    "pivot": "turn",
    "spin": "spin",
    "twirl": "spin",
    "whirl": "spin",
    "kick": "kick",
    "punch": "punch",
    "jab": "punch",
    "box": "punch",
    "strike": "punch",
    "throw": "throw",
    "toss": "throw",
    "pitch": "throw",
    "hurl": "throw",
    "wave": "wave",
    "raise": "raise_arm",
    "lift": "lift",
    "clap": "clap",
    "squat": "squat",
    "crouch": "squat",
    "sit": "sit",
    "bow": "bow",
    "crawl": "crawl",
    "stretch": "stretch",
    "dance": "dance",
    "stumble": "stumble",
    "stagger": "stumble",
    "stand": "stand",
    "kneel": "kneel",
    "lie": "lie",
    "climb": "climb",
    "lean": "lean",
    "bend": "bend",
    "pick": "pick_up",
    "grab": "grab",
    "swing": "swing",
    "push": "push",
    "pull": "pull",
    "shake": "shake",
    "nod": "nod",
    "lunge": "lunge",
    "swim": "swim",
    "catch": "catch",
    "drink": "drink",
    "salute": "salute",
    "point": "point",
    "wipe": "wipe",
    "sweep": "sweep",
    "stir": "stir",
    "roll": "roll",
    "fall": "fall",
    "cartwheel": "cartwheel",
    "stop": "stop",
    "play": "play",
    "stomp": "stomp",
    "march_in_place": "walk",
    "jumping_jack": "jumping_jack",
    "exercise": "exercise",
    "golf": "swing",
    "flap": "flap",
}
# Verbs that only set the scene when another action verb is in the same clause ("crouches down and
# stands up" is a squat, "gets down and crawls" a crawl, "balances on one leg and hops" a hop).
AUXILIARY_VERBS = frozenset(
    {
        "get",
        "balance",
        "reach",
        "sway",
        "trip",
        "lose",
        "lower",
        "stand",
        "hold",
        "keep",
        "start",
        "begin",
        "continue",
        "try",
        "use",
        "seem",
        "appear",
        "come",
        "go",
        "move",
        "put",
        "look",
        "curve",
        "face",
    }
)
LIGHT_VERBS = frozenset({"take", "make", "do", "give", "perform"})
# Light-verb objects and countable action nouns -> family.
NOUN_FAMILY: dict[str, str] = {
    "step": "step",
    "jump": "jump",
    "leap": "jump",
    "hop": "hop",
    "kick": "kick",
    "punch": "punch",
    "jab": "punch",
    "bow": "bow",
    "clap": "clap",
    "spin": "spin",
    "squat": "squat",
    "throw": "throw",
    "turn": "turn",
    "seat": "sit",
    "lunge": "lunge",
    "cartwheel": "cartwheel",
    "wave": "wave",
    "pushup": "pushup",
    "situp": "situp",
    "lap": "walk",
    "jumping_jack": "jumping_jack",
}
COUNT_NOUNS = frozenset(NOUN_FAMILY) | {"motion", "time", "rep", "repetition", "stride"}
# Families whose direction words describe travel or rotation.
DIRECTIONAL = frozenset(
    {
        "walk",
        "run",
        "jump",
        "hop",
        "skip",
        "sidestep",
        "shuffle",
        "step",
        "turn",
        "spin",
        "crawl",
        "stumble",
        "climb",
        "lunge",
        "roll",
        "fall",
        "lean",
        "cartwheel",
        None,
    }
)
# Families whose attributes say all there is to say. For the others ("picks up a box", "plays the
# violin") the object matters, so two actions are only the same when their clauses read the same.
SELF_CONTAINED = frozenset(
    {
        "walk",
        "run",
        "jump",
        "hop",
        "skip",
        "sidestep",
        "step",
        "turn",
        "spin",
        "kick",
        "punch",
        "throw",
        "wave",
        "raise_arm",
        "clap",
        "squat",
        "sit",
        "bow",
        "crawl",
        "stretch",
        "dance",
        "stumble",
        "stand",
        "kneel",
        "lunge",
        "jumping_jack",
        "cartwheel",
        "stop",
        "nod",
        "stomp",
        "flap",
        "pushup",
        "situp",
        "shuffle",
    }
)
# Families for which an article counts ("does a jump" = once; "makes a turn" states no count).
COUNTABLE = frozenset(
    {
        "jump",
        "hop",
        "kick",
        "punch",
        "throw",
        "clap",
        "squat",
        "bow",
        "spin",
        "sidestep",
        "step",
        "raise_arm",
        "lunge",
        "cartwheel",
        "pushup",
        "situp",
        "nod",
        "stomp",
        "jumping_jack",
    }
)
# Families whose limb words describe the whole body's posture, not which side acts.
NO_SIDE = frozenset({"stretch", "clap", "crawl", "bow", "dance", "sit"})
IMPLIED_SPEED = {"stroll": "slow", "jog": "slow", "hurry": "fast", "sprint": "fast", "dash": "fast"}
LIMBS = {
    "arm": "arm",
    "hand": "hand",
    "fist": "fist",
    "leg": "leg",
    "foot": "foot",
    "feet": "foot",
    "knee": "knee",
    "elbow": "elbow",
    "shoulder": "shoulder",
    "hip": "hip",
}
NUMBERS = {
    "one": 1,
    "a": 1,
    "an": 1,
    "single": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "couple": 2,
}
ADVERB_COUNTS = {"once": 1, "twice": 2, "thrice": 3}
SLOW_WORDS = frozenset({"slowly", "slow", "leisurely", "gently", "carefully", "cautiously", "sluggishly"})
FAST_WORDS = frozenset(
    {"quickly", "quick", "fast", "rapidly", "rapid", "briskly", "brisk", "hurriedly", "swiftly", "speedily"}
)
SUBJECT_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "this",
        "person",
        "man",
        "woman",
        "figure",
        "someone",
        "somebody",
        "human",
        "humanoid",
        "guy",
        "individual",
        "he",
        "she",
        "they",
        "it",
        "people",
        "character",
        "lady",
        "boy",
        "girl",
        "child",
        "kid",
        "player",
        "dancer",
        "stick",
        "subject",
        "body",
    }
)
BE_WORDS = frozenset({"is", "are", "was", "were", "be", "being"})

_DOUBLING = frozenset(
    {
        "run",
        "hop",
        "sit",
        "jog",
        "step",
        "clap",
        "squat",
        "spin",
        "trip",
        "jab",
        "stop",
        "skip",
        "swim",
        "grab",
        "nod",
        "get",
        "put",
        "drop",
        "flap",
        "sidestep",
    }
)
_IRREGULAR_PAST = {
    "run": "ran",
    "sit": "sat",
    "stand": "stood",
    "get": "got",
    "lie": "lay",
    "throw": "threw",
    "swim": "swam",
    "swing": "swung",
    "take": "took",
    "make": "made",
    "do": "did",
    "give": "gave",
    "go": "went",
    "hold": "held",
    "keep": "kept",
    "begin": "began",
    "come": "came",
    "lose": "lost",
    "shake": "shook",
    "catch": "caught",
    "fall": "fell",
    "leap": "leapt",
    "bend": "bent",
    "spin": "spun",
    "put": "put",
    "drink": "drank",
    "sweep": "swept",
}


def _inflections(lemma: str) -> dict[str, str]:
    """Surface form -> form name (``base``, ``3sg``, ``ing``, ``past``) of a verb lemma."""
    if lemma.endswith(("s", "sh", "ch", "x", "z")):
        third = lemma + "es"
    elif lemma.endswith("y") and lemma[-2:-1] not in "aeiou":
        third = lemma[:-1] + "ies"
    else:
        third = lemma + "s"
    if lemma in _DOUBLING:
        ing, past = lemma + lemma[-1] + "ing", lemma + lemma[-1] + "ed"
    elif lemma == "lie":
        ing, past = "lying", "lay"
    elif lemma.endswith("ie"):
        ing, past = lemma[:-2] + "ying", lemma + "d"
    elif lemma.endswith("e") and not lemma.endswith(("ee", "ye", "oe")):
        ing, past = lemma[:-1] + "ing", lemma + "d"
    elif lemma.endswith("y") and lemma[-2:-1] not in "aeiou":
        ing, past = lemma + "ing", lemma[:-1] + "ied"
    else:
        ing, past = lemma + "ing", lemma + "ed"
    past = _IRREGULAR_PAST.get(lemma, past)
    if lemma == "do":
        third = "does"
    if lemma == "go":
        third = "goes"
    return {lemma: "base", third: "3sg", ing: "ing", past: "past"}


def _verb_table() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for lemma in sorted(set(VERB_FAMILY) | AUXILIARY_VERBS | LIGHT_VERBS):
        if "_" in lemma:
            continue
        for surface, form in _inflections(lemma).items():
            table.setdefault(surface, (lemma, form))
    return table


VERB_FORMS = _verb_table()


def _noun_lemma(word: str) -> str | None:
    if word in NOUN_FAMILY or word in COUNT_NOUNS:
        return word
    for suffix, cut in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and (word[: -len(suffix)] + cut) in (NOUN_FAMILY.keys() | COUNT_NOUNS):
            return word[: -len(suffix)] + cut
    return None


# ------------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Action:
    """One action of a caption and the attributes stated for it (``None`` = not stated)."""

    family: str | None
    verb: str | None = None  # the lemma (or light-verb object) that named the action
    direction: str | None = None
    side: str | None = None
    limb: str | None = None
    speed: str | None = None
    count: int | None = None
    text: str = ""  # the clause as written, without the subject

    def key(self) -> tuple:
        return (self.family, self.direction, self.side, self.speed, self.count)

    def same_kind(self, other: Action) -> bool:
        """Same known family and, for object-dependent families, the same clause."""
        if self.family is None or self.family != other.family:
            return False
        return self.family in SELF_CONTAINED or _content(self.text) == _content(other.text)


@dataclass(frozen=True)
class CaptionAttributes:
    caption: str
    subject: str  # as written ("a man", "someone"); "" when the caption starts without one
    actions: tuple[Action, ...]

    @property
    def complete(self) -> bool:
        """Every action has a known family (so the attributes can be trusted for comparisons)."""
        return bool(self.actions) and all(a.family is not None for a in self.actions)

    @property
    def predicate(self) -> str:
        """The caption as written, without its subject and final period ("jumps to the left twice")."""
        text = " ".join(self.caption.split()).rstrip(" .")
        if self.subject and text.lower().startswith(self.subject + " "):
            text = text[len(self.subject) + 1 :]
        return text

    @property
    def families(self) -> tuple[str | None, ...]:
        return tuple(a.family for a in self.actions)

    def signature(self) -> tuple:
        return tuple(a.key() for a in self.actions)


# ------------------------------------------------------------------------------------------------ parsing
_TOKEN = re.compile(r"\d+|[a-z_]+(?:'[a-z]+)?|[,.;!?]")
_REPLACEMENTS = (
    (re.compile(r"\b(?:counter|anti)[- ]?clockwise\b"), "counterclockwise"),
    (re.compile(r"\bjumping[- ]jacks?\b"), "jumping_jack"),
    (re.compile(r"\b(?:push[- ]ups?|pushups?)\b"), "pushups"),
    (re.compile(r"\b(?:sit[- ]ups?|situps?)\b"), "situps"),
    (re.compile(r"\bside[- ]?steps?\b"), "sidesteps"),
    (re.compile(r"\bside[- ]?stepping\b"), "sidestepping"),
    (re.compile(r"\b180\b|\bone hundred and eighty\b"), "oneeighty"),
    (re.compile(r"\b90\b|\bninety\b"), "ninety"),
    (re.compile(r"\b(left|right)[- ]hand(?:ed)? side\b"), r"\1 side"),
)
_DISPLAY = {"oneeighty": "180", "jumping_jack": "jumping jacks", "pushups": "push-ups", "situps": "sit-ups"}
_SPLIT_WORDS = frozenset({"then", "afterwards", "afterward", "finally", "next", "later", "subsequently"})


@dataclass
class _Word:
    text: str
    lemma: str | None = None  # verb lemma when the word is a known verb form
    form: str | None = None


def _tokenize(text: str) -> list[_Word]:
    lowered = text.lower()
    for pattern, replacement in _REPLACEMENTS:
        lowered = pattern.sub(replacement, lowered)
    words = []
    for token in _TOKEN.findall(lowered):
        lemma, form = VERB_FORMS.get(token, (None, None))
        words.append(_Word(token, lemma, form))
    return words


_NOUN_CONTEXT = frozenset(NUMBERS) | {
    "the",
    "his",
    "her",
    "their",
    "its",
    "full",
    "quick",
    "slow",
    "left",
    "right",
    "half",
    "small",
    "big",
    "another",
    "each",
    "every",
    "fast",
    "regular",
    "steady",
    "normal",
    "moderate",
    "brisk",
    "leisurely",
    "constant",
    "same",
    "good",
    "high",
    "low",
    "long",
    "short",
    "few",
    "several",
}


def _is_action_verb(word: _Word, previous: _Word | None) -> bool:
    """A verb form of the lexicon used as a verb (not "a kick", "the left turn", "two steps")."""
    if word.lemma is None:
        return False
    if previous is not None and previous.text in _NOUN_CONTEXT:
        return False
    return word.form != "past" or word.text in ("stood", "sat")


def _is_main_verb(word: _Word, previous: _Word | None) -> bool:
    return _is_action_verb(word, previous) and word.lemma not in AUXILIARY_VERBS


_DETERMINERS = frozenset({"a", "an", "the", "this"})


def _split_subject(words: list[_Word]) -> tuple[str, list[_Word]]:
    """The leading subject ("a man", "someone", "the stick figure"), and the words after it."""
    for i, word in enumerate(words):
        if word.text in BE_WORDS or _is_action_verb(word, words[i - 1] if i else None):
            length = 0
            for k, head in enumerate(words[: min(i, 4)]):
                if head.text not in SUBJECT_WORDS:
                    break
                if head.text not in _DETERMINERS:
                    length = k + 1
            return " ".join(w.text for w in words[:length]), words[length:]
    return "", words


def _gerund_follows(words: list[_Word], i: int) -> bool:
    """A gerund of the lexicon right after ``words[i]``, maybe behind one adverb ("before slowly sitting")."""
    for word in words[i + 1 : i + 3]:
        if word.form == "ing" and word.lemma:
            return True
        if not (word.text.endswith("ly") or word.text in FAST_WORDS | SLOW_WORDS):
            return False
    return False


def _clauses(words: list[_Word]) -> list[list[_Word]]:
    """Split into temporally ordered clauses (see module docstring)."""
    clauses: list[list[_Word]] = [[]]
    reorder: list[int] = []  # clause indices introduced by "after <gerund>" (they happen first)

    def has_main(clause: list[_Word]) -> bool:
        return any(_is_main_verb(w, clause[j - 1] if j else None) for j, w in enumerate(clause))

    def start_new() -> None:
        while clauses[-1] and clauses[-1][-1].text in (",", "and"):
            clauses[-1].pop()
        if clauses[-1]:
            clauses.append([])

    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        after = words[i + 2] if i + 2 < len(words) else None
        if word.text in (".", ";", "!", "?") or word.text in _SPLIT_WORDS:
            start_new()
        elif (
            word.text == "after"
            and nxt is not None
            and nxt.text == "that"
            or word.text == "followed"
            and nxt is not None
            and nxt.text == "by"
        ):
            start_new()
            i += 1
        elif word.text == "before" and _gerund_follows(words, i):
            start_new()
        elif word.text == "after" and _gerund_follows(words, i):
            start_new()
            reorder.append(len(clauses) - 1)
        elif (
            word.text in ("and", ",", "while")
            and nxt is not None
            and has_main(clauses[-1])
            and (
                _is_main_verb(nxt, None)
                or (nxt.text in ("then", "afterwards", "finally"))
                or (nxt.text in BE_WORDS and after is not None and _is_main_verb(after, None))
            )
        ):
            start_new()
        elif word.text == "first":
            pass
        else:
            clauses[-1].append(word)
        i += 1
    clauses = [c for c in clauses if c]
    for index in reorder:  # "X after Ying" -> Y, X
        if 0 < index < len(clauses):
            clauses.insert(index - 1, clauses.pop(index))
    return clauses


def _direction(words: list[str], family: str | None, verb_index: int | None) -> str | None:
    found: list[str] = []
    curve_side = None
    for i, w in enumerate(words):
        prev = words[i - 1] if i else ""
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in ("left", "right"):
            if nxt in LIMBS or (nxt in ("and",) and i + 2 < len(words) and words[i + 2] in ("right", "left")):
                continue  # a side of a limb, not a direction
            if nxt in ("hand", "handed") or (prev in ("on",) and nxt in ("leg", "foot")):
                continue
            if any(c in words[max(0, i - 5) : i] for c in ("curve", "curving", "curved", "arc", "arcing")):
                curve_side = w
            found.append(w)
        elif w in ("leftward", "leftwards"):
            found.append("left")
        elif w in ("rightward", "rightwards"):
            found.append("right")
        elif (
            w in ("forward", "forwards", "ahead", "frontward", "frontwards")
            or w == "straight"
            and nxt not in ("up", "left", "right", "to", "line")
        ):
            found.append("forward")
        elif (
            w in ("backward", "backwards", "backwardly")
            or w == "back"
            and verb_index is not None
            and i == verb_index + 1
            and nxt not in ("and", "to")
        ):
            found.append("backward")
        elif (
            w == "place"
            and prev == "in"
            or w == "spot"
            and prev == "the"
            and i >= 2
            and words[i - 2] == "on"
            or w == "up"
            and (nxt == "and" and i + 2 < len(words) and words[i + 2] == "down")
            and family == "jump"
            or w == "up"
            and prev == "straight"
            and family == "jump"
        ):
            found.append("in_place")
        elif (
            w in ("around", "round")
            and family in ("turn", "walk", "run", None)
            or w == "opposite"
            and nxt == "direction"
            or w == "half"
            and nxt == "turn"
            or w == "oneeighty"
        ):
            found.append("around")
        elif w in ("clockwise", "counterclockwise"):
            found.append(w)
        elif w == "sideways" or w == "laterally" or w == "sidewards":
            found.append("sideways")
        elif w == "diagonally":
            found.append("diagonal")
        elif w == "circle" and prev in ("a", "circular"):
            found.append("circle")
    if family not in DIRECTIONAL:
        return None
    if family == "spin":
        rotation = [d for d in found if d in ("clockwise", "counterclockwise")]
        return rotation[0] if rotation else None
    if curve_side:
        return curve_side
    lateral = [d for d in found if d in ("left", "right")]
    if family == "turn":
        if lateral:
            return lateral[0]
        if "around" in found:
            return "around"
        rotation = [d for d in found if d in ("clockwise", "counterclockwise")]
        return rotation[0] if rotation else None
    if lateral:
        if "forward" in found and ("diagonal" in found or "and" in words):
            return f"forward-{lateral[0]}"
        if "backward" in found and ("diagonal" in found or "and" in words):
            return f"backward-{lateral[0]}"
        return lateral[0]
    for preferred in ("forward", "backward", "in_place", "around", "circle", "clockwise", "counterclockwise"):
        if preferred in found:
            return preferred
    return "sideways" if "sideways" in found else None


def _side(words: list[str]) -> tuple[str | None, str | None]:
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in ("left", "right", "both") and nxt in LIMBS:
            return w, LIMBS[nxt]
        if w in ("left", "right", "both") and nxt.rstrip("s") in LIMBS:
            return w, LIMBS[nxt.rstrip("s")]
        if w in ("left", "right") and nxt in ("handed", "hand"):
            return w, "hand"
    return None, None


def _speed(words: list[str], verb: str | None) -> str | None:
    for i, w in enumerate(words):
        if w in SLOW_WORDS and words[i - 1 : i] != ["not"]:
            return "slow"
        if w in FAST_WORDS:
            return "fast"
        if w == "speed" and i and words[i - 1] in ("full", "top", "high"):
            return "fast"
    return IMPLIED_SPEED.get(verb or "")


def _count(words: list[str], family: str | None) -> int | None:
    for i, w in enumerate(words):
        if w in ADVERB_COUNTS:
            return ADVERB_COUNTS[w]
        number = NUMBERS.get(w) if not w.isdigit() else int(w)
        if number is None:
            continue
        # "<n> times", "<n> (adjective|gerund)* <action noun>"
        for j in range(i + 1, min(i + 4, len(words))):
            noun = _noun_lemma(words[j])
            if noun is not None:
                if noun in ("time", "rep", "repetition"):
                    return number
                if w in ("a", "an", "single") and family not in COUNTABLE:
                    break
                if noun == "motion" or NOUN_FAMILY.get(noun) in (family, None) or family in ("sidestep",):
                    return number
                break
            if words[j] in LIMBS or words[j] in ("of", "the", "and", "to", "with"):
                break
    return None


def _action(clause: list[_Word]) -> Action:
    texts = [w.text for w in clause]
    verb_index = None
    for j, word in enumerate(clause):
        if _is_main_verb(word, clause[j - 1] if j else None):
            verb_index = j
            break
    if verb_index is None:
        for j, word in enumerate(clause):
            if _is_action_verb(word, clause[j - 1] if j else None):
                verb_index = j
                break
    lemma = clause[verb_index].lemma if verb_index is not None else None
    family = VERB_FAMILY.get(lemma or "")
    words = [w.text for w in clause]
    if lemma in LIGHT_VERBS or (lemma is None and verb_index is None):
        for j in range(verb_index + 1 if verb_index is not None else 0, len(clause)):
            w = clause[j]
            noun = _noun_lemma(w.text)
            if noun in NOUN_FAMILY:
                family, lemma = NOUN_FAMILY[noun], noun
                break
            if (
                w.form == "ing"
                and w.lemma in VERB_FAMILY
                and j + 1 < len(clause)
                and _noun_lemma(clause[j + 1].text) == "motion"
            ):
                family, lemma = VERB_FAMILY[w.lemma], w.lemma
                break
        else:
            family = None
    if lemma == "put" and "up" in words:
        family, lemma = "raise_arm", "put"
    if family == "lift" and any(w in ("arm", "arms", "hand", "hands") for w in words):
        family = "raise_arm"
    # Refine by direction: "steps/shuffles sideways (to the left)" is a sidestep.
    verb_pos = verb_index if verb_index is not None else 0
    direction = _direction(words, family if family not in ("step", "shuffle") else "walk", verb_pos)
    if family in ("step", "shuffle"):
        lateral = direction in ("left", "right", "sideways") or "sideways" in words
        if lateral:
            family = "sidestep"
            direction = _direction(words, "sidestep", verb_pos)
        else:
            family = "walk" if family == "shuffle" else "step"
    if family == "sidestep" and direction == "sideways":
        direction = None
    side, limb = _side(words) if family not in NO_SIDE else (None, None)
    text = " ".join(_DISPLAY.get(t, t) for t in texts).strip(" ,")
    return Action(
        family=family,
        verb=lemma,
        direction=direction,
        side=side,
        limb=limb,
        speed=_speed(words, lemma),
        count=_count(words, family),
        text=re.sub(r"\s+([,.;])", r"\1", text),
    )


@lru_cache(maxsize=1 << 16)
def parse_caption(caption: str) -> CaptionAttributes:
    """The actions of ``caption`` in temporal order (see the module docstring).

    Cached: the data engine parses every caption many times (as a goal, as each goal's negative, in the
    quality filter), and the result is immutable."""
    words = _tokenize(caption)
    subject, rest = _split_subject(words)
    actions: list[Action] = []
    for clause in _clauses(rest):
        action = _action(clause)
        if not action.text:
            continue
        if action.verb is None and action.family is None and actions:  # "... . he is possibly drunk."
            actions[-1] = replace(actions[-1], text=f"{actions[-1].text}, {action.text}")
        else:
            actions.append(action)
    return CaptionAttributes(caption=caption, subject=subject, actions=tuple(actions))


# -------------------------------------------------------------------------------------------- comparison
_FILLER = (
    frozenset(
        {
            "a",
            "an",
            "the",
            "his",
            "her",
            "their",
            "its",
            "is",
            "are",
            "was",
            "were",
            "be",
            "being",
            "and",
            "then",
            "to",
            "with",
            "in",
            "on",
            "of",
            "times",
            "time",
            "once",
            "twice",
            "thrice",
            "left",
            "right",
            "both",
            "forward",
            "forwards",
            "backward",
            "backwards",
            "place",
            "around",
            "pace",
            "speed",
            "very",
        }
    )
    | SLOW_WORDS
    | FAST_WORDS
    | frozenset(NUMBERS)
)


def _content(text: str) -> tuple[str, ...]:
    """The words of a clause that are not attributes or fillers, verbs reduced to their lemma."""
    words = re.findall(r"[a-z]+", text.lower())
    return tuple(VERB_FORMS.get(w, (w, None))[0] for w in words if w not in _FILLER)


def same_action(a: Action, b: Action) -> bool:
    """Same kind of action (:meth:`Action.same_kind`) and the same direction, side, speed and count."""
    return a.same_kind(b) and a.key() == b.key()


def describes_same_motion(a: CaptionAttributes, b: CaptionAttributes) -> bool:
    """Both captions parse completely into the same actions with the same attributes."""
    return (
        a.complete
        and b.complete
        and len(a.actions) == len(b.actions)
        and all(same_action(x, y) for x, y in zip(a.actions, b.actions, strict=True))
    )


def normalize_speed(spec_speed: str | None) -> str | None:
    """The toy world writes ``normal`` for an unstated speed."""
    return None if spec_speed in (None, "normal") else spec_speed

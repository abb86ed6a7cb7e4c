"""Caption grammar of the toy world: paraphrases with ``word/POS`` tokens correct by construction.

Every word of the grammar is written with its part of speech (spaCy's coarse tags, as HumanML3D's
``texts`` files use them) and, for nouns and verbs, its lemma: ``walks/VERB:walk``. A caption is rendered
twice from the same words: the text (lower case, commas attached, a final period) and the token list
(punctuation dropped; NOUN and VERB tokens lemmatised except the word ``left``, as HumanML3D's
``process_text`` does).

Each family has verb-phrase templates; ``<verb>`` slots take the finite (``walks``) or gerund
(``walking``) form, ``{slot}`` placeholders realise the attributes (direction, speed, side, count) with
synonyms. Templates with a condition apply only to matching specs (``strolls`` implies slowly). Every
caption states every attribute of its spec, so the text determines the motion's class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from data_engine.datasets.layout import Caption
from data_engine.toy_world.actions import ActionSpec
from models.motion.mirror import mirror_caption

POS_TAGS = ("DET", "NOUN", "VERB", "ADV", "ADP", "ADJ", "NUM", "PRON", "AUX", "CCONJ", "SCONJ", "PART",
            "PUNCT")


@dataclass(frozen=True)
class Word:
    text: str
    pos: str
    lemma: str

    @property
    def token(self) -> str | None:
        """``lemma/POS`` for nouns and verbs (``left`` excepted), else ``word/POS``; None for punctuation."""
        if self.pos == "PUNCT":
            return None
        base = self.lemma if self.pos in ("NOUN", "VERB") and self.text != "left" else self.text
        return f"{base}/{self.pos}"


def words(spec: str) -> tuple[Word, ...]:
    """Parse ``"walks/VERB:walk forward/ADV"`` into words (the lemma defaults to the word itself)."""
    out = []
    for item in spec.split():
        text, _, tag = item.rpartition("/")
        pos, _, lemma = tag.partition(":")
        if not text or pos not in POS_TAGS:
            raise ValueError(f"bad grammar word {item!r} (expected word/POS[:lemma])")
        out.append(Word(text, pos, lemma or text))
    return tuple(out)


def render(sentence: tuple[Word, ...], start: float = 0.0, end: float = 0.0) -> Caption:
    """The HumanML3D annotation of a sentence: text with a final period, and its tokens."""
    text = ""
    for word in sentence:
        text += word.text if (word.pos == "PUNCT" or not text) else " " + word.text
    tokens = tuple(token for token in (w.token for w in sentence) if token is not None)
    return Caption(text=text + ".", tokens=tokens, start=start, end=end)


def mirror_annotation(caption: Caption) -> Caption:
    """The caption of the mirrored motion: left <-> right and clockwise <-> counterclockwise, in the text
    and in the tokens (the toy world's spins really do reverse when mirrored)."""
    def swap(text: str) -> str:
        return mirror_caption(text, swap_turn_direction=True)

    return Caption(text=swap(caption.text), tokens=tuple(swap(t) for t in caption.tokens),
                   start=caption.start, end=caption.end)


# --- lexicon ---------------------------------------------------------------------------------------------

# lemma -> (third person singular, gerund)
VERBS = {
    "walk": ("walks", "walking"), "stroll": ("strolls", "strolling"), "hurry": ("hurries", "hurrying"),
    "run": ("runs", "running"), "jog": ("jogs", "jogging"), "sprint": ("sprints", "sprinting"),
    "jump": ("jumps", "jumping"), "leap": ("leaps", "leaping"), "do": ("does", "doing"),
    "hop": ("hops", "hopping"), "balance": ("balances", "balancing"),
    "sidestep": ("sidesteps", "sidestepping"),
    "step": ("steps", "stepping"), "take": ("takes", "taking"), "shuffle": ("shuffles", "shuffling"),
    "turn": ("turns", "turning"), "make": ("makes", "making"), "rotate": ("rotates", "rotating"),
    "spin": ("spins", "spinning"), "twirl": ("twirls", "twirling"), "kick": ("kicks", "kicking"),
    "punch": ("punches", "punching"), "jab": ("jabs", "jabbing"), "throw": ("throws", "throwing"),
    "wave": ("waves", "waving"), "raise": ("raises", "raising"), "lift": ("lifts", "lifting"),
    "lower": ("lowers", "lowering"), "put": ("puts", "putting"), "clap": ("claps", "clapping"),
    "give": ("gives", "giving"), "squat": ("squats", "squatting"), "crouch": ("crouches", "crouching"),
    "stand": ("stands", "standing"), "sit": ("sits", "sitting"), "bow": ("bows", "bowing"),
    "bend": ("bends", "bending"), "crawl": ("crawls", "crawling"), "get": ("gets", "getting"),
    "stretch": ("stretches", "stretching"), "reach": ("reaches", "reaching"), "dance": ("dances", "dancing"),
    "sway": ("sways", "swaying"), "stumble": ("stumbles", "stumbling"), "trip": ("trips", "tripping"),
    "lose": ("loses", "losing"), "stagger": ("staggers", "staggering"),
}

# (phrase, possessive pronoun that agrees with it)
SUBJECTS = (
    ("a/DET person/NOUN", "their"), ("the/DET person/NOUN", "their"), ("a/DET man/NOUN", "his"),
    ("the/DET man/NOUN", "his"), ("a/DET woman/NOUN", "her"), ("someone/PRON", "their"),
    ("a/DET figure/NOUN", "their"),
)

_SPEED = {
    "slow": ("slowly/ADV", "at/ADP a/DET slow/ADJ pace/NOUN", "very/ADV slowly/ADV"),
    "fast": ("quickly/ADV", "fast/ADV", "rapidly/ADV", "at/ADP a/DET fast/ADJ pace/NOUN"),
    "normal": ("",),
}
_SPEED_ADV = {"slow": ("slowly/ADV",), "fast": ("quickly/ADV", "rapidly/ADV"), "normal": ("",)}
_SPEED_ADJ = {"slow": ("slow/ADJ",), "fast": ("quick/ADJ", "fast/ADJ"), "normal": ("",)}
_COUNT = {1: ("once/ADV", "one/NUM time/NOUN"), 2: ("twice/ADV", "two/NUM times/NOUN:time"),
          3: ("three/NUM times/NOUN:time",)}
_COUNT_DET = {1: ("a/DET", "one/NUM"), 2: ("two/NUM",), 3: ("three/NUM",)}
_NOUN_PLURAL = {"kick": "kicks", "punch": "punches", "jump": "jumps", "squat": "squats", "step": "steps",
                "bow": "bows", "clap": "claps", "spin": "spins", "motion": "motions"}
_DIRECTION = {
    "forward": ("forward/ADV", "forwards/ADV"),
    "backward": ("backward/ADV", "backwards/ADV"),
    "left": ("to/ADP the/DET left/NOUN", "to/ADP {poss}/PRON left/NOUN"),
    "right": ("to/ADP the/DET right/NOUN", "to/ADP {poss}/PRON right/NOUN"),
    "in_place": ("in/ADP place/NOUN",),
    "clockwise": ("clockwise/ADV", "in/ADP a/DET clockwise/ADJ direction/NOUN"),
    "counterclockwise": ("counterclockwise/ADV", "in/ADP a/DET counterclockwise/ADJ direction/NOUN"),
}
# Walking or running "to the left" follows a path that curves to that side.
_CURVE = (
    "in/ADP a/DET curve/NOUN to/ADP the/DET {side}/NOUN",
    "forward/ADV while/SCONJ curving/VERB:curve to/ADP the/DET {side}/NOUN",
    "along/ADP a/DET curved/ADJ path/NOUN to/ADP the/DET {side}/NOUN",
)
_AHEAD = ("forward/ADV", "forwards/ADV", "ahead/ADV", "straight/ADV ahead/ADV")
_JUMP_IN_PLACE = ("in/ADP place/NOUN", "up/ADP and/CCONJ down/ADP", "straight/ADV up/ADP")
_TURN = {"left": ("left/ADV", "to/ADP the/DET left/NOUN", "to/ADP {poss}/PRON left/NOUN"),
         "right": ("right/ADV", "to/ADP the/DET right/NOUN", "to/ADP {poss}/PRON right/NOUN")}

# Verb-phrase templates per family: (template, condition on the spec). Slots: <lemma> verb, {dir},
# {ahead} (travel direction incl. "ahead"/curves), {speed}, {speed_adv}, {speed_adj}, {count},
# {count_noun:noun} ("two kicks"), {count_noun_adj:noun} ("two quick steps"), {limb:hand|arm} ("the left
# hand" / "both hands"), {turn}, {poss}.
TEMPLATES: dict[str, tuple[tuple[str, dict], ...]] = {
    "walk": (
        ("<walk> {ahead} {speed}", {}),
        ("{speed_adv} <walk> {ahead}", {}),
        ("<stroll> {ahead}", {"speed": ("slow",)}),
        ("<stroll> {ahead} {speed}", {"speed": ("slow",)}),
        ("<walk> briskly/ADV {ahead}", {"speed": ("fast",)}),
        ("<hurry> {ahead}", {"speed": ("fast",)}),
    ),
    "run": (
        ("<run> {ahead} {speed}", {}),
        ("{speed_adv} <run> {ahead}", {}),
        ("<jog> {ahead}", {"speed": ("slow",)}),
        ("<jog> {ahead} {speed}", {"speed": ("slow",)}),
        ("<sprint> {ahead}", {"speed": ("fast",)}),
        ("<run> {ahead} at/ADP full/ADJ speed/NOUN", {"speed": ("fast",)}),
    ),
    "jump": (
        ("<jump> {dir} {count}", {}),
        ("<jump> {count} {dir}", {"direction": ("forward", "backward", "left", "right")}),
        ("<leap> {dir} {count}", {"direction": ("forward", "backward", "left", "right")}),
        ("<do> {count_noun:jump} {dir}", {}),
        ("<jump> sideways/ADV {dir} {count}", {"direction": ("left", "right")}),
    ),
    "hop": (
        ("<hop> {dir} on/ADP {limb:leg|foot} {count}", {}),
        ("<hop> on/ADP {limb:leg|foot} {dir} {count}", {}),
        ("<hop> {count} on/ADP {limb:leg|foot} {dir}", {}),
        ("<balance> on/ADP {limb:leg|foot} and/CCONJ <hop> {dir} {count}", {}),
    ),
    "sidestep": (
        ("<sidestep> {dir} {count} {speed}", {}),
        ("<step> sideways/ADV {dir} {count} {speed}", {}),
        ("<take> {count_noun_adj:step} {dir}", {}),
        ("{speed_adv} <shuffle> sideways/ADV {dir} {count}", {}),
    ),
    "turn": (
        ("<turn> {turn} {speed}", {"direction": ("left", "right")}),
        ("{speed_adv} <turn> {turn}", {"direction": ("left", "right")}),
        ("<make> a/DET {speed_adj} {dir_adj}/ADJ turn/NOUN", {"direction": ("left", "right")}),
        ("<turn> ninety/NUM degrees/NOUN:degree {dir} {speed}", {"direction": ("left", "right")}),
        ("<turn> in/ADP place/NOUN {dir} {speed}", {"direction": ("left", "right")}),
        ("<turn> around/ADV {speed}", {"direction": ("around",)}),
        ("{speed_adv} <turn> around/ADV", {"direction": ("around",)}),
        ("<turn> to/PART face/VERB the/DET opposite/ADJ direction/NOUN {speed}", {"direction": ("around",)}),
        ("<make> a/DET {speed_adj} half/ADJ turn/NOUN", {"direction": ("around",)}),
        ("<turn> one/NUM hundred/NUM and/CCONJ eighty/NUM degrees/NOUN:degree {speed}",
         {"direction": ("around",)}),
    ),
    "spin": (
        ("<spin> around/ADV {count} {dir}", {}),
        ("<spin> {dir} {count}", {}),
        ("<twirl> around/ADV {dir} {count}", {}),
        ("<do> {count_noun:full/ADJ spin} {dir}", {}),
    ),
    "kick": (
        ("<kick> with/ADP {limb:leg|foot} {count}", {}),
        ("<kick> {limb:leg|foot} forward/ADV {count}", {}),
        ("<kick> {count} with/ADP {limb:leg}", {}),
        ("<do> {count_noun:kick} with/ADP {limb:leg|foot}", {}),
        ("<kick> out/ADP with/ADP {limb:leg} {count}", {}),
    ),
    "punch": (
        ("<punch> with/ADP {limb:hand|fist|arm} {count}", {}),
        ("<punch> forward/ADV with/ADP {limb:fist} {count}", {}),
        ("<jab> with/ADP {limb:fist|hand} {count}", {}),
        ("<do> {count_noun:punch} with/ADP {limb:hand|fist}", {}),
    ),
    "throw": (
        ("<throw> a/DET ball/NOUN with/ADP {limb:hand|arm} {count}", {}),
        ("<throw> something/PRON with/ADP {limb:hand|arm} {count}", {}),
        ("<throw> an/DET object/NOUN overhand/ADV with/ADP {limb:arm} {count}", {}),
        ("<make> {count_noun:throwing/NOUN motion} with/ADP {limb:arm|hand}", {}),
    ),
    "wave": (
        ("<wave> {limb:hand|arm} {speed}", {}),
        ("<wave> with/ADP {limb:hand} {speed}", {}),
        ("{speed_adv} <wave> {limb:hand|arm}", {}),
        ("<wave> {limb:hand} in/ADP the/DET air/NOUN {speed}", {}),
        ("<wave> {limb:arm} back/ADV and/CCONJ forth/ADV {speed}", {}),
    ),
    "raise_arm": (
        ("<raise> {limb:arm|hand} {count}", {}),
        ("<lift> {limb:arm} up/ADP {count}", {}),
        ("<raise> {limb:arm} above/ADP {poss}/PRON head/NOUN {count}", {}),
        ("<raise> and/CCONJ <lower> {limb:arm} {count}", {}),
        ("<put> {limb:arm} up/ADP in/ADP the/DET air/NOUN {count}", {}),
    ),
    "clap": (
        ("<clap> {count}", {}),
        ("<clap> {poss}/PRON hands/NOUN:hand {count}", {}),
        ("<clap> {poss}/PRON hands/NOUN:hand together/ADV {count}", {}),
        ("<give> {count_noun:clap}", {}),
    ),
    "squat": (
        ("<squat> {count} {speed}", {}),
        ("<squat> down/ADP {count} {speed}", {}),
        ("{speed_adv} <squat> {count}", {}),
        ("<do> {count_noun_adj:squat}", {}),
        ("<crouch> down/ADP and/CCONJ <stand> up/ADP {count} {speed}", {}),
    ),
    "sit": (
        ("<sit> down/ADP on/ADP the/DET ground/NOUN {speed}", {}),
        ("{speed_adv} <sit> down/ADP on/ADP the/DET floor/NOUN", {}),
        ("<sit> on/ADP the/DET floor/NOUN {speed}", {}),
        ("<take> a/DET seat/NOUN on/ADP the/DET ground/NOUN {speed}", {}),
    ),
    "bow": (
        ("<bow> {count}", {}),
        ("<bow> forward/ADV {count}", {}),
        ("<take> {count_noun:bow}", {}),
        ("<bow> down/ADP {count}", {}),
    ),
    "crawl": (
        ("<crawl> {dir} on/ADP {poss}/PRON hands/NOUN:hand and/CCONJ knees/NOUN:knee {speed}", {}),
        ("<crawl> {dir} on/ADP all/DET fours/NOUN:four {speed}", {}),
        ("{speed_adv} <crawl> {dir}", {}),
        ("<get> down/ADP and/CCONJ <crawl> {dir} {speed}", {}),
        ("<crawl> {dir} on/ADP the/DET floor/NOUN {speed}", {}),
    ),
    "stretch": (
        ("<stretch>", {}),
        ("<stretch> {poss}/PRON arms/NOUN:arm over/ADP {poss}/PRON head/NOUN", {}),
        ("<stretch> both/DET arms/NOUN:arm up/ADP", {}),
        ("<reach> up/ADP and/CCONJ <stretch>", {}),
        ("<stretch> upward/ADV", {}),
    ),
    "dance": (
        ("<dance> {speed}", {}),
        ("<dance> in/ADP place/NOUN {speed}", {}),
        ("{speed_adv} <dance>", {}),
        ("<sway> and/CCONJ <dance> {speed}", {}),
    ),
    "stumble": (
        ("<stumble> {dir}", {}),
        ("<trip> and/CCONJ <stumble> {dir}", {}),
        ("<lose> {poss}/PRON balance/NOUN and/CCONJ <stumble> {dir}", {}),
        ("<stagger> {dir}", {}),
    ),
}

SINGLE_PATTERNS = ("{s} {a}", "{s} is/AUX {a:ing}")
COMPOSITION_PATTERNS = (
    "{s} {a} then/ADV {b}",
    "{s} {a} and/CCONJ then/ADV {b}",
    "{s} first/ADV {a} ,/PUNCT then/ADV {b}",
    "{s} {a} ,/PUNCT and/CCONJ afterwards/ADV {b}",
    "{s} is/AUX {a:ing} and/CCONJ then/ADV {b:ing}",
    "{s} {a} before/ADP {b:ing}",
)

_SLOT = re.compile(r"<(\w+)>|\{(\w+)(?::([^}]*))?\}")


class CaptionWriter:
    """Draws paraphrases for action specs from the grammar with a numpy generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def _pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def _templates(self, spec: ActionSpec) -> list[str]:
        return [template for template, condition in TEMPLATES[spec.family]
                if all(getattr(spec, attr) in allowed for attr, allowed in condition.items())]

    def _count_noun(self, count: int, noun: str, adjective: str = "") -> str:
        *modifiers, head = noun.split()
        plural = _NOUN_PLURAL[head]
        noun_words = " ".join(modifiers + ([f"{head}/NOUN"] if count == 1 else [f"{plural}/NOUN:{head}"]))
        return " ".join(filter(None, (self._pick(_COUNT_DET[count]), adjective, noun_words)))

    def _limb(self, spec: ActionSpec, limbs: str, poss: str) -> str:
        limb = self._pick(limbs.split("|"))
        if spec.side == "both":
            return f"both/DET {limb}s/NOUN:{limb}"
        owner = self._pick(("the/DET", f"{poss}/PRON"))
        return f"{owner} {spec.side}/ADJ {limb}/NOUN"

    def _slot(self, name: str, arg: str | None, spec: ActionSpec, poss: str) -> str:
        if name == "speed":
            return self._pick(_SPEED[spec.speed])
        if name == "speed_adv":
            return self._pick(_SPEED_ADV[spec.speed])
        if name == "speed_adj":
            return self._pick(_SPEED_ADJ[spec.speed])
        if name == "count":
            return self._pick(_COUNT[spec.count])
        if name == "count_noun":
            return self._count_noun(spec.count, arg)
        if name == "count_noun_adj":
            return self._count_noun(spec.count, arg, self._pick(_SPEED_ADJ[spec.speed or "normal"]))
        if name == "limb":
            return self._limb(spec, arg, poss)
        if name == "dir":
            return self._pick(_DIRECTION[spec.direction])
        if name == "dir_adj":
            return spec.direction
        if name == "turn":
            return self._pick(_TURN[spec.direction])
        if name == "ahead":
            if spec.direction == "forward":
                return self._pick(_AHEAD)
            if spec.direction in ("left", "right"):
                return self._pick(_CURVE).replace("{side}", spec.direction)
            return self._pick(_DIRECTION[spec.direction])
        if name == "poss":
            return poss
        raise KeyError(f"unknown caption slot {name!r}")

    def verb_phrase(self, spec: ActionSpec, poss: str,
                    template: str | None = None) -> dict[str, tuple[Word, ...]]:
        """One verb phrase for ``spec`` in both forms: ``{"finite": ..., "ing": ...}``."""
        template = template or self._pick(self._templates(spec))
        def realise(match: re.Match[str]) -> str:
            if match.group(1):  # a verb slot: filled per form below
                return match.group(0)
            return self._slot(match.group(2), match.group(3), spec, poss)

        filled = _SLOT.sub(realise, template)
        filled = filled.replace("{poss}", poss)  # placeholders inside realised slots
        forms = {}
        for form, index in (("finite", 0), ("ing", 1)):
            text = re.sub(r"<(\w+)>", lambda m: f"{VERBS[m.group(1)][index]}/VERB:{m.group(1)}", filled)
            forms[form] = words(text)
        return forms

    def sentence(self, parts: tuple[ActionSpec, ...],
                 templates: tuple[str | None, ...] | None = None) -> Caption:
        """One caption for a single action or a two-part composition."""
        subject, poss = self._pick(SUBJECTS)
        templates = templates or (None,) * len(parts)
        phrases = [self.verb_phrase(spec, poss, template) for spec, template in zip(parts, templates)]
        pattern = self._pick(SINGLE_PATTERNS if len(parts) == 1 else COMPOSITION_PATTERNS)
        out: list[Word] = []
        for item in pattern.split():
            if item == "{s}":
                out += words(subject)
            elif item.startswith("{a") or item.startswith("{b"):
                phrase = phrases[0 if item[1] == "a" else 1]
                out += phrase["ing" if item.endswith(":ing}") else "finite"]
            else:
                out += words(item)
        return render(tuple(out))

    def paraphrases(self, parts: tuple[ActionSpec, ...], n: int = 3, max_tries: int = 30) -> list[Caption]:
        """``n`` distinct captions, spreading over the family's templates before repeating one."""
        pools = [list(self.rng.permutation(self._templates(spec))) for spec in parts]
        captions: list[Caption] = []
        tries = 0
        while len(captions) < n and tries < max_tries:
            k = len(captions) + tries
            templates = tuple(str(pool[k % len(pool)]) for pool in pools)
            caption = self.sentence(parts, templates)
            if caption.text not in {c.text for c in captions}:
                captions.append(caption)
            else:
                tries += 1
        if len(captions) < n:
            raise RuntimeError(f"could not draw {n} distinct captions for {parts}")
        return captions


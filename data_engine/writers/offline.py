"""The embedded default writer: rule-based texts from caption attributes (no model, no network, free).

Goal and motion captions are parsed into actions and attributes (``data_engine.attributes``); the
writer then

* describes the goal's key elements (action type, limb and side, direction, pace, repetitions, the
  order of composed actions) in four phrasings for goal analyses, and four lower-case detailed prompts;
* contrasts an assessed motion's captions with the goal: which actions are missing, extra, replaced
  or out of order, and which attributes differ ("... goes to the right instead of to the left"), and
  turns every difference into an instruction ("Change the direction of the jump from the right to the
  left."); the goal motion itself gets "... perfectly aligns with the goal text." / "No refinements
  needed.";
* paraphrases captions for stage-3 prompt augmentation.

Captions the lexicon does not cover (free-form HumanML3D text) degrade gracefully: unknown actions
are quoted as written, so contrasts stay generic but correct. Phrasing varies with a seed, but each
text depends only on (seed, request), never on call order, so cached and fresh answers agree.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_engine.attributes import Action, CaptionAttributes, parse_caption
from data_engine.writers.base import (
    NO_REFINEMENT,
    AssessmentRequest,
    AssessmentResponse,
    DetailedPromptRequest,
    DetailedPromptResponse,
    GoalAnalysisRequest,
    GoalAnalysisResponse,
    PromptAugmentationRequest,
    PromptAugmentationResponse,
    TextWriter,
    WriterFailure,
    WriterRequest,
    WriterResponse,
    request_digest,
)


# ------------------------------------------------------------------------------------------ vocabulary
@dataclass(frozen=True)
class FamilyWords:
    noun: str | None  # countable noun ("kick"); None: describe with the gerund ("sitting down")
    plural: str | None
    gerund: str
    verb: str  # third person singular
    ref: str  # how to refer back to it ("the kick")
    mechanics: str  # participial phrase for analyses ("swinging the leg forward from the hip ...")
    limb: str | None = None  # default limb when a side is stated without one
    limb_prep: str = "with"  # "with the left leg" | "on the right leg" | "" (direct object)


FAMILY_WORDS: dict[str, FamilyWords] = {
    "walk": FamilyWords(
        "walk", "walks", "walking", "walks", "walk", "taking alternating steps with a natural arm swing"
    ),
    "run": FamilyWords(
        "run",
        "runs",
        "running",
        "runs",
        "run",
        "taking quick alternating strides with bent elbows and a brief flight phase",
    ),
    "jump": FamilyWords(
        "jump",
        "jumps",
        "jumping",
        "jumps",
        "jump",
        "bending the knees, pushing off with both feet and landing softly",
    ),
    "hop": FamilyWords(
        "hop",
        "hops",
        "hopping",
        "hops",
        "hop",
        "springing off one foot while the other leg stays lifted",
        "leg",
        "on",
    ),
    "skip": FamilyWords(
        "skip", "skips", "skipping", "skips", "skip", "alternating light hops from foot to foot"
    ),
    "sidestep": FamilyWords(
        "sidestep",
        "sidesteps",
        "sidestepping",
        "sidesteps",
        "sidestep",
        "stepping out with the leading foot and bringing the trailing foot alongside",
    ),
    "step": FamilyWords(
        "step", "steps", "stepping", "steps", "step", "lifting one foot and placing it down again"
    ),
    "turn": FamilyWords(
        "turn",
        "turns",
        "turning",
        "turns",
        "turn",
        "rotating the body about its vertical axis while the feet reposition",
    ),
    "spin": FamilyWords(
        "spin",
        "spins",
        "spinning",
        "spins",
        "spin",
        "rotating the whole body a full circle around its vertical axis",
    ),
    "kick": FamilyWords(
        "kick",
        "kicks",
        "kicking",
        "kicks",
        "kick",
        "swinging the leg forward from the hip and extending the knee",
        "leg",
    ),
    "punch": FamilyWords(
        "punch",
        "punches",
        "punching",
        "punches",
        "punch",
        "driving the fist forward from the shoulder and pulling it back",
        "fist",
    ),
    "throw": FamilyWords(
        "throw",
        "throws",
        "throwing",
        "throws",
        "throw",
        "drawing the arm back and whipping it forward over the shoulder",
        "arm",
    ),
    "wave": FamilyWords(
        "wave",
        "waves",
        "waving",
        "waves",
        "wave",
        "raising the hand and moving it from side to side",
        "hand",
        "",
    ),
    "raise_arm": FamilyWords(
        "arm raise",
        "arm raises",
        "raising",
        "raises",
        "arm raise",
        "lifting the arm up from the side of the body and lowering it again",
        "arm",
        "",
    ),
    "lift": FamilyWords(
        None,
        None,
        "lifting something",
        "lifts something",
        "lifting motion",
        "bending to grasp an object and raising it with the arms",
    ),
    "clap": FamilyWords(
        "clap", "claps", "clapping", "claps", "clap", "bringing both palms together in front of the chest"
    ),
    "squat": FamilyWords(
        "squat",
        "squats",
        "squatting",
        "squats",
        "squat",
        "bending the knees and hips to lower the body and rising back up",
    ),
    "sit": FamilyWords(
        None,
        None,
        "sitting down",
        "sits down",
        "sitting motion",
        "bending the knees and lowering the body down to the ground",
    ),
    "bow": FamilyWords(
        "bow", "bows", "bowing", "bows", "bow", "bending forward at the waist and straightening up again"
    ),
    "crawl": FamilyWords(
        "crawl",
        "crawls",
        "crawling",
        "crawls",
        "crawl",
        "moving on hands and knees with diagonal limbs advancing together",
    ),
    "stretch": FamilyWords(
        "stretch",
        "stretches",
        "stretching",
        "stretches",
        "stretch",
        "reaching the arms overhead and lengthening the whole body",
    ),
    "dance": FamilyWords(
        "dance", "dances", "dancing", "dances", "dance", "moving with rhythmic steps and swaying arms"
    ),
    "stumble": FamilyWords(
        "stumble",
        "stumbles",
        "stumbling",
        "stumbles",
        "stumble",
        "losing balance and recovering with quick, uneven steps",
    ),
    "stand": FamilyWords(
        None, None, "standing", "stands", "standing pose", "holding an upright standing posture"
    ),
    "kneel": FamilyWords(
        None,
        None,
        "kneeling down",
        "kneels down",
        "kneeling motion",
        "lowering one or both knees to the ground",
    ),
    "climb": FamilyWords(
        None,
        None,
        "climbing",
        "climbs",
        "climbing motion",
        "lifting the legs high and pulling the body upward",
    ),
    "lunge": FamilyWords(
        "lunge", "lunges", "lunging", "lunges", "lunge", "stepping forward and bending both knees deeply"
    ),
    "jumping_jack": FamilyWords(
        "jumping jack",
        "jumping jacks",
        "doing jumping jacks",
        "does jumping jacks",
        "jumping jacks",
        "jumping while spreading and closing the arms and legs",
    ),
}
NUMBER_WORDS = {
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
}
DIRECTION_PHRASES = {
    "forward": "forward",
    "backward": "backward",
    "left": "to the left",
    "right": "to the right",
    "in_place": "in place",
    "around": "around",
    "clockwise": "clockwise",
    "counterclockwise": "counterclockwise",
    "sideways": "sideways",
    "circle": "in a circle",
    "forward-left": "diagonally forward and to the left",
    "forward-right": "diagonally forward and to the right",
    "backward-left": "diagonally backward and to the left",
    "backward-right": "diagonally backward and to the right",
}
OPPOSITE = {
    "left": "right",
    "right": "left",
    "forward": "backward",
    "backward": "forward",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
}
SPEED_ADVERB = {"slow": "slowly", "fast": "quickly"}
SPEED_ADJECTIVE = {"slow": "slow", "fast": "quick"}


def _family_words(action: Action) -> FamilyWords | None:
    """How to write the action's family; None for unknown actions and for families described by their
    object ("picks up a box"), which are written as the caption says them."""
    return FAMILY_WORDS.get(action.family or "")


def count_adverb(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{NUMBER_WORDS.get(count, str(count))} times")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _limb_phrase(action: Action, words: FamilyWords) -> str | None:
    if action.side is None:
        return None
    limb = action.limb or words.limb or "arm"
    if action.side == "both":
        plural = {"foot": "feet"}.get(limb, limb + "s")
        return f"both {plural}"
    return f"the {action.side} {limb}"


def _direction_phrase(action: Action) -> str | None:
    if action.direction is None:
        return None
    return DIRECTION_PHRASES.get(action.direction, action.direction.replace("_", " "))


# ------------------------------------------------------------------------------------------- phrases
def verb_phrase(action: Action, form: str = "3sg") -> str:
    """``kicks with the left leg twice`` (form ``3sg``) / ``kicking with the left leg twice`` (``ing``).
    Unknown actions return their clause as written."""
    words = _family_words(action)
    if words is None:
        return action.text
    parts = [words.verb if form == "3sg" else words.gerund]
    limb = _limb_phrase(action, words)
    direction = _direction_phrase(action)
    if words.limb_prep == "on":  # "hops in place on the left leg"
        parts += [direction, f"on {limb}" if limb else None]
    else:
        if limb:
            parts.append(f"{words.limb_prep} {limb}".strip())
        elif action.family == "raise_arm":
            parts.append("an arm")
        parts.append(direction)
    if action.count:
        parts.append(count_adverb(action.count))
    if action.speed:
        parts.append(SPEED_ADVERB[action.speed])
    return " ".join(p for p in parts if p)


def noun_phrase(action: Action) -> str:
    """``two kicks with the left leg``, ``a quick jump to the left``; the gerund phrase for uncountable
    actions (``sitting down slowly``); the quoted clause for unknown ones."""
    words = _family_words(action)
    if words is None:
        return f"the described movement ('{action.text}')"
    if words.noun is None:
        return verb_phrase(action, "ing")
    count = action.count or 1
    adjective = SPEED_ADJECTIVE.get(action.speed or "")
    rotation = action.direction if action.direction in ("clockwise", "counterclockwise") else None
    noun = words.noun if count == 1 else words.plural
    modifiers = " ".join(m for m in (adjective, rotation, noun) if m)
    determiner = NUMBER_WORDS.get(count, str(count)) if count > 1 else _article(modifiers)
    parts = [f"{determiner} {modifiers}"]
    limb = _limb_phrase(action, words)
    direction = None if rotation else _direction_phrase(action)
    if action.family == "turn" and action.direction == "around":
        direction = "to face the opposite direction"
    if words.limb_prep == "on":
        parts += [direction, f"on {limb}" if limb else None]
    else:
        if limb:
            parts.append(f"{words.limb_prep or 'of'} {limb}")
        parts.append(direction)
    return " ".join(p for p in parts if p)


def reference(action: Action) -> str:
    """``the kick`` / ``the sitting motion`` / ``the current movement``."""
    words = _family_words(action)
    return f"the {words.ref}" if words is not None else "the current movement"


def _join(items: Sequence[str], conjunction: str = "and") -> str:
    """``a and b`` / ``a, b, and c``; items that contain commas are separated by semicolons."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    separator = "; " if any("," in i for i in items) else ", "
    if len(items) == 2 and separator == ", ":
        return f"{items[0]} {conjunction} {items[1]}"
    return separator.join(items[:-1]) + f"{separator}{conjunction} {items[-1]}"


def sequence_phrase(actions: Sequence[Action], form: str = "3sg") -> str:
    """``walks forward and then turns to the left`` (``, then ... , and finally ...`` for more)."""
    phrases = [verb_phrase(a, form) for a in actions]
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        return f"{phrases[0]} and then {phrases[1]}"
    return ", then ".join(phrases[:-1]) + f", and finally {phrases[-1]}"


def _subject(attrs: CaptionAttributes) -> str:
    """The caption's subject as a noun phrase ("a man"); "a person" when it has none or a bare pronoun."""
    subject = attrs.subject
    if subject in ("he", "she", "they", "it", "person", "human", "humanoid", "figure", "man", "woman", ""):
        return {"man": "a man", "woman": "a woman", "he": "a man", "she": "a woman"}.get(subject, "a person")
    return subject


def _predicate(attrs: CaptionAttributes) -> str:
    """What the caption says the subject does, as written (keeps details the lexicon does not model)."""
    predicate = attrs.predicate if attrs.subject else " ".join(attrs.caption.split()).rstrip(" .")
    if attrs.actions and attrs.actions[0].text and not attrs.subject:
        first = attrs.actions[0].text.split()[0]
        if first.endswith("ing"):
            predicate = "is " + predicate
    return predicate


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# ------------------------------------------------------------------------------------------ elements
DIRECTION_WORDS = {
    "circle": "a circular path",
    "left": "left",
    "right": "right",
    "forward": "forward",
    "backward": "backward",
    "in_place": "in place",
    "around": "around",
    "clockwise": "clockwise",
    "counterclockwise": "counterclockwise",
    "sideways": "sideways",
}


def _kind(words: FamilyWords) -> str:
    return words.noun or words.gerund


def _elements(action: Action, words: FamilyWords | None, labelled: bool = False) -> list[str]:
    """The key elements of one action, for analyses: ``the action type (kick)``, ``the direction (to the
    left)`` ...; ``labelled`` names the action in each attribute (``the direction of the walk``)."""
    if words is None:
        return [f"the described action ('{action.text}')"]
    of = f" of {reference(action)}" if labelled else ""
    elements = [] if labelled else [f"the action type ({_kind(words)})"]
    limb = _limb_phrase(action, words)
    if limb:
        elements.append(f"the limb{of or ' performing it'} ({limb})")
    direction = _direction_phrase(action)
    if direction:
        elements.append(f"the direction{of} ({direction})")
    if action.speed:
        elements.append(f"the pace{of} ({action.speed})")
    if action.count:
        elements.append(f"the number of repetitions{of} ({count_adverb(action.count)})")
    return elements


def _constraints(action: Action, words: FamilyWords | None) -> list[str]:
    """Independent clauses stating what distinguishes the goal from near misses."""
    if words is None:
        return []
    ref = reference(action)
    out = []
    if action.side in ("left", "right"):
        limb = action.limb or words.limb or "arm"
        out.append(f"{ref} must use the {action.side} {limb}, not the {OPPOSITE[action.side]} one")
    elif action.side == "both":
        out.append(f"{ref} must involve both {(action.limb or words.limb or 'arm')}s")
    if action.direction in OPPOSITE:
        out.append(
            f"{ref} must go {_direction_phrase(action)}, not {DIRECTION_PHRASES[OPPOSITE[action.direction]]}"
        )
    if action.count and words.noun:
        many = NUMBER_WORDS.get(action.count, str(action.count))
        out.append(f"there must be exactly {many} {words.noun if action.count == 1 else words.plural}")
    elif action.count:
        out.append(f"{ref} must happen exactly {count_adverb(action.count)}")
    if action.speed:
        out.append(f"the pace must be clearly {action.speed}")
    return out


# ------------------------------------------------------------------------------------------ contrasts
@dataclass(frozen=True)
class _Issue:
    kind: str  # replaced | missing | extra | order | direction | side | speed | count
    goal: Action | None = None
    motion: Action | None = None
    unspecified: bool = False  # the motion's captions do not state the attribute at all
    position: str = ""  # for missing/extra: "at the beginning" / "at the end" / "after the walk"


def _align(goal: Sequence[Action], motion: Sequence[Action]) -> list[tuple[int, int]]:
    """Longest common subsequence of known families: matched (goal index, motion index) pairs."""
    n, m = len(goal), len(motion)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            same = goal[i].same_kind(motion[j])
            table[i][j] = table[i + 1][j + 1] + 1 if same else max(table[i + 1][j], table[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if goal[i].same_kind(motion[j]):
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _attribute_issues(goal: Action, motion: Action) -> list[_Issue]:
    issues = []
    for attr in ("direction", "side", "speed", "count"):
        wanted, got = getattr(goal, attr), getattr(motion, attr)
        if wanted is None or wanted == got:
            continue
        issues.append(_Issue(attr, goal, motion, unspecified=got is None))
    return issues


def contrast(goal: CaptionAttributes, motion: CaptionAttributes) -> list[_Issue]:
    """Every difference between what the goal asks for and what the motion's caption says."""
    g, m = goal.actions, motion.actions
    if (
        sorted(map(str, goal.families)) == sorted(map(str, motion.families))
        and goal.families != motion.families
        and None not in goal.families
        and len(set(goal.families)) == len(goal.families)
    ):
        by_family = {a.family: a for a in m}
        issues = [_Issue("order", goal=g[0], motion=m[0])]
        for action in g:
            issues += _attribute_issues(action, by_family[action.family])
        return issues
    pairs = _align(g, m)
    matched_goal = {i for i, _ in pairs}
    matched_motion = {j for _, j in pairs}
    issues: list[_Issue] = []
    missing = [i for i in range(len(g)) if i not in matched_goal]
    extra = [j for j in range(len(m)) if j not in matched_motion]
    # Pair a missing goal action with an extra motion action in the same slot: a replacement.
    slot_of_extra = {j: sum(1 for _, mj in pairs if mj < j) for j in extra}
    slot_of_missing = {i: sum(1 for gi, _ in pairs if gi < i) for i in missing}
    used_extra: set[int] = set()
    for i in missing:
        partner = next(
            (j for j in extra if j not in used_extra and slot_of_extra[j] == slot_of_missing[i]), None
        )
        if partner is not None:
            used_extra.add(partner)
            issues.append(_Issue("replaced", goal=g[i], motion=m[partner]))
        else:
            issues.append(_Issue("missing", goal=g[i], position=_position(g, i)))
    for j in extra:
        if j not in used_extra:
            issues.append(_Issue("extra", motion=m[j], position=_position(m, j)))
    for i, j in pairs:
        issues += _attribute_issues(g[i], m[j])
    return issues


def _position(actions: Sequence[Action], index: int) -> str:
    if len(actions) == 1:
        return ""
    if index == 0:
        return "at the beginning"
    if index == len(actions) - 1:
        return f"at the end, after {reference(actions[index - 1])}"
    return f"after {reference(actions[index - 1])}"


def _representative(captions: Sequence[str]) -> CaptionAttributes:
    """The motion caption to describe it by: the first whose parse is complete, else the first."""
    parsed = [parse_caption(c) for c in captions]
    return next((p for p in parsed if p.complete), parsed[0])


# --------------------------------------------------------------------------------------------- writer
def _rules_version() -> str:
    here = Path(__file__).resolve()
    digest = hashlib.sha256()
    for path in (here, here.parent.parent / "attributes.py"):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class OfflineWriter(TextWriter):
    """Rule-based texts in the authors' style (module docstring). Deterministic per (seed, request)."""

    kind = "offline"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._version = _rules_version()

    @property
    def model_id(self) -> str:
        return f"rules:seed={self.seed}"

    @property
    def template_version(self) -> str:
        return self._version

    def generate(
        self, requests: Sequence[WriterRequest]
    ) -> Iterator[tuple[int, WriterResponse | WriterFailure]]:
        for index, request in enumerate(requests):
            try:
                yield index, self.write(request)
            except (ValueError, KeyError, IndexError) as err:
                yield index, WriterFailure(f"offline rules failed: {type(err).__name__}: {err}")

    def write(self, request: WriterRequest) -> WriterResponse:
        rng = random.Random(int(request_digest(request)[:16], 16) ^ self.seed)
        if isinstance(request, GoalAnalysisRequest):
            return GoalAnalysisResponse(tuple(goal_analyses(parse_caption(request.caption), rng, request.n)))
        if isinstance(request, DetailedPromptRequest):
            return DetailedPromptResponse(
                tuple(detailed_prompts(parse_caption(request.caption), rng, request.n))
            )
        if isinstance(request, AssessmentRequest):
            goal = parse_caption(request.goal_caption)
            if request.is_goal:
                return AssessmentResponse(goal_assessment(goal, rng), NO_REFINEMENT)
            return assess(goal, _representative(request.motion_captions), rng)
        if isinstance(request, PromptAugmentationRequest):
            return PromptAugmentationResponse(tuple(augment(parse_caption(request.caption), rng, request.n)))
        raise TypeError(f"unknown request {type(request).__name__}")


# ------------------------------------------------------------------------------------------- texts
def _take(texts: list[str], n: int) -> list[str]:
    """The first ``n`` texts, cycling if fewer were written."""
    return [texts[i % len(texts)] for i in range(n)]


def _known(goal: CaptionAttributes) -> bool:
    """Every action of the caption can be written from its attributes (else the caption is quoted)."""
    return goal.complete and all(a.family in FAMILY_WORDS for a in goal.actions)


def goal_analyses(goal: CaptionAttributes, rng: random.Random, n: int = 4) -> list[str]:
    """``n`` analyses of the goal's key elements: the structured one first, paraphrases in a seeded order."""
    subject, actions = _subject(goal), goal.actions
    if not _known(goal):
        return _take(_generic_analyses(goal, rng), n)
    words = [_family_words(a) for a in actions]
    multi = len(actions) > 1
    elements = [e for a, w in zip(actions, words, strict=True) for e in _elements(a, w, labelled=multi)]
    mechanics = _join([w.mechanics for w in words if w is not None])
    nouns = [noun_phrase(a) for a in actions]
    constraints = [c for a, w in zip(actions, words, strict=True) for c in _constraints(a, w)]
    if multi:
        kinds = _join([_kind(w) for w in words if w is not None])
        first = (
            f"The goal is to generate a motion with {NUMBER_WORDS.get(len(actions), len(actions))} "
            f"consecutive actions: {subject} {sequence_phrase(actions)}. The key elements are the action "
            f"types ({kinds}), "
            f"their order" + (f", {_join(elements)}" if elements else "") + "."
        )
    else:
        first = (
            f"The goal is to generate a motion where {subject} {verb_phrase(actions[0])}. "
            f"The key elements are {_join(elements)}."
        )
    each = " each time" if not multi and (actions[0].count or 0) > 1 else ""
    options = [
        f"The motion should depict {subject} {sequence_phrase(actions, 'ing')}, {mechanics}{each}.",
        f"The key to this motion is {_join(nouns, 'followed by')}: {mechanics}"
        + (f", with {reference(actions[0])} completed before {reference(actions[1])} begins" if multi else "")
        + ".",
        f"To satisfy the goal, the motion must feature {_join(nouns, 'and then')}"
        + (f"; {_join(constraints)}" if constraints else "")
        + (", in exactly this order" if multi else "")
        + ".",
        f"A successful motion shows {subject} {sequence_phrase(actions, 'ing')}"
        + (f", where {_join(constraints)}" if constraints else ", with the whole body moving naturally")
        + ".",
    ]
    rng.shuffle(options)
    return _take([_sentence(t) for t in [first, *options]], n)


def _generic_analyses(goal: CaptionAttributes, rng: random.Random) -> list[str]:
    """Analyses for captions the lexicon only partly understands: quote them, name what is known."""
    subject, predicate = _subject(goal), _predicate(goal)
    known = [a for a in goal.actions if a.family in FAMILY_WORDS]
    details = [
        e
        for a in known
        for e in _elements(a, _family_words(a), labelled=len(goal.actions) > 1)
        if not e.startswith("the action type")
    ]
    steps = len(goal.actions) > 1
    first = (
        f"The goal is to generate a motion where {subject} {predicate}. The key elements are the described "
        f"{'actions and their order' if steps else 'action'}"
        + (f", {_join(details)}" if details else "")
        + "."
    )
    options = [
        (
            f"The motion should show {subject} who {predicate}, reproducing the described body movement"
            f"{'s in the stated order' if steps else ''} as closely as possible."
        ),
        f"The key to this motion is capturing the description '{goal.caption.strip().rstrip('.')}'"
        + (f", including {_join(details)}" if details else "")
        + ".",
        f"To satisfy the goal, the motion must show {subject} who {predicate}"
        + (", performing each part in the stated order" if steps else "")
        + ".",
    ]
    rng.shuffle(options)
    return [_sentence(t) for t in [first, *options]]


def detailed_prompts(goal: CaptionAttributes, rng: random.Random, n: int = 4) -> list[str]:
    """``n`` lower-case detailed descriptions for analysis-guided generation."""
    subject, actions = _subject(goal), goal.actions
    if not _known(goal):
        predicate = _predicate(goal)
        texts = [
            f"{subject} {predicate}.",
            f"a motion in which {subject} {predicate}.",
            f"the motion shows {subject} who {predicate}.",
        ]
        return _take([" ".join(t.lower().split()) for t in texts], n)
    words = [_family_words(a) for a in actions]
    multi = len(actions) > 1
    elements = [e for a, w in zip(actions, words, strict=True) for e in _elements(a, w, labelled=multi)]
    mechanics = _join([w.mechanics for w in words if w is not None])
    nouns = [noun_phrase(a) for a in actions]
    key = (
        ("the key components are " + _join(elements)) if elements else f"the key component is {_join(nouns)}"
    )
    options = [
        f"{subject} is {sequence_phrase(actions, 'ing')}. {key}.",
        f"a motion of {subject} {sequence_phrase(actions, 'ing')}, {mechanics}.",
        f"a motion involving {_join(nouns, 'followed by')}, performed by {mechanics}.",
        f"the motion illustrates {_join(nouns, 'and then')}, with the whole body moving in coordination.",
    ]
    first, rest = options[0], options[1:]
    rng.shuffle(rest)
    return _take([" ".join(t.lower().split()) for t in [first, *rest]], n)


def goal_assessment(goal: CaptionAttributes, rng: random.Random) -> str:
    """The assessment of the goal motion itself (correct by construction)."""
    subject = _subject(goal)
    what = sequence_phrase(goal.actions) if _known(goal) else _predicate(goal)
    options = [
        f"The generated motion of {subject} who {what} perfectly aligns with the goal text.",
        f"The generated motion shows {subject} who {what}, which perfectly aligns with the goal text.",
        f"The generated motion perfectly aligns with the goal: {subject} {what}.",
    ]
    if _known(goal):
        options.append(
            f"The generated motion perfectly captures "
            f"{_join([noun_phrase(a) for a in goal.actions], 'followed by')}, fully aligning with the goal."
        )
    return _sentence(rng.choice(options))


def _issue_clause(issue: _Issue) -> str:
    g, m = issue.goal, issue.motion
    ref = reference(g or m)  # type: ignore[arg-type]
    if issue.kind == "direction":
        wanted = _direction_phrase(g)
        if issue.unspecified:
            return f"it is not clear that {ref} goes {wanted}"
        return f"{ref} goes {_direction_phrase(m)} instead of {wanted}"
    if issue.kind == "side":
        limb = g.limb or (_family_words(g).limb if _family_words(g) else None) or "arm"
        wanted = f"both {limb}s" if g.side == "both" else f"the {g.side} {limb}"
        if issue.unspecified:
            return f"it is not clear that {ref} uses {wanted}"
        theirs = f"both {limb}s" if m.side == "both" else f"the {m.side} {m.limb or limb}"
        return f"{ref} uses {theirs} instead of {wanted}"
    if issue.kind == "speed":
        if issue.unspecified:
            return f"{ref} is not clearly {g.speed}"
        return f"{ref} is performed {SPEED_ADVERB[m.speed]}, whereas the goal asks for a {g.speed} pace"
    if issue.kind == "count":
        if issue.unspecified:
            return f"it is not clear that {ref} happens {count_adverb(g.count)}"
        return f"{ref} happens {count_adverb(m.count)} instead of {count_adverb(g.count)}"
    if issue.kind == "missing":
        where = f" {issue.position}" if issue.position else ""
        return f"it is missing {noun_phrase(g)}{where}"
    if issue.kind == "extra":
        return f"it adds {noun_phrase(m)}, which the goal does not ask for"
    if issue.kind == "replaced":
        return f"it shows {verb_phrase(m, 'ing')} instead of {verb_phrase(g, 'ing')}"
    if issue.kind == "order":
        return "the actions happen in the wrong order"
    raise ValueError(f"unknown issue {issue.kind}")


def _mechanics_sentence(action: Action) -> str:
    words = _family_words(action)
    if words is None or action.family not in FAMILY_WORDS:
        return ""
    lead = f"Each {words.noun}" if (action.count or 1) > 1 and words.noun else f"The {words.ref}"
    return f" {lead} should be performed by {words.mechanics}."


def _instruction(issue: _Issue, goal: CaptionAttributes, rng: random.Random) -> str:
    g, m = issue.goal, issue.motion
    if issue.kind == "replaced":
        if g.family is None:
            return f"Replace {reference(m)} with the movement the goal describes: '{g.text}'."
        base = rng.choice(
            [
                f"Replace {reference(m)} with {noun_phrase(g)}.",
                f"Change {reference(m)} into {noun_phrase(g)}.",
            ]
        )
        return base + _mechanics_sentence(g)
    if issue.kind == "missing":
        where = f" {issue.position}" if issue.position else ""
        what = noun_phrase(g) if g.family is not None else f"the movement described as '{g.text}'"
        return f"Add {what}{where}."
    if issue.kind == "extra":
        where = f" {issue.position}" if issue.position else ""
        return f"Remove {reference(m)}{where}, since the goal does not include it."
    if issue.kind == "order":
        return f"Reorder the actions so that the person {sequence_phrase(goal.actions)}."
    ref = reference(g)
    if issue.kind == "direction":
        wanted = DIRECTION_WORDS.get(g.direction, _direction_phrase(g))
        if issue.unspecified:
            return f"Make sure {ref} clearly goes {_direction_phrase(g)}."
        return rng.choice(
            [
                (
                    f"Change the direction of {ref} from "
                    f"{DIRECTION_WORDS.get(m.direction, _direction_phrase(m))} to {wanted}."
                ),
                f"Make {ref} go {_direction_phrase(g)} instead of {_direction_phrase(m)}.",
            ]
        )
    if issue.kind == "side":
        limb = g.limb or (_family_words(g).limb if _family_words(g) else None) or "arm"
        wanted = f"both {limb}s" if g.side == "both" else f"the {g.side} {limb}"
        if issue.unspecified:
            return f"Make sure {ref} is clearly performed with {wanted}."
        return rng.choice([f"Switch {ref} to {wanted}.", f"Perform {ref} with {wanted} instead."])
    if issue.kind == "speed":
        change = "slower" if g.speed == "slow" else "faster"
        return rng.choice(
            [
                f"Make {ref} {change} so that the pace is clearly {g.speed}.",
                f"Perform {ref} at a {SPEED_ADJECTIVE[g.speed]} pace.",
            ]
        )
    if issue.kind == "count":
        if issue.unspecified:
            return f"Make sure {ref} is performed exactly {count_adverb(g.count)}."
        return f"Perform {ref} {count_adverb(g.count)} instead of {count_adverb(m.count)}."
    raise ValueError(f"unknown issue {issue.kind}")


def assess(goal: CaptionAttributes, motion: CaptionAttributes, rng: random.Random) -> AssessmentResponse:
    """Assessment + refinement of a motion (described by its caption ``motion``) against the goal."""
    shown = _predicate(motion)
    opening = rng.choice(
        [
            f"The generated motion shows a person who {shown}.",
            f"In the generated motion, a person {shown}.",
            f"The generated motion depicts a person who {shown}.",
        ]
    )
    goal_text = f"{_subject(goal)} who {_predicate(goal)}"
    if not goal.actions or not motion.actions or not (_known(goal) or any(a.family for a in goal.actions)):
        return AssessmentResponse(
            _sentence(f"{opening} This does not match the goal, which asks for {goal_text}"),
            _sentence(f"Change the motion so that it shows what the goal describes: {goal_text}"),
        )
    issues = contrast(goal, motion)
    if not issues:
        return AssessmentResponse(
            _sentence(f"The generated motion of a person who {shown} aligns with the goal text"),
            NO_REFINEMENT,
        )
    structural = [i for i in issues if i.kind in ("replaced", "missing", "extra", "order")]
    attribute = [i for i in issues if i not in structural]
    matched = _align(goal.actions, motion.actions)
    if not matched and issues[0].kind != "order":
        core = _join([verb_phrase(a, "ing") if _family_words(a) else f"'{a.text}'" for a in goal.actions])
        judgement = rng.choice(
            [
                f"This completely fails to match the goal: the core action of {core} is absent.",
                f"This completely misses the goal, which asks for {goal_text}.",
                f"This does not align with the goal at all, since {core} is missing.",
            ]
        )
    else:
        kept = [goal.actions[i] for i, _ in matched] or list(goal.actions)
        correct = (
            _join([reference(a).removeprefix("the ") for a in kept if _family_words(a)]) or "described part"
        )
        lead = rng.choice(
            [f"It correctly captures the {correct}, but ", f"It correctly includes the {correct}; however, "]
        )
        judgement = lead + _join([_issue_clause(i) for i in structural + attribute]) + "."
    instructions = [_instruction(i, goal, rng) for i in structural + attribute]
    return AssessmentResponse(
        _sentence(f"{opening} {judgement}"), " ".join(_sentence(t) for t in instructions)
    )


SUBJECT_CHOICES = ("a person", "someone", "a man", "a woman", "the person", "a figure")
CONNECTORS = ("and then", "then", ", and afterwards", ", after that")


def augment(caption: CaptionAttributes, rng: random.Random, n: int = 1) -> list[str]:
    """``n`` paraphrases of a caption as stage-3 prompts (another subject, wording and connectors)."""
    original = " ".join(caption.caption.lower().split()).rstrip(" .")
    out: list[str] = []
    for _ in range(8 * n):
        subject = rng.choice([s for s in SUBJECT_CHOICES if s != caption.subject])
        if _known(caption):
            phrases = []
            for action in caption.actions:
                countable = _family_words(action).noun is not None  # type: ignore[union-attr]
                use_noun = countable and rng.random() < 0.4
                phrases.append(f"does {noun_phrase(action)}" if use_noun else verb_phrase(action))
            text = phrases[0]
            for phrase in phrases[1:]:
                connector = rng.choice(CONNECTORS)
                text += f"{'' if connector.startswith(',') else ' '}{connector} {phrase}"
        else:
            text = _predicate(caption)
        candidate = f"{subject} {text}."
        if candidate.rstrip(".") != original and candidate not in out:
            out.append(candidate)
        if len(out) == n:
            break
    return _take(out or [f"{rng.choice(SUBJECT_CHOICES)} {original}."], n)

"""Caption -> attributes: exact on the toy world's grammar, sensible on free-form captions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_engine.attributes import describes_same_motion, normalize_speed, parse_caption
from data_engine.datasets.layout import read_texts_file
from data_engine.toy_world.actions import ActionSpec
from data_engine.toy_world.captions import CaptionWriter, mirror_annotation
from data_engine.toy_world.synthesis import sample_motion_spec


def spec_key(part) -> tuple:
    get = part.get if isinstance(part, dict) else lambda k: getattr(part, k)
    return (get("family"), get("direction"), get("side"), normalize_speed(get("speed")), get("count"))


def mirrored(spec: ActionSpec) -> ActionSpec:
    swap = {
        "left": "right",
        "right": "left",
        "clockwise": "counterclockwise",
        "counterclockwise": "clockwise",
    }
    return ActionSpec(
        spec.family,
        swap.get(spec.direction, spec.direction),
        spec.speed,
        swap.get(spec.side, spec.side),
        spec.count,
    )


def test_every_toy_grammar_caption_parses_back_to_its_attributes():
    rng = np.random.default_rng(11)
    writer = CaptionWriter(rng)
    for _ in range(400):
        spec = sample_motion_spec(rng, composition_ratio=0.35)
        for caption in writer.paraphrases(spec.parts, 3):
            got = [a.key() for a in parse_caption(caption.text).actions]
            assert got == [spec_key(p) for p in spec.parts], caption.text
            flipped = mirror_annotation(caption).text
            assert [a.key() for a in parse_caption(flipped).actions] == [
                spec_key(mirrored(p)) for p in spec.parts
            ]


def test_toy_world_captions_match_the_manifest(toy_root):
    manifest = json.loads((toy_root / "toy_world.json").read_text())
    fps = manifest["fps"]
    checked = 0
    for motion_id, entry in manifest["motions"].items():
        parts = entry["parts"]
        for caption in read_texts_file(toy_root / "texts" / f"{motion_id}.txt"):
            if caption.whole_clip:
                expected = [spec_key(p) for p in parts]
            else:  # a sub-clip caption describes the part it overlaps most
                span = (caption.start * fps, caption.end * fps)
                part = max(parts, key=lambda p: min(p["end"], span[1]) - max(p["start"], span[0]))
                expected = [spec_key(part)]
            assert [a.key() for a in parse_caption(caption.text).actions] == expected, (
                motion_id,
                caption.text,
            )
            checked += 1
    assert checked > 500


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a man full-body sideways jumps to his left.", [("jump", "left", None, None, None)]),
        (
            "a person kicks with the right leg twice and then waves.",
            [("kick", None, "right", None, 2), ("wave", None, None, None, None)],
        ),
        (
            "person sits down after walking to a chair.",
            [("walk", None, None, None, None), ("sit", None, None, None, None)],
        ),
        (
            "a person runs forward, turns around and runs back.",
            [
                ("run", "forward", None, None, None),
                ("turn", "around", None, None, None),
                ("run", "backward", None, None, None),
            ],
        ),
        ("a person walks diagonally forward and to the left.", [("walk", "forward-left", None, None, None)]),
        ("someone slowly strolls in a circle counter-clockwise", [("walk", "circle", None, "slow", None)]),
    ],
)
def test_free_form_captions(caption, expected):
    assert [a.key() for a in parse_caption(caption).actions] == expected


def test_unknown_actions_keep_their_text_and_are_not_complete():
    parsed = parse_caption("humanoid is acting like a chicken, pecking at something")
    assert not parsed.complete
    assert parsed.actions[0].family is None and "chicken" in parsed.actions[0].text
    assert parsed.subject == "humanoid" and parsed.predicate.startswith("is acting like a chicken")


def test_same_motion_needs_a_complete_equal_parse():
    assert describes_same_motion(
        parse_caption("a person walks forward slowly."), parse_caption("someone strolls straight ahead.")
    )
    assert not describes_same_motion(
        parse_caption("a person walks forward."), parse_caption("a person walks backward.")
    )
    assert not describes_same_motion(parse_caption("a person juggles."), parse_caption("a person juggles."))

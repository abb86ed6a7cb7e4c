"""From a motion spec (one action, or two in sequence) to joint positions on a dataset skeleton.

``sample_motion_spec`` draws what a motion shows; ``synthesize_motion`` turns it into joints: the action
programs are chained (heading continues across parts), framed by a short idle hold before, between and
after, layered over a per-sample resting posture and a little breathing/sway, run through forward
kinematics and put on the floor (``kinematics.place_in_world``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_engine.toy_world.actions import FAMILIES, ActionSpec, Context, generate_action
from data_engine.toy_world.kinematics import Rig, forward_kinematics, place_in_world
from data_engine.toy_world.primitives import Segment, Track

MIN_SECONDS = 2.6  # every clip: above HumanML3D's 40-frame evaluation minimum (2 s) with a margin
MAX_SECONDS = 9.6  # and below its 200-frame maximum (10 s); KIT's (24 / 200 frames at 12.5 fps) are wider
MAX_RESAMPLES = 50


@dataclass(frozen=True)
class MotionSpec:
    """What one motion shows: one action, or a composition of two played one after the other."""

    parts: tuple[ActionSpec, ...]

    @property
    def is_composition(self) -> bool:
        return len(self.parts) > 1


@dataclass(frozen=True)
class SynthesizedMotion:
    spec: MotionSpec
    positions: np.ndarray  # [T, J, 3] world positions (skeleton units)
    part_frames: tuple[tuple[int, int], ...]  # [start, end) frame range of each part


def sample_motion_spec(rng: np.random.Generator, composition_ratio: float,
                       families: tuple[str, ...] | None = None) -> MotionSpec:
    """A single action (uniform over families, then over attribute values) or, with probability
    ``composition_ratio``, two actions of different families; only the second may be ``sit`` (the one
    action that does not end standing)."""
    names = tuple(families or FAMILIES)
    first = FAMILIES[names[int(rng.integers(len(names)))]]
    if rng.random() >= composition_ratio:
        return MotionSpec((first.sample(rng),))
    while not first.ends_standing:
        first = FAMILIES[names[int(rng.integers(len(names)))]]
    second = first
    while second.name == first.name:
        second = FAMILIES[names[int(rng.integers(len(names)))]]
    return MotionSpec((first.sample(rng), second.sample(rng)))


def _hold(segment: Segment, frames: int, at_end: bool) -> Segment:
    """``frames`` frames of standing still in the first (or last) pose of ``segment``."""
    index = -1 if at_end else 0
    return Segment(
        angles=np.repeat(segment.angles[index:][:1], frames, axis=0),
        yaw=np.zeros(frames),  # heading is relative: concatenation continues from the previous piece
        lift=np.zeros(frames),
        velocity=np.zeros((frames, 2)),
        driven=np.zeros(frames, dtype=bool),
        support=np.zeros(frames, dtype=np.int8),
    )


def _resting_posture_and_life(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A per-sample relaxed posture (arms slightly out, elbows soft) plus slow breathing and sway."""
    tr = Track(t)
    tr.both_legs(knee=rng.uniform(0.02, 0.08), abduct=rng.uniform(0.0, 0.05))
    for side in ("left", "right"):
        tr.arm(side, abduct=rng.uniform(0.06, 0.16), elbow=rng.uniform(0.1, 0.3),
               flex=rng.uniform(-0.05, 0.08))

    def drift(amplitude: float) -> np.ndarray:
        frequency = rng.uniform(0.12, 0.4)
        return amplitude * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))

    tr.torso(bend=drift(0.02) + rng.uniform(-0.02, 0.04), lean=drift(0.012))
    tr.head(nod=drift(0.04) + rng.uniform(-0.05, 0.08), turn=drift(0.08))
    for side in ("left", "right"):
        tr.arm(side, flex=drift(0.04), abduct=drift(0.02))
    return tr.angles


def synthesize_motion(spec: MotionSpec, rng: np.random.Generator, rig: Rig, fps: float,
                      min_seconds: float = MIN_SECONDS,
                      max_seconds: float = MAX_SECONDS) -> SynthesizedMotion | None:
    """Joint positions of ``spec``; None if its natural duration exceeds ``max_seconds`` (the caller
    draws another spec)."""
    ctx = Context(rng=rng, fps=fps, short=spec.is_composition)
    parts = [generate_action(ctx, part) for part in spec.parts]
    core = sum(part.frames for part in parts)
    gaps = [int(round(rng.uniform(0.0, 0.35) * fps)) for _ in parts[1:]]
    budget = int(max_seconds * fps) - core - sum(gaps)
    if budget < 2:
        return None
    # The lead-in hold is kept short (the action starts within ~0.35 s, as in most HumanML3D clips), so
    # the first motion tokens already depend on the caption; padding up to the minimum length goes mostly
    # to the end.
    before = int(round(rng.uniform(0.1, 0.35) * fps))
    after = int(round(rng.uniform(0.25, 0.9) * fps))
    shortfall = int(np.ceil(min_seconds * fps)) - (core + sum(gaps) + before + after)
    if shortfall > 0:
        extra_before = int(rng.integers(0, shortfall // 5 + 1))
        before, after = before + extra_before, after + shortfall - extra_before
    if before + after > budget:
        before = max(1, min(before, budget // 2))
        after = max(1, budget - before)

    pieces, part_frames, cursor = [_hold(parts[0], before, at_end=False)], [], before
    for k, part in enumerate(parts):
        if k > 0 and gaps[k - 1]:
            pieces.append(_hold(parts[k - 1], gaps[k - 1], at_end=True))
            cursor += gaps[k - 1]
        pieces.append(part)
        part_frames.append((cursor, cursor + part.frames))
        cursor += part.frames
    pieces.append(_hold(parts[-1], after, at_end=True))
    motion = Segment.concatenate(pieces)

    t = np.arange(motion.frames) / fps
    angles = motion.angles + _resting_posture_and_life(t, rng)
    body = forward_kinematics(rig, angles)
    positions = place_in_world(rig, body, motion.yaw, motion.lift, motion.velocity, motion.driven,
                               motion.support, fps)
    return SynthesizedMotion(spec=spec, positions=positions, part_frames=tuple(part_frames))

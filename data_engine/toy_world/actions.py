"""The action families of the toy world, each a program of joint angles and a root program.

Every family is a function ``(ctx, spec) -> Segment`` that starts from the rest pose (standing, arms
down) and, except ``sit``, ends in it, so actions can be chained. ``ActionSpec`` holds the attributes a
caption states (direction, speed, side, count); ``Context`` supplies the per-sample randomness (tempo,
amplitude, timing jitter) so that no two motions are identical.

Attributes change the motion the way a reader of the caption would expect:

* speed scales the tempo of the movement (cadence and stride of a gait, duration of a squat);
* count is the number of repetitions (jumps, kicks, claps ...) — visible as that many peaks;
* side picks the limb (the standing leg for ``hop``, the throwing arm for ``throw``);
* direction sets where the body travels (walk, run, jump, crawl ...) or turns (turn, spin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from data_engine.toy_world.primitives import (
    Segment,
    Track,
    keyframes,
    other,
    pulse,
    ramp,
    side_sign,
    window,
)

SPEEDS = ("slow", "normal", "fast")
TEMPO = {"slow": 0.68, "normal": 1.0, "fast": 1.42}  # multiplies the rate of every speed-aware action
GRAVITY = 9.81
# What a left/right mirror turns each attribute value into (other values stay).
MIRRORED_VALUES = {"left": "right", "right": "left", "clockwise": "counterclockwise",
                   "counterclockwise": "clockwise"}
# Travel directions as (x, z) unit vectors in the heading frame (+x = the body's left, +z = forward).
TRAVEL = {"forward": (0.0, 1.0), "backward": (0.0, -1.0), "left": (1.0, 0.0), "right": (-1.0, 0.0),
          "in_place": (0.0, 0.0)}


@dataclass(frozen=True)
class ActionSpec:
    """One action and the attributes its caption states (``None`` where the family has no such attribute)."""

    family: str
    direction: str | None = None
    speed: str | None = None
    side: str | None = None
    count: int | None = None

    def attributes(self) -> dict:
        return {"family": self.family, "direction": self.direction, "speed": self.speed, "side": self.side,
                "count": self.count}

    def mirrored(self) -> ActionSpec:
        """The spec of the left/right mirrored motion (sides, directions and spin senses swapped)."""
        return ActionSpec(self.family, direction=MIRRORED_VALUES.get(self.direction, self.direction),
                          speed=self.speed, side=MIRRORED_VALUES.get(self.side, self.side), count=self.count)

    @classmethod
    def from_attributes(cls, attributes: dict) -> ActionSpec:
        """Inverse of ``attributes`` (extra keys, e.g. frame ranges, are ignored)."""
        return cls(attributes["family"], direction=attributes.get("direction"), speed=attributes.get("speed"),
                   side=attributes.get("side"), count=attributes.get("count"))


@dataclass
class Context:
    """Per-sample randomness and the frame rate an action is sampled at."""

    rng: np.random.Generator
    fps: float
    short: bool = False  # inside a composition: prefer the short end of free durations

    def vary(self, value: float, spread: float = 0.1) -> float:
        """``value`` scaled by a random factor in ``[1 - spread, 1 + spread]``."""
        return float(value * (1.0 + self.rng.uniform(-spread, spread)))

    def uniform(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def duration(self, low: float, high: float) -> float:
        """A free duration (seconds) for open-ended actions (walking, waving, dancing)."""
        if self.short:
            high = low + 0.45 * (high - low)
        return self.uniform(low, high)

    def timeline(self, seconds: float) -> np.ndarray:
        frames = max(2, int(round(seconds * self.fps)))
        return np.arange(frames) / self.fps


def _tempo(spec: ActionSpec) -> float:
    return TEMPO[spec.speed or "normal"]


def _poses(t: np.ndarray, keys: list[tuple[float, dict[str, float]]]) -> dict[str, np.ndarray]:
    """Per-channel PCHIP curves through key poses ``[(time, {channel: value})]`` (missing channels = 0)."""
    names = sorted({name for _, pose in keys for name in pose})
    times = [time for time, _ in keys]
    curves = keyframes(t, times, [[pose.get(name, 0.0) for name in names] for _, pose in keys])
    return {name: curves[:, k] for k, name in enumerate(names)}


class _Curves(dict):
    """Key-pose curves; a channel no key mentions reads as 0."""

    def __missing__(self, key: str) -> float:
        return 0.0


def _curves(t: np.ndarray, keys: list[tuple[float, dict[str, float]]]) -> _Curves:
    return _Curves(_poses(t, keys))


def _gait(tr: Track, phase: np.ndarray, env: np.ndarray, *, hip: float, knee: float, arm: float,
          elbow: float = 0.2, stance_knee: float = 0.05, ankle: float = 0.15) -> None:
    """Alternating leg swing with opposite arm swing; ``phase`` advances one cycle = two steps."""
    for side, offset in (("left", 0.0), ("right", np.pi)):
        ph = phase + offset
        swing = np.maximum(0.0, np.cos(ph)) ** 1.5
        tr.leg(side, flex=env * hip * np.sin(ph), knee=env * (knee * swing + stance_knee),
               ankle=env * ankle * swing)
        tr.arm(side, flex=-env * arm * np.sin(ph), elbow=env * elbow * (1.0 + 0.5 * np.sin(ph)))
    tr.pelvis(twist=env * 0.12 * hip * np.sin(phase))
    tr.torso(twist=-env * 0.15 * hip * np.sin(phase))
    # a leg is in stance while its hip moves against the direction of travel (cos(phase) < 0)
    walking = env > 0.05
    tr.support_on("left", walking & (np.cos(phase) < 0))
    tr.support_on("right", walking & (np.cos(phase) >= 0))


def _curve_heading(t: np.ndarray, env: np.ndarray, total: float) -> np.ndarray:
    """A heading that turns by ``total`` gradually, in proportion to how much walking was done."""
    progress = np.cumsum(env)
    return total * progress / max(progress[-1], 1e-9)


# --- locomotion ------------------------------------------------------------------------------------------

def walk(ctx: Context, spec: ActionSpec) -> Segment:
    tempo = _tempo(spec)
    backward = spec.direction == "backward"
    cadence = ctx.vary(0.92 * (0.8 if backward else 1.0), 0.07) * tempo ** 0.75
    hip = ctx.vary({"slow": 0.28, "normal": 0.38, "fast": 0.48}[spec.speed or "normal"], 0.08)
    hip *= 0.8 if backward else 1.0
    seconds = ctx.duration(3.0, 6.5)
    t = ctx.timeline(seconds)
    tr = Track(t)
    env = window(t, 0.0, t[-1], 0.7)
    direction = -1.0 if backward else 1.0
    phase = direction * 2 * np.pi * cadence * t + ctx.uniform(-0.3, 0.3)
    _gait(tr, phase, env, hip=hip, knee=ctx.vary(0.55 + 0.5 * hip, 0.1), arm=ctx.vary(0.9 * hip, 0.15))
    tr.torso(bend=env * (0.04 + 0.12 * max(tempo - 1.0, 0.0)) * direction)
    if spec.direction in ("left", "right"):
        tr.yaw = _curve_heading(t, env, side_sign(spec.direction) * ctx.uniform(1.3, 1.9))
    return tr.segment()


def run(ctx: Context, spec: ActionSpec) -> Segment:
    tempo = _tempo(spec)
    cadence = ctx.vary(1.4, 0.06) * tempo ** 0.35
    hip = ctx.vary({"slow": 0.5, "normal": 0.62, "fast": 0.75}[spec.speed or "normal"], 0.08)
    seconds = ctx.duration(2.6, 5.0)
    t = ctx.timeline(seconds)
    tr = Track(t)
    env = window(t, 0.0, t[-1], 0.6)
    phase = 2 * np.pi * cadence * t + ctx.uniform(-0.3, 0.3)
    _gait(tr, phase, env, hip=hip, knee=ctx.vary(1.0 + 0.8 * hip, 0.08), arm=ctx.vary(0.9 * hip, 0.1),
          elbow=0.0, stance_knee=0.25, ankle=0.25)
    tr.both_arms(elbow=env * ctx.vary(1.35, 0.1), abduct=env * 0.1)
    tr.torso(bend=env * (0.1 + 0.1 * hip))
    if spec.direction in ("left", "right"):
        tr.yaw = _curve_heading(t, env, side_sign(spec.direction) * ctx.uniform(1.3, 1.9))
    return tr.segment()


def sidestep(ctx: Context, spec: ActionSpec) -> Segment:
    """Lead leg lifts and steps out while both legs spread, then the trailing leg closes the gap."""
    lead = spec.direction
    trail = other(lead)
    step = ctx.vary(0.95, 0.1) / _tempo(spec)
    spread = ctx.vary(0.36, 0.15)
    start = 0.2
    t = ctx.timeline(start + step * spec.count + 0.35)
    tr = Track(t)
    lead_abduct = np.zeros_like(t)
    trail_abduct = np.zeros_like(t)
    lift_lead = np.zeros_like(t)
    lift_trail = np.zeros_like(t)
    for k in range(spec.count):
        t0 = start + k * step
        lead_abduct += 0.5 * spread * (ramp(t, t0, 0.5 * step) - ramp(t, t0 + 0.5 * step, 0.5 * step))
        trail_abduct += 0.5 * spread * (ramp(t, t0, 0.5 * step) - ramp(t, t0 + 0.5 * step, 0.5 * step))
        lift_lead += pulse(t, t0, 0.5 * step)
        lift_trail += pulse(t, t0 + 0.5 * step, 0.5 * step)
    tr.leg(lead, abduct=lead_abduct, knee=0.45 * lift_lead + 0.06, flex=0.2 * lift_lead)
    tr.support_on(trail, lift_lead > 0.01)
    tr.support_on(lead, lift_trail > 0.01)
    tr.leg(trail, abduct=trail_abduct, knee=0.45 * lift_trail + 0.06, flex=0.2 * lift_trail)
    active = window(t, start, start + step * spec.count, 0.3)
    tr.torso(lean=side_sign(lead) * 0.06 * active)
    tr.both_arms(abduct=0.15 * active)
    return tr.segment()


def crawl(ctx: Context, spec: ActionSpec) -> Segment:
    """Kneel down onto hands and knees, crawl (diagonal limbs together), stand back up."""
    tempo = _tempo(spec)
    down = ctx.vary(1.5, 0.1)
    cycles_time = ctx.duration(2.2, 4.2)
    up = ctx.vary(1.5, 0.1)
    t = ctx.timeline(down + cycles_time + up)
    tr = Track(t)
    tilt = ctx.vary(1.2, 0.05)
    fours = {"tilt": tilt, "knee": 1.6, "arm": tilt + 0.05, "elbow": 0.15, "nod": -0.8}
    kneel = {"tilt": 0.25, "hip": 1.2, "knee": 1.9, "arm": 0.8, "elbow": 0.3, "bend": 0.5}
    end = t[-1]
    c = _curves(t, [(0.0, {}), (0.55 * down, kneel), (down, fours), (end - up, fours),
                    (end - 0.45 * up, kneel), (end, {})])
    tr.pelvis(tilt=c["tilt"])
    tr.both_legs(flex=c["hip"], knee=c["knee"], flat_foot=False)
    tr.both_arms(flex=c["arm"], elbow=c["elbow"])
    tr.torso(bend=c["bend"])
    tr.head(nod=c["nod"])

    env = window(t, down, end - up, 0.4)
    cadence = ctx.vary(0.85, 0.08) * tempo
    direction = -1.0 if spec.direction == "backward" else 1.0
    phase = direction * 2 * np.pi * cadence * (t - down)
    amplitude = ctx.vary(0.32, 0.1)
    for side, offset in (("left", 0.0), ("right", np.pi)):
        leg_phase = phase + offset
        arm_phase = phase + offset + np.pi  # the arm moves with the opposite leg
        tr.leg(side, flex=env * amplitude * np.sin(leg_phase),
               knee=env * 0.25 * np.maximum(0.0, np.cos(leg_phase)), flat_foot=False)
        tr.arm(side, flex=env * amplitude * np.sin(arm_phase),
               elbow=env * 0.4 * np.maximum(0.0, np.cos(arm_phase)))
    speed = 4 * 0.39 * np.sin(amplitude) * cadence
    tr.velocity[:, 1] = direction * speed * env
    tr.driven[:] = env > 0.02
    return tr.segment()


def stumble(ctx: Context, spec: ActionSpec) -> Segment:
    """A trip: the torso pitches, arms fly out, a few hurried uneven steps, then recovery."""
    backward = spec.direction == "backward"
    direction = -1.0 if backward else 1.0
    trip = ctx.uniform(0.3, 0.7)
    steps_time = ctx.vary(1.5, 0.15)
    t = ctx.timeline(trip + steps_time + ctx.vary(1.3, 0.1))
    tr = Track(t)
    env = window(t, trip, trip + steps_time, 0.15, 0.5)
    cadence = ctx.vary(1.25, 0.1)
    phase = direction * 2 * np.pi * cadence * (t - trip) + (0.0 if ctx.rng.random() < 0.5 else np.pi)
    decay = np.clip(1.2 - 0.5 * (t - trip) / steps_time, 0.4, 1.2)
    _gait(tr, phase, env * decay, hip=ctx.vary(0.5, 0.1), knee=0.8, arm=0.0)
    jolt = ramp(t, trip, 0.15) * (1.0 - ramp(t, trip + 0.5 * steps_time, steps_time))
    tr.torso(bend=jolt * (ctx.vary(0.5, 0.15) if not backward else -ctx.vary(0.3, 0.15)))
    tr.head(nod=-jolt * 0.3 * direction)
    for side in ("left", "right"):
        tr.arm(side, flex=jolt * ctx.vary(1.2, 0.3), abduct=jolt * ctx.vary(0.8, 0.3),
               elbow=jolt * ctx.vary(0.6, 0.3))
    return tr.segment()


# --- jumps -----------------------------------------------------------------------------------------------

def _flight(tr: Track, takeoff: float, airtime: float, height: float, travel: tuple[float, float],
            distance: float) -> None:
    t = tr.t
    s = (t - takeoff) / airtime
    inside = (s > 0.0) & (s < 1.0)
    tr.lift += np.where(inside, 4.0 * height * s * (1.0 - s), 0.0)
    tr.velocity += np.where(inside[:, None], np.asarray(travel) * distance / airtime, 0.0)


def jump(ctx: Context, spec: ActionSpec) -> Segment:
    tempo = ctx.vary(1.0, 0.1)
    height = ctx.vary(0.3 if spec.direction == "in_place" else 0.24, 0.15)
    airtime = float(np.sqrt(8.0 * height / GRAVITY))
    distance = {"in_place": 0.0, "forward": ctx.vary(0.8, 0.15), "backward": ctx.vary(0.45, 0.15),
                "left": ctx.vary(0.55, 0.15), "right": ctx.vary(0.55, 0.15)}[spec.direction]
    crouch = {"hip": 0.75, "knee": 1.35, "bend": 0.45, "arm": -0.6}
    push = {"hip": -0.05, "knee": 0.05, "ankle": -0.6, "bend": 0.05, "arm": 2.0, "elbow": -0.1}
    tuck = {"hip": 0.4, "knee": 0.75, "ankle": -0.2, "bend": 0.15, "arm": 1.7}
    land = {"hip": 0.2, "knee": 0.35, "bend": 0.15, "arm": 1.1}
    absorb = {"hip": 0.65, "knee": 1.15, "bend": 0.4, "arm": 0.5}
    keys: list[tuple[float, dict]] = [(0.0, {})]
    takeoffs = []
    now = 0.15
    for _ in range(spec.count):
        crouch_at = now + 0.45 * tempo
        takeoff = crouch_at + 0.16 * tempo
        landing = takeoff + airtime
        keys += [(now, {}), (crouch_at, crouch), (takeoff, push), (takeoff + 0.5 * airtime, tuck),
                 (landing, land), (landing + 0.18, absorb)]
        takeoffs.append(takeoff)
        now = landing + 0.18 + ctx.vary(0.45, 0.15) * tempo
        keys.append((now, {}))
        now += ctx.uniform(0.05, 0.3)
    t = ctx.timeline(now + 0.1)
    tr = Track(t)
    c = _curves(t, keys)
    tr.both_legs(flex=c["hip"], knee=c["knee"], ankle=c["ankle"])
    tr.torso(bend=c["bend"])
    tr.both_arms(flex=c["arm"], elbow=c["elbow"])
    for takeoff in takeoffs:
        _flight(tr, takeoff, airtime, height, TRAVEL[spec.direction], distance)
    return tr.segment()


def hop(ctx: Context, spec: ActionSpec) -> Segment:
    """Hops on the ``side`` leg; the other leg is held bent off the floor."""
    stand, free = spec.side, other(spec.side)
    height = ctx.vary(0.12, 0.15)
    airtime = float(np.sqrt(8.0 * height / GRAVITY))
    distance = ctx.vary(0.35, 0.15) if spec.direction == "forward" else 0.0
    period = ctx.vary(0.75, 0.1)
    lift_leg = 0.5
    keys: list[tuple[float, dict]] = [(0.0, {}), (lift_leg, {"hip": 0.05, "knee": 0.1})]
    takeoffs = []
    for k in range(spec.count):
        t0 = lift_leg + 0.1 + k * period
        takeoff = t0 + 0.35 * period
        keys += [(t0 + 0.2 * period, {"hip": 0.3, "knee": 0.55}),
                 (takeoff, {"hip": -0.05, "knee": 0.05, "ankle": -0.5}),
                 (takeoff + airtime, {"hip": 0.15, "knee": 0.3}),
                 (takeoff + airtime + 0.12, {"hip": 0.3, "knee": 0.5}),
                 (t0 + period, {"hip": 0.05, "knee": 0.1})]
        takeoffs.append(takeoff)
    end = lift_leg + 0.1 + spec.count * period + 0.5
    keys.append((end, {}))
    t = ctx.timeline(end + 0.1)
    tr = Track(t)
    c = _curves(t, keys)
    tr.leg(stand, flex=c["hip"], knee=c["knee"], ankle=c["ankle"])
    held = window(t, 0.0, end, lift_leg)
    tr.leg(free, flex=held * ctx.vary(0.45, 0.15), knee=held * ctx.vary(1.3, 0.1), flat_foot=False)
    tr.both_arms(abduct=held * ctx.vary(0.4, 0.2), elbow=held * 0.3)
    tr.torso(lean=side_sign(stand) * 0.08 * held)
    tr.support_on(stand, held > 0.01)
    for takeoff in takeoffs:
        _flight(tr, takeoff, airtime, height, TRAVEL["forward"], distance)
    return tr.segment()


# --- turning ---------------------------------------------------------------------------------------------

def _step_in_place(tr: Track, start: float, duration: float, steps: int, first: str, knee: float) -> None:
    """Alternating small knee lifts over ``[start, start + duration]``, starting with ``first``."""
    if steps <= 0:
        return
    length = duration / steps
    for k in range(steps):
        side = first if k % 2 == 0 else other(first)
        lift = pulse(tr.t, start + k * length, length)
        tr.leg(side, flex=0.3 * knee * lift, knee=knee * lift)
        tr.support_on(other(side), lift > 0.01)


def turn(ctx: Context, spec: ActionSpec) -> Segment:
    if spec.direction == "around":
        angle = np.pi * (1.0 if ctx.rng.random() < 0.5 else -1.0)
    else:
        angle = side_sign(spec.direction) * np.pi / 2
    duration = ctx.vary(1.3, 0.12) * (1.35 if spec.direction == "around" else 1.0) / _tempo(spec)
    start = 0.2
    t = ctx.timeline(start + duration + 0.35)
    tr = Track(t)
    tr.yaw = angle * ramp(t, start, duration)
    steps = max(2, int(round(abs(angle) / 0.55)))
    _step_in_place(tr, start, duration, steps, "left" if angle > 0 else "right", ctx.vary(0.5, 0.15))
    lead = pulse(t, start - 0.1, duration * 0.8)
    tr.head(turn=np.sign(angle) * 0.35 * lead)
    tr.torso(twist=np.sign(angle) * 0.12 * lead)
    return tr.segment()


def spin(ctx: Context, spec: ActionSpec) -> Segment:
    """Full turns with the arms held out; clockwise (seen from above) is a right turn."""
    sign = -1.0 if spec.direction == "clockwise" else 1.0
    per_turn = ctx.vary(1.25, 0.12)
    duration = per_turn * spec.count
    start = 0.45
    t = ctx.timeline(start + duration + 0.6)
    tr = Track(t)
    tr.yaw = sign * 2 * np.pi * spec.count * ramp(t, start, duration)
    arms = window(t, 0.0, t[-1], 0.45)
    tr.both_arms(abduct=arms * ctx.vary(1.3, 0.1), elbow=arms * 0.15)
    steps = max(3, int(round(duration / 0.33)))
    _step_in_place(tr, start, duration, steps, "left" if sign > 0 else "right", ctx.vary(0.55, 0.15))
    tr.head(turn=sign * 0.25 * window(t, start, start + duration, 0.2))
    return tr.segment()


# --- legs ------------------------------------------------------------------------------------------------

def kick(ctx: Context, spec: ActionSpec) -> Segment:
    kicker, stance = spec.side, other(spec.side)
    period = ctx.vary(1.0, 0.1)
    height = ctx.vary(1.25, 0.12)
    keys: list[tuple[float, dict]] = [(0.0, {})]
    now = 0.25
    for _ in range(spec.count):
        keys += [(now, {}), (now + 0.35 * period, {"hip": 0.9, "knee": 1.5, "bend": -0.05, "arm": 0.3}),
                 (now + 0.55 * period, {"hip": height, "knee": 0.1, "ankle": -0.45, "bend": -0.25,
                                        "arm": 0.5}),
                 (now + 0.72 * period, {"hip": 0.85, "knee": 1.3, "bend": -0.1, "arm": 0.35}),
                 (now + period, {})]
        now += period + ctx.uniform(0.15, 0.4)
    t = ctx.timeline(now + 0.2)
    tr = Track(t)
    c = _curves(t, keys)
    tr.leg(kicker, flex=c["hip"], knee=c["knee"], ankle=c["ankle"], flat_foot=False)
    active = window(t, 0.1, t[-1] - 0.1, 0.3)
    tr.leg(stance, knee=0.15 * active, flex=0.08 * active)
    tr.support_on(stance, active > 0.01)
    tr.torso(bend=c["bend"])
    tr.arm(stance, flex=c["arm"], elbow=0.4 * active)
    tr.arm(kicker, abduct=0.45 * active, flex=-0.5 * c["arm"])
    return tr.segment()


def squat(ctx: Context, spec: ActionSpec) -> Segment:
    period = ctx.vary(1.6, 0.1) / _tempo(spec)
    depth = ctx.vary(1.0, 0.1)
    low = {"hip": 1.55 * depth, "knee": 2.0 * depth, "bend": 0.45 * depth, "arm": 1.3}
    keys: list[tuple[float, dict]] = [(0.0, {})]
    now = 0.25
    for _ in range(spec.count):
        keys += [(now, {}), (now + 0.42 * period, low), (now + 0.58 * period, low), (now + period, {})]
        now += period + ctx.uniform(0.05, 0.3)
    t = ctx.timeline(now + 0.15)
    tr = Track(t)
    c = _curves(t, keys)
    tr.both_legs(flex=c["hip"], knee=c["knee"], abduct=0.15 * c["knee"] / 2.0)
    tr.torso(bend=c["bend"])
    tr.both_arms(flex=c["arm"], elbow=0.1 * c["arm"])
    return tr.segment()


def sit(ctx: Context, spec: ActionSpec) -> Segment:
    """Sits down on the ground and stays seated (the only action that does not end standing)."""
    tempo = _tempo(spec)
    lower = ctx.vary(1.1, 0.1) / tempo
    settle = ctx.vary(0.8, 0.1) / tempo
    hold = ctx.uniform(0.6, 1.6)
    t = ctx.timeline(0.2 + lower + settle + hold)
    tr = Track(t)
    crouch = {"hip": 1.45, "knee": 1.9, "bend": 0.45, "arm": 0.9, "elbow": 0.3}
    seated = {"hip": ctx.vary(2.2, 0.05), "knee": ctx.vary(2.45, 0.04), "bend": -0.1, "arm": -0.45,
              "abduct": 0.2, "elbow": 0.1, "spread": 0.15}
    c = _curves(t, [(0.2, {}), (0.2 + lower, crouch), (0.2 + lower + settle, seated)])
    tr.both_legs(flex=c["hip"], knee=c["knee"], abduct=c["spread"])
    tr.torso(bend=c["bend"])
    tr.both_arms(flex=c["arm"], abduct=c["abduct"], elbow=c["elbow"])
    return tr.segment()


# --- arms ------------------------------------------------------------------------------------------------

def _arm_sides(side: str) -> tuple[str, ...]:
    return ("left", "right") if side == "both" else (side,)


def wave(ctx: Context, spec: ActionSpec) -> Segment:
    rate = ctx.vary(1.8, 0.1) * _tempo(spec)
    waving = max(ctx.duration(1.6, 3.2), 3.0 / rate)
    rise = ctx.vary(0.6, 0.15)
    t = ctx.timeline(0.2 + rise + waving + rise + 0.2)
    tr = Track(t)
    up = window(t, 0.2, t[-1] - 0.2, rise)
    waving_window = window(t, 0.2 + 0.6 * rise, t[-1] - 0.2 - 0.6 * rise, 0.3)
    swing = np.sin(2 * np.pi * rate * (t - 0.2 - rise)) * waving_window
    amplitude = ctx.vary(0.35, 0.15)
    height = ctx.vary(1.6, 0.08)
    for k, arm in enumerate(_arm_sides(spec.side)):
        phase = swing if k == 0 else -swing
        tr.arm(arm, abduct=up * height + 0.06 * phase, twist=up * 1.45, elbow=up * 1.3 + amplitude * phase)
    if spec.side != "both":
        tr.torso(lean=-side_sign(spec.side) * 0.05 * up)
        tr.head(turn=side_sign(spec.side) * 0.15 * up)
    return tr.segment()


def raise_arm(ctx: Context, spec: ActionSpec) -> Segment:
    period = ctx.vary(2.2, 0.1)
    keys: list[tuple[float, dict]] = [(0.0, {})]
    now = 0.2
    top = {"flex": ctx.vary(2.85, 0.04), "shrug": 0.25, "elbow": -0.15}
    for _ in range(spec.count):
        keys += [(now, {}), (now + 0.38 * period, top), (now + 0.62 * period, top), (now + period, {})]
        now += period + ctx.uniform(0.05, 0.3)
    t = ctx.timeline(now + 0.15)
    tr = Track(t)
    c = _curves(t, keys)
    for arm in _arm_sides(spec.side):
        tr.arm(arm, flex=c["flex"], shrug=c["shrug"], elbow=c["elbow"])
    if spec.side != "both":
        tr.torso(lean=-side_sign(spec.side) * 0.05 * c["flex"] / 2.85)
    return tr.segment()


def clap(ctx: Context, spec: ActionSpec) -> Segment:
    rise = ctx.vary(0.55, 0.1)
    period = ctx.vary(0.5, 0.12)
    t = ctx.timeline(0.2 + rise + period * spec.count + 0.15 + rise + 0.2)
    tr = Track(t)
    ready = window(t, 0.2, t[-1] - 0.2, rise)
    hands = np.zeros_like(t)
    for k in range(spec.count):
        hands += pulse(t, 0.2 + rise + k * period, period)
    tr.both_arms(flex=ready * ctx.vary(0.8, 0.1), adduct=-0.15 * ready + 0.45 * hands, elbow=ready * 1.4,
                 twist=-ready * 0.3)
    tr.head(nod=0.1 * ready)
    return tr.segment()


def punch(ctx: Context, spec: ActionSpec) -> Segment:
    rise = ctx.vary(0.5, 0.1)
    period = ctx.vary(0.6, 0.12)
    guard = {"flex": 0.55, "adduct": 0.35, "elbow": 2.1}
    strike = {"flex": 1.5, "adduct": 0.15, "elbow": 0.05, "twist": -0.35}
    keys: list[tuple[float, dict]] = [(0.0, {}), (0.2, {}), (0.2 + rise, guard)]
    now = 0.2 + rise + 0.1
    for _ in range(spec.count):
        keys += [(now, guard), (now + 0.4 * period, strike), (now + period, guard)]
        now += period + ctx.uniform(0.05, 0.3)
    keys.append((now + rise, {}))
    t = ctx.timeline(now + rise + 0.2)
    tr = Track(t)
    c = _curves(t, keys)
    puncher, guarding = spec.side, other(spec.side)
    tr.arm(puncher, flex=c["flex"], adduct=c["adduct"], elbow=c["elbow"])
    on_guard = window(t, 0.2, now + rise, rise)
    tr.arm(guarding, flex=0.55 * on_guard, adduct=0.35 * on_guard, elbow=2.1 * on_guard)
    tr.torso(twist=side_sign(puncher) * c["twist"])
    tr.both_legs(knee=0.15 * on_guard, flex=0.08 * on_guard)
    return tr.segment()


def throw(ctx: Context, spec: ActionSpec) -> Segment:
    """Overhand throw: wind up with the arm cocked behind the head, whip it forward, follow through."""
    thrower, lead = spec.side, other(spec.side)
    period = ctx.vary(1.7, 0.1)
    keys: list[tuple[float, dict]] = [(0.0, {})]
    now = 0.2
    for _ in range(spec.count):
        keys += [(now, {}),
                 (now + 0.42 * period, {"abduct": 1.5, "twist": 1.3, "elbow": 1.6, "flex": -0.2, "turn": 0.55,
                                        "bend": -0.15, "step": 0.3}),
                 (now + 0.58 * period, {"flex": 2.4, "abduct": 0.3, "twist": 0.3, "elbow": 0.3, "turn": -0.3,
                                        "bend": 0.25, "step": 0.3}),
                 (now + 0.72 * period, {"flex": 0.9, "adduct": 0.7, "elbow": 0.3, "turn": -0.5, "bend": 0.45,
                                        "step": 0.25}),
                 (now + period, {})]
        now += period + ctx.uniform(0.1, 0.4)
    t = ctx.timeline(now + 0.15)
    tr = Track(t)
    c = _curves(t, keys)
    tr.arm(thrower, flex=c["flex"], abduct=c["abduct"], adduct=c["adduct"], twist=c["twist"],
           elbow=c["elbow"])
    tr.arm(lead, flex=0.6 * c["step"] / 0.3, elbow=0.5 * c["step"] / 0.3)
    tr.torso(twist=side_sign(thrower) * c["turn"], bend=c["bend"])
    tr.leg(lead, flex=c["step"], knee=0.3 * c["step"])
    tr.leg(thrower, knee=0.2 * c["step"])
    return tr.segment()


# --- whole body ------------------------------------------------------------------------------------------

def bow(ctx: Context, spec: ActionSpec) -> Segment:
    period = ctx.vary(2.1, 0.1)
    depth = ctx.vary(1.0, 0.12)
    low = {"bend": 0.85 * depth, "tilt": 0.35 * depth, "nod": 0.3, "arm": 1.15 * depth}
    keys: list[tuple[float, dict]] = [(0.0, {})]
    now = 0.25
    for _ in range(spec.count):
        keys += [(now, {}), (now + 0.4 * period, low), (now + 0.6 * period, low), (now + period, {})]
        now += period + ctx.uniform(0.05, 0.35)
    t = ctx.timeline(now + 0.15)
    tr = Track(t)
    c = _curves(t, keys)
    tr.pelvis(tilt=c["tilt"])
    tr.torso(bend=c["bend"])
    tr.head(nod=c["nod"])
    tr.both_arms(flex=c["arm"])
    return tr.segment()


def stretch(ctx: Context, spec: ActionSpec) -> Segment:
    """Reach both arms overhead rising onto the toes, bend to one side and the other, come back down."""
    up = {"flex": ctx.vary(2.95, 0.03), "shrug": 0.3, "bend": -0.15, "toes": -0.35}
    first = 1.0 if ctx.rng.random() < 0.5 else -1.0
    lean = ctx.uniform(0.2, 0.45)
    keys: list[tuple[float, dict]] = [
        (0.0, {}), (0.2, {}), (1.2, up), (1.7, up), (2.5, {**up, "lean": first * lean}),
        (3.3, {**up, "lean": -first * lean}), (4.0, up), (5.0, {}),
    ]
    t = ctx.timeline(5.2)
    tr = Track(t)
    c = _curves(t, keys)
    tr.both_arms(flex=c["flex"], shrug=c["shrug"])
    tr.torso(bend=c["bend"], lean=c["lean"])
    tr.both_legs(ankle=c["toes"])
    return tr.segment()


def dance(ctx: Context, spec: ActionSpec) -> Segment:
    """Bouncing on the knees to a beat, swaying side to side with bent arms swinging."""
    beat = ctx.vary(1.6, 0.08) * _tempo(spec)
    t = ctx.timeline(ctx.duration(3.5, 6.5))
    tr = Track(t)
    env = window(t, 0.0, t[-1], 0.5)
    phase = 2 * np.pi * beat * t
    sway = np.sin(0.5 * phase)
    bounce = 0.5 - 0.5 * np.cos(phase)
    tr.both_legs(knee=env * (0.15 + 0.25 * bounce), flex=env * (0.08 + 0.12 * bounce))
    for side in ("left", "right"):
        s = side_sign(side)
        tr.leg(side, abduct=env * 0.12 * np.maximum(0.0, s * sway))
        tr.arm(side, flex=env * (0.75 + 0.35 * s * sway), abduct=env * 0.4, elbow=env * 1.4,
               adduct=env * 0.25 * s * sway)
    tr.pelvis(roll=env * 0.08 * sway)
    tr.torso(lean=env * 0.12 * sway, twist=env * 0.15 * sway)
    tr.head(nod=env * 0.08 * bounce)
    return tr.segment()


# --- registry --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """An action family: its program and the attribute values a spec may take (empty: not applicable)."""

    name: str
    generate: Callable[[Context, ActionSpec], Segment]
    directions: tuple[str, ...] = ()
    speeds: tuple[str, ...] = ()
    sides: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()
    body_part: str = "body"  # what moves: legs, leg (one), arms, arm (one, or both with side "both"), ...
    ends_standing: bool = True

    def sample(self, rng: np.random.Generator) -> ActionSpec:
        """A spec with every applicable attribute drawn uniformly."""
        def pick(values: tuple):
            return values[int(rng.integers(len(values)))] if values else None

        return ActionSpec(self.name, direction=pick(self.directions), speed=pick(self.speeds),
                          side=pick(self.sides), count=pick(self.counts))

    def all_specs(self) -> list[ActionSpec]:
        """Every attribute combination of the family."""
        return [ActionSpec(self.name, direction=d, speed=v, side=s, count=c)
                for d in self.directions or (None,) for v in self.speeds or (None,)
                for s in self.sides or (None,) for c in self.counts or (None,)]

    def check(self, spec: ActionSpec) -> None:
        for attr, allowed in (("direction", self.directions), ("speed", self.speeds), ("side", self.sides),
                              ("count", self.counts)):
            value = getattr(spec, attr)
            if (value is None) != (not allowed) or (value is not None and value not in allowed):
                raise ValueError(f"{self.name}: {attr}={value!r} not allowed "
                                 f"(choose from {allowed or 'None'})")


ARM_SIDES = ("left", "right", "both")
_FAMILY_LIST = (
    Family("walk", walk, directions=("forward", "backward", "left", "right"), speeds=SPEEDS,
           body_part="legs"),
    Family("run", run, directions=("forward", "left", "right"), speeds=SPEEDS, body_part="legs"),
    Family("jump", jump, directions=("in_place", "forward", "backward", "left", "right"), counts=(1, 2, 3),
           body_part="legs"),
    Family("hop", hop, directions=("in_place", "forward"), sides=("left", "right"), counts=(1, 2, 3),
           body_part="leg"),
    Family("sidestep", sidestep, directions=("left", "right"), speeds=SPEEDS, counts=(1, 2, 3),
           body_part="legs"),
    Family("turn", turn, directions=("left", "right", "around"), speeds=SPEEDS),
    Family("spin", spin, directions=("clockwise", "counterclockwise"), counts=(1, 2)),
    Family("kick", kick, sides=("left", "right"), counts=(1, 2, 3), body_part="leg"),
    Family("punch", punch, sides=("left", "right"), counts=(1, 2, 3), body_part="arm"),
    Family("throw", throw, sides=("left", "right"), counts=(1, 2), body_part="arm"),
    Family("wave", wave, sides=ARM_SIDES, speeds=SPEEDS, body_part="arm"),
    Family("raise_arm", raise_arm, sides=ARM_SIDES, counts=(1, 2, 3), body_part="arm"),
    Family("clap", clap, counts=(1, 2, 3), body_part="arms"),
    Family("squat", squat, speeds=SPEEDS, counts=(1, 2, 3), body_part="legs"),
    Family("sit", sit, speeds=SPEEDS, ends_standing=False),
    Family("bow", bow, counts=(1, 2), body_part="torso"),
    Family("crawl", crawl, directions=("forward", "backward"), speeds=SPEEDS),
    Family("stretch", stretch, body_part="arms"),
    Family("dance", dance, speeds=SPEEDS),
    Family("stumble", stumble, directions=("forward", "backward")),
)
FAMILIES: dict[str, Family] = {family.name: family for family in _FAMILY_LIST}


def generate_action(ctx: Context, spec: ActionSpec) -> Segment:
    """The program of ``spec`` (validated against its family's attributes)."""
    if spec.family not in FAMILIES:
        raise KeyError(f"unknown action family {spec.family!r}; known: {sorted(FAMILIES)}")
    family = FAMILIES[spec.family]
    family.check(spec)
    return family.generate(ctx, spec)

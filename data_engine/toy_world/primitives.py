"""Building blocks of the action programs: smooth time curves and a ``Track`` of role angles.

A ``Track`` holds, for one action, the per-frame angles of every body role plus the root program (heading,
airborne height, prescribed velocity). Its helpers take anatomical angles (flexion, abduction, ...) for a
named side and write the joint angles with the right signs, so an action is written once and mirrors to
the other side by changing ``side``. All helpers *add* to what is there, so programs can be layered
(a base posture, the action, breathing).

Sign conventions (radians; body frame y up, +z forward, +x left):

* legs: ``flex`` swings the thigh forward, ``abduct`` out to the side, ``knee`` bends the knee, ``ankle``
  lifts the toes (dorsiflexion); with ``flat_foot`` the sole stays parallel to the pelvis.
* arms: ``flex`` raises the arm forward (pi = straight up), ``abduct`` out to the side, ``adduct`` swings a
  forward-raised arm toward the midline, ``twist`` turns the arm about its long axis before anything
  else (so elbow bending points sideways), ``elbow`` bends the elbow, ``shrug`` lifts the collar bone.
* torso: ``bend`` forward, ``lean`` to the left, ``twist`` to the left; head: ``nod`` down, ``turn`` left.
* pelvis: ``tilt`` forward, ``roll`` (left hip down), ``twist`` left; with ``keep_legs`` the hips
  counter-rotate so the legs keep their direction in the world.
* heading: positive yaw turns left (counterclockwise seen from above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from data_engine.toy_world.kinematics import ROLE_INDEX, ROLES, SUPPORT_LEFT, SUPPORT_RIGHT

SIDES = ("left", "right")


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero slope at both ends (clipped outside [0, 1])."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def ramp(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """Smooth step from 0 (before ``start``) to 1 (after ``start + duration``)."""
    return smoothstep((t - start) / max(duration, 1e-6))


def window(t: np.ndarray, start: float, end: float, rise: float, fall: float | None = None) -> np.ndarray:
    """1 between ``start + rise`` and ``end - fall``, smooth ramps at both sides, 0 outside."""
    fall = rise if fall is None else fall
    return ramp(t, start, rise) * (1.0 - ramp(t, end - fall, fall))


def pulse(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """A smooth bump ``sin^2`` from 0 to 1 and back over ``[start, start + duration]``."""
    x = np.clip((t - start) / max(duration, 1e-6), 0.0, 1.0)
    return np.sin(np.pi * x) ** 2


def keyframes(t: np.ndarray, times, values) -> np.ndarray:
    """Shape-preserving (PCHIP) interpolation through ``(times, values)``, held constant outside.

    ``values`` is ``[K]`` or ``[K, C]`` (C channels sharing the key times); the result is ``[T]`` or
    ``[T, C]``. Of keys at the same time, the first is kept.
    """
    times = np.asarray(times, float)
    values = np.asarray(values, float)
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    keep = np.concatenate([[True], np.diff(times) > 1e-9])
    times, values = times[keep], values[keep]
    if len(times) == 1:
        return np.broadcast_to(values[0], t.shape + values.shape[1:]).astype(float)
    curve = PchipInterpolator(times, values, axis=0, extrapolate=False)(np.clip(t, times[0], times[-1]))
    return np.asarray(curve, float)


def side_sign(side: str) -> float:
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return 1.0 if side == "left" else -1.0


def other(side: str) -> str:
    return "right" if side == "left" else "left"


@dataclass
class Segment:
    """The program of one action (or a sequence of actions): per-frame role angles and root program."""

    angles: np.ndarray  # [T, R, 4] (twist, x, z, y) per role
    yaw: np.ndarray  # [T] heading change from the segment's start (rad, + = left)
    lift: np.ndarray  # [T] airborne height (toy metres)
    velocity: np.ndarray  # [T, 2] prescribed (x, z) velocity in the heading frame (toy metres/s)
    driven: np.ndarray  # [T] bool: follow ``velocity`` instead of the floor contact
    support: np.ndarray  # [T] int8: which foot carries the body (kinematics.SUPPORT_*)

    @property
    def frames(self) -> int:
        return len(self.yaw)

    @staticmethod
    def concatenate(parts: list[Segment]) -> Segment:
        """Play ``parts`` one after another; each part's heading continues from where the last ended."""
        yaws, offset = [], 0.0
        for part in parts:
            yaws.append(part.yaw + offset)
            offset = yaws[-1][-1]
        return Segment(
            angles=np.concatenate([p.angles for p in parts]),
            yaw=np.concatenate(yaws),
            lift=np.concatenate([p.lift for p in parts]),
            velocity=np.concatenate([p.velocity for p in parts]),
            driven=np.concatenate([p.driven for p in parts]),
            support=np.concatenate([p.support for p in parts]),
        )


class Track:
    """Role angles and root program being written for one action over the time axis ``t`` (seconds)."""

    def __init__(self, t: np.ndarray) -> None:
        self.t = t
        frames = len(t)
        self.angles = np.zeros((frames, len(ROLES), 4))
        self.yaw = np.zeros(frames)
        self.lift = np.zeros(frames)
        self.velocity = np.zeros((frames, 2))
        self.driven = np.zeros(frames, dtype=bool)
        self.support = np.zeros(frames, dtype=np.int8)

    def _add(self, role: str, twist=0.0, x=0.0, z=0.0, y=0.0) -> None:
        column = self.angles[:, ROLE_INDEX[role]]
        column[:, 0] += twist
        column[:, 1] += x
        column[:, 2] += z
        column[:, 3] += y

    def _add_sided(self, role: str, side: str, twist=0.0, x=0.0, z=0.0, y=0.0) -> None:
        """Left-side angles, mirrored for the right side (twist, z and y change sign)."""
        s = side_sign(side)
        self._add(f"{side}_{role}", twist=s * np.asarray(twist), x=x, z=s * np.asarray(z),
                  y=s * np.asarray(y))

    def leg(self, side: str, *, flex=0.0, abduct=0.0, knee=0.0, ankle=0.0, twist=0.0,
            flat_foot: bool = True) -> None:
        self._add_sided("hip", side, twist=twist, x=-np.asarray(flex), z=abduct)
        self._add_sided("knee", side, x=knee)
        dorsi = np.asarray(ankle) + (np.asarray(knee) - np.asarray(flex) if flat_foot else 0.0)
        self._add_sided("ankle", side, x=-dorsi)

    def arm(self, side: str, *, flex=0.0, abduct=0.0, adduct=0.0, twist=0.0, elbow=0.0, shrug=0.0) -> None:
        self._add_sided("shoulder", side, twist=twist, x=-np.asarray(flex), z=abduct, y=-np.asarray(adduct))
        self._add_sided("elbow", side, x=-np.asarray(elbow))
        self._add_sided("collar", side, z=shrug)

    def torso(self, *, bend=0.0, lean=0.0, twist=0.0) -> None:
        self._add("spine", x=bend, z=-np.asarray(lean), y=twist)

    def head(self, *, nod=0.0, turn=0.0) -> None:
        self._add("neck", x=nod, y=turn)

    def pelvis(self, *, tilt=0.0, roll=0.0, twist=0.0, keep_legs: bool = True) -> None:
        self._add("pelvis", x=tilt, z=roll, y=twist)
        if keep_legs:
            for side in SIDES:
                self._add(f"{side}_hip", x=-np.asarray(tilt), z=-np.asarray(roll), y=-np.asarray(twist))

    def both_legs(self, **angles) -> None:
        for side in SIDES:
            self.leg(side, **angles)

    def both_arms(self, **angles) -> None:
        for side in SIDES:
            self.arm(side, **angles)

    def support_on(self, side: str, where: np.ndarray) -> None:
        """The ``side`` foot carries the body (and stays planted) on the frames where ``where`` is true."""
        self.support[where] = SUPPORT_LEFT if side_sign(side) > 0 else SUPPORT_RIGHT

    def segment(self) -> Segment:
        return Segment(self.angles, self.yaw, self.lift, self.velocity, self.driven, self.support)

"""Left/right mirroring of motions and captions, as HumanML3D builds its ``M``-prefixed clips.

HumanML3D mirrors the raw joint positions (negate x, swap left and right joints) and runs the mirrored
clip through the same feature extraction; the captions of ``M`` clips swap the words left and right.
Every step of the extraction is mirror-equivariant except the retargeting, so ``mirror_features`` (which
mirrors the feature vector directly) equals the features of the mirrored *processed* clip up to float
rounding. HumanML3D's own ``M`` clips are retargeted after mirroring, and the target skeleton is slightly
asymmetric (the scale also comes from the right leg only), so re-extracting a mirrored clip differs from
``mirror_features``: on clip 012314 by up to 5 mm in root height, 8 cm in RIC and 0.12 in rot6d, mostly
because upstream's quirky facing direction is sensitive to the left/right bone-length difference.
Mirroring twice is the identity for every function here.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from models.motion.layout import feature_layout
from models.motion.quaternion import Array, is_torch
from models.motion.skeleton import SkeletonSpec


def mirror_joints(joints: Array, skeleton: SkeletonSpec) -> Array:
    """Mirror joint positions ``[..., J, 3]`` across the y-z plane: negate x, swap left/right joints."""
    if joints.shape[-2:] != (skeleton.joints_num, 3):
        raise ValueError(f"expected [..., {skeleton.joints_num}, 3] joints for skeleton {skeleton.name!r}, "
                         f"got {tuple(joints.shape)}")
    sign = np.array([-1.0, 1.0, 1.0])
    return _gather_and_sign(joints, np.asarray(skeleton.mirror_permutation), sign, axis=-2)


@cache
def _feature_mirror(skeleton: SkeletonSpec) -> tuple[np.ndarray, np.ndarray]:
    """Source column and sign of every output column of the mirrored feature vector."""
    layout = feature_layout(skeleton.joints_num)
    perm = np.asarray(skeleton.mirror_permutation)
    index = np.arange(layout.dim)
    sign = np.ones(layout.dim)

    sign[layout.root_rot_vel] = -1.0  # yaw turns the other way
    sign[layout.root_lin_vel.start] = -1.0  # x of the (x, z) root velocity

    def per_joint(segment: slice, joints: np.ndarray, width: int, joint_sign: np.ndarray) -> None:
        block = np.arange(segment.start, segment.stop).reshape(-1, width)
        index[segment] = block[joints].ravel()
        sign[segment] = np.tile(joint_sign, len(joints))

    xyz = np.array([-1.0, 1.0, 1.0])
    non_root = perm[1:] - 1  # ric/rot6d rows hold joints 1..J-1
    per_joint(layout.ric, non_root, 3, xyz)
    # R -> M R M with M = diag(-1, 1, 1): column 0 becomes (x, -y, -z), column 1 becomes (-x, y, z).
    per_joint(layout.rot6d, non_root, 6, np.array([1.0, -1.0, -1.0, -1.0, 1.0, 1.0]))
    per_joint(layout.local_vel, perm, 3, xyz)
    # foot contacts are (left ankle, left toe, right ankle, right toe)
    index[layout.foot_contact] = layout.foot_contact.start + np.array([2, 3, 0, 1])
    return index, sign


def mirror_features(features: Array, skeleton: SkeletonSpec) -> Array:
    """Features ``[..., D]`` of the mirrored motion, computed directly from the features."""
    index, sign = _feature_mirror(skeleton)
    if features.shape[-1] != len(index):
        raise ValueError(f"expected {len(index)} features for skeleton {skeleton.name!r}, "
                         f"got {features.shape[-1]}")
    return _gather_and_sign(features, index, sign, axis=-1)


def _gather_and_sign(x: Array, index: np.ndarray, sign: np.ndarray, axis: int) -> Array:
    if is_torch(x):
        import torch

        picked = torch.index_select(x, axis % x.ndim, torch.as_tensor(index, device=x.device))
        return picked * torch.as_tensor(sign, dtype=x.dtype, device=x.device)
    return np.take(x, index, axis=axis) * sign.astype(x.dtype)


# --- captions --------------------------------------------------------------------------------------------

_SIDE_WORDS = re.compile(r"\b(left|right)(wards?|most)?\b", re.IGNORECASE)
_TURN_WORDS = re.compile(r"\b((?:counter|anti)-?clockwise|clockwise)\b", re.IGNORECASE)


def _with_case_of(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def mirror_caption(text: str, *, swap_turn_direction: bool = False) -> str:
    """Swap left <-> right (also leftward(s)/rightmost...), keeping case, punctuation and ``/POS`` tags.

    This is the substitution behind HumanML3D's mirrored captions, so "right" is swapped even where it
    means "correct" ("right away"). ``swap_turn_direction`` additionally swaps clockwise <->
    counterclockwise (anticlockwise and counter-clockwise become clockwise, so only the plain spellings
    round-trip exactly); HumanML3D's captions do not do that.
    """
    def swap_side(match: re.Match[str]) -> str:
        side = "right" if match.group(1).lower() == "left" else "left"
        return _with_case_of(match.group(1), side) + (match.group(2) or "")

    text = _SIDE_WORDS.sub(swap_side, text)
    if swap_turn_direction:
        def swap_turn(match: re.Match[str]) -> str:
            word = match.group(1)
            if word.lower() == "clockwise":
                return _with_case_of(word, "counterclockwise")
            return _with_case_of(word, "clockwise")

        text = _TURN_WORDS.sub(swap_turn, text)
    return text

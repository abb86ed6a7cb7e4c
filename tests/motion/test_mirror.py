"""Mirroring: involution, agreement between joint- and feature-space mirroring, captions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.motion.layout import feature_layout
from models.motion.mirror import mirror_caption, mirror_features, mirror_joints
from models.motion.representation import process_motion, recover_from_ric
from models.motion.skeleton import HUMANML3D_SKELETON, KIT_SKELETON, SkeletonSpec


def symmetric(skeleton: SkeletonSpec) -> SkeletonSpec:
    """The skeleton with left and right bones of equal length (HumanML3D's target is slightly asymmetric)."""
    perm = list(skeleton.mirror_permutation)
    offsets = (skeleton.target_offsets + skeleton.target_offsets[perm] * np.float32([-1, 1, 1])) / 2
    return dataclasses.replace(skeleton, target_offsets=offsets.astype(np.float32))


def test_mirror_joints_negates_x_and_swaps_sides(motion_repr):
    joints = motion_repr["reference_new_joints"]
    mirrored = mirror_joints(joints, HUMANML3D_SKELETON)
    np.testing.assert_array_equal(mirrored[:, 1], joints[:, 2] * [-1, 1, 1])  # left hip <- right hip
    np.testing.assert_array_equal(mirrored[:, 15], joints[:, 15] * [-1, 1, 1])  # head stays
    np.testing.assert_array_equal(mirror_joints(mirrored, HUMANML3D_SKELETON), joints)
    as_torch = mirror_joints(torch.from_numpy(joints)[None], HUMANML3D_SKELETON)
    np.testing.assert_array_equal(as_torch[0].numpy(), mirrored)


@pytest.mark.parametrize("skeleton", [HUMANML3D_SKELETON, KIT_SKELETON], ids=lambda s: s.name)
def test_mirror_features_is_an_involution(skeleton):
    features = np.random.default_rng(0).normal(size=(3, 9, skeleton.feature_dim)).astype(np.float32)
    np.testing.assert_array_equal(mirror_features(mirror_features(features, skeleton), skeleton), features)
    as_torch = mirror_features(torch.from_numpy(features), skeleton)
    np.testing.assert_array_equal(as_torch.numpy(), mirror_features(features, skeleton))


def test_feature_mirroring_commutes_with_recovery(motion_repr):
    features = motion_repr["features"]
    np.testing.assert_allclose(recover_from_ric(mirror_features(features, HUMANML3D_SKELETON), 22),
                               mirror_joints(recover_from_ric(features, 22), HUMANML3D_SKELETON), atol=1e-6)


@pytest.mark.parametrize("skeleton", [HUMANML3D_SKELETON, KIT_SKELETON], ids=lambda s: s.name)
def test_feature_mirroring_equals_extraction_of_mirrored_joints(skeleton, motion_repr, make_synthetic_motion):
    """Exact up to rounding when the skeleton and the clip are left/right symmetric; HumanML3D's own target
    (and its leg-length scale, taken from the right leg) makes re-extracted M clips differ by millimetres."""
    skeleton = symmetric(skeleton)
    is_humanml3d = skeleton.joints_num == 22
    raw = motion_repr["reference_new_joints"] if is_humanml3d else make_synthetic_motion(skeleton)
    clip = process_motion(raw, skeleton).global_positions  # now on the symmetric skeleton
    features = process_motion(clip, skeleton).features
    mirrored = process_motion(mirror_joints(clip, skeleton), skeleton).features
    direct = mirror_features(features, skeleton)
    scale = 1000.0 if skeleton.unit == "mm" else 1.0
    layout = feature_layout(skeleton.joints_num)
    for name, segment in layout.segments().items():
        tolerance = 1e-4 * (scale if name in ("root_y", "root_lin_vel", "ric", "local_vel") else 1.0)
        np.testing.assert_allclose(direct[:, segment], mirrored[:, segment], atol=tolerance, err_msg=name)


@pytest.mark.parametrize("text, expected", [
    ("a person turns left", "a person turns right"),
    ("A man waves his right hand, then his LEFT hand.", "A man waves his left hand, then his RIGHT hand."),
    ("Left foot kicks to the rightmost side", "Right foot kicks to the leftmost side"),
    ("steps leftwards and right-handed throw", "steps rightwards and left-handed throw"),
    ("a/DET person/NOUN raise/VERB left/ADJ hand/NOUN", "a/DET person/NOUN raise/VERB right/ADJ hand/NOUN"),
    ("the lefty bright wrighter", "the lefty bright wrighter"),
])
def test_mirror_caption(text, expected):
    assert mirror_caption(text) == expected
    assert mirror_caption(expected) == text


def test_mirror_caption_turn_direction_is_opt_in():
    text = "walks in a circle clockwise, then Counterclockwise to the left"
    assert mirror_caption(text) == "walks in a circle clockwise, then Counterclockwise to the right"
    swapped = mirror_caption(text, swap_turn_direction=True)
    assert swapped == "walks in a circle counterclockwise, then Clockwise to the right"
    assert mirror_caption(swapped, swap_turn_direction=True) == text

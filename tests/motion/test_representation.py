"""Feature extraction and recovery against upstream's golden outputs on HumanML3D clip 012314."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.common.errors import DataError
from models.motion.layout import feature_layout
from models.motion.representation import (
    forward_kinematics,
    inverse_kinematics,
    joints_to_features,
    process_motion,
    recover_from_ric,
    recover_from_rot,
    recover_root_rot_pos,
    retarget_to_skeleton,
)
from models.motion.skeleton import HUMANML3D_SKELETON, KIT_SKELETON

# fixtures/README.md: process_file vs the dataset's new_joint_vecs rows 0-168, per segment
DATASET_BOUNDS = {"root_rot_vel": 3.0e-4, "root_lin_vel": 1.4e-4, "root_y": 3.6e-7, "ric": 6.8e-3,
                  "rot6d": 1.32e-2, "local_vel": 4.1e-4, "foot_contact": 0.0}
LAYOUT = feature_layout(22)


def test_recover_from_ric_matches_dataset_joints(motion_repr, motion_samples_dir):
    features = np.load(motion_samples_dir / "new_joint_vecs_012314.npy")
    joints = np.load(motion_samples_dir / "new_joints_012314.npy")
    recovered = recover_from_ric(features, 22)
    assert recovered.dtype == np.float32 and recovered.shape == (170, 22, 3)
    np.testing.assert_allclose(recovered, joints, rtol=0, atol=1e-6)
    np.testing.assert_allclose(recovered, motion_repr["recover_from_ric_joints"], rtol=0, atol=1e-6)


def test_recover_numpy_and_torch_agree_with_batch_axes(motion_repr):
    features = motion_repr["features"]
    batch = np.stack([features, features[::-1].copy()]).reshape(2, 1, 170, 263)
    from_numpy = recover_from_ric(batch, 22)
    from_torch = recover_from_ric(torch.from_numpy(batch), 22)
    assert isinstance(from_torch, torch.Tensor) and from_torch.shape == (2, 1, 170, 22, 3)
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(from_torch[0, 0].numpy(), motion_repr["reference_new_joints"])
    rot_quat, root_pos = recover_root_rot_pos(torch.from_numpy(features))
    np.testing.assert_allclose(rot_quat.numpy(), motion_repr["recover_root_rot_quat"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(root_pos.numpy(), motion_repr["recover_root_pos"], rtol=0, atol=1e-6)


def test_recover_is_differentiable():
    features = torch.zeros(1, 8, 263, dtype=torch.float64, requires_grad=True)
    recover_from_ric(features, 22).sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert features.grad[..., LAYOUT.ric].abs().sum() > 0


def test_process_file_golden(motion_repr):
    processed = process_motion(motion_repr["process_file_input_joints"], HUMANML3D_SKELETON)
    expected = motion_repr["process_file_features"]
    assert processed.features.dtype == np.float32 and processed.features.shape == expected.shape == (169, 263)
    np.testing.assert_allclose(processed.features, expected, rtol=0, atol=1e-5)
    contacts = LAYOUT.foot_contact
    np.testing.assert_array_equal(processed.features[:, contacts], expected[:, contacts])
    np.testing.assert_allclose(processed.global_positions, motion_repr["process_file_global_positions"],
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(processed.ric_positions, motion_repr["process_file_ric_positions"],
                               rtol=0, atol=1e-5)


def test_features_match_dataset_within_documented_bounds(motion_repr):
    features = joints_to_features(motion_repr["reference_new_joints"], HUMANML3D_SKELETON)
    dataset = motion_repr["reference_new_joint_vecs"][:-1]
    for name, segment in LAYOUT.segments().items():
        error = np.abs(features[:, segment] - dataset[:, segment]).max()
        assert error <= DATASET_BOUNDS[name] * 1.05 + 1e-7, (name, error)


def test_float64_input_changes_features_only_slightly(motion_repr):
    joints = motion_repr["process_file_input_joints"]
    from32 = joints_to_features(joints, HUMANML3D_SKELETON)
    from64 = joints_to_features(joints.astype(np.float64), HUMANML3D_SKELETON)
    np.testing.assert_allclose(from64, from32, rtol=0, atol=1e-5)


def test_retargeting_keeps_bone_directions_and_takes_target_lengths(make_synthetic_motion):
    skeleton = HUMANML3D_SKELETON
    joints = make_synthetic_motion(skeleton) * np.float32(1.3)  # a taller person
    retargeted = retarget_to_skeleton(joints, skeleton)
    parents = np.array(skeleton.parents[1:])
    bones_in = joints[:, 1:] - joints[:, parents]
    bones_out = retargeted[:, 1:] - retargeted[:, parents]
    np.testing.assert_allclose(np.linalg.norm(bones_out, axis=-1),
                               np.broadcast_to(skeleton.bone_lengths[1:], bones_out.shape[:2]), atol=2e-6)
    norms = np.linalg.norm(bones_in, axis=-1) * np.linalg.norm(bones_out, axis=-1)
    cosine = (bones_in * bones_out).sum(-1) / norms
    assert cosine.min() > 1 - 1e-6
    np.testing.assert_allclose(retargeted[:, 0], joints[:, 0] / 1.3, rtol=1e-5)


def test_recovery_inverts_extraction(motion_repr):
    processed = process_motion(motion_repr["reference_new_joints"], HUMANML3D_SKELETON)
    recovered = recover_from_ric(processed.features, 22)
    np.testing.assert_allclose(recovered, processed.global_positions[:-1], rtol=0, atol=2e-5)
    by_rotation = recover_from_rot(processed.features, HUMANML3D_SKELETON)
    np.testing.assert_allclose(by_rotation, processed.global_positions[:-1], rtol=0, atol=1e-4)
    by_rotation_torch = recover_from_rot(torch.from_numpy(processed.features)[None], HUMANML3D_SKELETON)[0]
    np.testing.assert_allclose(by_rotation_torch.numpy(), by_rotation, rtol=0, atol=1e-5)


def test_inverse_then_forward_kinematics_round_trip(make_synthetic_motion):
    skeleton = HUMANML3D_SKELETON
    joints = make_synthetic_motion(skeleton)
    quats = inverse_kinematics(joints, skeleton, smooth_forward=True)
    rebuilt = forward_kinematics(quats, joints[:, 0], skeleton.target_offsets, skeleton)
    np.testing.assert_allclose(rebuilt, joints, rtol=0, atol=1e-5)


def test_kit_round_trip(make_synthetic_motion):
    joints = make_synthetic_motion(KIT_SKELETON, frames=60, seed=3)
    processed = process_motion(joints, KIT_SKELETON)
    assert processed.features.shape == (59, 251) and np.isfinite(processed.features).all()
    recovered = recover_from_ric(processed.features, 21)
    np.testing.assert_allclose(recovered, processed.global_positions[:-1], rtol=0, atol=0.05)  # millimetres
    parents = np.array(KIT_SKELETON.parents[1:])
    bones = np.linalg.norm(recovered[:, 1:] - recovered[:, parents], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(KIT_SKELETON.bone_lengths[1:], bones.shape), atol=0.05)


def test_facing_exactly_minus_z_is_defined():
    """KIT's rest pose faces -z; upstream's qbetween is 0/0 there. A standing clip must stay finite."""
    rest = np.broadcast_to(np.zeros((1, 3), np.float32), (5, 3)).copy()
    rest[:, 1] = 1000.0
    joints = forward_kinematics(np.tile(np.array([1.0, 0, 0, 0], np.float32), (5, 21, 1)), rest,
                                KIT_SKELETON.target_offsets, KIT_SKELETON)
    features = joints_to_features(joints, KIT_SKELETON)
    assert np.isfinite(features).all()
    heights = joints[0, :, 1] - joints[..., 1].min()
    np.testing.assert_allclose(recover_from_ric(features, 21)[0, :, 1], heights, atol=1e-3)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 21, 3)), "shape"),
    (np.zeros((1, 22, 3)), "at least 2 frames"),
    (np.full((4, 22, 3), np.nan), "frame 0"),
])
def test_bad_joint_arrays_are_rejected(bad, message):
    with pytest.raises(DataError, match=message):
        joints_to_features(bad, HUMANML3D_SKELETON)


def test_recover_rejects_wrong_width():
    with pytest.raises(ValueError, match="263"):
        recover_from_ric(np.zeros((5, 251), np.float32), 22)


def test_yaw_wrap_quirk_and_its_fix(make_synthetic_motion):
    """Turning past 180 degrees: upstream's features recover with a permanent heading error; the opt-in
    fix changes only root_rot_vel at the wrap frame and makes recovery exact."""
    joints = make_synthetic_motion(HUMANML3D_SKELETON, frames=120, turn=4.0)
    faithful = process_motion(joints, HUMANML3D_SKELETON)
    fixed = process_motion(joints, HUMANML3D_SKELETON, fix_yaw_wrap=True)
    rows, cols = np.nonzero(faithful.features != fixed.features)
    assert len(rows) > 0 and set(cols) == {0}
    target = faithful.global_positions[:-1]
    assert np.abs(recover_from_ric(faithful.features, 22) - target).max() > 0.05
    np.testing.assert_allclose(recover_from_ric(fixed.features, 22), target, rtol=0, atol=1e-5)

"""Skeleton constants (HumanML3D, KIT), the feature layout and feature-array validation."""

from __future__ import annotations

import numpy as np
import pytest

from data_engine.datasets.spec import get_dataset_spec
from models.common.errors import DataError
from models.motion.layout import check_features, feature_layout, joints_num_for_dim
from models.motion.skeleton import HUMANML3D_SKELETON, KIT_SKELETON, get_skeleton, parents_from_chains


def test_humanml3d_constants_match_fixture(motion_repr):
    s = HUMANML3D_SKELETON
    np.testing.assert_array_equal(s.target_offsets, motion_repr["tgt_offsets"])
    np.testing.assert_array_equal(s.raw_offsets, motion_repr["t2m_raw_offsets"])
    ends = np.cumsum(motion_repr["t2m_kinematic_chain_lens"])[:-1]
    chains = np.split(motion_repr["t2m_kinematic_chain_flat"], ends)
    assert s.kinematic_chain == tuple(tuple(int(j) for j in c) for c in chains)
    assert s.parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
    assert (s.l_idx1, s.l_idx2, s.fid_r, s.fid_l) == (5, 8, (8, 11), (7, 10))
    assert s.face_joint_indx == (2, 1, 17, 16)
    assert s.joint_names[s.fid_l[0]] == "left_ankle"
    assert s.joint_names[s.mirror_permutation[7]] == "right_ankle"


@pytest.mark.parametrize("skeleton", [HUMANML3D_SKELETON, KIT_SKELETON], ids=lambda s: s.name)
def test_skeleton_invariants(skeleton):
    j = skeleton.joints_num
    assert skeleton.raw_offsets.shape == skeleton.target_offsets.shape == (j, 3)
    assert len(skeleton.joint_names) == j
    assert sorted({k for chain in skeleton.kinematic_chain for k in chain}) == list(range(j))
    for chain in skeleton.kinematic_chain:  # every chain hangs off an already placed joint
        for parent, child in zip(chain[:-1], chain[1:]):
            assert skeleton.parents[child] == parent
    assert skeleton.parents.count(-1) == 1 and skeleton.parents[0] == -1
    perm = np.array(skeleton.mirror_permutation)
    np.testing.assert_array_equal(perm[perm], np.arange(j))
    # the rest directions mirror onto each other, so the representation is mirror-equivariant
    np.testing.assert_array_equal(skeleton.raw_offsets[perm], skeleton.raw_offsets * [-1, 1, 1])
    np.testing.assert_allclose(np.linalg.norm(skeleton.raw_offsets[1:], axis=-1), 1.0)
    assert sorted(perm[list(skeleton.fid_l)]) == sorted(skeleton.fid_r)
    assert (skeleton.bone_lengths[1:] > 0).all()
    spec = get_dataset_spec(skeleton.name)
    assert (spec.joints_num, spec.feature_dim, spec.fps) == (j, skeleton.feature_dim, skeleton.fps)
    assert feature_layout(j).dim == skeleton.feature_dim


def test_kit_constants():
    s = KIT_SKELETON
    assert s.joints_num == 21 and s.feature_dim == 251 and s.fps == 12.5 and s.unit == "mm"
    assert (s.l_idx1, s.l_idx2, s.fid_r, s.fid_l) == (17, 18, (14, 15), (19, 20))
    assert s.face_joint_indx == (11, 16, 5, 8)
    assert s.foot_threshold == 0.05


def test_get_skeleton_aliases():
    assert get_skeleton("t2m") is get_skeleton("HumanML3D") is HUMANML3D_SKELETON
    assert get_skeleton("kit") is KIT_SKELETON
    with pytest.raises(KeyError, match="unknown skeleton"):
        get_skeleton("smplx")


def test_parents_from_chains():
    assert parents_from_chains(((0, 1, 2), (1, 3)), 4) == (-1, 0, 1, 1)


@pytest.mark.parametrize("joints, slices", [
    (22, {"root_rot_vel": (0, 1), "root_lin_vel": (1, 3), "root_y": (3, 4), "ric": (4, 67),
          "rot6d": (67, 193), "local_vel": (193, 259), "foot_contact": (259, 263)}),
    (21, {"ric": (4, 64), "rot6d": (64, 184), "local_vel": (184, 247), "foot_contact": (247, 251)}),
])
def test_feature_layout(joints, slices):
    layout = feature_layout(joints)
    for name, (start, stop) in slices.items():
        assert (getattr(layout, name).start, getattr(layout, name).stop) == (start, stop)
    bounds = [(s.start, s.stop) for s in layout.segments().values()]
    assert bounds[0][0] == 0 and bounds[-1][1] == layout.dim
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert joints_num_for_dim(layout.dim) == joints


def test_check_features_accepts_good_array():
    array = np.zeros((7, 263), np.float32)
    assert check_features(array, 263, source="x.npy") is array


@pytest.mark.parametrize("array, message", [
    (np.zeros((5, 251)), r"x\.npy: expected 263 features per frame, got 251"),
    (np.zeros(263), r"x\.npy: expected a \[frames, 263\] feature array"),
    (np.zeros((0, 263)), r"x\.npy: motion has zero frames"),
])
def test_check_features_rejects_bad_shapes(array, message):
    with pytest.raises(DataError, match=message):
        check_features(array, 263, source="x.npy")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_check_features_names_first_bad_frame(value):
    array = np.zeros((10, 263), np.float32)
    array[6, 100] = value
    array[8, 3] = value
    expected = r"motions/000001\.npy: non-finite value .* at frame 6, feature 100"
    with pytest.raises(DataError, match=expected) as info:
        check_features(array, 263, source="motions/000001.npy")
    assert info.value.path == "motions/000001.npy"

"""Skeleton constants of HumanML3D (22 SMPL joints, metres) and KIT-ML (21 MMM joints, millimetres).

The values are those of HumanML3D's ``paramUtil.py`` and ``motion_representation`` globals; every feature
file of the datasets depends on them, so they are data, not tunables. Coordinates: y up; a processed
motion faces +z at frame 0 and +x is the character's left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def parents_from_chains(kinematic_chain: Sequence[Sequence[int]], joints_num: int) -> tuple[int, ...]:
    """Parent of every joint (-1 for the root) from chains that each start at an already placed joint."""
    parents = [-2] * joints_num
    parents[kinematic_chain[0][0]] = -1
    for chain in kinematic_chain:
        for parent, child in zip(chain[:-1], chain[1:]):
            parents[child] = parent
    return tuple(parents)


def _readonly(values: Sequence, dtype: type) -> np.ndarray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SkeletonSpec:
    """Everything the motion representation needs to know about one dataset's skeleton.

    ``raw_offsets`` are the unit rest directions of each joint from its parent; ``target_offsets`` the
    skeleton every clip is retargeted to (raw direction x bone length, dataset units). ``face_joint_indx``
    is (r_hip, l_hip, r_shoulder, l_shoulder) as upstream lists it, ``l_idx1/l_idx2`` the two leg joints
    whose offsets set the retargeting scale and ``fid_l/fid_r`` the (ankle, toe) foot-contact joints.
    ``mirror_permutation[j]`` is the joint that takes joint ``j``'s place when the body is mirrored.
    """

    name: str
    joints_num: int
    joint_names: tuple[str, ...]
    raw_offsets: np.ndarray  # [J, 3] unit directions
    kinematic_chain: tuple[tuple[int, ...], ...]
    target_offsets: np.ndarray  # [J, 3] dataset units
    l_idx1: int
    l_idx2: int
    fid_r: tuple[int, ...]
    fid_l: tuple[int, ...]
    face_joint_indx: tuple[int, int, int, int]
    foot_threshold: float
    fps: float
    mirror_permutation: tuple[int, ...]
    unit: str  # length unit of positions ("m" or "mm")
    parents: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parents", parents_from_chains(self.kinematic_chain, self.joints_num))
        self._validate()

    def _validate(self) -> None:
        j = self.joints_num
        problems = []
        if len(self.joint_names) != j:
            problems.append(f"{len(self.joint_names)} joint names")
        if self.raw_offsets.shape != (j, 3) or self.target_offsets.shape != (j, 3):
            problems.append(f"offsets of shape {self.raw_offsets.shape}/{self.target_offsets.shape}")
        if sorted({k for chain in self.kinematic_chain for k in chain}) != list(range(j)):
            problems.append("kinematic chains do not cover every joint exactly")
        if any(p == -2 for p in self.parents) or self.parents.count(-1) != 1:
            problems.append(f"inconsistent parents {self.parents}")
        perm = self.mirror_permutation
        if sorted(perm) != list(range(j)) or any(perm[perm[k]] != k for k in range(j)):
            problems.append("mirror permutation is not an involution of the joints")
        if problems:
            raise ValueError(f"skeleton {self.name!r}: " + "; ".join(problems))

    @property
    def bone_lengths(self) -> np.ndarray:
        """Length of every bone of the target skeleton (0 for the root), ``[J]``."""
        return np.linalg.norm(self.target_offsets, axis=-1)

    @property
    def feature_dim(self) -> int:
        """Width of the HumanML3D-style feature vector: 4 + 3(J-1) + 6(J-1) + 3J + 4."""
        return 12 * self.joints_num - 1


# --- HumanML3D (t2m): 22 SMPL body joints --------------------------------------------------------------

_T2M_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
_T2M_RAW = (
    (0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, -1, 0), (0, 1, 0), (0, -1, 0),
    (0, -1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1),
    (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0),
)
_T2M_CHAIN = (
    (0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20),
)
# Bone lengths (joint <- parent, metres) of HumanML3D's target skeleton (its example clip 000021, frame 0),
# as measured on the shipped new_joints/012314.npy, whose bones are constant to ~2e-6 over all frames.
_T2M_BONES = (
    0.0, 0.10307395, 0.10988335, 0.13156825, 0.39362314, 0.39018813, 0.14319026, 0.43243298, 0.42564332,
    0.057364706, 0.14338174, 0.14941867, 0.21936, 0.13748683, 0.14338283, 0.10303927, 0.13161398,
    0.122984305, 0.25683984, 0.26309186, 0.26601186, 0.2698763,
)
_T2M_MIRROR = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20)

HUMANML3D_SKELETON = SkeletonSpec(
    name="humanml3d",
    joints_num=22,
    joint_names=_T2M_NAMES,
    raw_offsets=_readonly(_T2M_RAW, np.float32),
    kinematic_chain=_T2M_CHAIN,
    target_offsets=_readonly(np.array(_T2M_RAW, np.float32) * np.array(_T2M_BONES, np.float32)[:, None],
                             np.float32),
    l_idx1=5,
    l_idx2=8,
    fid_r=(8, 11),
    fid_l=(7, 10),
    face_joint_indx=(2, 1, 17, 16),
    foot_threshold=0.002,
    fps=20.0,
    mirror_permutation=_T2M_MIRROR,
    unit="m",
)

# --- KIT-ML: 21 MMM joints ---------------------------------------------------------------------------------
# Names follow the MMM convention (as in TEMOS). Upstream paramUtil's comments label the joints behind
# ``fid_r`` (14, 15) and ``face_joint_indx`` (11, 16, 5, 8) with the opposite side; the index lists are
# kept verbatim because every KIT feature file was computed with them.
_KIT_NAMES = (
    "root", "BP", "BT", "BLN", "BUN", "LS", "LE", "LW", "RS", "RE", "RW", "LH", "LK", "LA", "LMrot", "LF",
    "RH", "RK", "RA", "RMrot", "RF",
)
_KIT_RAW = (
    (0, 0, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (1, 0, 0), (0, -1, 0), (0, -1, 0), (-1, 0, 0),
    (0, -1, 0), (0, -1, 0), (1, 0, 0), (0, -1, 0), (0, -1, 0), (0, 0, 1), (0, 0, 1), (-1, 0, 0),
    (0, -1, 0), (0, -1, 0), (0, 0, 1), (0, 0, 1),
)
_KIT_CHAIN = ((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10))
# No KIT target-skeleton file is available here (upstream uses example clip 03950_gt). These bone lengths
# (millimetres) are plausible adult proportions, used only for synthetic KIT motions and round-trip tests;
# real KIT features come from the dataset's new_joint_vecs files directly.
_KIT_BONES = (
    0.0, 45.0, 225.0, 200.0, 120.0, 190.0, 280.0, 250.0, 190.0, 280.0, 250.0,
    95.0, 430.0, 420.0, 60.0, 110.0, 95.0, 430.0, 420.0, 60.0, 110.0,
)
_KIT_MIRROR = (0, 1, 2, 3, 4, 8, 9, 10, 5, 6, 7, 16, 17, 18, 19, 20, 11, 12, 13, 14, 15)

KIT_SKELETON = SkeletonSpec(
    name="kit",
    joints_num=21,
    joint_names=_KIT_NAMES,
    raw_offsets=_readonly(_KIT_RAW, np.float32),
    kinematic_chain=_KIT_CHAIN,
    target_offsets=_readonly(np.array(_KIT_RAW, np.float32) * np.array(_KIT_BONES, np.float32)[:, None],
                             np.float32),
    l_idx1=17,
    l_idx2=18,
    fid_r=(14, 15),
    fid_l=(19, 20),
    face_joint_indx=(11, 16, 5, 8),
    foot_threshold=0.05,
    fps=12.5,
    mirror_permutation=_KIT_MIRROR,
    unit="mm",
)

SKELETONS: dict[str, SkeletonSpec] = {"humanml3d": HUMANML3D_SKELETON, "kit": KIT_SKELETON}
_ALIASES = {"t2m": "humanml3d", "hml3d": "humanml3d", "kit-ml": "kit", "kitml": "kit"}


def get_skeleton(name: str) -> SkeletonSpec:
    """Look up a skeleton by dataset name (``humanml3d``/``kit``) or upstream alias (``t2m``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in SKELETONS:
        raise KeyError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)} (aliases {sorted(_ALIASES)})")
    return SKELETONS[key]


def skeleton_for_joints(joints_num: int) -> SkeletonSpec:
    """The skeleton with ``joints_num`` joints (22 -> HumanML3D, 21 -> KIT)."""
    for skeleton in SKELETONS.values():
        if skeleton.joints_num == joints_num:
            return skeleton
    raise KeyError(f"no skeleton with {joints_num} joints; known: "
                   f"{ {s.name: s.joints_num for s in SKELETONS.values()} }")

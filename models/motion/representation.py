"""HumanML3D's motion representation: joint positions -> 263/251-d features, and back.

``process_motion`` reproduces HumanML3D's ``process_file`` (``motion_representation.ipynb``) including its
quirks, so features of new motions (e.g. a procedural toy world) are distributed like the dataset's:

1. retarget to the dataset's target skeleton (bone directions kept, lengths replaced, root path scaled by
   the leg-length ratio);
2. put the lowest joint of the whole clip on the floor, move frame 0's root to x = z = 0;
3. rotate about y so that frame 0 faces +z;
4. foot contacts: squared displacement of ankle/toe to the next frame below the threshold (float32 0/1);
5. per-frame root rotation from the hip/shoulder "across" vector -- with upstream's IK sign quirk
   ``(p[l_hip] - p[r_hip]) + (p[r_sh] - p[l_sh])`` -- gaussian-smoothed (sigma 20, mode nearest), frame 0
   forced to identity; local joint rotations per kinematic chain (each chain restarts at the root
   rotation), stored as continuous 6D;
6. rotation-invariant joint positions (root x/z removed, rotated into the facing frame), root velocities
   and joint velocities in the facing frame.

Upstream computes almost everything in float32 (its numpy helpers round-trip through float32 torch
tensors); the same precision is used here at the same places, so features agree with upstream to ~1e-6
and foot contacts agree exactly. ``recover_*`` accept numpy arrays or torch tensors (any leading batch
axes) and return the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from models.common.errors import DataError
from models.motion.layout import feature_layout
from models.motion.quaternion import (
    Array,
    concat,
    cont6d_to_matrix,
    cumsum,
    normalize,
    qbetween,
    qfix,
    qinv,
    qmul,
    qrot,
    quaternion_to_cont6d,
    quaternion_to_matrix,
    stack,
    yaw_quaternion,
    zeros_like,
)
from models.motion.skeleton import SkeletonSpec

ROOT_SMOOTHING_SIGMA = 20.0  # frames; gaussian smoothing of the facing direction (upstream constant)
_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class ProcessedMotion:
    """The output of ``process_motion``: features and the two intermediate position arrays."""

    features: np.ndarray  # [T-1, D] float32
    global_positions: np.ndarray  # [T, J, 3] float32: retargeted, on the floor, frame 0 at origin facing +z
    ric_positions: np.ndarray  # [T, J, 3] float32: root x/z removed, each frame rotated to face +z


# --- validation ------------------------------------------------------------------------------------------

def check_joints(positions: np.ndarray, skeleton: SkeletonSpec, *, source: object = None,
                 min_frames: int = 2) -> np.ndarray:
    """Return ``positions`` as an array if it is a finite ``[T >= min_frames, J, 3]`` motion, else raise."""
    positions = np.asarray(positions)
    expected = (skeleton.joints_num, 3)
    if positions.ndim != 3 or positions.shape[1:] != expected:
        raise DataError(f"expected joint positions of shape [frames, {expected[0]}, 3] for skeleton "
                        f"{skeleton.name!r}, got {positions.shape}", path=source)
    if positions.shape[0] < min_frames:
        raise DataError(f"need at least {min_frames} frames, got {positions.shape[0]}", path=source)
    finite = np.isfinite(positions).reshape(len(positions), -1).all(axis=1)
    if not finite.all():
        raise DataError(f"non-finite joint position at frame {int(np.flatnonzero(~finite)[0])}", path=source)
    return positions


# --- kinematics ------------------------------------------------------------------------------------------

def _between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``qbetween(u, v)`` in float32, defined also where ``v`` is exactly opposite ``u``.

    Upstream divides 0 by 0 there (NaN features; it happens e.g. for a KIT rest pose, or a procedural clip
    turned by exactly 180 degrees). Those rows get the half turn about +y when ``u`` is horizontal (so a
    facing direction stays upright), else about the axis perpendicular to ``u`` and +x.
    """
    u, v = np.broadcast_arrays(u.astype(np.float32), v.astype(np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        quat = qbetween(u, v)
    bad = ~np.isfinite(quat).all(axis=-1)
    if bad.any():
        w = normalize(u[bad])
        axis = np.where(np.abs(w[:, 1:2]) < 1e-6, np.array([0.0, 1.0, 0.0], np.float32),
                        np.cross(w, np.array([1.0, 0.0, 0.0], np.float32)))
        quat[bad] = np.concatenate([np.zeros_like(axis[:, :1]), normalize(axis)], axis=-1)
    return quat


def _face_z_quaternion(forward: np.ndarray) -> np.ndarray:
    """``qbetween(forward, +z)`` for horizontal facing directions (float32)."""
    return _between(forward, _FORWARD)


def retarget_to_skeleton(positions: np.ndarray, skeleton: SkeletonSpec) -> np.ndarray:
    """HumanML3D's ``uniform_skeleton``: the clip moved onto the target skeleton, ``[T, J, 3]`` float64.

    IK of the clip (no smoothing), then FK with the target offsets, the root trajectory scaled by the ratio
    of the (max-abs component) offsets of the two leg joints ``l_idx1, l_idx2``. Because IK's root and
    parent rotations cancel in FK, this keeps every bone's direction and replaces its length; the explicit
    float32 IK/FK path is kept anyway, as it reproduces upstream's rounding (~5e-7 instead of ~3e-6).
    """
    positions = positions.astype(np.float32, copy=False)
    parents = np.array(skeleton.parents[1:])
    bone_vectors = positions[0, 1:] - positions[0, parents]
    src_offsets = np.zeros_like(skeleton.raw_offsets)
    src_offsets[1:] = skeleton.raw_offsets[1:] * np.sqrt((bone_vectors ** 2).sum(-1, keepdims=True))
    legs = [skeleton.l_idx1, skeleton.l_idx2]
    target_leg = np.abs(skeleton.target_offsets[legs]).max(axis=1).sum()
    scale = target_leg / np.abs(src_offsets[legs]).max(axis=1).sum()

    quats = inverse_kinematics(positions, skeleton, smooth_forward=False)
    # FK, one chain depth at a time: rotations accumulate along each chain from the root rotation
    bones = np.zeros(positions.shape, dtype=np.float32)
    rotation = np.repeat(quats[:, None, 0], len(skeleton.kinematic_chain), axis=1)
    for chains, children in _chain_levels(skeleton):
        rotation[:, chains] = qmul(rotation[:, chains], quats[:, children])
        bones[:, children] = qrot(rotation[:, chains], skeleton.target_offsets[children])
    out = np.empty(positions.shape, dtype=np.float64)  # upstream adds float32 bones in float64
    out[:, 0] = positions[:, 0] * scale
    for chain in skeleton.kinematic_chain:
        steps = np.concatenate([out[:, chain[:1]], bones[:, chain[1:]]], axis=1)
        out[:, chain] = np.cumsum(steps, axis=1)
    return out


def facing_rotations(positions: np.ndarray, skeleton: SkeletonSpec, *, smooth: bool) -> np.ndarray:
    """Per-frame root rotation ``[T, 4]`` (float32) turning the body's facing direction to +z.

    Faithful to upstream ``inverse_kinematics_np``: the face joints are unpacked as
    (l_hip, r_hip, r_shoulder, l_shoulder) although they are listed as (r_hip, l_hip, ...), so the hip term
    has the opposite sign to the one used for the frame-0 alignment.
    """
    l_hip, r_hip, sdr_r, sdr_l = skeleton.face_joint_indx
    across = (positions[:, r_hip] - positions[:, l_hip]) + (positions[:, sdr_r] - positions[:, sdr_l])
    across = normalize(across)
    forward = np.cross(_UP, across.astype(np.float64))
    if smooth:
        forward = gaussian_filter1d(forward, ROOT_SMOOTHING_SIGMA, axis=0, mode="nearest")
    return _face_z_quaternion(normalize(forward))


def inverse_kinematics(positions: np.ndarray, skeleton: SkeletonSpec, *, smooth_forward: bool,
                       identity_first_root: bool = True) -> np.ndarray:
    """Root rotation and local joint rotations ``[T, J, 4]`` (float32), as upstream computes them.

    Each chain restarts from the root rotation; a joint's local rotation is
    ``R_parent^-1 * qbetween(raw_offset, bone_direction)``. ``identity_first_root`` reproduces the
    notebook's ``root_quat[0] = identity``, which makes the stored yaw velocities integrate from 0.
    """
    positions = positions.astype(np.float32, copy=False)
    root = facing_rotations(positions, skeleton, smooth=smooth_forward)
    if identity_first_root:
        root[0] = (1.0, 0.0, 0.0, 0.0)
    children = np.arange(1, skeleton.joints_num)
    directions = normalize(positions[:, children] - positions[:, list(skeleton.parents[1:])])
    targets = np.zeros(positions.shape[:-1] + (4,), dtype=np.float32)
    targets[:, 1:] = _between(skeleton.raw_offsets[1:], directions)

    quats = np.zeros_like(targets)
    quats[:, 0] = root
    rotation = np.repeat(root[:, None], len(skeleton.kinematic_chain), axis=1)
    for chains, joints in _chain_levels(skeleton):
        local = qmul(qinv(rotation[:, chains]), targets[:, joints])
        quats[:, joints] = local
        rotation[:, chains] = qmul(rotation[:, chains], local)
    return quats


@cache
def _chain_levels(skeleton: SkeletonSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """(chain indices, joint indices) for each depth along the kinematic chains: the joints ``k`` steps
    down their chain, for k = 1, 2, ...; working depth by depth vectorises IK/FK over the chains."""
    depth = max(len(chain) for chain in skeleton.kinematic_chain)
    levels = []
    for k in range(1, depth):
        chains = [c for c, chain in enumerate(skeleton.kinematic_chain) if len(chain) > k]
        levels.append((np.array(chains), np.array([skeleton.kinematic_chain[c][k] for c in chains])))
    return levels


def forward_kinematics(rotations: Array, root_positions: Array, offsets: np.ndarray, skeleton: SkeletonSpec,
                       *, as_matrices: bool = False) -> Array:
    """Joint positions ``[..., J, 3]`` from root + local rotations (quaternions ``[..., J, 4]`` or, with
    ``as_matrices``, rotation matrices ``[..., J, 3, 3]``) and per-joint ``offsets [J, 3]``.

    Like upstream, each chain starts from the root rotation (parents' rotations along the previous chain
    are not inherited at a branch point). Works on numpy and torch; loops over joints only.
    """
    if as_matrices:
        def compose(a, b):
            return a @ b

        def apply(r, v):
            return (r @ v[..., None])[..., 0]
    else:
        compose, apply = qmul, qrot
    trailing = (slice(None),) * (2 if as_matrices else 1)

    def rotation_of(joint: int) -> Array:
        return rotations[(Ellipsis, joint) + trailing]

    offsets = _like(offsets, root_positions)
    joints: list = [None] * skeleton.joints_num
    joints[0] = root_positions
    for chain in skeleton.kinematic_chain:
        rotation = rotation_of(0)
        for parent, child in zip(chain[:-1], chain[1:]):
            rotation = compose(rotation, rotation_of(child))
            joints[child] = apply(rotation, offsets[child]) + joints[parent]
    return stack(joints, axis=-2)


def _like(array: np.ndarray, reference: Array) -> Array:
    """``array`` as the same kind (and dtype/device) as ``reference``."""
    if isinstance(reference, np.ndarray):
        return array.astype(reference.dtype, copy=False)
    return torch.as_tensor(np.array(array), dtype=reference.dtype, device=reference.device)


# --- features --------------------------------------------------------------------------------------------

def foot_contacts(global_positions: np.ndarray, skeleton: SkeletonSpec,
                  threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Left and right foot contacts ``[T-1, 2]`` (float32 0/1): squared displacement to the next frame
    below ``threshold`` (summed in float32 in x, y, z order, as upstream)."""
    threshold = skeleton.foot_threshold if threshold is None else threshold

    def contacts(joints: tuple[int, ...]) -> np.ndarray:
        step = global_positions[1:, list(joints)] - global_positions[:-1, list(joints)]
        squared = step[..., 0] ** 2 + step[..., 1] ** 2 + step[..., 2] ** 2
        return (squared < threshold).astype(np.float32)

    return contacts(skeleton.fid_l), contacts(skeleton.fid_r)


def _place_and_face(positions: np.ndarray, skeleton: SkeletonSpec) -> np.ndarray:
    """Floor at y = 0, frame-0 root at x = z = 0, frame 0 facing +z; returns float32 ``[T, J, 3]``."""
    positions = positions.copy()
    positions[:, :, 1] -= positions[:, :, 1].min()
    origin = positions[0, 0] * np.array([1.0, 0.0, 1.0])
    positions -= origin
    r_hip, l_hip, sdr_r, sdr_l = skeleton.face_joint_indx
    first = positions[0]
    across = normalize((first[r_hip] - first[l_hip]) + (first[sdr_r] - first[sdr_l]))
    forward = normalize(np.cross(_UP, across))
    face_z = _face_z_quaternion(forward)
    return qrot(face_z, positions.astype(np.float32))


def process_motion(positions: np.ndarray, skeleton: SkeletonSpec, *, foot_threshold: float | None = None,
                   fix_yaw_wrap: bool = False, source: object = None) -> ProcessedMotion:
    """HumanML3D's ``process_file``: joint positions ``[T, J, 3]`` -> features ``[T-1, 12J-1]`` (float32).

    Upstream quirk kept by default: root rotations are shortest-arc quaternions with w >= 0, so when the
    smoothed facing passes +-180 degrees the quaternion flips sign and ``arcsin`` of the yaw-velocity
    quaternion gets the wrong sign for that one frame; recovered clips then turn by ~4x that frame's yaw
    step too little, for the rest of the clip (HumanML3D's own ``new_joints`` carry this). ``fix_yaw_wrap``
    keeps consecutive root quaternions in one hemisphere first, which changes only those frames'
    ``root_rot_vel``.
    """
    positions = check_joints(positions, skeleton, source=source)
    global_positions = _place_and_face(retarget_to_skeleton(positions, skeleton), skeleton)
    feet_l, feet_r = foot_contacts(global_positions, skeleton, foot_threshold)

    quats = inverse_kinematics(global_positions, skeleton, smooth_forward=True)
    cont6d = quaternion_to_cont6d(quats)
    r_rot = qfix(quats[:, 0]) if fix_yaw_wrap else quats[:, 0]
    root = global_positions[:, 0]
    root_velocity = qrot(r_rot[1:], root[1:] - root[:-1])
    r_velocity = qmul(r_rot[1:], qinv(r_rot[:-1]))

    ric = global_positions.copy()
    ric[..., [0, 2]] -= global_positions[:, :1, [0, 2]]  # remove the root's x and z, frame by frame
    ric = qrot(r_rot[:, None], ric)
    local_velocity = qrot(r_rot[:-1, None], global_positions[1:] - global_positions[:-1])

    frames = len(global_positions) - 1
    features = np.concatenate([
        np.arcsin(r_velocity[:, 2:3]),
        root_velocity[:, [0, 2]],
        ric[:-1, 0, 1:2],
        ric[:-1, 1:].reshape(frames, -1),
        cont6d[:-1, 1:].reshape(frames, -1),
        local_velocity.reshape(frames, -1),
        feet_l,
        feet_r,
    ], axis=-1).astype(np.float32, copy=False)
    return ProcessedMotion(features=features, global_positions=global_positions, ric_positions=ric)


def joints_to_features(positions: np.ndarray, skeleton: SkeletonSpec, *, foot_threshold: float | None = None,
                       fix_yaw_wrap: bool = False) -> np.ndarray:
    """Features ``[T-1, 12J-1]`` (float32) of a joint-position clip ``[T, J, 3]``; see ``process_motion``."""
    processed = process_motion(positions, skeleton, foot_threshold=foot_threshold, fix_yaw_wrap=fix_yaw_wrap)
    return processed.features


# --- recovery --------------------------------------------------------------------------------------------

def recover_root_rot_pos(features: Array) -> tuple[Array, Array]:
    """Root rotation quaternions ``[..., T, 4]`` and root positions ``[..., T, 3]`` from features.

    The yaw velocities are summed from 0 at frame 0 and used as quaternion half-angles (as upstream); root
    x/z steps are rotated back to the world frame and accumulated; root y is read directly.
    """
    rot_vel = features[..., 0]
    angle = concat([zeros_like(rot_vel[..., :1]), cumsum(rot_vel[..., :-1], axis=-1)], axis=-1)
    r_rot_quat = yaw_quaternion(angle)
    step_x = features[..., :-1, 1]
    step_z = features[..., :-1, 2]
    steps = stack([step_x, zeros_like(step_x), step_z])
    steps = concat([zeros_like(steps[..., :1, :]), steps], axis=-2)
    r_pos = cumsum(qrot(qinv(r_rot_quat), steps), axis=-2)
    r_pos = stack([r_pos[..., 0], features[..., 3], r_pos[..., 2]])
    return r_rot_quat, r_pos


def recover_from_ric(features: Array, joints_num: int) -> Array:
    """Joint positions ``[..., T, J, 3]`` from the rotation-invariant positions in ``features [..., T, D]``.

    Numpy in, numpy out; torch in, torch out (differentiable, on the input's device).
    """
    layout = feature_layout(joints_num)
    if features.shape[-1] != layout.dim:
        raise ValueError(f"expected {layout.dim} features for {joints_num} joints, got {features.shape[-1]}")
    r_rot_quat, r_pos = recover_root_rot_pos(features)
    ric = features[..., layout.ric]
    ric = ric.reshape(tuple(ric.shape[:-1]) + (joints_num - 1, 3))
    joints = qrot(qinv(r_rot_quat)[..., None, :], ric)
    root_xz = stack([r_pos[..., 0], zeros_like(r_pos[..., 0]), r_pos[..., 2]])
    return concat([r_pos[..., None, :], joints + root_xz[..., None, :]], axis=-2)


def recover_from_rot(features: Array, skeleton: SkeletonSpec) -> Array:
    """Joint positions ``[..., T, J, 3]`` by forward kinematics of the 6D rotations on the target skeleton."""
    layout = feature_layout(skeleton.joints_num)
    if features.shape[-1] != layout.dim:
        raise ValueError(f"expected {layout.dim} features for skeleton {skeleton.name!r}, "
                         f"got {features.shape[-1]}")
    r_rot_quat, r_pos = recover_root_rot_pos(features)
    rot6d = features[..., layout.rot6d]
    rot6d = rot6d.reshape(tuple(rot6d.shape[:-1]) + (skeleton.joints_num - 1, 6))
    matrices = concat([quaternion_to_matrix(r_rot_quat)[..., None, :, :], cont6d_to_matrix(rot6d)], axis=-3)
    return forward_kinematics(matrices, r_pos, skeleton.target_offsets, skeleton, as_matrices=True)


__all__ = [
    "ProcessedMotion", "check_joints", "retarget_to_skeleton", "facing_rotations", "inverse_kinematics",
    "forward_kinematics", "foot_contacts", "process_motion", "joints_to_features", "recover_root_rot_pos",
    "recover_from_ric", "recover_from_rot",
]

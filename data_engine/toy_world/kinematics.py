"""Forward kinematics of the toy world: semantic joint angles on a dataset skeleton -> joint positions.

Actions are written once, against body *roles* (``left_hip``, ``spine``, ``right_elbow`` ...), and a
``Rig`` maps the roles onto the joints of the HumanML3D (22 SMPL joints, metres) or KIT-ML (21 MMM
joints, millimetres) skeleton by joint name. Angles are in the body frame of the HumanML3D convention:
y up, facing +z, +x = the body's left.

Each role carries four angles ``(twist, x, z, y)`` in radians; the joint's local rotation is
``Ry(y) @ Rz(z) @ Rx(x) @ Ry(twist)`` and turns the bones below that joint (``left_hip`` turns the thigh,
``left_knee`` the shank). The rest pose is upright with the arms hanging down; bone lengths are the
skeleton's target bone lengths, so the feature extraction's retargeting step changes nothing.

``place_in_world`` then puts the body on the floor every frame (its lowest joint at y = 0, plus any
airborne height) and moves the root so that the lowest joint stays where it is on the floor: legs that
swing produce walking, a crouch pushes the hips back, a turn pivots on the standing foot. Frames marked
as *driven* (flight, crawling) follow a prescribed horizontal velocity instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.motion.skeleton import SkeletonSpec

ROLES = (
    "pelvis", "spine", "neck",
    "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
    "left_collar", "left_shoulder", "left_elbow", "right_collar", "right_shoulder", "right_elbow",
)
ROLE_INDEX = {role: index for index, role in enumerate(ROLES)}

HUMANML3D_LEG_LENGTH = 0.8261  # hip -> knee -> ankle of HumanML3D's target skeleton (metres)

# Per skeleton: the joints each role drives (with weights: the spine bend is spread over several joints),
# and the rest direction of every bone (named by its child joint) for the left side and the midline; the
# right side is mirrored through the skeleton's mirror permutation. Roles without a joint (KIT has no
# collar and no separate neck joint) are simply not driven.
_RIG_TABLES: dict[str, dict] = {
    "humanml3d": {
        "roles": {
            "pelvis": {"pelvis": 1.0},
            "spine": {"spine1": 0.35, "spine2": 0.35, "spine3": 0.3},
            "neck": {"neck": 1.0},
            "left_hip": {"left_hip": 1.0}, "left_knee": {"left_knee": 1.0}, "left_ankle": {"left_ankle": 1.0},
            "left_collar": {"left_collar": 1.0}, "left_shoulder": {"left_shoulder": 1.0},
            "left_elbow": {"left_elbow": 1.0},
        },
        "rest": {
            "left_hip": (0.55, -0.80, -0.12), "spine1": (0.0, 0.96, -0.28), "left_knee": (0.06, -1.0, 0.02),
            "spine2": (0.0, 0.98, 0.18), "left_ankle": (-0.03, -1.0, -0.08), "spine3": (0.0, 1.0, 0.05),
            "left_foot": (0.22, -0.45, 0.86), "neck": (0.0, 0.99, -0.12), "left_collar": (0.55, 0.82, -0.12),
            "head": (0.0, 0.80, 0.60), "left_shoulder": (0.95, 0.30, -0.08), "left_elbow": (0.0, -1.0, 0.0),
            "left_wrist": (0.0, -1.0, 0.05),
        },
        "legs": ("left_hip", "left_knee", "left_ankle"),
        "foot": ("left_ankle", "left_foot"),
    },
    "kit": {
        "roles": {
            "pelvis": {"root": 1.0},
            "spine": {"BP": 0.4, "BT": 0.4, "BLN": 0.2},
            "left_hip": {"LH": 1.0}, "left_knee": {"LK": 1.0}, "left_ankle": {"LA": 1.0},
            "left_shoulder": {"LS": 1.0}, "left_elbow": {"LE": 1.0},
        },
        "rest": {
            "BP": (0.0, 1.0, 0.0), "BT": (0.0, 1.0, 0.04), "BLN": (0.0, 1.0, -0.02), "BUN": (0.0, 0.90, 0.35),
            "LS": (1.0, -0.10, -0.05), "LE": (0.0, -1.0, 0.0), "LW": (0.0, -1.0, 0.05),
            "LH": (1.0, -0.35, 0.0), "LK": (0.05, -1.0, 0.02), "LA": (-0.02, -1.0, -0.08),
            "LMrot": (0.0, -0.60, 0.80), "LF": (0.0, -0.15, 1.0),
        },
        "legs": ("LH", "LK", "LA"),
        "foot": ("LA", "LMrot", "LF"),
    },
}


@dataclass(frozen=True, eq=False)
class Rig:
    """A skeleton prepared for the toy world's forward kinematics."""

    skeleton: SkeletonSpec
    offsets: np.ndarray  # [J, 3] rest bone vectors (body frame, skeleton units)
    role_weights: np.ndarray  # [R, J] how much of each role's angles each joint receives
    order: tuple[int, ...]  # joints in an order where every parent comes before its children
    unit_scale: float  # skeleton units per toy-world metre (leg length relative to HumanML3D's)
    left_foot: tuple[int, ...]  # joints that can carry the body when the left foot supports it
    right_foot: tuple[int, ...]

    @property
    def parents(self) -> tuple[int, ...]:
        return self.skeleton.parents


def build_rig(skeleton: SkeletonSpec) -> Rig:
    """The rig of ``skeleton`` (``humanml3d`` or ``kit``): role weights, rest offsets and unit scale."""
    if skeleton.name not in _RIG_TABLES:
        raise KeyError(f"no toy-world rig for skeleton {skeleton.name!r}; known: {sorted(_RIG_TABLES)}")
    table = _RIG_TABLES[skeleton.name]
    index = {name: j for j, name in enumerate(skeleton.joint_names)}
    mirror = skeleton.mirror_permutation
    flip = np.array([-1.0, 1.0, 1.0])

    directions = np.zeros((skeleton.joints_num, 3))
    for name, direction in table["rest"].items():
        j = index[name]
        unit = np.asarray(direction, float) / np.linalg.norm(direction)
        directions[j] = unit
        directions[mirror[j]] = unit * flip if mirror[j] != j else unit
    missing = [skeleton.joint_names[j] for j in range(1, skeleton.joints_num) if not directions[j].any()]
    if missing:
        raise ValueError(f"rig for {skeleton.name!r} has no rest direction for joints {missing}")
    offsets = directions * skeleton.bone_lengths[:, None]

    weights = np.zeros((len(ROLES), skeleton.joints_num))
    for role, joints in table["roles"].items():
        for name, weight in joints.items():
            weights[ROLE_INDEX[role], index[name]] = weight
            if role.startswith("left_"):
                weights[ROLE_INDEX["right_" + role[5:]], mirror[index[name]]] = weight

    leg = sum(skeleton.bone_lengths[index[name]] for name in table["legs"][1:])
    order = tuple(sorted(range(skeleton.joints_num), key=lambda j: _depth(skeleton.parents, j)))
    left_foot = tuple(index[name] for name in table["foot"])
    return Rig(skeleton=skeleton, offsets=offsets, role_weights=weights, order=order,
               unit_scale=float(leg / HUMANML3D_LEG_LENGTH), left_foot=left_foot,
               right_foot=tuple(mirror[j] for j in left_foot))


def _depth(parents: tuple[int, ...], joint: int) -> int:
    depth = 0
    while parents[joint] >= 0:
        joint = parents[joint]
        depth += 1
    return depth


def _axis_rotations(angle: np.ndarray, axis: int) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` about the x (0), y (1) or z (2) axis."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def angles_to_matrices(angles: np.ndarray) -> np.ndarray:
    """``(twist, x, z, y)`` angles ``[..., 4]`` -> rotation matrices ``Ry(y) Rz(z) Rx(x) Ry(twist)``."""
    twist, x, z, y = np.moveaxis(angles, -1, 0)
    outer = _axis_rotations(y, 1) @ _axis_rotations(z, 2)
    return outer @ (_axis_rotations(x, 0) @ _axis_rotations(twist, 1))


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    """Rotations about +y ``[..., 3, 3]``; positive yaw turns the body to its left (counterclockwise
    seen from above)."""
    return _axis_rotations(np.asarray(yaw, float), 1)


def forward_kinematics(rig: Rig, role_angles: np.ndarray) -> np.ndarray:
    """Joint positions ``[T, J, 3]`` in the body frame (root at the origin, no heading) from role angles
    ``[T, R, 4]``."""
    if role_angles.ndim != 3 or role_angles.shape[1:] != (len(ROLES), 4):
        raise ValueError(f"expected role angles of shape [T, {len(ROLES)}, 4], got {role_angles.shape}")
    joint_angles = np.einsum("rj,trk->tjk", rig.role_weights, role_angles)
    local = angles_to_matrices(joint_angles)  # [T, J, 3, 3]
    frames, joints = role_angles.shape[0], rig.skeleton.joints_num
    world = np.empty_like(local)
    positions = np.zeros((frames, joints, 3))
    for j in rig.order:
        parent = rig.parents[j]
        if parent < 0:
            world[:, j] = local[:, j]
            continue
        positions[:, j] = positions[:, parent] + world[:, parent] @ rig.offsets[j]
        world[:, j] = world[:, parent] @ local[:, j]
    return positions


SUPPORT_ANY, SUPPORT_LEFT, SUPPORT_RIGHT = 0, 1, 2


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def place_in_world(rig: Rig, body: np.ndarray, yaw: np.ndarray, lift: np.ndarray, velocity: np.ndarray,
                   driven: np.ndarray, support: np.ndarray, fps: float) -> np.ndarray:
    """World positions ``[T, J, 3]`` from body-frame positions (see the module docstring).

    ``yaw`` [T] heading (rad); ``lift`` [T] height above the floor contact (toy metres); ``velocity``
    [T, 2] prescribed (x, z) velocity in the heading frame (toy metres/s), followed where ``driven`` [T]
    is true and while airborne; ``support`` [T] names the foot that carries the body (``SUPPORT_LEFT`` /
    ``SUPPORT_RIGHT``) or lets the lowest joint decide (``SUPPORT_ANY``). On the ground the supporting
    joint stays where it is; a flight covers its prescribed distance measured from take-off contact to
    landing contact, so a jump in place lands where it took off.
    """
    frames, joints = body.shape[:2]
    turned = np.einsum("tab,tjb->tja", yaw_matrices(yaw), body)
    height = turned[..., 1]

    candidates = height.copy()
    for code, feet in ((SUPPORT_LEFT, rig.left_foot), (SUPPORT_RIGHT, rig.right_foot)):
        excluded = np.full(joints, np.inf)
        excluded[list(feet)] = 0.0
        candidates[support == code] += excluded
    anchor = candidates.argmin(axis=1)
    rows = np.arange(frames)

    step = np.zeros((frames, 2))
    step[1:] = -(turned[rows[1:], anchor[1:]] - turned[rows[:-1], anchor[1:]])[:, [0, 2]]
    heading = yaw_matrices(yaw)[:, [0, 2]][:, :, [0, 2]]  # planar part of the yaw rotation
    pushed = np.einsum("tab,tb->ta", heading, velocity) * (rig.unit_scale / fps)
    airborne = lift > 0
    step = np.where((driven & ~airborne)[:, None], pushed, step)
    for start, end in _runs(airborne):
        takeoff, landing = max(start - 1, 0), min(end, frames - 1)
        planned = pushed[start:landing + 1].sum(axis=0)
        foot = anchor[takeoff]  # measure take-off and landing at the same joint
        contact_shift = (turned[landing, foot] - turned[takeoff, foot])[[0, 2]]
        step[start:landing + 1] = (planned - contact_shift) / (landing + 1 - start)
    step[0] = 0.0
    root_xz = np.cumsum(step, axis=0)

    world = turned.copy()
    world[..., 0] += root_xz[:, None, 0]
    world[..., 2] += root_xz[:, None, 1]
    world[..., 1] += (lift * rig.unit_scale - height.min(axis=1))[:, None]
    return world

"""The motion does what its caption says: simple physical measurements on the recovered joints.

Every motion goes through the real pipeline (synthesis -> ``joints_to_features`` -> ``recover_from_ric``),
so these checks hold for what the dataset stores. HumanML3D frame: y up, frame 0 faces +z, +x = left.
"""

from __future__ import annotations

import numpy as np
import pytest

from data_engine.toy_world.actions import FAMILIES, ActionSpec
from data_engine.toy_world.kinematics import build_rig
from data_engine.toy_world.synthesis import MAX_SECONDS, MIN_SECONDS, MotionSpec, synthesize_motion
from models.motion.representation import joints_to_features, recover_from_ric
from models.motion.skeleton import HUMANML3D_SKELETON, KIT_SKELETON

SKELETON = HUMANML3D_SKELETON
RIG = build_rig(SKELETON)
J = {name: index for index, name in enumerate(SKELETON.joint_names)}
FPS = 20.0


def recovered(*parts: ActionSpec, seed: int = 0) -> np.ndarray:
    motion = synthesize_motion(MotionSpec(parts), np.random.default_rng(seed), RIG, FPS)
    assert motion is not None
    return recover_from_ric(joints_to_features(motion.positions, SKELETON), SKELETON.joints_num)


def heading(joints: np.ndarray) -> np.ndarray:
    """Facing angle per frame in degrees, unwrapped: 0 = +z, positive = turned to the left (toward +x)."""
    across = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
    forward = np.cross(across, np.array([0.0, 1.0, 0.0]))
    return np.degrees(np.unwrap(np.arctan2(forward[:, 0], forward[:, 2])))


def episodes(signal: np.ndarray, threshold: float) -> int:
    """How many times ``signal`` rises above ``threshold``."""
    above = signal > threshold
    return int(np.count_nonzero(above[1:] & ~above[:-1]) + above[0])


def root_height(joints: np.ndarray) -> np.ndarray:
    return joints[:, 0, 1]


@pytest.mark.parametrize("direction", ["forward", "backward", "left", "right"])
def test_walking_travels_in_the_stated_direction(direction: str) -> None:
    joints = recovered(ActionSpec("walk", direction=direction, speed="normal"))
    x, z = joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]
    turned = heading(joints)[-1] - heading(joints)[0]
    if direction == "forward":
        assert z > 1.5 and abs(x) < 0.2 * z and abs(turned) < 20
    elif direction == "backward":
        assert z < -0.8 and abs(x) < 0.3 * abs(z) and abs(turned) < 20
    else:
        sign = 1.0 if direction == "left" else -1.0
        assert sign * x > 0.8 and z > 0.5 and 50 < sign * turned < 130


@pytest.mark.parametrize("direction,angle", [("left", 90), ("right", -90)])
def test_turning_changes_heading_to_that_side(direction: str, angle: float) -> None:
    joints = recovered(ActionSpec("turn", direction=direction, speed="normal"))
    facing = heading(joints)
    assert abs(facing[-1] - facing[0] - angle) < 25
    assert np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]) < 0.4  # in place
    around = heading(recovered(ActionSpec("turn", direction="around", speed="normal")))
    assert abs(abs(around[-1] - around[0]) - 180) < 30


@pytest.mark.parametrize("direction,count", [("clockwise", 1), ("counterclockwise", 2)])
def test_spins_turn_full_circles(direction: str, count: int) -> None:
    facing = heading(recovered(ActionSpec("spin", direction=direction, count=count)))
    expected = 360 * count * (-1 if direction == "clockwise" else 1)
    assert abs(facing[-1] - facing[0] - expected) < 40


@pytest.mark.parametrize("count", [1, 2, 3])
def test_jumps_leave_the_floor_count_times(count: int) -> None:
    joints = recovered(ActionSpec("jump", direction="in_place", count=count))
    rest = root_height(joints)[0]
    assert episodes(root_height(joints), rest + 0.12) == count
    assert np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]) < 0.15
    forward = recovered(ActionSpec("jump", direction="forward", count=count))
    assert forward[-1, 0, 2] - forward[0, 0, 2] > 0.45 * count


@pytest.mark.parametrize("side", ["left", "right"])
def test_kick_lifts_the_named_leg(side: str) -> None:
    joints = recovered(ActionSpec("kick", side=side, count=2))
    other = "right" if side == "left" else "left"
    kicking, standing = joints[:, J[f"{side}_foot"], 1], joints[:, J[f"{other}_foot"], 1]
    assert kicking.max() > standing.max() + 0.4
    assert episodes(kicking, 0.4) == 2


def test_speed_changes_travel_speed() -> None:
    for family in ("walk", "run", "crawl"):
        speeds = []
        for speed in ("slow", "normal", "fast"):
            motion = synthesize_motion(MotionSpec((ActionSpec(family, direction="forward", speed=speed),)),
                                       np.random.default_rng(3), RIG, FPS)
            joints = recover_from_ric(joints_to_features(motion.positions, SKELETON), SKELETON.joints_num)
            start, end = motion.part_frames[0]
            middle = slice(start + (end - start) // 3, start + 2 * (end - start) // 3)
            distance = np.linalg.norm(np.diff(joints[middle, 0, [0, 2]], axis=0), axis=1).sum()
            speeds.append(distance * FPS / (middle.stop - middle.start - 1))
        assert speeds[0] < speeds[1] < speeds[2], (family, speeds)


def test_speed_changes_tempo_of_actions_in_place() -> None:
    cases = (("wave", {"side": "right"}), ("squat", {"count": 2}), ("turn", {"direction": "left"}))
    for family, extra in cases:
        durations = []
        for speed in ("slow", "fast"):
            motion = synthesize_motion(MotionSpec((ActionSpec(family, speed=speed, **extra),)),
                                       np.random.default_rng(5), RIG, FPS)
            durations.append(motion.part_frames[0][1] - motion.part_frames[0][0])
        if family == "wave":  # waving time is free; the hand's oscillation rate is what speed changes
            rates = []
            for speed in ("slow", "fast"):
                joints = recovered(ActionSpec("wave", side="right", speed=speed), seed=5)
                elbow_to_wrist = joints[:, J["right_wrist"], 0] - joints[:, J["right_elbow"], 0]
                centred = elbow_to_wrist - np.convolve(elbow_to_wrist, np.ones(9) / 9, mode="same")
                rates.append(np.count_nonzero(np.diff(np.sign(centred[10:-10])) != 0) / len(joints))
            assert rates[0] < rates[1]
        else:
            assert durations[0] > 1.3 * durations[1], (family, durations)


@pytest.mark.parametrize("count", [1, 3])
def test_repetitions_match_the_count(count: int) -> None:
    squat = recovered(ActionSpec("squat", speed="normal", count=count))
    assert episodes(-root_height(squat), -(root_height(squat)[0] - 0.3)) == count
    arms = recovered(ActionSpec("raise_arm", side="both", count=count))
    above_head = np.minimum(arms[:, J["left_wrist"], 1], arms[:, J["right_wrist"], 1]) - arms[:, J["head"], 1]
    assert episodes(above_head, 0.1) == count
    clap = recovered(ActionSpec("clap", count=count))
    hands_apart = np.linalg.norm(clap[:, J["left_wrist"]] - clap[:, J["right_wrist"]], axis=1)
    assert episodes(-hands_apart, -0.12) == count
    punch = recovered(ActionSpec("punch", side="left", count=count))
    reach = punch[:, J["left_wrist"], 2] - punch[:, 0, 2]
    assert episodes(reach, 0.4) == count


def test_arm_actions_use_the_named_side() -> None:
    wave = recovered(ActionSpec("wave", side="right", speed="normal"))
    head = wave[:, J["head"], 1].max()
    assert wave[:, J["right_wrist"], 1].max() > head - 0.05
    assert wave[:, J["left_wrist"], 1].max() < wave[:, 0, 1].max()
    throw = recovered(ActionSpec("throw", side="left", count=1))
    assert throw[:, J["left_wrist"], 1].max() > throw[:, J["right_wrist"], 1].max() + 0.3


@pytest.mark.parametrize("side", ["left", "right"])
def test_hop_keeps_the_other_foot_off_the_floor(side: str) -> None:
    joints = recovered(ActionSpec("hop", direction="in_place", side=side, count=3))
    free = "right" if side == "left" else "left"
    rest = root_height(joints)[0]
    assert episodes(root_height(joints), rest + 0.06) == 3
    lifted = joints[:, J[f"{free}_ankle"], 1] > 0.15
    assert lifted.mean() > 0.4 and (joints[:, J[f"{side}_ankle"], 1] > 0.15).mean() < lifted.mean() / 2


def test_whole_body_actions() -> None:
    sit = recovered(ActionSpec("sit", speed="normal"))
    assert root_height(sit)[-1] < 0.4 and root_height(sit)[0] > 0.85
    crawl = recovered(ActionSpec("crawl", direction="backward", speed="normal"))
    middle = slice(len(crawl) // 3, 2 * len(crawl) // 3)
    assert root_height(crawl)[middle].max() < 0.75
    assert crawl[-1, 0, 2] - crawl[0, 0, 2] < -0.3
    side = recovered(ActionSpec("sidestep", direction="left", speed="normal", count=3))
    assert side[-1, 0, 0] - side[0, 0, 0] > 0.5 and abs(side[-1, 0, 2] - side[0, 0, 2]) < 0.2
    bow = recovered(ActionSpec("bow", count=2))
    assert episodes(-bow[:, J["head"], 1], -(bow[0, J["head"], 1] - 0.3)) == 2


def test_composition_plays_both_parts_in_order() -> None:
    spec = MotionSpec((ActionSpec("walk", direction="forward", speed="normal"),
                       ActionSpec("turn", direction="left", speed="normal")))
    motion = synthesize_motion(spec, np.random.default_rng(0), RIG, FPS)
    joints = recover_from_ric(joints_to_features(motion.positions, SKELETON), SKELETON.joints_num)
    (walk_start, walk_end), (turn_start, turn_end) = motion.part_frames
    assert walk_end <= turn_start
    facing = heading(joints)
    assert joints[walk_end, 0, 2] - joints[walk_start, 0, 2] > 1.0
    assert abs(facing[walk_end] - facing[0]) < 20
    assert abs(facing[-1] - facing[turn_start] - 90) < 25


@pytest.mark.parametrize("skeleton", [HUMANML3D_SKELETON, KIT_SKELETON], ids=lambda s: s.name)
def test_every_attribute_combination_fits_the_length_limits(skeleton) -> None:
    rig = build_rig(skeleton)
    for family in FAMILIES.values():
        for index, spec in enumerate(family.all_specs()):
            motion = synthesize_motion(MotionSpec((spec,)), np.random.default_rng(index), rig, skeleton.fps)
            assert motion is not None, spec
            seconds = len(motion.positions) / skeleton.fps
            assert MIN_SECONDS - 0.1 <= seconds <= MAX_SECONDS, (spec, seconds)
            assert np.isfinite(motion.positions).all()


def test_families_are_distinct_motions() -> None:
    """Two random draws of one spec per family: the per-sample randomness (tempo, amplitude, posture,
    timing) never makes a motion look more like another family than like its own."""
    descriptors, labels = [], []
    for name, family in FAMILIES.items():
        spec = family.sample(np.random.default_rng(11))
        for seed in (11, 12):
            features = joints_to_features(synthesize_motion(MotionSpec((spec,)), np.random.default_rng(seed),
                                                            RIG, FPS).positions, SKELETON)
            pose, root = features[:, 4:67], features[:, :4]  # root-relative joints; root velocity/height
            descriptors.append(np.concatenate([pose.mean(0), pose.std(0), pose.min(0), pose.max(0),
                                               root.mean(0), root.std(0)]))
            labels.append(name)
    x = np.array(descriptors)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    distance = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(distance, np.inf)
    labels = np.array(labels)
    assert (labels[distance.argmin(1)] == labels).mean() >= 0.95

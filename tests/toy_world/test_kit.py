"""The KIT-ML variant: 21-joint MMM skeleton in millimetres, 12.5 fps, 251-d features, 5-digit ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import get_dataset_spec
from data_engine.toy_world.build import MANIFEST_FILE
from models.motion.representation import recover_from_ric
from models.motion.skeleton import KIT_SKELETON


def test_kit_world_reads_back(toy_kit: Path) -> None:
    spec = get_dataset_spec("kit")
    dataset = MotionDataset(toy_kit, spec)
    ids = dataset.split_ids("all")
    assert len(ids) == 112 and all(spec.id_pattern.match(i) for i in ids) and "00000" in ids
    for motion_id in ids:
        features = dataset.load_features(motion_id)
        joints = dataset.load_joints(motion_id)
        assert features.shape[1] == 251 and joints.shape == (len(features), 21, 3)
        assert 24 <= len(features) < 200
        np.testing.assert_allclose(recover_from_ric(features, 21), joints, atol=1e-2)  # millimetres
    assert len([c for c in dataset.clips("test") if c.name == c.motion_id]) >= 96
    assert dataset.mean_std()[1].shape == (251,)


def test_kit_motions_are_in_millimetres_and_walk_where_they_face(toy_kit: Path) -> None:
    manifest = json.loads((toy_kit / MANIFEST_FILE).read_text())
    assert manifest["fps"] == 12.5 and manifest["joints_num"] == 21
    names = {name: index for index, name in enumerate(KIT_SKELETON.joint_names)}
    walks = [motion_id for motion_id, entry in manifest["motions"].items()
             if not entry["composition"] and entry["parts"][0]["family"] in ("walk", "run")
             and entry["parts"][0]["direction"] == "forward"]
    assert walks
    for motion_id in walks:
        joints = np.load(toy_kit / "new_joints" / f"{motion_id}.npy")
        assert 800 < joints[0, 0, 1] < 1100  # pelvis height in millimetres
        across = joints[0, names["LH"]] - joints[0, names["RH"]]
        facing = np.cross(across, [0.0, 1.0, 0.0])
        travel = joints[-1, 0] - joints[0, 0]
        assert np.dot(travel, facing) / np.linalg.norm(facing) > 1000  # over a metre along the facing

"""The written toy world reads back in the real HumanML3D layout and survives the evaluation filter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_engine.datasets.layout import SPLITS, read_split_file, read_texts_file
from data_engine.datasets.reader import MotionDataset
from data_engine.toy_world.actions import ActionSpec
from data_engine.toy_world.build import MANIFEST_FILE, read_motion_specs
from models.motion.representation import recover_from_ric
from models.motion.skeleton import HUMANML3D_SKELETON


def test_every_file_reads_back(toy_hml3d: Path) -> None:
    dataset = MotionDataset(toy_hml3d, "humanml3d")
    ids = dataset.split_ids("all")
    assert len(ids) == 120 and len(set(ids)) == 120
    for motion_id in ids:
        features = dataset.load_features(motion_id)  # validates width 263 and finiteness
        joints = dataset.load_joints(motion_id)
        assert features.shape[1] == 263 and joints.shape == (len(features), 22, 3)
        assert 40 <= len(features) < 200
        np.testing.assert_allclose(recover_from_ric(features, 22), joints, atol=1e-5)
        captions = read_texts_file(dataset.texts_path(motion_id))
        assert sum(c.whole_clip for c in captions) == 3


def test_joints_sit_on_the_target_skeleton(toy_hml3d: Path) -> None:
    dataset = MotionDataset(toy_hml3d, "humanml3d")
    parents = np.array(HUMANML3D_SKELETON.parents[1:])
    for motion_id in dataset.split_ids("test")[:10]:
        joints = dataset.load_joints(motion_id)
        bones = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1)
        np.testing.assert_allclose(bones, np.broadcast_to(HUMANML3D_SKELETON.bone_lengths[1:], bones.shape),
                                   atol=2e-4)
        assert joints[..., 1].min() > -0.02  # on the floor, not below it


def test_splits_statistics_and_eval_index(toy_hml3d: Path) -> None:
    splits = {name: read_split_file(toy_hml3d / f"{name}.txt") for name in SPLITS}
    assert set(splits["train_val"]) == set(splits["train"]) | set(splits["val"])
    assert set(splits["all"]) == set(splits["train"]) | set(splits["val"]) | set(splits["test"])
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["val"]) & set(splits["test"])
    dataset = MotionDataset(toy_hml3d, "humanml3d")
    mean, std = dataset.mean_std()
    assert mean.shape == std.shape == (263,) and (std > 0).all()
    test_clips = dataset.clips("test")
    assert len([c for c in test_clips if c.name == c.motion_id]) >= 96  # three evaluation batches of 32
    assert sum(test_clips.skipped.values()) == 0
    subclips = [clip for split in ("train", "val", "test") for clip in dataset.clips(split)
                if clip.name != clip.motion_id]
    assert subclips, "some composition should carry a from#to sub-clip caption"
    assert all(c.start > 0 and 40 <= c.length < 200 for c in subclips)


def test_manifest_describes_every_clip(toy_hml3d: Path) -> None:
    manifest = json.loads((toy_hml3d / MANIFEST_FILE).read_text())
    dataset = MotionDataset(toy_hml3d, "humanml3d")
    assert set(manifest["motions"]) == set(dataset.split_ids("all"))
    assert manifest["settings"]["num_motions"] == 60 and manifest["feature_dim"] == 263
    for split in ("train", "val", "test"):
        for motion_id in read_split_file(toy_hml3d / f"{split}.txt"):
            entry = manifest["motions"][motion_id]
            assert entry["split"] == split
            assert entry["frames"] == dataset.num_frames(motion_id)
            assert len(entry["parts"]) == (2 if entry["composition"] else 1)
            assert all(0 <= p["start"] < p["end"] <= entry["frames"] for p in entry["parts"])
            assert entry["parts"][0]["family"] in manifest["families"]
    compositions = [m for m in manifest["motions"].values() if m["composition"]]
    assert 0 < len(compositions) < len(manifest["motions"]) / 2
    specs = read_motion_specs(toy_hml3d)
    assert specs.keys() == manifest["motions"].keys()
    for motion_id, spec in specs.items():
        parts = manifest["motions"][motion_id]["parts"]
        assert [ActionSpec.from_attributes(p) for p in parts] == list(spec.parts)
        assert spec.is_composition == manifest["motions"][motion_id]["composition"]

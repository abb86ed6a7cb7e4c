"""The HumanML3D-layout reader: parsing, clip index rules, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_engine.datasets.layout import (
    Caption,
    format_text_line,
    mirrored_id,
    parse_text_line,
    read_texts_file,
    write_split_file,
    write_texts_file,
)
from data_engine.datasets.reader import MotionDataset
from data_engine.datasets.spec import get_dataset_spec
from models.common.errors import DataError

WALK = Caption("a person walks forward.", ("a/DET", "person/NOUN", "walk/VERB", "forward/ADV"))


def _write_motion(root: Path, motion_id: str, frames: int, captions: list[Caption], dim: int = 263) -> None:
    (root / "new_joint_vecs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(motion_id)) % 2**32)
    np.save(root / "new_joint_vecs" / f"{motion_id}.npy", rng.standard_normal((frames, dim)).astype(np.float32))
    write_texts_file(root / "texts" / f"{motion_id}.txt", captions)


@pytest.fixture
def dataset(tmp_path: Path) -> MotionDataset:
    sub = Caption("a person jumps.", ("a/DET", "person/NOUN", "jump/VERB"), start=1.0, end=4.0)
    _write_motion(tmp_path, "000001", 120, [WALK, sub])
    _write_motion(tmp_path, "M000001", 120, [WALK])
    _write_motion(tmp_path, "000002", 30, [WALK])  # too short for the evaluation filter
    _write_motion(tmp_path, "000003", 250, [WALK, sub])  # too long: dropped with its sub-clip
    _write_motion(tmp_path, "000004", 100, [sub])  # only a sub-clip caption
    write_split_file(tmp_path / "test.txt", ["000001", "M000001", "000002", "000003", "000004"])
    return MotionDataset(tmp_path, "humanml3d")


def test_text_line_round_trip() -> None:
    line = "a man kicks with his left leg.#a/DET man/NOUN kick/VERB with/ADP his/PRON left/ADJ leg/NOUN#0.5#3.0"
    caption = parse_text_line(line)
    assert caption.text == "a man kicks with his left leg."
    assert caption.tokens[2] == "kick/VERB"
    assert (caption.start, caption.end, caption.whole_clip) == (0.5, 3.0, False)
    assert parse_text_line(format_text_line(caption)) == caption


def test_nan_time_is_whole_clip() -> None:
    assert parse_text_line("a person waves.#a/DET person/NOUN wave/VERB#nan#nan").whole_clip


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("a person waves.#a/DET person/NOUN#0.0", "expected 4 '#'-separated fields"),
        ("#a/DET#0.0#0.0", "field 'caption'"),
        ("a person waves.#a/DET personNOUN#0.0#0.0", "field 'tokens'"),
        ("a person waves.#a/DET#zero#0.0", "field 'from'"),
    ],
)
def test_bad_text_line_names_file_and_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "000009.txt"
    path.write_text(format_text_line(WALK) + "\n" + line + "\n")
    with pytest.raises(DataError) as err:
        read_texts_file(path)
    assert f"{path}, line 2" in str(err.value)
    assert fragment in str(err.value)


def test_clip_index_follows_the_evaluation_rules(dataset: MotionDataset) -> None:
    index = dataset.clips("test")
    names = [c.name for c in index]
    assert names == ["000001", "A_000001", "M000001", "A_000004"]
    sub = index.clips[1]
    assert (sub.start, sub.end, sub.length) == (20, 80, 60)  # 1 s .. 4 s at 20 fps
    assert index.skipped["too short or too long"] == 2
    assert index.skipped["no whole-clip caption"] == 1


def test_clip_index_without_filters_keeps_everything(dataset: MotionDataset) -> None:
    index = dataset.clips("test", min_len=1, max_len=10**9, with_subclips=False)
    assert [c.name for c in index] == ["000001", "M000001", "000002", "000003"]


def test_missing_motion_file_is_named(dataset: MotionDataset) -> None:
    write_split_file(dataset.root / "val.txt", ["000001", "007777"])
    with pytest.raises(DataError) as err:
        dataset.split_ids("val")
    message = str(err.value)
    assert "val.txt, line 2" in message and "007777" in message
    assert dataset.split_ids("val", on_missing="skip") == ["000001"]


def test_wrong_feature_width_is_named(dataset: MotionDataset) -> None:
    _write_motion(dataset.root, "000005", 60, [WALK], dim=251)
    with pytest.raises(DataError, match=r"000005\.npy"):
        dataset.load_features("000005")


def test_nan_features_are_rejected(dataset: MotionDataset) -> None:
    path = dataset.features_path("000001")
    array = np.load(path)
    array[7, 3] = np.nan
    np.save(path, array)
    with pytest.raises(DataError, match=r"000001\.npy"):
        dataset.load_features("000001")


def test_mean_std_validation(dataset: MotionDataset) -> None:
    np.save(dataset.root / "Mean.npy", np.zeros(263, np.float32))
    np.save(dataset.root / "Std.npy", np.ones(262, np.float32))
    with pytest.raises(DataError, match="Std.npy"):
        dataset.mean_std()


def test_specs_and_mirror_ids() -> None:
    kit = get_dataset_spec("kit")
    assert (kit.feature_dim, kit.joints_num, kit.fps, kit.id_digits) == (251, 21, 12.5, 5)
    assert get_dataset_spec("t2m").feature_dim == 263
    assert kit.id_pattern.match("M03950") and not kit.id_pattern.match("003950")
    assert mirrored_id("000123") == "M000123" and mirrored_id("M000123") == "000123"
    with pytest.raises(KeyError):
        get_dataset_spec("humanact12")

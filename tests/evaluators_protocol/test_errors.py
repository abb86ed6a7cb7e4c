"""Bad input to the protocol: clear errors before or while generating, never silent wrong numbers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from data_engine.datasets.reader import MotionDataset
from evaluators.assets import EvaluatorAssets
from evaluators.generators import (
    EvaluatorSpace,
    GeneratedBatch,
    GroundTruthGenerator,
    prepare_generated,
    renormalize,
)
from evaluators.protocol import ProtocolSettings, T2MTestSet, run_protocol
from evaluators.t2m_extractor import CheckpointMismatchError
from evaluators.word_vectors import WordVectorizer, save_our_vab
from models.common.errors import DataError

SETTINGS = ProtocolSettings(repeats=1, diversity_times=50)


class FixedLengthGenerator:
    """Plain text-to-motion interface: ``frames`` random evaluator-space frames per caption."""

    def __init__(self, frames: int, dim: int = 263) -> None:
        self.frames, self.dim = frames, dim
        self.rng = np.random.default_rng(0)

    def generate(self, captions, lengths) -> GeneratedBatch:
        assert len(captions) == len(lengths) and all(isinstance(c, str) and c for c in captions)
        shape = (self.frames, self.dim)
        return GeneratedBatch(
            [self.rng.standard_normal(shape).astype(np.float32) for _ in captions], "evaluator"
        )


@pytest.fixture(scope="module")
def test_set(assets, tiny_dataset) -> T2MTestSet:
    return T2MTestSet.from_assets(tiny_dataset, "test", assets)


def test_fewer_items_than_one_pool_is_an_error(assets, tiny_dataset) -> None:
    val = T2MTestSet.from_assets(tiny_dataset, "val", assets)
    assert len(val) < 32
    with pytest.raises(DataError, match="at least one pool of 32") as info:
        run_protocol(GroundTruthGenerator(), val, assets.evaluator, SETTINGS, progress=False)
    assert "val.txt" in str(info.value)


def test_too_few_items_for_diversity_fails_before_generating(test_set, assets) -> None:
    settings = ProtocolSettings(repeats=1, diversity_times=110)
    with pytest.raises(DataError, match="diversity_times below 110"):
        run_protocol(FixedLengthGenerator(3), test_set, assets.evaluator, settings, progress=False)


def test_generated_motion_shorter_than_one_unit(test_set, assets) -> None:
    with pytest.raises(DataError, match="has 3 frames; at least 4") as info:
        run_protocol(FixedLengthGenerator(3), test_set, assets.evaluator, SETTINGS, progress=False)
    assert "generated motion for item" in str(info.value) and "caption" in str(info.value)


def test_long_motions_are_cropped_and_counted(test_set, assets) -> None:
    report = run_protocol(
        FixedLengthGenerator(250), test_set, assets.evaluator, SETTINGS, progress=False, reference_row=False
    )
    assert report.counts["generated_cropped"] == 110 and report.counts["generated_frames_mean"] == 196
    assert report.summary()["eval_fid"]["mean"] > 1  # noise: far from the data


def test_generator_output_is_checked() -> None:
    space = EvaluatorSpace(np.zeros(4), np.ones(4))
    names, captions = ["a", "b"], ["x", "y"]
    good = np.zeros((8, 4), np.float32)
    with pytest.raises(DataError, match="returned 1 motions for 2"):
        prepare_generated(GeneratedBatch([good], "raw"), space, names, captions)
    with pytest.raises(DataError, match=r"item 'b'.*NaN"):
        prepare_generated(GeneratedBatch([good, np.full((8, 4), np.nan)], "raw"), space, names, captions)
    with pytest.raises(DataError, match="exactly 4 channels"):
        prepare_generated(GeneratedBatch([good, np.zeros((8, 5))], "evaluator"), space, names, captions)
    with pytest.raises(DataError, match=r"\[T, D\]"):
        prepare_generated(GeneratedBatch([good, np.zeros(8)], "raw"), space, names, captions)
    with pytest.raises(ValueError, match="normalization"):
        GeneratedBatch([good], "vq")
    with pytest.raises(TypeError, match="GeneratedBatch"):
        prepare_generated([good, good], space, names, captions)
    with pytest.raises(TypeError, match="needs the test items"):
        GroundTruthGenerator().generate(["a"], np.array([40]))


def test_conversions_between_normalisations() -> None:
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((10, 263)).astype(np.float32)
    mean_a, std_a = rng.standard_normal(263), rng.uniform(0.5, 2, 263)
    mean_b, std_b = rng.standard_normal(263), rng.uniform(0.5, 2, 263)
    x_a = (raw - mean_a) / std_a
    np.testing.assert_allclose(
        renormalize(x_a, mean_a, std_a, mean_b, std_b), (raw - mean_b) / std_b, atol=1e-4
    )
    prefix = EvaluatorSpace(mean_b[:67], std_b[:67])  # MARDM-style evaluator over the first 67 channels
    np.testing.assert_allclose(prefix.to_evaluator(raw, "raw"), ((raw - mean_b) / std_b)[:, :67], atol=1e-5)
    padded = prepare_generated(GeneratedBatch([raw[:6]], "raw"), prefix, ["a"], ["c"], max_frames=8)
    assert (
        padded.motions.shape == (1, 8, 67)
        and padded.lengths.tolist() == [6]
        and not padded.motions[0, 6:].any()
    )


def test_empty_caption_names_the_file_and_line(tiny_root, tmp_path, assets) -> None:
    root = tmp_path / "toy"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("new_joints"))
    dataset = MotionDataset(root)
    motion_id = dataset.split_ids("test")[0]
    path = dataset.texts_path(motion_id)
    lines = path.read_text().splitlines()
    lines[1] = "a person moves.##0.0#0.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="empty caption") as info:
        T2MTestSet.from_assets(dataset, "test", assets)
    assert f"{motion_id}.txt, line 2" in str(info.value)


def test_mismatched_evaluator_checkpoint_and_assets(
    trained_dir, tiny_dataset, test_set, assets, tmp_path
) -> None:
    root, _ = trained_dir
    with pytest.raises(CheckpointMismatchError, match="shape of"):
        EvaluatorAssets.load(root, tiny_dataset.spec, config="humanml3d")
    save_our_vab(np.ones((3, 8), np.float32), ["sos", "eos", "unk"], tmp_path / "glove")
    with pytest.raises(DataError, match="dim_word=16"):
        EvaluatorAssets.load(root, tiny_dataset.spec, glove_dir=tmp_path / "glove")
    with pytest.raises(DataError, match="no evaluator weights"):
        EvaluatorAssets.load(tmp_path, tiny_dataset.spec)
    other_words = T2MTestSet(
        tiny_dataset, "test", WordVectorizer.load_our_vab(tmp_path / "glove"), assets.mean, assets.std
    )
    with pytest.raises(DataError, match="16-d word vectors"):
        run_protocol(GroundTruthGenerator(), other_words, assets.evaluator, SETTINGS, progress=False)
    assert other_words.counts()["unknown_words"] == other_words.counts()["caption_words"] > 0


def test_assets_are_found_from_any_of_the_three_paths(trained_dir, tiny_dataset, assets) -> None:
    for path in (assets.layout.match_dir, assets.layout.model_path):
        found = EvaluatorAssets.load(path, tiny_dataset.spec)
        assert found.layout == assets.layout and found.sources["config"] == "checkpoint"
    assert assets.sources["stats"].endswith("text_mot_match/meta")


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="mm_repeats"):
        ProtocolSettings(mm_num_texts=5, mm_repeats=10, mm_times=10)
    with pytest.raises(ValueError, match="repeats"):
        ProtocolSettings(repeats=0)
    with pytest.raises(ValueError, match="fid_method"):
        ProtocolSettings(fid_method="svd")
    assert ProtocolSettings().diversity_draws(301) == 300 and ProtocolSettings().diversity_draws(300) == 100

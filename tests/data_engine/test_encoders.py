"""Motion encoders: the pooled-features encoder and the T2M evaluator's motion encoder on toy clips."""

from __future__ import annotations

import numpy as np
import torch

from data_engine.datasets.reader import MotionDataset
from data_engine.encoders import MotionEncoder, T2MMotionEncoder, build_encoder


def test_feature_encoder_is_deterministic_and_per_clip(toy_root):
    dataset = MotionDataset(toy_root, "humanml3d")
    clips = dataset.clips("train").clips
    encoder = build_encoder("features", dataset)
    assert isinstance(encoder, MotionEncoder)
    first, second = encoder.embed(clips), encoder.embed(clips)
    assert first.shape == (len(clips), 2 * 263) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(encoder.embed(clips[3:5]), first[3:5])  # no dependence on the batch
    mean, std = dataset.mean_std()
    features = (dataset.load_features(clips[0].motion_id)[clips[0].start : clips[0].end] - mean) / std
    np.testing.assert_allclose(first[0, :263], features.mean(axis=0), rtol=1e-5, atol=1e-5)


def test_t2m_encoder_crops_normalises_and_matches_a_direct_call(toy_root, tmp_path):
    from evaluators.t2m_extractor import T2MEvaluator, T2MEvaluatorConfig

    torch.manual_seed(0)
    evaluator = T2MEvaluator(T2MEvaluatorConfig.preset("small")).eval()
    checkpoint = evaluator.save(tmp_path / "finest.tar")
    dataset = MotionDataset(toy_root, "humanml3d")
    clips = dataset.clips("train").clips[:5]
    encoder = build_encoder("t2m", dataset, checkpoint=str(checkpoint), batch_size=2)
    assert isinstance(encoder, T2MMotionEncoder) and encoder.describe()["kind"] == "t2m"
    embeddings = encoder.embed(clips)
    assert embeddings.shape == (5, 24)

    mean, std = dataset.mean_std()
    clip = clips[3]
    features = dataset.load_features(clip.motion_id)[clip.start : clip.end]
    length = min(len(features), 196) // 4 * 4
    padded = np.zeros((1, 196, 263), dtype=np.float32)
    padded[0, :length] = (features[:length] - mean) / std
    direct = evaluator.motion_embeddings(padded, [length]).numpy()
    np.testing.assert_allclose(embeddings[3], direct[0], rtol=1e-5, atol=1e-6)

"""Reconstruction metrics: MPJPE units and alignment, codebook usage, consistency with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.motion.representation import recover_from_ric
from models.motion.skeleton import get_skeleton
from models.vqvae.evaluation import codebook_usage, evaluate_reconstruction, mpjpe
from models.vqvae.training import load_normalization


def test_mpjpe_of_a_known_offset():
    joints = np.random.default_rng(0).standard_normal((30, 22, 3))
    shifted = joints + np.array([0.01, 0.0, 0.0])  # 1 cm in HumanML3D's metres
    assert mpjpe(shifted, joints) * 1000 == pytest.approx(10.0)
    assert mpjpe(shifted, joints, align_root=True) == pytest.approx(0.0, abs=1e-12)  # a rigid shift
    one_joint = joints.copy()
    one_joint[:, 5] += np.array([0.0, 0.022, 0.0])  # 22 mm on one of 22 joints -> 1 mm on average
    assert mpjpe(one_joint, joints) * 1000 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        mpjpe(joints[:, :21], joints)


def test_codebook_usage_counts_and_perplexity():
    active, perplexity = codebook_usage([torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3])], nb_code=16)
    assert active == 4 and perplexity == pytest.approx(4.0, rel=1e-5)


def test_evaluation_matches_a_direct_computation(coded_vq, tiny_dataset):
    normalization = load_normalization(tiny_dataset)
    ids = tiny_dataset.split_ids("val")
    features = [tiny_dataset.load_features(i) for i in ids]
    metrics = evaluate_reconstruction(coded_vq, features, normalization, get_skeleton("humanml3d"))

    errors, aligned, counts, codes = [], [], [], []
    for raw in features:  # one motion at a time, as upstream's forward_decoder(encode(x)) would
        raw = raw[: len(raw) // 4 * 4]
        x = torch.from_numpy(normalization.normalize(raw))
        code = coded_vq.encode([x])[0]
        recon = coded_vq.decode([code]).motions[0]
        pred = recover_from_ric(normalization.denormalize(recon.numpy()).astype(np.float64), 22)
        true = recover_from_ric(raw.astype(np.float64), 22)
        errors.append(mpjpe(pred, true))
        aligned.append(mpjpe(pred, true, align_root=True))
        counts.append(len(raw))
        codes.append(code)
    weights = np.array(counts) / sum(counts)
    assert metrics.motions == len(ids) and metrics.frames == sum(counts)
    assert metrics.mpjpe_global_mm == pytest.approx(1000 * float(np.dot(weights, errors)), rel=1e-4)
    assert metrics.mpjpe_mm == pytest.approx(1000 * float(np.dot(weights, aligned)), rel=1e-4)
    assert (metrics.active_codes, metrics.perplexity) == pytest.approx(codebook_usage(codes, 64))
    assert metrics.active_codes > 5  # the codebook is spread over real latents

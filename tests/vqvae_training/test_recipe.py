"""The pieces of T2M-GPT's recipe: objective, LR schedule, window sampler, training forward."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.motion.layout import feature_layout
from models.vqvae.training import (
    MotionWindows,
    Normalization,
    T2MGPTSchedule,
    TrainingRecipe,
    VQTrainingModule,
    stored_normalization,
    vq_objective,
)


def test_objective_is_smooth_l1_plus_weighted_ric_term_plus_commitment():
    generator = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 2, 8, 263, generator=generator)
    commit = torch.tensor(0.3)
    terms = vq_objective(pred, target, commit, joints_num=22, loss_vel=0.5, commit=0.02)
    ric = slice(4, 4 + 21 * 3)  # T2M-GPT's forward_vel slice [4 : (J - 1) * 3 + 4]
    assert feature_layout(22).ric == ric
    recons = F.smooth_l1_loss(pred, target)
    vel = F.smooth_l1_loss(pred[..., ric], target[..., ric])
    torch.testing.assert_close(terms.recons, recons)
    torch.testing.assert_close(terms.vel, vel)
    torch.testing.assert_close(terms.total, recons + 0.02 * commit + 0.5 * vel)
    l2 = vq_objective(pred, target, commit, joints_num=22, recons_loss="l2")
    torch.testing.assert_close(l2.recons, F.mse_loss(pred, target))


def _upstream_lrs(lr: float, warm_up_iter: int, total_iter: int, milestones: list[int],
                  gamma: float) -> list[float]:
    """The lr of every optimiser step of T2M-GPT's train_vq.py: manual warm-up, then MultiStepLR."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    lrs = []
    for nb_iter in range(1, warm_up_iter):
        for group in optimizer.param_groups:
            group["lr"] = lr * (nb_iter + 1) / (warm_up_iter + 1)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
    for _ in range(1, total_iter + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("warm_up_iter,milestones", [(10, [5, 12]), (1, [3]), (0, [])])
def test_schedule_reproduces_upstream_warm_up_and_multistep(warm_up_iter, milestones):
    recipe = TrainingRecipe(lr=2e-4, warm_up_iter=warm_up_iter, total_iter=20, lr_scheduler=milestones,
                            gamma=0.05)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, T2MGPTSchedule(warm_up_iter, milestones, 0.05))
    ours = []
    for _ in range(recipe.num_steps):
        ours.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = _upstream_lrs(2e-4, warm_up_iter, 20, milestones, 0.05)
    assert len(ours) == len(expected) == recipe.warm_up_steps + 20
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_windows_are_deterministic_and_sharded_contiguously():
    generator = np.random.default_rng(0)
    motions = [generator.standard_normal((n, 5)).astype(np.float32) for n in (40, 33, 50, 32, 64, 45, 70)]
    windows = MotionWindows(motions, window_size=32, seed=3)
    assert windows.batches_per_epoch(3) == 2  # 7 motions, batches of 3, last incomplete one dropped
    batch = windows.batch(1, 3)
    again = MotionWindows(motions, window_size=32, seed=3)
    assert torch.equal(again.batch(1, 3), batch)
    assert not torch.equal(MotionWindows(motions, 32, seed=4).batch(1, 3), batch)
    # every window is a contiguous slice of one motion
    flat = np.concatenate(motions)
    for window in batch.numpy():
        hits = [i for i in range(len(flat) - 31) if np.array_equal(flat[i:i + 32], window)]
        assert hits
    # an epoch visits distinct motions; step 3 starts epoch 1
    assert windows.position(3, 3) == (1, 0)
    first_epoch = torch.cat([windows.batch(s, 3) for s in (1, 2)])
    assert len({tuple(w[0, :2].tolist()) for w in first_epoch}) == 6
    # rank shards are contiguous slices of the global batch
    shards = [windows.batch(2, 4, rank=r, world_size=2) for r in (0, 1)]
    assert torch.equal(torch.cat(shards), windows.batch(2, 4))
    with pytest.raises(ValueError, match="divisible"):
        windows.batch(1, 3, rank=0, world_size=2)


def test_training_forward_equals_the_model_forward(tiny_vq, tiny_recipe, tiny_windows):
    """One process: the DDP-ready training module computes exactly MotionVQVAE.forward and its EMA update."""
    reference = copy.deepcopy(tiny_vq).train()
    module = VQTrainingModule(tiny_vq.train(), tiny_recipe, joints_num=22)
    for step in (1, 2):
        windows = tiny_windows.batch(step, 8)
        torch.manual_seed(step)
        expected = reference(windows)
        torch.manual_seed(step)
        out = module(windows)
        terms = vq_objective(expected.reconstruction, windows, expected.commit_loss, joints_num=22)
        assert torch.equal(out.loss.total, terms.total)
        assert torch.equal(out.loss.commit, expected.commit_loss)
        assert torch.equal(out.perplexity, expected.perplexity)
        assert torch.equal(tiny_vq.vqvae.quantizer.codebook, reference.vqvae.quantizer.codebook)
        assert torch.equal(tiny_vq.vqvae.quantizer.code_count, reference.vqvae.quantizer.code_count)


def test_normalization_round_trip_through_a_checkpoint_payload():
    norm = Normalization(np.arange(3.0), np.full(3, 2.0), "dataset:/x")
    restored = stored_normalization({"normalization": norm.to_checkpoint()})
    assert restored.sha256() == norm.sha256() and restored.source == "dataset:/x"
    features = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(features)), features)
    assert stored_normalization({"net": {}}) is None

"""Training-time behaviour of the EMA-reset quantizer: init, EMA update, dead-code reset, perplexity."""

from __future__ import annotations

import pytest
import torch

from models.vqvae import EMAResetQuantizer, MotionVQVAE, get_vqvae_config


def _as_bct(latents: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` -> ``[1, C, N]`` (one sequence of N steps), the layout ``forward`` takes."""
    return latents.t()[None].contiguous()


def test_first_training_batch_initialises_codebook_by_tiling():
    torch.manual_seed(0)
    quantizer = EMAResetQuantizer(nb_code=8, code_dim=4, mu=0.99).train()
    latents = torch.randn(3, 4) * 5
    quantizer(_as_bct(latents))
    assert quantizer.initialized
    # 3 latents tiled to 8 rows (plus noise of std 0.01/sqrt(4)), then one EMA step towards the batch means.
    nearest = torch.cdist(quantizer.codebook, latents).min(dim=1).values
    assert nearest.max() < 0.1


def test_ema_update_and_dead_code_reset():
    mu = 0.5
    quantizer = EMAResetQuantizer(nb_code=8, code_dim=4, mu=mu).train()
    codebook = torch.eye(8, 4) * 10 + torch.arange(8.0)[:, None] * torch.tensor([0.0, 0.0, 0.0, 10.0])
    quantizer.codebook.copy_(codebook)
    quantizer.mark_initialized()  # EMA sums = codebook, counts = 1

    generator = torch.Generator().manual_seed(1)
    near0 = codebook[0] + 0.1 * torch.randn(6, 4, generator=generator)
    near1 = codebook[1] + 0.1 * torch.randn(6, 4, generator=generator)
    latents = torch.cat([near0[:3], near1[:3], near0[3:], near1[3:]])  # 12 latents, codes 0 and 1 only
    _, commit_loss, perplexity = quantizer(_as_bct(latents))

    expected0 = (mu * codebook[0] + (1 - mu) * near0.sum(0)) / (mu * 1 + (1 - mu) * 6)
    expected1 = (mu * codebook[1] + (1 - mu) * near1.sum(0)) / (mu * 1 + (1 - mu) * 6)
    torch.testing.assert_close(quantizer.codebook[0], expected0)
    torch.testing.assert_close(quantizer.codebook[1], expected1)
    # Codes 2..7 were unused: EMA count 0.5 < 1, so they are replaced by the batch's first latents.
    torch.testing.assert_close(quantizer.codebook[2:], latents[2:8])
    assert int(quantizer.last_reset_count) == 6
    torch.testing.assert_close(quantizer.code_count, torch.tensor([3.5, 3.5] + [0.5] * 6))
    assert perplexity.item() == pytest.approx(2.0, rel=1e-5)  # two codes used equally
    assigned = codebook[[0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]]  # the codebook before the update
    torch.testing.assert_close(commit_loss, (latents - assigned).pow(2).mean())


def test_long_dead_code_with_underflowed_count_is_reset_not_nan():
    quantizer = EMAResetQuantizer(nb_code=4, code_dim=2, mu=0.99).train()
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0], [0.0, 9.0]]))
    quantizer.mark_initialized()
    quantizer.code_sum[3] = 0.0
    quantizer.code_count[3] = 0.0  # what 0.99**k reaches in float32 after ~10k unused steps
    latents = torch.tensor([[0.1, 0.0], [5.0, 5.1], [9.0, 0.2], [0.0, 0.1]])
    quantizer(_as_bct(latents))
    assert torch.isfinite(quantizer.codebook).all()
    torch.testing.assert_close(quantizer.codebook[3], latents[3])  # reset to a batch latent


def test_commit_loss_and_straight_through_gradient():
    quantizer = EMAResetQuantizer(nb_code=4, code_dim=3).eval()
    quantizer.codebook.copy_(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    latents = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.0, 0.2], [0.0, 0.0, 1.5]], requires_grad=True)
    quantized, commit_loss, perplexity = quantizer(_as_bct(latents))
    targets = quantizer.codebook[[1, 0, 3]]
    torch.testing.assert_close(quantized[0].t(), targets)
    torch.testing.assert_close(commit_loss, (latents - targets).pow(2).mean())
    assert perplexity.item() == pytest.approx(3.0, rel=1e-5)
    quantized.sum().backward()  # straight-through: d(quantized)/d(latents) = identity
    torch.testing.assert_close(latents.grad, torch.ones_like(latents))
    assert torch.equal(quantizer.codebook, torch.eye(4, 3).roll(1, dims=0))  # eval mode: no EMA update


def test_perplexity_of_uniform_usage_is_number_of_codes():
    quantizer = EMAResetQuantizer(nb_code=16, code_dim=2)
    codes = torch.arange(5).repeat(7)
    assert quantizer.usage_counts(codes).tolist() == [7.0] * 5 + [0.0] * 11
    assert quantizer.compute_perplexity(codes).item() == pytest.approx(5.0, rel=1e-5)
    one_code = torch.zeros(9, dtype=torch.long)
    assert quantizer.compute_perplexity(one_code).item() == pytest.approx(1.0, abs=1e-5)


def test_training_step_updates_codebook_and_weights(make_motions):
    torch.manual_seed(0)
    model = MotionVQVAE(get_vqvae_config("small_fixture")).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    motions = torch.stack(make_motions([32] * 6))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    for _ in range(2):
        reconstruction, commit_loss, perplexity = model(motions)
        loss = torch.nn.functional.smooth_l1_loss(reconstruction, motions) + 0.02 * commit_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    quantizer = model.vqvae.quantizer
    assert quantizer.initialized
    assert quantizer.codebook.grad is None and not quantizer.codebook.requires_grad
    assert not torch.equal(quantizer.codebook, before["vqvae.quantizer.codebook"])
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)  # every weight (encoder via straight-through) and the codebook
    assert 1.0 <= perplexity.item() <= model.nb_code
    assert 0 <= int(quantizer.last_reset_count) <= model.nb_code


def test_loaded_model_continues_training_without_reinitialising(small_model, make_motions):
    """After loading, EMA statistics restart from the codebook (count 1), not from the next batch."""
    quantizer = small_model.vqvae.quantizer
    assert quantizer.initialized
    torch.testing.assert_close(quantizer.code_sum, quantizer.codebook)
    assert torch.equal(quantizer.code_count, torch.ones(small_model.nb_code))
    original = quantizer.codebook.clone()
    motions = torch.stack(make_motions([16] * 2))
    with torch.no_grad():
        latents = small_model.vqvae.encoder(motions.permute(0, 2, 1)).permute(0, 2, 1).reshape(-1, 32)
        codes = quantizer.quantize(latents)
        small_model.train()(motions)
    counts = torch.bincount(codes, minlength=small_model.nb_code).float()
    sums = torch.zeros_like(original).index_add_(0, codes, latents)
    used = counts > 0
    mu = quantizer.mu
    expected = (mu * original + (1 - mu) * sums) / (mu + (1 - mu) * counts)[:, None]
    torch.testing.assert_close(quantizer.codebook[used], expected[used])
    # Unused codes fall to an EMA count of mu < 1 and are reset to batch latents, as on upstream's first step.
    assert int(quantizer.last_reset_count) == int((~used).sum())


def test_training_state_round_trip():
    source = EMAResetQuantizer(nb_code=8, code_dim=4).train()
    source(_as_bct(torch.randn(20, 4)))
    target = EMAResetQuantizer(nb_code=8, code_dim=4)
    target.load_training_state(source.training_state())
    assert target.initialized
    assert torch.equal(target.code_sum, source.code_sum) and torch.equal(target.code_count, source.code_count)
    with pytest.raises(ValueError, match="code_sum"):
        EMAResetQuantizer(nb_code=8, code_dim=5).load_training_state(source.training_state())

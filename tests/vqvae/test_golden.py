"""Golden tests: our MotionVQVAE reproduces upstream HumanVQVAE outputs stored in vqvae_small.pt.

Tolerances from fixtures/README.md: codes exact; float outputs within 1e-5 absolute.
"""

from __future__ import annotations

import torch

ATOL = 1e-5


def test_state_dict_keys_and_order_match_upstream(small_model, vq_golden):
    ours = small_model.state_dict()
    assert list(ours) == list(vq_golden["state_dict"])
    for key, tensor in vq_golden["state_dict"].items():
        assert torch.equal(ours[key], tensor), key


def test_codes_match_for_each_motion(small_model, vq_golden):
    for motion, expected in zip(vq_golden["motions"], vq_golden["codes"]):
        (codes,) = small_model.encode([motion])
        assert codes.dtype == torch.long
        assert torch.equal(codes, expected)


def test_batched_encode_of_fixture_motions_matches(small_model, vq_golden):
    codes = small_model.encode(vq_golden["motions"], names=vq_golden["motion_names"])
    assert all(torch.equal(c, e) for c, e in zip(codes, vq_golden["codes"]))


def test_decoded_matches(small_model, vq_golden):
    decoded = small_model.decode(vq_golden["codes"])
    assert decoded.lengths.tolist() == [len(m) for m in vq_golden["motions"]]
    for ours, expected in zip(decoded.unpad(), vq_golden["decoded"]):
        assert ours.shape == expected.shape
        torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)


def test_forward_reconstruction_loss_and_perplexity_match(small_model, vq_golden):
    with torch.no_grad():
        for i, motion in enumerate(vq_golden["motions"]):
            out = small_model(motion[None])
            expected = vq_golden["forward_recon"][i]
            torch.testing.assert_close(out.reconstruction[0], expected, atol=ATOL, rtol=0)
            assert abs(out.commit_loss.item() - vq_golden["forward_commit_loss"][i]) < ATOL
            assert abs(out.perplexity.item() - vq_golden["forward_perplexity"][i]) < 1e-4


def test_quantizer_probe_all_codes(small_model, vq_golden):
    extra = vq_golden["extra"]
    codes = small_model.vqvae.quantizer.quantize(extra["quantize_probe_latents"])
    assert torch.equal(codes, extra["quantize_probe_codes"])
    assert set(codes.tolist()) == set(range(small_model.nb_code))


def _margins(latents: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Second-best minus best squared distance per latent, computed as upstream ``quantize`` does."""
    distance = latents.pow(2).sum(-1, keepdim=True) - 2 * latents @ codebook.t() + codebook.t().pow(2).sum(0)
    best_two = distance.topk(2, dim=-1, largest=False).values
    return best_two[:, 1] - best_two[:, 0]


def test_encoder_latent_margins_match(small_model, vq_golden):
    """Checks the encoder latents themselves, not only which code wins."""
    codebook = small_model.vqvae.quantizer.codebook
    with torch.no_grad():
        for motion, expected in zip(vq_golden["motions"], vq_golden["code_margin"]):
            latents = small_model.vqvae.encoder(motion[None].permute(0, 2, 1))[0].t()
            torch.testing.assert_close(_margins(latents, codebook), expected, atol=1e-5, rtol=0)


def test_probe_margins_match(small_model, vq_golden):
    extra = vq_golden["extra"]
    margins = _margins(extra["quantize_probe_latents"], small_model.vqvae.quantizer.codebook)
    torch.testing.assert_close(margins, extra["quantize_probe_margin"], atol=1e-4, rtol=1e-6)


def test_decoder_probe(small_model, vq_golden):
    extra = vq_golden["extra"]
    decoded = small_model.decode(extra["decode_probe_codes"][None])
    assert decoded.motions.shape == (1, 80, 263)
    torch.testing.assert_close(decoded.motions[0], extra["decode_probe_output"], atol=ATOL, rtol=0)


def test_odd_length_input(small_model, vq_golden):
    """50 frames -> 25 -> 12 codes -> 48 frames (each stride-2 conv floors)."""
    extra = vq_golden["extra"]
    motion = extra["odd_length_motion"]
    assert motion.shape[0] == 50
    (codes,) = small_model.encode([motion])
    assert codes.shape == (12,)
    assert torch.equal(codes, extra["odd_length_codes"])
    with torch.no_grad():
        out = small_model(motion[None])
    assert out.reconstruction.shape == (1, 48, 263)
    torch.testing.assert_close(out.reconstruction[0], extra["odd_length_forward_recon"], atol=ATOL, rtol=0)
    assert small_model.decode([codes]).motions.shape == (1, 48, 263)

"""Batched encode/decode equal one-at-a-time upstream-style calls, whatever the mix of lengths."""

from __future__ import annotations

import torch

from models.vqvae.model import _group_by_length

LENGTHS = [40, 52, 64, 37, 52, 40, 4, 99, 64]


def _one_at_a_time_codes(model, motion: torch.Tensor) -> torch.Tensor:
    """Upstream ``HumanVQVAE.encode(x[None])[0]``, spelled out on our modules."""
    with torch.no_grad():
        latents = model.vqvae.encoder(motion[None].float().permute(0, 2, 1))
        return model.vqvae.quantizer.quantize(latents.permute(0, 2, 1).reshape(-1, latents.shape[1]))


def _one_at_a_time_decode(model, codes: torch.Tensor) -> torch.Tensor:
    """Upstream ``forward_decoder(codes)[0]`` (batch fixed at 1)."""
    with torch.no_grad():
        vectors = model.vqvae.quantizer.dequantize(codes).view(1, -1, model.config.code_dim)
        return model.vqvae.decoder(vectors.permute(0, 2, 1).contiguous()).permute(0, 2, 1)[0]


def test_model_uses_many_codes(varied_model, make_motions):
    codes = torch.cat(varied_model.encode(make_motions(LENGTHS)))
    assert codes.unique().numel() > 20  # otherwise the equality tests below would be weak


def test_batched_encode_equals_one_at_a_time(varied_model, make_motions):
    motions = make_motions(LENGTHS)
    batched = varied_model.encode(motions, batch_size=2)  # also exercises chunking of a length group
    for motion, codes in zip(motions, batched):
        assert codes.shape == (motion.shape[0] // 4,)
        assert torch.equal(codes, _one_at_a_time_codes(varied_model, motion))


def test_padded_tensor_list_and_numpy_inputs_agree(varied_model, make_motions):
    motions = make_motions(LENGTHS)
    padded = torch.nn.utils.rnn.pad_sequence(motions, batch_first=True)
    padded[0, LENGTHS[0]:] = float("nan")  # padding is never read (nor validated)
    from_tensor = varied_model.encode(padded, lengths=torch.tensor(LENGTHS))
    from_list = varied_model.encode(motions)
    from_numpy = varied_model.encode([m.numpy() for m in motions])
    assert all(torch.equal(a, b) and torch.equal(b, c) for a, b, c in zip(from_tensor, from_list, from_numpy))


def test_naive_zero_padding_would_change_codes(varied_model, make_motions):
    """Why encode groups equal lengths: padding changes the codes near the end of shorter motions."""
    motions = make_motions([40, 64])
    padded = torch.nn.utils.rnn.pad_sequence(motions, batch_first=True)
    with torch.no_grad():
        latents = varied_model.vqvae.encoder(padded.permute(0, 2, 1))
        naive = varied_model.vqvae.quantizer.quantize(latents.permute(0, 2, 1).reshape(-1, 32)).view(2, -1)
    assert not torch.equal(naive[0, :10], varied_model.encode([motions[0]])[0])


def test_batched_decode_equals_per_motion(varied_model):
    generator = torch.Generator().manual_seed(3)
    code_lists = [torch.randint(0, varied_model.nb_code, (n,), generator=generator)
                  for n in [10, 13, 1, 10, 25, 13]]
    decoded = varied_model.decode(code_lists, batch_size=1)
    assert decoded.lengths.tolist() == [4 * len(c) for c in code_lists]
    assert decoded.motions.shape == (6, 100, 263)
    for i, codes in enumerate(code_lists):
        expected = _one_at_a_time_decode(varied_model, codes)
        torch.testing.assert_close(decoded.motions[i, : 4 * len(codes)], expected, atol=1e-6, rtol=0)
        assert not decoded.motions[i, 4 * len(codes):].any()  # zero padding after the item
    padded = torch.nn.utils.rnn.pad_sequence(code_lists, batch_first=True, padding_value=-1)
    from_tensor = varied_model.decode(padded, lengths=[len(c) for c in code_lists])
    torch.testing.assert_close(from_tensor.motions, decoded.motions, atol=1e-6, rtol=0)


def test_outputs_are_ordinary_tensors_usable_in_autograd(varied_model, make_motions):
    """Computed under inference_mode, but returned as normal tensors (no 'inference tensor' errors later)."""
    (codes,) = varied_model.encode(make_motions([16]))
    assert codes.device.type == "cpu" and codes.dtype == torch.long and not codes.is_inference()
    decoded = varied_model.decode([codes]).motions
    assert not decoded.is_inference() and not decoded.requires_grad
    embedding = torch.nn.Embedding(varied_model.nb_code, 3)
    prediction = torch.zeros_like(decoded, requires_grad=True)
    (embedding(codes).sum() + torch.nn.functional.l1_loss(prediction, decoded)).backward()
    assert embedding.weight.grad is not None and prediction.grad is not None


def test_group_by_length_keeps_input_order_and_chunks():
    groups = _group_by_length(torch.tensor([5, 3, 5, 5, 3]), chunk=2)
    assert [(n, idx.tolist()) for n, idx in groups] == [(3, [1, 4]), (5, [0, 2]), (5, [3])]

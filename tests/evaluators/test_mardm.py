"""MARDM cross-evaluators: key names, normalisation/conversion, Guo variant, tiny MotionCLIP end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evaluators.mardm import (
    MARDMEvaluator,
    MARDMNormalizer,
    MotionCLIP,
    MotionCLIPConfig,
    clip_token_ids,
    mardm_guo_config,
)
from evaluators.t2m_extractor import T2MEvaluator

TINY_CLIP = dict(
    input_dim=67,
    latent_dim=16,
    ff_size=32,
    num_layers=2,
    num_heads=2,
    dropout=0.2,
    pe_max_len=300,
    vocab_size=62,
    text_width=16,
    text_layers=1,
    text_heads=2,
    text_ff_size=32,
    embed_dim=12,
)


def _transformer_keys(prefix: str, layers: int) -> list[str]:
    names = [
        "self_attn.in_proj_weight",
        "self_attn.in_proj_bias",
        "self_attn.out_proj.weight",
        "self_attn.out_proj.bias",
        "linear1.weight",
        "linear1.bias",
        "linear2.weight",
        "linear2.bias",
        "norm1.weight",
        "norm1.bias",
        "norm2.weight",
        "norm2.bias",
    ]
    return [f"{prefix}.layers.{i}.{n}" for i in range(layers) for n in names]


def test_motion_clip_state_dict_names_and_shapes_follow_mardm():
    model = MotionCLIP(
        dataclasses.replace(MotionCLIPConfig(), vocab_size=64)
    )  # vocab shrunk to keep it light
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = (
        [
            "positional_embedding",
            "logit_scale",
            "motion_encoder.query_token",
            "motion_encoder.embed_motion.weight",
            "motion_encoder.embed_motion.bias",
            "motion_encoder.sequence_pos_encoder.pe",
        ]
        + _transformer_keys("motion_encoder.transformer", 8)
        + [
            "motion_encoder.out_ln.weight",
            "motion_encoder.out_ln.bias",
            "motion_encoder.out.weight",
            "motion_encoder.out.bias",
            "token_embedding.weight",
        ]
        + _transformer_keys("textTransEncoder", 8)
        + ["text_ln.weight", "text_ln.bias", "out.weight", "out.bias"]
    )
    assert list(shapes) == expected
    assert shapes["positional_embedding"] == (77, 512) and shapes[
        "motion_encoder.sequence_pos_encoder.pe"
    ] == (2000, 512)
    assert shapes["motion_encoder.embed_motion.weight"] == (512, 67) and shapes[
        "motion_encoder.query_token"
    ] == (1, 512)
    assert (
        shapes["motion_encoder.transformer.layers.0.linear1.weight"] == (1024, 512)
        and shapes["logit_scale"] == ()
    )


def test_guo_variant_has_no_foot_contact_slicing():
    config = mardm_guo_config("t2m")
    assert (config.dim_pose, config.movement_input_dim, config.dim_motion_hidden) == (67, 67, 1024)
    assert mardm_guo_config("kit").movement_input_dim == 64
    small = dataclasses.replace(
        mardm_guo_config("t2m"),
        dim_movement_enc_hidden=16,
        dim_movement_latent=16,
        dim_motion_hidden=16,
        dim_text_hidden=16,
        dim_coemb_hidden=8,
    )
    evaluator = T2MEvaluator(small).eval()
    motions = torch.randn(3, 196, 67)
    m_lens = torch.tensor([40, 196, 100])
    emb = evaluator.motion_embeddings(motions, m_lens)
    changed = motions.clone()
    changed[:, :, -4:] += 1.0  # the last 4 of 67 dims are RIC joints here, not foot contacts: they count
    assert not torch.allclose(evaluator.motion_embeddings(changed, m_lens), emb)
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(
        evaluator.motion_embeddings(motions[perm], m_lens[perm]), emb[perm], atol=1e-5, rtol=0
    )


def test_normalizer_and_conversion_from_vq_features(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "eval_mean.npy", rng.standard_normal(67).astype(np.float32))
    np.save(tmp_path / "eval_std.npy", rng.uniform(0.1, 1.0, 67).astype(np.float32))
    normalizer = MARDMNormalizer.load(tmp_path)
    vq_mean, vq_std = rng.standard_normal(263), rng.uniform(0.1, 1.0, 263)
    raw = rng.standard_normal((2, 10, 263)).astype(np.float32)
    x_vq = ((raw - vq_mean) / vq_std).astype(np.float32)
    expected = (raw[..., :67] - normalizer.mean) / normalizer.std
    np.testing.assert_allclose(normalizer.from_vq_features(x_vq, vq_mean, vq_std), expected, atol=1e-4)
    padded = normalizer.from_vq_features(torch.as_tensor(x_vq), vq_mean, vq_std, m_lens=[4, 10])
    assert isinstance(padded, torch.Tensor) and padded.shape == (2, 10, 67)
    assert padded[0, 4:].abs().max() == 0 and padded[1].abs().min() >= 0
    torch.testing.assert_close(padded[0, :4], torch.as_tensor(expected[0, :4]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="first 67"):
        normalizer.normalize(raw[..., :60])


def test_clip_token_ids_follow_clip_tokenize(tiny_clip_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_clip_tokenizer_dir))
    ids, eot = clip_token_ids(["A man.", "x" * 100], tokenizer, context_length=77)
    sot, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    # "a</w>" "m" "a" "n" ".</w>" between <sot> and <eot>, zero padding after.
    assert ids[0, :7].tolist() == [sot, *tokenizer("A man.", add_special_tokens=False)["input_ids"], end]
    assert eot.tolist() == [6, 76] and ids[0, 7:].eq(0).all()
    assert ids[1, 76] == end and ids[1, 0] == sot  # truncated, <eot> kept last


def _tiny_mardm(tiny_clip_tokenizer_dir, tmp_path) -> MARDMEvaluator:
    """Tiny random MotionCLIP + Guo evaluator saved in MARDM's layouts, then loaded like the real ones."""
    torch.manual_seed(0)
    clip_config = MotionCLIPConfig(**TINY_CLIP)
    torch.save({"contrast_model": MotionCLIP(clip_config).state_dict()}, tmp_path / "clip.tar")
    guo_config = dataclasses.replace(
        mardm_guo_config(),
        dim_text_hidden=8,
        dim_coemb_hidden=8,
        dim_movement_enc_hidden=8,
        dim_movement_latent=8,
        dim_motion_hidden=8,
    )
    T2MEvaluator(guo_config).save(tmp_path / "guo.tar")
    return MARDMEvaluator.load(
        tmp_path / "guo.tar",
        tmp_path / "clip.tar",
        tiny_clip_tokenizer_dir,
        guo_config=guo_config,
        clip_config=clip_config,
    )


def test_motion_clip_end_to_end_padding_invariance_and_scores(tiny_clip_tokenizer_dir, tmp_path):
    evaluator = _tiny_mardm(tiny_clip_tokenizer_dir, tmp_path)
    assert evaluator.has_clip
    motions = torch.randn(3, 40, 67)
    m_lens = torch.tensor([40, 12, 25])
    emb = evaluator.clip_motion_embeddings(motions, m_lens)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    noisy = motions.clone()
    noisy[1, 12:] = 100.0  # frames past the length are masked out
    torch.testing.assert_close(evaluator.clip_motion_embeddings(noisy, m_lens), emb, atol=1e-5, rtol=0)
    captions = ["a person walks.", "a man jumps!", "someone sits"]
    text = evaluator.clip_text_embeddings(captions)
    torch.testing.assert_close(
        evaluator.clip_text_embeddings(captions[::-1]), text.flip(0), atol=1e-5, rtol=0
    )
    scores = evaluator.clip_scores(captions, motions, m_lens)
    torch.testing.assert_close(scores, (text * emb).sum(-1))
    assert scores.abs().max() <= 1.0 + 1e-6
    word_embs, pos = torch.randn(3, 22, 300), torch.zeros(3, 22, 15)
    et, em = evaluator.get_co_embeddings(
        word_embs, pos, torch.tensor([5, 9, 22]), torch.randn(3, 196, 67), torch.tensor([40, 80, 196])
    )
    assert et.shape == em.shape == (3, 8)


def test_clip_side_absent_is_reported_cleanly(tmp_path):
    config = dataclasses.replace(
        mardm_guo_config(),
        dim_movement_enc_hidden=8,
        dim_movement_latent=8,
        dim_motion_hidden=8,
        dim_text_hidden=8,
        dim_coemb_hidden=8,
    )
    T2MEvaluator(config).save(tmp_path / "finest.tar")
    evaluator = MARDMEvaluator.load(
        tmp_path / "finest.tar", clip_checkpoint=tmp_path / "clip.tar", guo_config=config
    )
    assert not evaluator.has_clip
    with pytest.raises(RuntimeError, match="clip_tokenizer"):
        evaluator.clip_text_embeddings(["a person walks"])
    assert evaluator.motion_embeddings(torch.zeros(2, 196, 67), [40, 44]).shape == (2, 8)


def test_init_text_embeddings_from_a_local_clip_text_model(tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=62,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=60,
        eos_token_id=61,
        pad_token_id=0,
    )
    CLIPTextModel(config).save_pretrained(str(tmp_path / "clip_text"))
    model = MotionCLIP(MotionCLIPConfig(**TINY_CLIP))
    model.init_text_embeddings_from_clip(tmp_path / "clip_text")
    reference = CLIPTextModel.from_pretrained(str(tmp_path / "clip_text")).embeddings
    torch.testing.assert_close(model.token_embedding.weight, reference.token_embedding.weight)
    torch.testing.assert_close(model.positional_embedding, reference.position_embedding.weight)

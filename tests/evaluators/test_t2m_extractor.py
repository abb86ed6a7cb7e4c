"""T2M evaluator: golden embeddings from t2m_evaluator_small.pt, strict checkpoint loading, save/load.

Tolerance from fixtures/README.md: absolute 1e-5 on embeddings (values up to ~2.6).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evaluators.t2m_extractor import (
    MODULE_KEYS,
    CheckpointMismatchError,
    T2MEvaluator,
    T2MEvaluatorConfig,
    length_sort_order,
)
from models.common.errors import DataError

ATOL = 1e-5


def _inputs(golden: dict) -> tuple[torch.Tensor, ...]:
    i = golden["inputs"]
    return i["word_embs"], i["pos_ohot"], i["cap_lens"], i["motions"], i["m_lens"]


def test_small_checkpoint_loads_strictly_with_upstream_key_order(evaluator_golden, small_evaluator):
    for name in MODULE_KEYS:
        ours = getattr(small_evaluator, name).state_dict()
        assert list(ours) == list(evaluator_golden[name])
        assert all(torch.equal(ours[k], v) for k, v in evaluator_golden[name].items())


def test_co_embeddings_match_upstream_in_input_order(evaluator_golden, small_evaluator):
    text, motion = small_evaluator.get_co_embeddings(*_inputs(evaluator_golden))
    expected = evaluator_golden["expected"]
    torch.testing.assert_close(text, expected["text_embedding"], atol=ATOL, rtol=0)
    torch.testing.assert_close(motion, expected["motion_embedding"], atol=ATOL, rtol=0)


def test_movement_latents_match_upstream(evaluator_golden, small_evaluator):
    motions = evaluator_golden["inputs"]["motions"]
    with torch.inference_mode():
        movements = small_evaluator.movement_encoder(motions[..., :-4])
    torch.testing.assert_close(movements, evaluator_golden["expected"]["movements"], atol=ATOL, rtol=0)


def test_any_input_order_gives_permuted_outputs(evaluator_golden, small_evaluator):
    words, pos, cap_lens, motions, m_lens = _inputs(evaluator_golden)
    perm = torch.tensor([4, 1, 5, 0, 3, 2])  # caption lengths no longer descending
    text, motion = small_evaluator.get_co_embeddings(
        words[perm], pos[perm], cap_lens[perm], motions[perm], m_lens[perm]
    )
    expected = evaluator_golden["expected"]
    torch.testing.assert_close(text, expected["text_embedding"][perm], atol=ATOL, rtol=0)
    torch.testing.assert_close(motion, expected["motion_embedding"][perm], atol=ATOL, rtol=0)


def test_separate_text_and_motion_calls_and_numpy_inputs(evaluator_golden, small_evaluator):
    words, pos, cap_lens, motions, m_lens = _inputs(evaluator_golden)
    text = small_evaluator.text_embeddings(words.numpy(), pos.numpy(), cap_lens.tolist(), batch_size=4)
    motion = small_evaluator.motion_embeddings(motions.numpy(), m_lens.numpy(), batch_size=4)
    torch.testing.assert_close(text, evaluator_golden["expected"]["text_embedding"], atol=ATOL, rtol=0)
    torch.testing.assert_close(motion, evaluator_golden["expected"]["motion_embedding"], atol=ATOL, rtol=0)


def test_length_sorted_order_reproduces_get_motion_embeddings(evaluator_golden, small_evaluator):
    _, _, _, motions, m_lens = _inputs(evaluator_golden)
    reference = evaluator_golden["expected"]["get_motion_embeddings"]
    order = length_sort_order(m_lens)
    assert order.tolist() == reference["align_idx"].tolist() == [2, 0, 5, 3, 4, 1]
    motion = small_evaluator.motion_embeddings(motions, m_lens)
    torch.testing.assert_close(motion[order], reference["motion_embedding_sorted"], atol=ATOL, rtol=0)


def test_guo_original_variant_equals_our_outputs_permuted(evaluator_golden, small_evaluator):
    guo = evaluator_golden["expected"]["guo_original_variant"]
    text, motion = small_evaluator.get_co_embeddings(*_inputs(evaluator_golden))
    order = guo["align_idx"].numpy()
    torch.testing.assert_close(text[order], guo["text_embedding_sorted"], atol=ATOL, rtol=0)
    torch.testing.assert_close(motion[order], guo["motion_embedding_sorted"], atol=ATOL, rtol=0)


def test_full_size_manifest_loads_strictly_into_real_config(fixtures_dir):
    manifest = json.loads((fixtures_dir / "t2m_evaluator_full_keys.json").read_text())
    evaluator = T2MEvaluator(T2MEvaluatorConfig.preset("humanml3d"))
    checkpoint = {name: {e["key"]: torch.zeros(e["shape"]) for e in manifest[name]} for name in MODULE_KEYS}
    checkpoint.update(opt_text_encoder={"state": {}, "param_groups": []}, epoch=3, iter=100)
    evaluator.load_checkpoint_dict(checkpoint)
    counts = {
        name: sum(p.numel() for p in getattr(evaluator, name).state_dict().values()) for name in MODULE_KEYS
    }
    assert counts == {"text_encoder": 4100288, "motion_encoder": 15747584, "movement_encoder": 1842688}


def test_mismatched_checkpoint_error_names_every_bad_key(evaluator_golden):
    evaluator = T2MEvaluator(T2MEvaluatorConfig.preset("small"))
    checkpoint = {name: dict(evaluator_golden[name]) for name in MODULE_KEYS}
    del checkpoint["text_encoder"]["hidden"]
    checkpoint["motion_encoder"]["extra.weight"] = torch.zeros(1)
    checkpoint["movement_encoder"]["main.0.weight"] = torch.zeros(32, 263, 4)  # foot contacts not dropped
    with pytest.raises(CheckpointMismatchError) as info:
        evaluator.load_checkpoint_dict(checkpoint)
    message = str(info.value)
    assert "[text_encoder] missing hidden (2, 1, 32)" in message
    assert "[motion_encoder] unexpected extra.weight" in message
    assert "[movement_encoder] shape of main.0.weight: checkpoint (32, 263, 4), model (32, 259, 4)" in message


def test_save_then_load_file_roundtrip_ignoring_optimizer_state(tmp_path, evaluator_golden, small_evaluator):
    path = small_evaluator.save(tmp_path / "model" / "finest.tar", epoch=7, iteration=70)
    stored = torch.load(path, weights_only=True)
    assert {"text_encoder", "motion_encoder", "movement_encoder", "epoch", "iter"} <= set(stored)
    stored["opt_motion_encoder"] = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 2e-4}]}
    torch.save(stored, path)
    reloaded = T2MEvaluator.load(path)  # config taken from the file
    assert reloaded.config == small_evaluator.config and not reloaded.training
    text, motion = reloaded.get_co_embeddings(*_inputs(evaluator_golden))
    torch.testing.assert_close(motion, evaluator_golden["expected"]["motion_embedding"], atol=ATOL, rtol=0)


def test_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.tar"
    torch.save({"text_encoder": {}, "hook": np.random.RandomState(0)}, path)  # needs arbitrary unpickling
    with pytest.raises(DataError, match="weights_only"):
        T2MEvaluator.load(path, "small")


def test_bad_lengths_and_training_mode_are_rejected(evaluator_golden, small_evaluator):
    words, pos, cap_lens, motions, m_lens = _inputs(evaluator_golden)
    with pytest.raises(ValueError, match="m_lens"):
        small_evaluator.motion_embeddings(motions, torch.tensor([3, 40, 40, 40, 40, 40]))
    with pytest.raises(ValueError, match="cap_lens"):
        small_evaluator.text_embeddings(words, pos, torch.tensor([23, 5, 5, 5, 5, 5]))
    with pytest.raises(ValueError, match="263"):
        small_evaluator.motion_embeddings(motions[..., :67], m_lens)
    small_evaluator.train()
    with pytest.raises(RuntimeError, match="eval"):
        small_evaluator.motion_embeddings(motions, m_lens)


def test_config_from_opt_file_takes_only_the_wrapper_fields(tmp_path):
    opt = tmp_path / "opt.txt"
    opt.write_text(
        "------------ Options -------------\nbatch_size: 32\ndataset_name: kit\n"
        "dim_movement_enc_hidden: 512\ndim_movement_latent: 512\ndim_text_hidden: 999\n"
        "unit_length: 4\nlr: 0.0002\nwindow_size = 64\n-------------- End ----------------\n"
    )
    config = T2MEvaluatorConfig.from_opt_file(opt)
    assert config == T2MEvaluatorConfig.preset("kit")
    assert config.movement_input_dim == 247 and config.dim_text_hidden == 512

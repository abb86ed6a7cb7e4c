"""Evaluator training: both phases learn, resume exactly, and write the layouts upstream code reads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evaluators.protocol import T2MTestSet
from evaluators.t2m_extractor import MODULE_KEYS, T2MEvaluator, T2MEvaluatorConfig
from evaluators.training import (
    MatchingRecipe,
    MatchingTrainer,
    MovementAutoencoder,
    MovementConvDecoder,
    MovementPretrainer,
    MovementRecipe,
    SnippetSampler,
    contrastive_terms,
    evaluator_statistics,
    negative_shift,
)

CONFIG = T2MEvaluatorConfig(
    dim_word=16,
    dim_text_hidden=16,
    dim_coemb_hidden=16,
    dim_movement_enc_hidden=16,
    dim_movement_latent=16,
    dim_motion_hidden=16,
)


@pytest.fixture(scope="module")
def stats(tiny_dataset) -> tuple[np.ndarray, np.ndarray]:
    return evaluator_statistics(*tiny_dataset.mean_std(), joints_num=22, feat_bias=25.0)


@pytest.fixture(scope="module")
def snippets(tiny_dataset, stats) -> SnippetSampler:
    return SnippetSampler.from_dataset(tiny_dataset, "train", *stats, window_size=24, seed=0)


@pytest.fixture(scope="module")
def match_set(tiny_dataset, assets, stats) -> T2MTestSet:
    return T2MTestSet(tiny_dataset, "test", assets.word_vectorizer, *stats)


def _evaluator(seed: int = 0) -> T2MEvaluator:
    torch.manual_seed(seed)
    return T2MEvaluator(CONFIG)


def _matching(match_set, steps: int = 30, seed: int = 0) -> MatchingTrainer:
    recipe = MatchingRecipe(
        batch_size=16, lr=3e-3, max_steps=steps, negative_margin=5.0, negative_shift="nonzero"
    )
    return MatchingTrainer(_evaluator(seed), match_set, recipe)


def test_evaluator_statistics_divide_root_and_foot_contact_std(tiny_dataset) -> None:
    mean, std = tiny_dataset.mean_std()
    new_mean, new_std = evaluator_statistics(mean, std, 22, feat_bias=25.0)
    np.testing.assert_array_equal(new_mean, mean)
    np.testing.assert_allclose(new_std[:4], std[:4] / 25)
    np.testing.assert_allclose(new_std[-4:], std[-4:] / 25)
    np.testing.assert_array_equal(new_std[4:-4], std[4:-4])
    np.testing.assert_array_equal(evaluator_statistics(mean, std, 22, feat_bias=1.0)[1], std)


def test_snippet_epochs_visit_every_start_once(snippets) -> None:
    per_epoch = snippets.batches_per_epoch(32)
    firsts = torch.cat([snippets.batch(step, 32)[:, 0] for step in range(1, per_epoch + 1)])
    assert len(torch.unique(firsts, dim=0)) == per_epoch * 32  # no snippet twice within an epoch
    torch.testing.assert_close(snippets.batch(3, 32), snippets.batch(3, 32))
    assert snippets.batch(1, 32, rank=1, world_size=2).shape == (16, 24, 263)
    torch.testing.assert_close(snippets.batch(1, 32, rank=1, world_size=2), snippets.batch(1, 32)[16:])


def test_movement_autoencoder_shapes_and_learning(snippets) -> None:
    evaluator = _evaluator()
    decoder = MovementConvDecoder(16, 16, 263)
    assert decoder(torch.zeros(2, 6, 16)).shape == (2, 24, 263)
    trainer = MovementPretrainer(
        MovementAutoencoder(evaluator.movement_encoder, decoder),
        snippets,
        MovementRecipe(batch_size=32, lr=2e-3, max_steps=40),
    )
    fixed = snippets.fixed_batches(32, 3)
    before = trainer.evaluate(fixed)
    while not trainer.done:
        trainer.train_step()
    after = trainer.evaluate(fixed)
    assert trainer.step == 40 and after["rec"] < 0.8 * before["rec"], (before["rec"], after["rec"])
    checkpoint = trainer.checkpoint()
    assert {"movement_enc", "movement_dec", "opt_movement_enc", "opt_movement_dec", "ep", "total_it"} <= set(
        checkpoint
    )
    assert checkpoint["total_it"] == 40


def test_matching_reduces_the_validation_loss(match_set) -> None:
    trainer = _matching(match_set)
    before = trainer.validate(match_set)
    while not trainer.done:
        trainer.train_step()
    after = trainer.validate(match_set)
    assert after.loss < 0.95 * before.loss and after.loss_pos < 0.8 * before.loss_pos
    assert (
        after.r_precision[2] > before.r_precision[2]
        and len(after.r_precision) == 3
        and np.isfinite(after.matching_score)
    )
    assert trainer.record_validation(after) and not trainer.record_validation(
        dataclasses.replace(after, loss=1e9)
    )


def test_matching_resumes_exactly(match_set, tmp_path) -> None:
    straight = _matching(match_set, steps=6)
    while not straight.done:
        straight.train_step()
    first = _matching(match_set, steps=6)
    for _ in range(3):
        first.train_step()
    path = first.save(tmp_path / "latest.tar")
    resumed = _matching(match_set, steps=6, seed=1)  # other initial weights: all must come from the file
    resumed.load(torch.load(path, weights_only=True), path)
    assert resumed.step == 3
    while not resumed.done:
        resumed.train_step()
    for name in MODULE_KEYS:
        for key, value in getattr(straight.evaluator, name).state_dict().items():
            torch.testing.assert_close(
                getattr(resumed.evaluator, name).state_dict()[key], value, rtol=0, atol=0
            )


def test_finest_layout_loads_into_the_extractor(match_set, tmp_path) -> None:
    trainer = _matching(match_set, steps=2)
    trainer.train_step()
    path = trainer.save(tmp_path / "finest.tar", with_state=False)
    stored = torch.load(path, weights_only=True)
    assert set(stored) == {*MODULE_KEYS, "opt_text_encoder", "opt_motion_encoder", "epoch", "iter", "config"}
    loaded = T2MEvaluator.load(path)
    assert loaded.config == CONFIG and not loaded.training


def test_contrastive_terms_are_guos_margin_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    text, motion = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    terms = contrastive_terms(text, motion, shift=2, margin=3.0)
    distance = torch.linalg.norm(text - motion + 1e-6, dim=1)  # pairwise_distance adds eps to the difference
    rolled = motion[(torch.arange(5) + 2) % 5]
    negative = torch.linalg.norm(text - rolled + 1e-6, dim=1)
    torch.testing.assert_close(terms["loss_pos"], distance.pow(2).mean())
    torch.testing.assert_close(terms["loss_neg"], torch.clamp(3.0 - negative, min=0).pow(2).mean())
    torch.testing.assert_close(terms["loss"], terms["loss_pos"] + terms["loss_neg"])


def test_negative_shift_modes() -> None:
    rng = np.random.default_rng(0)
    upstream = {negative_shift(8, rng, "upstream") for _ in range(400)}
    nonzero = {negative_shift(8, rng, "nonzero") for _ in range(400)}
    assert upstream == set(range(7))  # randint(0, B-1): 0 (the positives) possible, B-1 never
    assert nonzero == set(range(1, 8))
    with pytest.raises(ValueError, match="negative_shift"):
        MatchingRecipe(negative_shift="other")

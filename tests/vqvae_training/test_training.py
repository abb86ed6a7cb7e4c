"""Steps learn, the EMA codebook moves and resets dead codes; resume is bit-exact; saves are atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.common.errors import DataError
from models.vqvae import MotionVQVAE, get_vqvae_config, load_vqvae
from models.vqvae.training import TRAINING_STATE_KEY, VQTrainer, stored_normalization


def _trainer(vq, windows, recipe) -> VQTrainer:
    return VQTrainer(vq, windows, recipe, joints_num=22)


def test_steps_reduce_the_loss_and_move_the_codebook(tiny_vq, tiny_windows, tiny_recipe):
    trainer = _trainer(tiny_vq, tiny_windows, tiny_recipe)
    quantizer = tiny_vq.vqvae.quantizer
    first = trainer.train_step()
    assert quantizer.initialized  # from the first batch's 8 x 8 = 64 latents, one per code
    codebook = quantizer.codebook.clone()
    history = [first] + [trainer.train_step() for _ in range(tiny_recipe.num_steps - 1)]
    assert trainer.done and trainer.step == tiny_recipe.num_steps == 23
    assert not torch.equal(quantizer.codebook, codebook)
    # codes a batch does not use decay below an EMA count of 1 and are reset to batch latents
    assert all(h["resets"] > 0 for h in history[1:])
    assert all(0 < h["active_codes"] <= 64 for h in history)
    start = sum(h["recons"] for h in history[:3]) / 3
    end = sum(h["recons"] for h in history[-3:]) / 3
    assert end < 0.8 * start
    assert history[0]["lr"] == pytest.approx(1e-3 * 2 / 5)  # warm-up step 1: lr * (1 + 1) / (4 + 1)


def test_dead_codes_are_replaced_by_batch_latents(tiny_vq, tiny_windows, tiny_recipe):
    trainer = _trainer(tiny_vq, tiny_windows, tiny_recipe)
    trainer.train_step()
    with torch.no_grad():  # step 2's latents, with the weights step 2 will see
        windows = tiny_windows.batch(2, 8)
        latents = tiny_vq.vqvae.encoder(windows.permute(0, 2, 1)).permute(0, 2, 1).reshape(-1, 32)
    metrics = trainer.train_step()
    quantizer = tiny_vq.vqvae.quantizer
    dead = torch.nonzero(quantizer.code_count < 1.0).flatten()
    assert len(dead) == metrics["resets"] > 0
    # the batch has exactly nb_code latents, so dead code j is replaced by latent j
    torch.testing.assert_close(quantizer.codebook[dead], latents[dead])


def _fresh(seed: int) -> MotionVQVAE:
    torch.manual_seed(seed)
    return MotionVQVAE(get_vqvae_config("small_fixture"))


def test_resume_is_bit_exact(tiny_windows, tiny_recipe, tmp_path):
    k = 9  # inside the warm-up + main phase boundary region, mid-epoch (2 batches per epoch)
    straight = _trainer(_fresh(0), tiny_windows, tiny_recipe)
    straight_log = [straight.train_step() for _ in range(2 * k)]

    first = _trainer(_fresh(0), tiny_windows, tiny_recipe)
    log = [first.train_step() for _ in range(k)]
    path = first.save_checkpoint(tmp_path / "ckpt.pt")
    del first
    torch.manual_seed(999)  # the restore must not depend on the process's RNG state
    resumed = _trainer(_fresh(1), tiny_windows, tiny_recipe)  # other initial weights, overwritten by the load
    resumed.load_checkpoint(path)
    assert resumed.step == k
    log += [resumed.train_step() for _ in range(k)]

    assert log == straight_log
    expected, got = straight.vq.state_dict(), resumed.vq.state_dict()
    assert list(got) == list(expected) and all(torch.equal(got[n], expected[n]) for n in expected)
    for name in ("code_sum", "code_count"):
        ours, theirs = (getattr(t.vq.vqvae.quantizer, name) for t in (resumed, straight))
        assert torch.equal(ours, theirs)
    assert torch.equal(torch.get_rng_state(), _rng_after(straight))
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


def _rng_after(trainer: VQTrainer) -> torch.Tensor:
    return torch.get_rng_state()  # both trainers ran in this process; the state is the shared global one


def test_checkpoint_is_loadable_as_a_vq_and_rejects_weights_only_resume(tiny_vq, tiny_windows, tiny_recipe,
                                                                       tmp_path):
    trainer = _trainer(tiny_vq, tiny_windows, tiny_recipe)
    trainer.train_step()
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt", extra={"normalization": {
        "mean": torch.zeros(263), "std": torch.ones(263), "source": "test"}})
    model = load_vqvae(path)
    assert torch.equal(model.vqvae.quantizer.codebook, tiny_vq.vqvae.quantizer.codebook)
    assert stored_normalization(path).source == "test"
    assert TRAINING_STATE_KEY in torch.load(path, weights_only=True)
    weights_only = tmp_path / "net.pth"
    torch.save({"net": tiny_vq.state_dict()}, weights_only)
    with pytest.raises(DataError, match="not a training checkpoint"):
        trainer.load_checkpoint(weights_only)


def test_crash_mid_write_keeps_the_previous_checkpoint(tiny_vq, tiny_windows, tiny_recipe, tmp_path,
                                                       monkeypatch):
    trainer = _trainer(tiny_vq, tiny_windows, tiny_recipe)
    trainer.train_step()
    path = trainer.save_checkpoint(tmp_path / "checkpoint_last.pt")
    saved_bytes = path.read_bytes()
    trainer.train_step()

    real_save = torch.save

    def crash_half_way(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.truncate(handle.tell() // 2)  # half a file on disk, then the process "dies"
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(torch, "save", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(path)
    monkeypatch.undo()
    assert path.read_bytes() == saved_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_last.pt"]  # no temporary left behind
    restored = _trainer(_fresh(3), tiny_windows, tiny_recipe)
    restored.load_checkpoint(path)
    assert restored.step == 1


def test_cli_resume_matches_an_uninterrupted_run(load_script, tiny_world, tiny_dataset, tmp_path):
    main = load_script("prepare/train_vqvae.py").main
    common = ["--data-root", str(tiny_world), "--vq-preset", "small_fixture", "--batch-size", "8",
              "--window-size", "32", "--warm-up-iter", "3", "--lr-scheduler", "6", "--gamma", "0.5",
              "--lr", "1e-3", "--print-iter", "2", "--eval-iter", "4", "--save-iter", "3",
              "--out-dir", str(tmp_path), "--no-progress", "--seed", "7"]
    shortest = min(tiny_dataset.split_ids("test"), key=tiny_dataset.num_frames)  # the quickest render
    full = main(common + ["--exp-name", "full", "--total-iter", "10", "--render-id", shortest])
    main(common + ["--exp-name", "split", "--total-iter", "5", "--no-render"])
    with pytest.raises(SystemExit, match="already holds a run"):
        main(common + ["--exp-name", "split", "--total-iter", "10", "--no-render"])
    resumed = main(common + ["--exp-name", "split", "--total-iter", "10", "--no-render",
                             "--resume-pth", str(tmp_path / "split" / "checkpoint_last.pt")])

    a = torch.load(tmp_path / "full" / "checkpoint_last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint_last.pt", weights_only=True)
    assert a["training_state"]["step"] == b["training_state"]["step"] == 12
    assert all(torch.equal(a["net"][n], b["net"][n]) for n in a["net"])
    assert all(torch.equal(a["quantizer_ema"][n], b["quantizer_ema"][n]) for n in ("code_sum", "code_count"))

    def train_records(run: str) -> list[dict]:
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["split"] == "train"]

    assert train_records("split") == train_records("full") and len(train_records("full")) == 6
    assert resumed["mpjpe_mm"] == full["mpjpe_mm"] > 0
    assert 0 < full["active_codes"] <= 64 and full["perplexity"] > 1
    assert Path(full["render"]).is_file() and Path(full["render"]).stat().st_size > 0
    vq_file = tmp_path / "full" / "vqvae.pt"
    assert stored_normalization(vq_file).source == f"dataset:{tiny_world}"
    assert set(torch.load(tmp_path / "full" / "net_last.pth", weights_only=True)) == {"net"}
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["split"] == "test"

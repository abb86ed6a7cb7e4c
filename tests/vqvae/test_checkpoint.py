"""Checkpoint formats (released ``{'net': sd}``, bare state dict, ours), strict loading, config inference."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from models.common.errors import DataError
from models.vqvae import (
    MotionVQVAE,
    VQVAEConfig,
    export_released,
    get_vqvae_config,
    infer_config,
    load_vqvae,
    read_checkpoint,
    save_vqvae,
)


@pytest.fixture(scope="module")
def full_keys(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "vqvae_full_keys.json").read_text())


def _state_from_manifest(manifest: dict) -> dict[str, torch.Tensor]:
    dtypes = {"float32": torch.float32}
    return {e["key"]: torch.zeros(e["shape"], dtype=dtypes[e["dtype"]]) for e in manifest["keys"]}


def test_real_config_manifest_loads_strictly(full_keys):
    state = _state_from_manifest(full_keys)
    assert sum(t.numel() for t in state.values()) == full_keys["num_elements"] == 19_698_951
    model = load_vqvae({"net": state}, "humanml3d")
    assert list(model.state_dict()) == [e["key"] for e in full_keys["keys"]]
    assert VQVAEConfig.from_dict(full_keys["config"]) == get_vqvae_config("humanml3d")
    assert infer_config(state) == get_vqvae_config("humanml3d")


def test_kit_config_is_inferred_from_shapes():
    state = MotionVQVAE(get_vqvae_config("kit")).state_dict()
    assert infer_config(state) == get_vqvae_config("kit")
    assert infer_config(MotionVQVAE(get_vqvae_config("toy")).state_dict()) == get_vqvae_config("toy")


def test_inference_of_norms():
    bn = MotionVQVAE(get_vqvae_config("small_fixture", norm="BN")).state_dict()
    assert infer_config(bn).norm == "BN"
    ln = MotionVQVAE(get_vqvae_config("small_fixture", norm="LN")).state_dict()
    with pytest.raises(DataError, match="LayerNorm or GroupNorm"):
        infer_config(ln)
    assert infer_config(ln, norm="LN") == get_vqvae_config("small_fixture", norm="LN")


def test_mismatch_lists_missing_unexpected_and_misshaped_keys(vq_golden, small_config):
    state = dict(vq_golden["state_dict"])
    del state["vqvae.encoder.model.0.bias"]
    state["vqvae.encoder.model.9.weight"] = torch.zeros(2, 3)
    state["vqvae.quantizer.codebook"] = torch.zeros(64, 16)
    with pytest.raises(DataError) as err:
        load_vqvae({"net": state}, small_config)
    message = str(err.value)
    assert "1 missing, 1 unexpected, 1 mis-shaped" in message
    assert "missing    vqvae.encoder.model.0.bias [32]" in message
    assert "unexpected vqvae.encoder.model.9.weight [2, 3]" in message
    assert "mis-shaped vqvae.quantizer.codebook: checkpoint [64, 16], model [64, 32]" in message


def test_wrong_preset_for_released_weights_is_reported(vq_golden, tmp_path):
    path = tmp_path / "net_last.pth"
    torch.save({"net": vq_golden["state_dict"]}, path)
    with pytest.raises(DataError, match=rf"{path.name}: .*0 missing, 0 unexpected, 66 mis-shaped") as err:
        load_vqvae(path, "humanml3d")
    assert "the tensors fit a config with {'nb_code': 64, 'code_dim': 32" in str(err.value)


def _outputs(model: MotionVQVAE, motions: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    codes = model.encode(motions)
    return codes, model.decode(codes).motions


def test_save_load_round_trip_ours(small_model, vq_golden, tmp_path):
    path = save_vqvae(small_model, tmp_path / "vq" / "model.pt", extra={"step": 12})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "irg-motionllm/vqvae" and raw["step"] == 12
    assert raw["config"] == small_model.config.to_dict()
    loaded = load_vqvae(path)  # no config given: read from the file
    assert loaded.config == small_model.config and not loaded.training
    for a, b in zip(loaded.state_dict().values(), small_model.state_dict().values()):
        assert torch.equal(a, b)
    codes, decoded = _outputs(loaded, vq_golden["motions"])
    ref_codes, ref_decoded = _outputs(small_model, vq_golden["motions"])
    assert all(torch.equal(a, b) for a, b in zip(codes, ref_codes))
    assert torch.equal(decoded, ref_decoded)
    with pytest.raises(ValueError, match="reserved"):
        save_vqvae(small_model, tmp_path / "x.pt", extra={"config": {}})


def test_quantizer_ema_state_survives_save(small_model, make_motions, tmp_path):
    small_model.train()
    with torch.no_grad():
        small_model(torch.stack(make_motions([32] * 4)))
    loaded = load_vqvae(save_vqvae(small_model, tmp_path / "model.pt"))
    assert torch.equal(loaded.vqvae.quantizer.code_count, small_model.vqvae.quantizer.code_count)
    assert torch.equal(loaded.vqvae.quantizer.code_sum, small_model.vqvae.quantizer.code_sum)


def test_export_released_round_trip(small_model, vq_golden, tmp_path):
    path = export_released(small_model, tmp_path / "net_last.pth")
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["net"]
    assert list(raw["net"]) == list(vq_golden["state_dict"])
    # What the authors' code does: a fresh upstream-shaped module, load_state_dict(ckpt['net'], strict=True).
    fresh = MotionVQVAE(small_model.config)
    fresh.load_state_dict(raw["net"], strict=True)
    loaded = load_vqvae(path)  # config inferred from shapes
    assert loaded.config == small_model.config
    codes, decoded = _outputs(loaded, vq_golden["motions"])
    assert all(torch.equal(a, b) for a, b in zip(codes, vq_golden["codes"]))
    assert torch.equal(decoded, _outputs(small_model, vq_golden["motions"])[1])


def test_bare_state_dict_and_errors(vq_golden, tmp_path):
    state, config, ema = read_checkpoint(dict(vq_golden["state_dict"]))
    assert config is None and ema is None and len(state) == 67
    with pytest.raises(DataError, match="top-level keys"):
        read_checkpoint({"trans": {}, "epoch": 3})
    pickled = tmp_path / "pickled.pth"
    with open(pickled, "wb") as handle:
        pickle.dump({"net": object()}, handle, protocol=2)
    with pytest.raises(DataError, match=r"pickled\.pth: cannot read as a weights-only"):
        load_vqvae(pickled)

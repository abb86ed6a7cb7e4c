"""Gemma-2-2b checkpoint layouts on the meta device (no 2.6B parameters are materialised).

transformers' ``Gemma2Config()`` defaults are gemma-2-2b's dimensions, so the key sets and shapes
below are those of the real authors' / Motion-Agent checkpoints (spec_sft §2.5).
"""

from __future__ import annotations

import pytest
import torch

from models.llm.checkpoints import authors_state_dict, motion_agent_state_dict
from models.llm.model import activate_full_tuning, resize_embeddings, wrap_lora
from models.llm.vocab import MotionVocab

VOCAB = MotionVocab(nb_text_tokens=256000, nb_code=512)
HIDDEN, LAYERS = 2304, 26
LINEAR = {  # (out, in) of every projection of gemma-2-2b
    "self_attn.q_proj": (2048, 2304),
    "self_attn.k_proj": (1024, 2304),
    "self_attn.v_proj": (1024, 2304),
    "self_attn.o_proj": (2304, 2048),
    "mlp.gate_proj": (9216, 2304),
    "mlp.up_proj": (9216, 2304),
    "mlp.down_proj": (2304, 9216),
}
NORMS = (
    "input_layernorm",
    "post_attention_layernorm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm",
)


def _meta_gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    with torch.device("meta"):
        model = Gemma2ForCausalLM(Gemma2Config())
    resize_embeddings(model, VOCAB)
    return model


def _meta_lora(model):
    with torch.device("meta"):  # PEFT creates the adapter weights on the default device
        return wrap_lora(model, VOCAB, r=64, alpha=64, dropout=0.1)


@pytest.fixture(scope="module")
def lora_model():
    return _meta_lora(_meta_gemma2())


def _expected_full() -> dict[str, tuple[int, ...]]:
    expected = {
        "model.embed_tokens.weight": (256514, HIDDEN),
        "model.norm.weight": (HIDDEN,),
        "embeddings": (256514, HIDDEN),
        "lm_head": (256514, HIDDEN),
    }
    for i in range(LAYERS):
        for module, shape in LINEAR.items():
            expected[f"model.layers.{i}.{module}.weight"] = shape
        for norm in NORMS:
            expected[f"model.layers.{i}.{norm}.weight"] = (HIDDEN,)
    return expected


def _motion_agent_lora_keys(adapter: str, r: int) -> dict[str, tuple[int, ...]]:
    keys = {}
    for i in range(LAYERS):
        for module, (out_features, in_features) in LINEAR.items():
            prefix = f"base_model.model.model.layers.{i}.{module}"
            keys[f"{prefix}.lora_A.{adapter}.weight"] = (r, in_features)
            keys[f"{prefix}.lora_B.{adapter}.weight"] = (out_features, r)
    return keys


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


def test_full_tuning_key_set_equals_the_authors(lora_model):
    state = authors_state_dict(activate_full_tuning(_meta_lora(_meta_gemma2())), VOCAB)
    assert _shapes(state) == _expected_full()
    assert "lm_head.weight" not in state  # tied: named_parameters() lists it once, as embed_tokens
    assert state["embeddings"] is state["lm_head"] is state["model.embed_tokens.weight"]


def test_lora_key_names_equal_motion_agent_after_rename(lora_model):
    motion_agent_t2m = _motion_agent_lora_keys("t2m", 64)
    renamed = {k.replace(".t2m.", ".shared."): v for k, v in motion_agent_t2m.items()}
    ours = _shapes(authors_state_dict(lora_model, VOCAB, lora_only=True, embedding_rows="new"))
    assert ours == {**renamed, "embeddings": (514, HIDDEN), "lm_head": (514, HIDDEN)}
    back = _shapes(motion_agent_state_dict(lora_model, VOCAB))
    assert back == {**motion_agent_t2m, "embeddings": (514, HIDDEN), "lm_head": (514, HIDDEN)}


def test_lora_full_save_uses_plain_names(lora_model):
    assert _shapes(authors_state_dict(lora_model, VOCAB)) == _expected_full()


def test_trainable_parameters_of_the_modes(lora_model):
    lora_trainable = {n for n, p in lora_model.named_parameters() if p.requires_grad}
    assert lora_trainable == {k.replace(".t2m.", ".shared.") for k in _motion_agent_lora_keys("t2m", 64)}
    assert (
        sum(lora_model.get_parameter(n).numel() for n in lora_trainable) == 83_066_880
    )  # r * (in + out) summed over 7 projections x 26 layers

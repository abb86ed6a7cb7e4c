"""A tiny local Gemma-2 (tokenizer + model) that stands in for ``gemma-2-2b-it`` on CPU.

The folder it writes is laid out like the real one (``config.json``, ``generation_config.json``,
``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``) and
loads through the same ``AutoModelForCausalLM``/``AutoTokenizer`` path as the real model. As for the
real model, the motion tokens are NOT part of the base folder; ``build_motion_llm`` adds them.

Tokenizer: byte-fallback BPE trained with ``tokenizers`` on the captions, the prompt templates and the
CoT strings, with Gemma's conventions: ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, then
``<start_of_turn>``, ``<end_of_turn>``, the 256 byte pieces ``<0x00>..<0xFF>`` as ordinary vocabulary
entries, ``▁`` for spaces with no dummy prefix, ``<bos>`` prepended by the post-processor, Gemma's chat
template. It is saved as a plain ``PreTrainedTokenizerFast`` (``GemmaTokenizer`` would re-impose its own
pre-tokenisation on reload, env_notes gotcha 2).

Model: ``Gemma2ForCausalLM`` with Gemma-2's structure (GQA, alternating sliding/full attention, soft-caps
50/30, tied embeddings, 8192 positions with a 4096 window) at toy width; weights depend only on the seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.llm.prompts import DEFAULT_TEMPLATE_PATH
from models.llm.sequences import PLAN_SENTENCES

if TYPE_CHECKING:
    from transformers import Gemma2Config, Gemma2ForCausalLM, GenerationConfig, PreTrainedTokenizerFast

TEMPLATE_FILE = DEFAULT_TEMPLATE_PATH

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN)
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
METASPACE = "\u2581"

# Gemma / Gemma-2 chat template (the one shipped in google/gemma-2-2b-it's tokenizer_config.json).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# Fixed strings of the sequence formats (spec_sft §3.2-3.3) that are not in the template file.
FORMAT_STRINGS = (
    "\n\nUser: ",
    "\n\n Response:",
    " Response:",
    "Response: ",
    "[plan]",
    "[/plan]",
    "[analyze]",
    "[/analyze]",
    "[assess]",
    "[/assess]",
    "[generate]",
    "[/generate]",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "Assessment: ",
    "\nRefinement: ",
    "No refinements needed.",
    "No refinement needed.",
    *PLAN_SENTENCES.values(),
)


@dataclass(frozen=True)
class TinyGemma2Shape:
    """Architecture of a tiny Gemma-2 (vocabulary size comes from the tokenizer)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int = 8192
    sliding_window: int = 4096


# toy: ~1.1M parameters with ~1.5k tokens, learns caption -> codes in minutes (toy_llm_calibration.md)
TINY_SHAPES: dict[str, TinyGemma2Shape] = {
    "toy": TinyGemma2Shape(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=32,
        intermediate_size=512,
    ),
    "smoke": TinyGemma2Shape(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        intermediate_size=256,
    ),
}


def template_strings(path: str | Path = TEMPLATE_FILE) -> list[str]:
    """Every prompt string of ``prompt_template-2.json`` (all variants of all keys)."""
    templates = json.loads(Path(path).read_text(encoding="utf-8"))
    return [text for variants in templates.values() for text in variants]


def tiny_corpus(
    captions: Iterable[str], extra_texts: Iterable[str] = (), template_file: str | Path = TEMPLATE_FILE
) -> list[str]:
    """Training texts for the tiny tokenizer: captions + templates + format strings + extra texts."""
    return [*captions, *template_strings(template_file), *FORMAT_STRINGS, *extra_texts]


def train_tiny_tokenizer(corpus: Sequence[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a Gemma-style byte-fallback BPE tokenizer with ``vocab_size`` base ids (before motion tokens).

    The trainer learns merges without the byte pieces (as specials they would become "special" added
    tokens and vanish from ``decode(skip_special_tokens=True)``); the final BPE is rebuilt with
    specials, then bytes, then the learned pieces as ordinary vocabulary entries.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    floor = len(SPECIAL_TOKENS) + len(BYTE_TOKENS) + 32
    if vocab_size < floor:
        raise ValueError(f"vocab_size must be at least {floor} (specials + 256 byte pieces + a few merges)")
    pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="never", split=True)

    trainer_model = Tokenizer(models.BPE(unk_token=UNK))
    trainer_model.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(BYTE_TOKENS),
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    trainer_model.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    learned = json.loads(trainer_model.to_str())["model"]

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + BYTE_TOKENS)}
    for token, _ in sorted(learned["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(pair) for pair in learned["merges"]]
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True, fuse_unk=True)
    )
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(METASPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS} $B",
        special_tokens=[(BOS, vocab[BOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        additional_special_tokens=[START_OF_TURN, END_OF_TURN],
        chat_template=GEMMA_CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        padding_side="left",  # GemmaTokenizer's default
    )


def tiny_gemma2_config(shape: TinyGemma2Shape, tokenizer: Any) -> Gemma2Config:
    """A ``Gemma2Config`` of ``shape`` for ``tokenizer`` (Gemma-2's soft-caps, activation, norms, rope)."""
    from transformers import Gemma2Config

    return Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        query_pre_attn_scalar=shape.head_dim,
        max_position_embeddings=shape.max_position_embeddings,
        sliding_window=shape.sliding_window,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )


def tiny_generation_config(tokenizer: Any) -> GenerationConfig:
    """Like gemma-2-2b-it's: stop at ``<eos>`` or ``<end_of_turn>``."""
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)],
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_gemma2(shape: TinyGemma2Shape, tokenizer: Any, seed: int = 0) -> Gemma2ForCausalLM:
    """A freshly initialised tiny ``Gemma2ForCausalLM`` (eager attention, fp32); same seed, same weights."""
    import torch
    from transformers import AutoModelForCausalLM

    config = tiny_gemma2_config(shape, tokenizer)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = tiny_generation_config(tokenizer)
    return model.eval()


def save_tiny_llm(
    model: Any, tokenizer: Any, folder: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write the model and tokenizer like a real Hugging Face Gemma-2 folder, atomically."""
    from models.common.io import atomic_write_json
    from models.llm.checkpoints import atomic_directory

    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if extra:
            atomic_write_json(extra, tmp / "tiny_llm.json")
    return Path(folder)


def make_tiny_llm(
    folder: str | Path,
    corpus: Sequence[str],
    preset: str = "toy",
    vocab_size: int = 1024,
    seed: int = 0,
) -> Path:
    """Train the tokenizer on ``corpus``, build the ``preset`` model from ``seed``, save both to ``folder``.

    Cheap enough for test fixtures (well under a second for ``smoke``).
    """
    if preset not in TINY_SHAPES:
        raise ValueError(f"unknown tiny preset {preset!r}; choose from {sorted(TINY_SHAPES)}")
    tokenizer = train_tiny_tokenizer(corpus, vocab_size=vocab_size)
    model = build_tiny_gemma2(TINY_SHAPES[preset], tokenizer, seed=seed)
    info = {
        "preset": preset,
        "seed": seed,
        "requested_vocab_size": vocab_size,
        "vocab_size": len(tokenizer),
        "corpus_texts": len(corpus),
        "shape": asdict(TINY_SHAPES[preset]),
    }
    return save_tiny_llm(model, tokenizer, folder, extra=info)

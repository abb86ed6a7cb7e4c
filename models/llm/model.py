"""Build the motion-aware LLM: a Gemma-2 folder + motion tokens + optional LoRA ``shared`` / full tuning.

The same code path loads the real ``gemma-2-2b-it`` folder and the tiny local Gemma-2 of
``prepare/make_tiny_llm.py`` (local files only, never ``trust_remote_code``).

State machine (upstream ``MotionLLM`` + ``activate_full_model``, spec_sft §2.3), as run by
``build_motion_llm``:

1. load tokenizer and model, append the 514 motion tokens, resize the (tied) embedding to exactly
   ``len(tokenizer)`` rows;
2. ``use_lora``: wrap with one PEFT LoRA adapter named ``shared`` (r 64, alpha 64, dropout 0.1, all
   seven projections of every layer);
3. ``init_checkpoint`` (upstream ``--resume-llm`` / ``--llm-ckpt``): load it NOW, into the LoRA model;
4. ``full_tuning``: merge the LoRA into the base weights (``merge_and_unload``) and make every
   parameter trainable.

The order of 3 and 4 matters: upstream stage 1 loads Motion-Agent's ``t2m`` LoRA (renamed ``shared``)
into the LoRA model and merges afterwards; merging first would fold an untrained (zero) LoRA and the
checkpoint's LoRA weights would have nowhere to go. A full checkpoint loads equally before or after
the merge (a fresh LoRA is a no-op), which is how upstream's ``--merge-lora`` evaluation works.

Neither ``use_lora`` nor ``full_tuning``: every parameter is frozen (inference).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from models.llm.vocab import MotionVocab, add_motion_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

ADAPTER_NAME = "shared"
# upstream's list, in upstream order (PEFT stores it as a set; the order only matters for reading)
LORA_TARGET_MODULES = ("o_proj", "q_proj", "up_proj", "v_proj", "k_proj", "down_proj", "gate_proj")
ATTN_IMPLEMENTATIONS = ("auto", "eager", "flash_attention_2", "flex_attention")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass
class LLMSettings:
    """How to build the LLM. Field names follow upstream's flags (``--llm-backbone``, ``--lora-r``...)."""

    llm_backbone: str = ""
    """Hugging Face model folder (gemma-2-2b-it, the tiny Gemma-2, or one of our saved folders)."""
    llm_tokenizer: str = ""
    """Tokenizer folder; empty = ``llm_backbone``."""
    attn_implementation: str = "auto"
    """auto | eager | flash_attention_2 | flex_attention. auto = flash-attn when installed and CUDA is
    available, else eager (Gemma-2 has no sdpa: it would drop the attention soft-cap)."""
    dtype: str = "auto"
    """auto | bf16 | fp32. auto = bf16 on CUDA (upstream trains in pure bf16), fp32 on CPU."""
    use_lora: bool = True
    """Wrap with the LoRA adapter ``shared`` (upstream default; ``--wo-lora`` turns it off)."""
    lora_r: int = 64
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    full_tuning: bool = False
    """Merge the LoRA (if any, after loading ``init_checkpoint``) and train every parameter."""
    nb_code: int = 512
    """VQ codebook size: adds ``nb_code + 2`` tokens."""
    train_new_token_rows: bool = False
    """LoRA mode only: also train the embedding rows of the motion tokens (PEFT trainable tokens; the
    tied lm_head rows follow). Upstream's ``--activate-new-token-embeds`` equivalent."""
    init_checkpoint: str = ""
    """Weights to start from (upstream ``--resume-llm``): an authors' or Motion-Agent ``.pth`` (format
    detected) or an adapter folder of ``save_adapter_folder``. A full folder of ``save_hf_folder`` is
    used as ``llm_backbone`` instead."""

    def __post_init__(self) -> None:
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {self.attn_implementation!r}"
            )
        if self.dtype not in ("auto", *DTYPES):
            raise ValueError(f"dtype must be auto, bf16 or fp32, got {self.dtype!r}")
        if self.train_new_token_rows and (not self.use_lora or self.full_tuning):
            raise ValueError(
                "train_new_token_rows only applies to LoRA training (use_lora without full_tuning)"
            )
        if self.lora_r <= 0 or self.nb_code <= 0:
            raise ValueError("lora_r and nb_code must be positive")

    @property
    def tokenizer_path(self) -> str:
        return self.llm_tokenizer or self.llm_backbone


def resolve_dtype(name: str) -> torch.dtype:
    """``auto`` -> bf16 on CUDA, fp32 on CPU; ``bf16``/``fp32`` as named."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return DTYPES[name]


def resolve_attn_implementation(name: str) -> str:
    """``auto`` -> ``flash_attention_2`` when flash-attn is installed and CUDA available, else ``eager``."""
    if name != "auto":
        if name == "flex_attention" and not torch.cuda.is_available():
            logger.warning("flex_attention has no backward pass on CPU; use eager to train on CPU")
        return name
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "eager"


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """``AutoTokenizer`` from a local folder (no Hub access, no remote code)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)


def load_backbone(path: str | Path, dtype: torch.dtype, attn_implementation: str) -> PreTrainedModel:
    """``AutoModelForCausalLM`` from a local folder (no Hub access, no remote code)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(path),
        dtype=dtype,
        attn_implementation=attn_implementation,
        local_files_only=True,
        trust_remote_code=False,
    )
    if model.config.model_type != "gemma2":
        logger.warning(
            "backbone %s is a %s model, not gemma2; checkpoint layouts assume Gemma-2",
            path,
            model.config.model_type,
        )
    return model


def resize_embeddings(model: PreTrainedModel, vocab: MotionVocab) -> None:
    """Give the (tied) embedding exactly ``vocab.vocab_size`` rows, as upstream's ``resize_token_embeddings``.

    New rows get transformers' default mean/covariance initialisation (what upstream's untrained rows
    had); on the ``meta`` device, where no statistics exist, they are left uninitialised.
    """
    rows = model.get_input_embeddings().weight.shape[0]
    if rows != vocab.vocab_size:
        on_meta = model.get_input_embeddings().weight.is_meta
        model.resize_token_embeddings(vocab.vocab_size, pad_to_multiple_of=None, mean_resizing=not on_meta)
    if model.get_input_embeddings().weight.shape[0] != vocab.vocab_size:
        raise RuntimeError(f"embedding resize failed: expected {vocab.vocab_size} rows")
    if (
        model.config.tie_word_embeddings
        and model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    ):
        raise RuntimeError("lm_head is no longer tied to the input embedding after resizing")


def wrap_lora(
    model: PreTrainedModel,
    vocab: MotionVocab,
    r: int = 64,
    alpha: int = 64,
    dropout: float = 0.1,
    train_new_token_rows: bool = False,
) -> Any:
    """Wrap ``model`` in a PEFT LoRA adapter named ``shared`` (upstream's ``lora_config_shared``).

    Parameter names become ``base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.shared.weight``
    etc., i.e. Motion-Agent's names with ``t2m`` -> ``shared``.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=list(LORA_TARGET_MODULES),
        trainable_token_indices=(
            {"embed_tokens": list(range(vocab.motion_start_id, vocab.vocab_size))}
            if train_new_token_rows
            else None
        ),
    )
    return get_peft_model(model, config, adapter_name=ADAPTER_NAME)


def is_peft_model(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def activate_full_tuning(model: Any) -> PreTrainedModel:
    """Merge a LoRA wrapper (if any) into the base weights and make every parameter trainable."""
    if is_peft_model(model):
        model = model.merge_and_unload()
    for param in model.parameters():
        param.requires_grad_(True)
    if (
        model.config.tie_word_embeddings
        and model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    ):
        raise RuntimeError("lm_head is no longer tied to the input embedding after merging")
    return model


def freeze(model: Any) -> None:
    """Turn off gradients of every parameter (inference)."""
    for param in model.parameters():
        param.requires_grad_(False)


def build_motion_llm(settings: LLMSettings) -> tuple[Any, PreTrainedTokenizerBase, MotionVocab]:
    """Load, extend and wrap the LLM (see the module docstring); returns ``(model, tokenizer, vocab)``.

    The model is a ``PeftModel`` in LoRA mode (without ``full_tuning``), else a plain
    ``Gemma2ForCausalLM``. It is built on CPU in eval mode; move it and call ``.train()`` yourself.
    """
    if not settings.llm_backbone:
        raise ValueError("LLMSettings.llm_backbone is empty: give the Gemma-2 model folder")
    dtype = resolve_dtype(settings.dtype)
    attn = resolve_attn_implementation(settings.attn_implementation)
    tokenizer = load_tokenizer(settings.tokenizer_path)
    model = load_backbone(settings.llm_backbone, dtype=dtype, attn_implementation=attn)
    vocab = add_motion_tokens(tokenizer, nb_code=settings.nb_code)
    resize_embeddings(model, vocab)
    logger.info(
        "LLM %s (%s, attention %s): %d text + %d motion tokens",
        settings.llm_backbone,
        str(dtype).removeprefix("torch."),
        attn,
        vocab.nb_text_tokens,
        vocab.nb_motion_tokens,
    )

    if settings.use_lora:
        model = wrap_lora(
            model,
            vocab,
            r=settings.lora_r,
            alpha=settings.lora_alpha,
            dropout=settings.lora_dropout,
            train_new_token_rows=settings.train_new_token_rows,
        )
    if settings.init_checkpoint:
        from models.llm.checkpoints import load_checkpoint

        report = load_checkpoint(model, settings.init_checkpoint, vocab, strict=True)
        logger.info("%s", report.summary())
    if settings.full_tuning:
        model = activate_full_tuning(model)
    elif not settings.use_lora:
        freeze(model)
    model.eval()
    total, trainable = count_parameters(model)
    logger.info("parameters: %s total, %s trainable", f"{total:,}", f"{trainable:,}")
    return model, tokenizer, vocab


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts; tied weights are counted once."""
    total = trainable = 0
    for param in model.parameters():  # parameters() de-duplicates shared tensors
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return total, trainable


def trainable_parameter_report(model: torch.nn.Module) -> str:
    """One line per parameter (name, shape, dtype, trainable) plus totals (upstream's
    ``trainable_params_check.txt``)."""
    lines = []
    for name, param in model.named_parameters():
        shape = "x".join(str(s) for s in param.shape)
        lines.append(f"{name}\t{shape}\t{str(param.dtype).removeprefix('torch.')}\t{param.requires_grad}")
    total, trainable = count_parameters(model)
    share = 100.0 * trainable / total if total else 0.0
    lines.append(f"# total {total:,}  trainable {trainable:,} ({share:.2f}%)")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------
# Embedding rows and merged weights, seen through an optional PEFT wrapper


def _token_adapter(model: Any) -> Any | None:
    """The PEFT trainable-tokens layer on the input embedding, if any."""
    return getattr(model.get_input_embeddings(), "token_adapter", None)


def base_embedding_weight(model: Any) -> torch.nn.Parameter:
    """The input-embedding parameter itself (under a trainable-tokens wrapper: its base layer's)."""
    adapter = _token_adapter(model)
    return adapter.base_layer.weight if adapter is not None else model.get_input_embeddings().weight


def input_embedding_weight(model: Any) -> torch.Tensor:
    """The effective input-embedding matrix (trainable-token rows applied), detached."""
    adapter = _token_adapter(model)
    if adapter is not None:
        if adapter.merged:
            return adapter.base_layer.weight.detach()
        return adapter.get_merged_weights(adapter.active_adapters).detach()
    return model.get_input_embeddings().weight.detach()


def output_embeddings_tied(model: Any) -> bool:
    """True when lm_head shares the input-embedding matrix (always so for Gemma-2)."""
    config = model.get_base_model().config if is_peft_model(model) else model.config
    return bool(config.tie_word_embeddings)


@torch.no_grad()
def write_embedding_rows(model: Any, start: int, rows: torch.Tensor) -> None:
    """Copy ``rows`` into embedding rows ``[start, start + len(rows))`` (and any trainable-token copy)."""
    adapter = _token_adapter(model)
    base = base_embedding_weight(model)
    stop = start + rows.shape[0]
    base[start:stop].copy_(rows)
    if adapter is not None and not adapter.merged:
        for name, delta in adapter.trainable_tokens_delta.items():
            index = torch.as_tensor(adapter.token_indices[name], device=delta.device)
            inside = (index >= start) & (index < stop)
            delta[inside] = rows[(index[inside] - start).to(rows.device)].to(delta.dtype)
    if not output_embeddings_tied(model):
        model.get_output_embeddings().weight[start:stop].copy_(rows)


_ADAPTER_MARKERS = (".lora_", "trainable_tokens_delta", "trainable_tokens_original")


def is_adapter_param(name: str) -> bool:
    """LoRA or trainable-token parameter of a PEFT wrapper (not a base weight)."""
    return any(marker in name for marker in _ADAPTER_MARKERS)


def plain_name(name: str) -> str:
    """A PEFT parameter name as in the plain model (drops ``base_model.model.``, ``base_layer.``,
    ``token_adapter.``)."""
    return name.replace("base_model.model.", "", 1).replace("base_layer.", "").replace("token_adapter.", "")


@torch.no_grad()
def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Plain ``Gemma2ForCausalLM`` weights with any active LoRA / trainable tokens folded in.

    Equals ``model.merge_and_unload().named_parameters()`` without modifying the model (so it can be
    used mid-training). Tied weights appear once (``model.embed_tokens.weight``, no ``lm_head.weight``).
    """
    state = {plain_name(n): p.detach() for n, p in model.named_parameters() if not is_adapter_param(n)}
    if not is_peft_model(model):
        return state
    from peft.tuners.lora import LoraLayer

    for module_name, module in model.named_modules():
        if isinstance(module, LoraLayer) and not module.merged:
            adapters = [a for a in module.active_adapters if a in module.lora_A]
            if adapters:
                key = plain_name(f"{module_name}.weight")
                weight = module.get_base_layer().weight.detach()
                delta = sum(module.get_delta_weight(a) for a in adapters)
                state[key] = (weight + delta).to(weight.dtype)  # same rounding as PEFT's in-place merge
    if _token_adapter(model) is not None:
        key = next(k for k in state if k.endswith("embed_tokens.weight"))
        state[key] = input_embedding_weight(model)
    return state

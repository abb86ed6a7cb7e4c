"""LLM checkpoints: the authors' ``.pth`` layout, Motion-Agent's LoRA ``.pth``, and our Hugging Face folders.

Formats (spec_sft §2.5):

* **authors** (IRG-MotionLLM ``save_model_for_resume``): ``{'epoch', ['step'], 'state_dict': {...}}`` or a
  bare dict. Full tuning: every plain ``Gemma2ForCausalLM`` parameter name (``model.layers.{i}...``,
  ``model.embed_tokens.weight``, ``model.norm.weight``; ``lm_head.weight`` is tied and absent) plus
  ``embeddings`` and ``lm_head`` (full matrices). LoRA: only the ``...lora_{A,B}.shared.weight`` names
  plus ``embeddings``/``lm_head``.
* **motion-agent** (``Motion-Agent:models/mllm.py``): bare dict of the LoRA of two adapters ``t2m`` and
  ``m2t`` plus ``embeddings``/``lm_head`` holding only the ``nb_code + 2`` new rows. IRG starts from the
  ``t2m`` adapter renamed ``shared``; ``load_motion_agent_lora`` does that rename explicitly.
* **hf-folder** (ours, ``save_hf_folder``): a complete Hugging Face model folder (merged weights,
  config, generation config, tokenizer with the motion tokens, ``motion_llm.json``) that
  ``AutoModelForCausalLM.from_pretrained`` opens directly and ``build_motion_llm`` uses as backbone.
* **adapter-folder** (ours, ``save_adapter_folder``): PEFT's ``save_pretrained`` of adapter ``shared``
  (in ``<folder>/shared/``) plus the motion-token embedding rows, tokenizer and ``motion_llm.json``.

Loading follows upstream's name matching (first match wins: the exact name, ``'llm.' + name``, the
name without ``base_model.model.``/``base_layer.`` — and ``token_adapter.``, for PEFT trainable
tokens), writes ``embeddings``/``lm_head`` into the new rows
(``nb_code + 2`` rows) or the whole matrix (full size), and — unlike upstream — fails loudly: every
load returns a ``LoadReport`` and ``strict=True`` raises on anything missing, unused or mis-shaped.

"Expected" parameters depend on what the checkpoint holds: LoRA parameters when it has LoRA keys,
base weights when it has base keys. A LoRA-only checkpoint therefore keeps the backbone's base
weights (reported as *kept*), and a full checkpoint loaded into a fresh LoRA model keeps the fresh
(zero-effect) LoRA.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.common.errors import DataError
from models.common.io import atomic_save_safetensors, atomic_torch_save, atomic_write_json
from models.llm.model import (
    ADAPTER_NAME,
    base_embedding_weight,
    input_embedding_weight,
    is_adapter_param,
    is_peft_model,
    merged_state_dict,
    output_embeddings_tied,
    plain_name,
    write_embedding_rows,
)
from models.llm.vocab import MotionVocab

logger = logging.getLogger(__name__)

EMBEDDING_KEYS = ("embeddings", "lm_head")
METADATA_FILE = "motion_llm.json"
ROWS_FILE = "motion_token_rows.safetensors"
HF_FOLDER_FORMAT = "irg-motionllm-hf-folder"
ADAPTER_FOLDER_FORMAT = "irg-motionllm-adapter-folder"
_MOTION_AGENT_LORA = re.compile(r"\.lora_[AB]\.(t2m|m2t)\.")
_LORA_ADAPTER = re.compile(r"\.lora_[AB]\.([^.]+)\.weight$")

StateOrPath = str | Path | Mapping[str, Any]


# ----------------------------------------------------------------------------------------------------
# Reading


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, resume_info)`` of a ``.pth`` (``{'state_dict': ...}`` or bare), loaded safely."""
    path = Path(path)
    if not path.is_file():
        raise DataError("checkpoint file not found", path=path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
        raise DataError(f"cannot read as a weights-only torch checkpoint: {err}", path=path) from err
    return split_checkpoint(obj, source=path)


def split_checkpoint(
    obj: Any, source: str | Path = "<state dict>"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Separate the tensors from the resume information (``epoch``, ``step``) and validate them."""
    if not isinstance(obj, Mapping):
        raise DataError(f"expected a dict of tensors, got {type(obj).__name__}", path=source)
    if isinstance(obj.get("state_dict"), Mapping):
        state = dict(obj["state_dict"])
        resume_info = {k: v for k, v in obj.items() if k != "state_dict"}
    else:
        state, resume_info = dict(obj), {}
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise DataError(f"entries are not tensors: {not_tensors[:10]}", path=source, field="state_dict")
    if not state:
        raise DataError("checkpoint holds no tensors", path=source)
    return state, resume_info


def detect_format(state: Mapping[str, Any]) -> str:
    """``motion-agent`` when LoRA keys name the adapters ``t2m``/``m2t``, else ``authors``."""
    return "motion-agent" if any(_MOTION_AGENT_LORA.search(k) for k in state) else "authors"


def read_motion_llm_metadata(folder: str | Path) -> dict[str, Any]:
    """The ``motion_llm.json`` of one of our folders."""
    path = Path(folder) / METADATA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read {METADATA_FILE}: {err}", path=path) from err


# ----------------------------------------------------------------------------------------------------
# Loading


@dataclass
class LoadReport:
    """What a checkpoint load did. ``ok`` is False when something was missing, unused or mis-shaped."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    shape_errors: list[str] = field(default_factory=list)
    embedding_rows: list[str] = field(default_factory=list)
    dtype_casts: dict[str, int] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)
    resume_info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unused or self.shape_errors)

    def summary(self) -> str:
        lines = [
            f"checkpoint {self.source} ({self.format}): loaded {len(self.loaded)} parameters"
            + (f"; {', '.join(self.embedding_rows)}" if self.embedding_rows else ""),
        ]
        if self.kept:
            lines.append(f"  kept as built (not in this kind of checkpoint): {len(self.kept)} parameters")
        if self.ignored:
            lines.append(f"  ignored on purpose: {len(self.ignored)} keys (e.g. {self.ignored[0]})")
        if self.dtype_casts:
            lines.append(
                "  dtype casts: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.dtype_casts.items()))
            )
        if self.resume_info:
            lines.append(f"  resume info: {self.resume_info}")
        for title, items in (
            ("MISSING model parameters", self.missing),
            ("UNUSED checkpoint keys", self.unused),
            ("SHAPE MISMATCHES", self.shape_errors),
        ):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines.extend(f"    {item}" for item in items)
        lines.extend(f"  hint: {hint}" for hint in self.hints)
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise DataError(
                f"checkpoint does not fit the model (strict load)\n{self.summary()}", path=self.source
            )


def _vocab_message(rows: int, model_rows: int, vocab: MotionVocab) -> str:
    guess = rows - vocab.nb_motion_tokens
    made_for = f"{rows} rows" + (
        f" (= {guess} text + {vocab.nb_motion_tokens} motion tokens)" if guess > 0 else ""
    )
    return (
        f"checkpoint made for another vocabulary size: {made_for}, but this model has {model_rows} rows "
        f"({vocab.nb_text_tokens} text + {vocab.nb_motion_tokens} motion tokens); load it into the "
        f"backbone/tokenizer it was trained with"
    )


def _count_cast(report: LoadReport, source: torch.Tensor, target: torch.Tensor) -> None:
    if source.dtype != target.dtype:
        key = f"{str(source.dtype).removeprefix('torch.')}->{str(target.dtype).removeprefix('torch.')}"
        report.dtype_casts[key] = report.dtype_casts.get(key, 0) + 1


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same storage, offset, shape and dtype (tied entries of one file)."""
    return (
        a.data_ptr() == b.data_ptr()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
    )


@dataclass
class _Write:
    """One planned assignment: a parameter, or embedding rows starting at ``start``."""

    tensor: torch.Tensor
    param: torch.nn.Parameter | None = None
    start: int | None = None
    output_rows: bool = False


def _load_state(
    model: Any,
    state: dict[str, torch.Tensor],
    vocab: MotionVocab,
    report: LoadReport,
    strict: bool,
    file_keys: Mapping[str, str] | None = None,
) -> LoadReport:
    """Upstream's matching rules plus bookkeeping; fills and returns ``report``.

    Everything is checked before anything is written, so a failed strict load leaves the model as it
    was. ``file_keys`` maps renamed keys back to the names in the file, for the messages.
    """
    file_keys = file_keys or {}
    rows_entries = {k: state.pop(k) for k in EMBEDDING_KEYS if k in state}
    has_lora = any(is_adapter_param(k) for k in state)
    has_base = any(not is_adapter_param(k) for k in state)
    if not (has_lora or has_base or rows_entries):
        raise DataError("checkpoint holds no model weights", path=report.source)
    embedding = base_embedding_weight(model)
    model_rows = embedding.shape[0]
    if model_rows != vocab.vocab_size:
        raise ValueError(f"model has {model_rows} embedding rows but {vocab} has {vocab.vocab_size}")

    writes: list[_Write] = []
    used: set[str] = set()
    for name, param in model.named_parameters():
        if "trainable_tokens" in name:
            continue  # the trainable-token copy of the motion rows is written with the embedding rows
        is_embedding = param is embedding
        candidates = (name, f"llm.{name}", plain_name(name))
        key = next((c for c in candidates if c in state), None)
        if key is None:
            if not (is_embedding and rows_entries):  # else covered by 'embeddings'
                expected = has_lora if is_adapter_param(name) else has_base
                (report.missing if expected else report.kept).append(name)
            continue
        used.add(key)
        tensor = state[key]
        if tuple(tensor.shape) != tuple(param.shape):
            shown = file_keys.get(key, key)
            if is_embedding and tensor.dim() == 2 and tensor.shape[1] == param.shape[1]:
                report.shape_errors.append(f"{shown}: {_vocab_message(tensor.shape[0], model_rows, vocab)}")
            else:
                report.shape_errors.append(
                    f"{shown}: checkpoint {list(tensor.shape)} vs model {name} {list(param.shape)}"
                )
            continue
        _count_cast(report, tensor, param)
        writes.append(_Write(tensor, start=0) if is_embedding else _Write(tensor, param=param))
        report.loaded.append(name)

    writes.extend(_plan_embedding_entries(model, rows_entries, vocab, writes, report))
    report.unused.extend(sorted(file_keys.get(k, k) for k in set(state) - used))
    _add_hints(model, report, has_lora)
    if strict:
        report.raise_if_failed()
    elif not report.ok:
        logger.warning("%s", report.summary())
    with torch.no_grad():
        for write in writes:
            if write.param is not None:
                write.param.copy_(write.tensor)
            elif write.output_rows:
                rows = write.tensor.shape[0]
                model.get_output_embeddings().weight[write.start : write.start + rows].copy_(write.tensor)
            else:
                write_embedding_rows(model, write.start, write.tensor)
    return report


def _add_hints(model: Any, report: LoadReport, has_lora: bool) -> None:
    if report.unused and has_lora and not is_peft_model(model):
        report.hints.append(
            "the checkpoint holds LoRA weights but the model has no LoRA adapter: build with use_lora=True, "
            "load, then merge (upstream order: load into the LoRA model, then merge)"
        )
    names = {m.group(1) for k in report.unused if (m := _LORA_ADAPTER.search(k))}
    if names - {ADAPTER_NAME}:
        report.hints.append(
            f"checkpoint LoRA adapter name(s) {sorted(names)} differ from {ADAPTER_NAME!r}; Motion-Agent "
            f"checkpoints (t2m/m2t) load with load_motion_agent_lora"
        )


def _plan_embedding_entries(
    model: Any,
    entries: dict[str, torch.Tensor],
    vocab: MotionVocab,
    planned: list[_Write],
    report: LoadReport,
) -> list[_Write]:
    """``embeddings``/``lm_head``: ``nb_code + 2`` rows -> the motion rows; full size -> the whole matrix.

    As upstream, they are applied after the named parameters (so they win over ``embed_tokens``).
    """
    tied = output_embeddings_tied(model)
    embedding = base_embedding_weight(model)
    rows_total, hidden = embedding.shape
    if tied and len(entries) == 2 and not _same_tensor(entries["embeddings"], entries["lm_head"]):
        if not torch.equal(entries["embeddings"], entries["lm_head"]):
            report.shape_errors.append(
                "embeddings/lm_head differ although the model ties lm_head to the embedding"
            )
            return []
    writes = []
    for key, tensor in entries.items():
        if tied and key == "lm_head" and "embeddings" in entries:
            report.embedding_rows.append("lm_head (tied, same values)")
            continue
        if tensor.dim() != 2 or tensor.shape[1] != hidden:
            report.shape_errors.append(f"{key}: checkpoint {list(tensor.shape)} vs hidden size {hidden}")
            continue
        rows = tensor.shape[0]
        if rows == vocab.nb_motion_tokens:
            start, what = vocab.nb_text_tokens, f"{key}: {rows} motion-token rows"
        elif rows == rows_total:
            start, what = 0, f"{key}: all {rows} rows"
        else:
            report.shape_errors.append(f"{key}: {_vocab_message(rows, rows_total, vocab)}")
            continue
        _count_cast(report, tensor, embedding)
        report.embedding_rows.append(what)
        if any(w.param is None and w.start == start and _same_tensor(w.tensor, tensor) for w in planned):
            continue  # the file stores embed_tokens and this entry once (tied): already planned
        writes.append(_Write(tensor, start=start, output_rows=key == "lm_head" and not tied))
    return writes


def _as_state(path_or_state: StateOrPath) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    if isinstance(path_or_state, Mapping):
        state, resume_info = split_checkpoint(path_or_state)
        return state, resume_info, "<state dict>"
    state, resume_info = read_checkpoint(path_or_state)
    return state, resume_info, str(path_or_state)


def load_authors_checkpoint(
    model: Any, path_or_state: StateOrPath, vocab: MotionVocab, strict: bool = True
) -> LoadReport:
    """Load an IRG-MotionLLM ``.pth`` (full or LoRA ``shared``) into ``model`` in place."""
    state, resume_info, source = _as_state(path_or_state)
    report = LoadReport(source=source, format="authors", resume_info=resume_info)
    return _load_state(model, state, vocab, report, strict)


def load_motion_agent_lora(
    model: Any, path_or_state: StateOrPath, vocab: MotionVocab | None = None, strict: bool = True
) -> LoadReport:
    """Load Motion-Agent's LoRA checkpoint: adapter ``t2m`` -> ``shared``, ``m2t`` ignored, 514 new rows.

    ``model`` must be a LoRA model (``use_lora=True``) with the same rank (64); merge afterwards for
    full tuning. ``vocab`` defaults to the model's rows minus the checkpoint's motion rows.
    """
    state, resume_info, source = _as_state(path_or_state)
    if not is_peft_model(model):
        raise DataError(
            "Motion-Agent checkpoints hold a LoRA: build the model with use_lora=True (and merge after "
            "loading for full tuning)",
            path=source,
        )
    t2m = {k: v for k, v in state.items() if ".t2m." in k}
    if not t2m:
        raise DataError(
            "no LoRA keys of adapter 't2m' (e.g. "
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.t2m.weight); "
            "not a Motion-Agent LoRA checkpoint",
            path=source,
        )
    missing_rows = [k for k in EMBEDDING_KEYS if k not in state]
    if missing_rows:
        raise DataError(f"Motion-Agent checkpoint lacks {missing_rows}", path=source)
    motion_rows = state["embeddings"].shape[0]
    if vocab is None:
        total = base_embedding_weight(model).shape[0]
        vocab = MotionVocab(nb_text_tokens=total - motion_rows, nb_code=motion_rows - 2)
    if motion_rows != vocab.nb_motion_tokens:
        raise DataError(
            f"'embeddings' has {motion_rows} rows; Motion-Agent saves exactly the {vocab.nb_motion_tokens} "
            f"motion-token rows (nb_code={vocab.nb_code})",
            path=source,
            field="embeddings",
        )
    file_keys = {k.replace(".t2m.", f".{ADAPTER_NAME}."): k for k in t2m}
    renamed = {new: t2m[old] for new, old in file_keys.items()}
    ignored = sorted(k for k in state if ".m2t." in k)
    rest = {k: v for k, v in state.items() if ".t2m." not in k and ".m2t." not in k}
    report = LoadReport(source=source, format="motion-agent", ignored=ignored, resume_info=resume_info)
    return _load_state(model, {**renamed, **rest}, vocab, report, strict, file_keys=file_keys)


def load_adapter_folder(
    model: Any, folder: str | Path, vocab: MotionVocab, strict: bool = True
) -> LoadReport:
    """Load a ``save_adapter_folder`` folder into a LoRA model (same rank and targets) in place."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = read_motion_llm_metadata(folder)
    if meta.get("nb_text_tokens") != vocab.nb_text_tokens or meta.get("nb_code") != vocab.nb_code:
        raise DataError(
            f"adapter made for {meta.get('nb_text_tokens')} text tokens + {meta.get('nb_code')} codes, "
            f"model has {vocab.nb_text_tokens} + {vocab.nb_code}",
            path=folder / METADATA_FILE,
        )
    if not is_peft_model(model) or ADAPTER_NAME not in model.peft_config:
        raise DataError(
            f"loading a LoRA adapter folder needs a model with LoRA adapter {ADAPTER_NAME!r}", path=folder
        )
    adapter_dir = folder / ADAPTER_NAME
    saved = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    ours = model.peft_config[ADAPTER_NAME]
    if saved.get("r") != ours.r or saved.get("lora_alpha") != ours.lora_alpha:
        raise DataError(
            f"adapter has r={saved.get('r')}, alpha={saved.get('lora_alpha')}; model has r={ours.r}, "
            f"alpha={ours.lora_alpha}",
            path=adapter_dir / "adapter_config.json",
        )
    raw = load_file(str(adapter_dir / "adapter_model.safetensors"))
    ignored = sorted(k for k in raw if "trainable_tokens" in k)  # same values as the motion rows below
    file_keys = {
        re.sub(r"\.(lora_[AB])\.weight$", rf".\1.{ADAPTER_NAME}.weight", k): k
        for k in raw
        if k not in ignored
    }
    state = {new: raw[old] for new, old in file_keys.items()}
    state["embeddings"] = load_file(str(folder / ROWS_FILE))["embeddings"]
    report = LoadReport(source=str(folder), format="adapter-folder", ignored=ignored)
    return _load_state(model, state, vocab, report, strict, file_keys=file_keys)


def load_checkpoint(model: Any, path: str | Path, vocab: MotionVocab, strict: bool = True) -> LoadReport:
    """Load any supported checkpoint into ``model`` in place (format detected from the path/keys)."""
    path = Path(path)
    if path.is_dir():
        is_ours = (path / METADATA_FILE).is_file()
        if is_ours and read_motion_llm_metadata(path).get("format") == ADAPTER_FOLDER_FORMAT:
            return load_adapter_folder(model, path, vocab, strict=strict)
        if (path / "config.json").is_file():
            raise DataError(
                "this is a full model folder: use it as llm_backbone (it carries its tokenizer) instead of "
                "as a checkpoint to load",
                path=path,
            )
        raise DataError("not a checkpoint folder (no motion_llm.json adapter metadata)", path=path)
    state, resume_info = read_checkpoint(path)
    if detect_format(state) == "motion-agent":
        report = load_motion_agent_lora(model, state, vocab, strict=strict)
    else:
        report = load_authors_checkpoint(model, state, vocab, strict=strict)
    report.source, report.resume_info = str(path), resume_info
    return report


# ----------------------------------------------------------------------------------------------------
# Writing


def _lora_state(model: Any) -> dict[str, torch.Tensor]:
    if not is_peft_model(model):
        raise ValueError("a LoRA-only checkpoint needs a LoRA (PEFT) model; this one is plain or merged")
    return {n: p.detach() for n, p in model.named_parameters() if ".lora_" in n}


def authors_state_dict(
    model: Any, vocab: MotionVocab | None = None, lora_only: bool = False, embedding_rows: str = "all"
) -> dict[str, torch.Tensor]:
    """The tensors of an authors' checkpoint (key layout of spec_sft §2.5), without writing a file.

    ``lora_only=False``: plain Gemma-2 names with any LoRA merged in. ``lora_only=True``: the PEFT
    ``...lora_{A,B}.shared.weight`` names. ``embedding_rows``: ``all`` (IRG: whole matrices) or ``new``
    (Motion-Agent: only the ``nb_code + 2`` motion rows; needs ``vocab``).
    """
    if embedding_rows not in ("all", "new"):
        raise ValueError(f"embedding_rows must be 'all' or 'new', got {embedding_rows!r}")
    if lora_only:
        state = _lora_state(model)
        embedding = input_embedding_weight(model)
    else:
        state = merged_state_dict(model)
        embedding = state[next(k for k in state if k.endswith("embed_tokens.weight"))]
    if embedding_rows == "new":
        if vocab is None:
            raise ValueError("embedding_rows='new' needs the MotionVocab")
        embedding = embedding[
            vocab.nb_text_tokens :
        ].clone()  # clone: torch.save would store the whole storage
    state["embeddings"] = embedding
    if output_embeddings_tied(model):
        state["lm_head"] = embedding
    else:
        head = model.get_output_embeddings().weight.detach()
        state["lm_head"] = head[vocab.nb_text_tokens :].clone() if embedding_rows == "new" else head
    return state


def motion_agent_state_dict(model: Any, vocab: MotionVocab) -> dict[str, torch.Tensor]:
    """Our LoRA in Motion-Agent's layout: adapter ``shared`` -> ``t2m``, 514-row embeddings/lm_head."""
    state = authors_state_dict(model, vocab, lora_only=True, embedding_rows="new")
    return {k.replace(f".{ADAPTER_NAME}.", ".t2m."): v for k, v in state.items()}


def save_authors_checkpoint(
    model: Any,
    path: str | Path,
    epoch: int,
    step: int | None = None,
    lora_only: bool = False,
    embedding_rows: str = "all",
    vocab: MotionVocab | None = None,
) -> Path:
    """Write ``{'epoch', ['step'], 'state_dict'}`` atomically, in the authors' layout (their
    ``load_model`` reads it)."""
    payload: dict[str, Any] = {"epoch": int(epoch)}
    if step is not None:
        payload["step"] = int(step)
    payload["state_dict"] = authors_state_dict(
        model, vocab, lora_only=lora_only, embedding_rows=embedding_rows
    )
    return atomic_torch_save(payload, path)


def save_motion_agent_lora(model: Any, path: str | Path, vocab: MotionVocab) -> Path:
    """Write our LoRA as a Motion-Agent ``.pth`` (bare dict), atomically."""
    return atomic_torch_save(motion_agent_state_dict(model, vocab), path)


@contextmanager
def atomic_directory(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``folder`` (old content removed).

    A crash leaves either the old folder or the new one at ``folder`` (plus a hidden ``.<name>.*``
    leftover), never a half-written one.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            os.replace(folder, old / folder.name)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _metadata(vocab: MotionVocab, fmt: str, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    meta = {
        "format": fmt,
        "version": 1,
        "nb_text_tokens": vocab.nb_text_tokens,
        "nb_code": vocab.nb_code,
        "motion_start_id": vocab.motion_start_id,
        "motion_end_id": vocab.motion_end_id,
        "first_code_id": vocab.first_code_id,
        "vocab_size": vocab.vocab_size,
    }
    clash = set(meta) & set(extra or {})
    if clash:
        raise ValueError(f"extra_metadata may not override {sorted(clash)}")
    meta.update(extra or {})
    return meta


def save_hf_folder(
    model: Any, tokenizer: Any, folder: str | Path, extra_metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save a complete Hugging Face folder (LoRA merged, the model itself is not modified), atomically.

    ``AutoModelForCausalLM.from_pretrained(folder)`` opens it; ``build_motion_llm`` takes it as
    ``llm_backbone`` (the saved tokenizer already holds the motion tokens).
    """
    vocab = MotionVocab.from_tokenizer(tokenizer)
    state = merged_state_dict(model)
    base = model.get_base_model() if is_peft_model(model) else model
    with atomic_directory(folder) as tmp:
        base.save_pretrained(tmp, state_dict=state)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(_metadata(vocab, HF_FOLDER_FORMAT, extra_metadata), tmp / METADATA_FILE)
    return Path(folder)


def save_adapter_folder(
    model: Any, tokenizer: Any, folder: str | Path, extra_metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save the LoRA ``shared`` (PEFT ``save_pretrained``) + motion-token rows + tokenizer, atomically."""
    if not is_peft_model(model) or ADAPTER_NAME not in model.peft_config:
        raise ValueError(f"save_adapter_folder needs a LoRA model with adapter {ADAPTER_NAME!r}")
    vocab = MotionVocab.from_tokenizer(tokenizer)
    rows = input_embedding_weight(model)[vocab.nb_text_tokens :].clone()
    extra = {
        "base_model": str(model.peft_config[ADAPTER_NAME].base_model_name_or_path or ""),
        **(extra_metadata or {}),
    }
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp, selected_adapters=[ADAPTER_NAME], save_embedding_layers=False)
        atomic_save_safetensors({"embeddings": rows}, tmp / ROWS_FILE)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(_metadata(vocab, ADAPTER_FOLDER_FORMAT, extra), tmp / METADATA_FILE)
    return Path(folder)

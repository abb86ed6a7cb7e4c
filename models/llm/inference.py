"""Batched MotionLLM inference: every upstream evaluation task, with upstream's decoding rules made explicit.

One :class:`MotionLLMEngine` wraps ``(model, tokenizer, vocab)`` from ``build_motion_llm`` and runs the
tasks of upstream's ``multi_round_inference_engine`` (spec_eval §1.5, spec_sft §6.2)::

    engine = MotionLLMEngine(model, tokenizer, vocab, GenerationSettings(batch_size=32))
    results = engine.run("direct_generation-instructed_refinement", captions, max_refine_round=5)
    results[0].codes, results[0].rounds, engine.stats.summary()

What is the same as upstream: the prompts (``build_test_prompt``, bytes identical), ``<bos>`` + left
padding, greedy decoding unless sampling is asked for (then the model's generation config / HF defaults
apply unless ``temperature``/``top_k``/``top_p`` are set), stop ids = the model's generation-config
eos ids plus ``<eos>``, the per-call token budgets (upstream's ``max_length``: 2048 for the t2m family,
1300 for the CoT family, 1024 for every step of the code-driven loops, 256 for m2t — see
:data:`UPSTREAM_MAX_LENGTH`), which motion block is the answer, the ``[0]`` fallback, the refinement
loop's rules (motion string of the previous answer, exact stop sentence as an option).

What differs (all faster or more robust; options reproduce upstream where it matters):

* no full-vocabulary ``output_scores``: motions are parsed from the emitted ids
  (``models.llm.motion_parsing``). ``restricted_argmax=True`` reproduces upstream's scores-based
  extraction exactly by recording only the argmax over the ``nb_code + 2`` motion logits per step;
* the token budget is per sample (``max_length - own prompt length``, or ``max_new_tokens``) instead
  of per padded batch, so a sample's output does not depend on which samples share its batch;
* prompts are sorted by length and generated in batches of ``batch_size``; greedy generations are
  cached by prompt (repeats of the evaluation re-draw the same captions);
* the refinement loops regenerate only the samples that are still refining;
* single-motion tasks stop at the ``</Motion>`` closing the forced block (upstream generated on to
  ``<eos>`` and then cut there; greedy results are identical), and a forced block cut by the budget is
  closed and used (upstream's scores-based decoding also keeps those codes) — counted as truncated;
* optional motion-constrained decoding (:class:`MotionBlockConstraint`): inside an open ``<Motion>``
  block only code tokens and ``</Motion>`` can be emitted, ``</Motion>`` only after at least one code,
  and ``</Motion>`` is forced after ``max_motion_codes`` codes. Off by default (faithful); recommended
  with sampling, where a text token sampled inside a block otherwise breaks the motion;
* the refinement stop test accepts "No refinement needed." variants by default (``lenient_stop``);
  upstream compared with "No refinements needed." exactly;
* every parse fallback is counted (:class:`EngineStats`), nothing is printed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from models.llm.motion_parsing import ParsedMotion, ParseStats, find_motion_blocks, parse_generated_motion
from models.llm.prompts import build_test_prompt
from models.llm.vocab import MotionVocab

logger = logging.getLogger(__name__)

CallKind = Literal["t2m", "cot", "loop", "m2t"]

UPSTREAM_MAX_LENGTH: dict[str, int] = {"t2m": 2048, "cot": 1300, "loop": 1024, "m2t": 256}
"""Upstream's ``max_length`` (prompt + completion tokens) per kind of generate call."""

STOP_SENTENCE = "No refinements needed."
_LENIENT_STOP = re.compile(r"no refinements? (?:is |are )?needed\.?")

# Tasks whose output is one motion (the T2M evaluation tasks) and their descriptions.
MOTION_TASKS: dict[str, str] = {
    "t2m": "direct generation (prompt ends with the forced <Motion>)",
    "t2m_motionagent": "direct generation with Motion-Agent's prompt framing",
    "unified_mogen_cot_v2": "CoT request with an <answer> block (legacy)",
    "unified_mogen_cot_v3": "IRMoGen CoT in one generate call; the last block (main stage-2/3 eval)",
    "unified_mogen_cot_v3_wo_assess_refine": "CoT without assessment/refinement; last block",
    "unified_mogen_cot_v3_initial_gen": "v3 CoT; evaluates the FIRST block (initial generation)",
    "unified_mogen_cot_v3_w_max_rounds": "v3 CoT; block number max_refine_round (0 = initial), or the last",
    "unified_mogen_cot_v3_random_flip": "v3 CoT; first motion replaced by a random test motion, continued",
    "pure_random_flip": "no generation: the random test motion itself (baseline)",
    "analysis_guided_t2m": "prompt analysis, then t2m on the lower-cased analysis",
    "direct_generation-instructed_refinement": "stage-1 IRMoGen: t2m, then instruction + refinement rounds",
    "analysis_generation-instructed_refinement": "analysis-guided t2m, then refinement rounds",
}
TEXT_TASKS: dict[str, str] = {
    "m2t": "motion-to-text caption",
    "prompt_analysis": "analysis of a caption before generation",
    "refine_instruction": "refinement instruction for (caption, motion)",
}
NEGATIVE_MOTION_TASKS = frozenset({"unified_mogen_cot_v3_random_flip", "pure_random_flip"})
REFINEMENT_LOOP_TASKS = frozenset(
    {"direct_generation-instructed_refinement", "analysis_generation-instructed_refinement"}
)

_COT_PROMPT = {
    "unified_mogen_cot_v3": "unified_mogen_cot_v3",
    "unified_mogen_cot_v3_wo_assess_refine": "unified_mogen_cot_v3_wo_assess_refine",
    "unified_mogen_cot_v3_initial_gen": "unified_mogen_cot_v3",
    "unified_mogen_cot_v3_w_max_rounds": "unified_mogen_cot_v3",
}


def check_task(task: str, allowed: Mapping[str, str] | None = None) -> str:
    """``task`` if known, else ``ValueError`` listing the valid tasks with their descriptions."""
    allowed = allowed if allowed is not None else {**MOTION_TASKS, **TEXT_TASKS}
    if task not in allowed:
        listing = "\n".join(f"  {name}: {desc}" for name, desc in allowed.items())
        raise ValueError(f"unknown eval task {task!r}; valid tasks:\n{listing}")
    return task


def is_stop_instruction(text: str, lenient: bool = True) -> bool:
    """True when a refinement instruction says no refinement is needed.

    ``lenient=False``: upstream's exact comparison with ``"No refinements needed."``. ``lenient=True``
    also accepts the "No refinement needed." variants of the training data (case, surrounding
    whitespace and the final period ignored).
    """
    if not lenient:
        return text == STOP_SENTENCE
    return _LENIENT_STOP.fullmatch(text.strip().lower()) is not None


# ----------------------------------------------------------------------------------------------------
# Settings, results, statistics


@dataclass
class GenerationSettings:
    """How the engine decodes. Defaults reproduce upstream's evaluation (greedy, upstream budgets)."""

    do_sample: bool = False
    """Sample instead of greedy decoding (upstream ``--do-sample``; the refinement loops and the analysis
    steps stay greedy as upstream unless ``sample_in_loops``)."""
    temperature: float | None = None
    """None = the model's generation config (HF default 1.0). Only used when sampling."""
    top_k: int | None = None
    """None = the model's generation config (HF default 50); 0 disables top-k."""
    top_p: float | None = None
    """None = the model's generation config (HF default 1.0)."""
    sample_in_loops: bool = False
    """Also sample in the refinement loops / analysis steps (upstream's multimodality engine did)."""
    max_new_tokens: int = 0
    """Completion budget per call; 0 = upstream's ``max_length`` minus the sample's prompt length."""
    batch_size: int = 32
    """Prompts per ``generate`` call (sorted by length first)."""
    prompt_w_response: bool = True
    """Append " Response:" to prompts (``--prompt-w-response``; every released stage was trained so)."""
    motion_constrained: bool = False
    """Inside an open ``<Motion>`` block allow only code tokens and ``</Motion>`` (see module doc)."""
    max_motion_codes: int = 49
    """With ``motion_constrained``: force ``</Motion>`` after this many codes (49 codes = 196 frames);
    0 = no limit."""
    restricted_argmax: bool = False
    """Upstream's scores-based code extraction (argmax over the motion logits at each step) instead of
    parsing the emitted ids. Differs only for malformed outputs."""
    lenient_stop: bool = True
    """Refinement stop test also accepts "No refinement needed." variants (upstream: exact string)."""
    cache_greedy: bool = True
    """Reuse greedy generations of identical prompts and stop ids (exact for any budget: see
    ``MotionLLMEngine.generate``)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_new_tokens < 0 or self.max_motion_codes < 0:
            raise ValueError("max_new_tokens and max_motion_codes must be >= 0")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")


@dataclass
class Generation:
    """One completion: the prompt ids and the generated ids up to (not including) the stop id."""

    prompt_ids: list[int]
    ids: np.ndarray
    stop_id: int | None
    """The eos / stop id that ended generation, None when the token budget ran out."""
    motion_argmax: np.ndarray | None = None
    """``restricted_argmax`` mode: local motion index of the argmax per step (incl. the stop step)."""

    @property
    def finished(self) -> bool:
        return self.stop_id is not None

    @property
    def ids_with_stop(self) -> np.ndarray:
        """The completion including its stop id (a ``</Motion>`` stop closes a block)."""
        return self.ids if self.stop_id is None else np.append(self.ids, self.stop_id)


@dataclass
class MotionResult:
    """The motion answer of one sample, plus what is needed for ``txt_io`` logs and statistics."""

    codes: list[int]
    prompt: str
    """Input text of the step that produced the motion."""
    text: str
    """That step's completion (special tokens kept)."""
    num_gens: int = 1
    """Motion blocks generated (CoT tasks) / motions produced (loops: 1 + rounds)."""
    rounds: int = 0
    """Refinement rounds applied (loop tasks)."""
    fallback: str | None = None
    """Why ``codes`` is a substitute: ``no_block``, ``empty``, ``negative_motion`` ... (None if not)."""
    trace: list[dict[str, Any]] = field(default_factory=list)
    """Intermediate steps (analysis, instructions, refinements) for the logs."""
    stopped: bool = False
    """Loop tasks: refinement ended on the stop sentence (not on the round limit)."""

    def as_log(self) -> dict[str, Any]:
        return {
            "input_text": self.prompt,
            "best_beam_text": self.text,
            "extracted_motion": self.codes,
            "num_gens": self.num_gens,
            "rounds": self.rounds,
            "stopped": self.stopped,
            "fallback": self.fallback,
            "trace": self.trace,
        }


@dataclass
class CallRecord:
    """One ``model.generate`` call."""

    kind: str
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    """Generated tokens that count (up to each sample's stop id or budget)."""
    steps: int
    seconds: float
    input_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


@dataclass
class EngineStats:
    """Counters over everything an engine generated since the last ``reset``."""

    parse: ParseStats = field(default_factory=ParseStats)
    substituted: int = 0
    """Final motions that are a substitute (``[0]``, or random_flip's foreign motion), recorded by ``run``;
    fallbacks of intermediate motions are in ``parse``."""
    fallback_reasons: Counter = field(default_factory=Counter)
    closed_truncated: int = 0
    """Forced blocks cut by the token budget, closed and used."""
    budget_exhausted: int = 0
    """Completions that hit the token budget without a stop id."""
    flip_without_first_motion: int = 0
    """random_flip: the first pass produced no ``</Motion>`` (upstream crashed); the negative motion is
    appended after the whole first-pass completion."""
    rounds: Counter = field(default_factory=Counter)
    """Loop tasks: refinement rounds per sample (recorded by ``MotionLLMEngine.run``)."""
    num_gens: Counter = field(default_factory=Counter)
    """Motions generated per sample (recorded by ``MotionLLMEngine.run``)."""
    stop_reasons: Counter = field(default_factory=Counter)
    cache_hits: int = 0
    """Greedy completions served from the cache or shared with an identical prompt of the same call."""
    calls: list[CallRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (histograms with string keys, call totals, tokens/s)."""
        seconds = sum(c.seconds for c in self.calls)
        new_tokens = sum(c.new_tokens for c in self.calls)
        by_kind: dict[str, dict[str, float]] = {}
        for call in self.calls:
            entry = by_kind.setdefault(call.kind, {"calls": 0, "prompts": 0, "new_tokens": 0, "seconds": 0.0})
            entry["calls"] += 1
            entry["prompts"] += call.batch_size
            entry["new_tokens"] += call.new_tokens
            entry["seconds"] += call.seconds
        return {
            "parse": self.parse.as_dict(),
            "substituted_motions": self.substituted,
            "fallback_reasons": dict(self.fallback_reasons),
            "closed_truncated_blocks": self.closed_truncated,
            "budget_exhausted": self.budget_exhausted,
            "flip_without_first_motion": self.flip_without_first_motion,
            "rounds_histogram": {str(k): v for k, v in sorted(self.rounds.items())},
            "num_gens_histogram": {str(k): v for k, v in sorted(self.num_gens.items())},
            "stop_reasons": dict(self.stop_reasons),
            "cache_hits": self.cache_hits,
            "generate_calls": len(self.calls),
            "generated_tokens": new_tokens,
            "generate_seconds": round(seconds, 3),
            "tokens_per_second": round(new_tokens / seconds, 1) if seconds > 0 else None,
            "by_kind": by_kind,
        }

    def merge(self, other: EngineStats) -> EngineStats:
        self.parse.merge(other.parse)
        self.substituted += other.substituted
        self.fallback_reasons.update(other.fallback_reasons)
        self.closed_truncated += other.closed_truncated
        self.budget_exhausted += other.budget_exhausted
        self.flip_without_first_motion += other.flip_without_first_motion
        self.rounds.update(other.rounds)
        self.num_gens.update(other.num_gens)
        self.stop_reasons.update(other.stop_reasons)
        self.cache_hits += other.cache_hits
        self.calls.extend(other.calls)
        return self


# ----------------------------------------------------------------------------------------------------
# Logits processors


class MotionBlockConstraint:
    """Motion-constrained decoding (a transformers ``LogitsProcessor``).

    For each row whose sequence (prompt included) has an open ``<Motion>`` block, every logit except
    the code tokens and ``</Motion>`` is set to ``-inf``; ``</Motion>`` needs ``min_codes`` codes in the
    block, and after ``max_codes`` codes (if > 0) only ``</Motion>`` remains. Rows outside a block are
    untouched. The state is recomputed from ``input_ids`` at every step (stateless, O(B·L)).
    """

    def __init__(self, vocab: MotionVocab, max_codes: int = 49, min_codes: int = 1) -> None:
        self.vocab, self.max_codes, self.min_codes = vocab, max_codes, min_codes

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        v = self.vocab
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last_start = torch.where(input_ids == v.motion_start_id, positions, -1).amax(dim=1)
        last_end = torch.where(input_ids == v.motion_end_id, positions, -1).amax(dim=1)
        inside = last_start > last_end
        if not bool(inside.any()):
            return scores
        rows = inside.nonzero().squeeze(1)
        ids = input_ids[rows]
        is_code = (ids >= v.first_code_id) & (ids < v.vocab_size) & (positions > last_start[rows, None])
        n_codes = is_code.sum(dim=1)
        codes = slice(v.first_code_id, v.first_code_id + v.nb_code)
        kept = torch.full_like(scores[rows], float("-inf"))
        code_ok = (
            (n_codes < self.max_codes) if self.max_codes > 0 else torch.ones_like(n_codes, dtype=torch.bool)
        )
        kept[:, codes] = torch.where(code_ok[:, None], scores[rows][:, codes], float("-inf"))
        end_ok = n_codes >= self.min_codes
        kept[:, v.motion_end_id] = torch.where(end_ok, scores[rows, v.motion_end_id], float("-inf"))
        scores = scores.clone()
        scores[rows] = kept
        return scores


class MotionArgmaxRecorder:
    """Records, per step, the argmax over the ``nb_code + 2`` motion logits (upstream's restricted argmax)
    without keeping full-vocabulary scores. A transformers ``LogitsProcessor`` that changes nothing."""

    def __init__(self, vocab: MotionVocab) -> None:
        self.columns = slice(vocab.motion_start_id, vocab.motion_start_id + vocab.nb_motion_tokens)
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps.append(scores[:, self.columns].argmax(dim=-1))
        return scores

    def result(self) -> np.ndarray:
        """``[B, steps]`` local motion indices (0 = ``<Motion>``, 1 = ``</Motion>``, 2 + k = code k)."""
        if not self.steps:
            return np.zeros((0, 0), dtype=np.int64)
        return torch.stack(self.steps, dim=1).cpu().numpy()


def upstream_codes_from_local(local: np.ndarray) -> list[int]:
    """Upstream's tail rule on local motion indices: cut at the first ``</Motion>`` (1), drop everything up
    to and including the first ``<Motion>`` (0), subtract 2, clamp at 0."""
    local = np.asarray(local, dtype=np.int64)
    ends = np.flatnonzero(local == 1)
    if ends.size:
        local = local[: ends[0]]
    starts = np.flatnonzero(local == 0)
    if starts.size:
        local = local[starts[0] + 1 :]
    return np.clip(local - 2, 0, None).tolist()


def _find_subsequence(ids: np.ndarray, pattern: Sequence[int]) -> int:
    """Index of the first occurrence of ``pattern`` in ``ids`` (-1 if absent)."""
    n = len(pattern)
    if n == 0 or len(ids) < n:
        return -1
    windows = np.lib.stride_tricks.sliding_window_view(ids, n)
    hits = np.flatnonzero((windows == np.asarray(pattern)).all(axis=1))
    return int(hits[0]) if hits.size else -1


# ----------------------------------------------------------------------------------------------------
# Refinement instructions


class RefinementInstructor(Protocol):
    """Produces refinement instructions for the code-driven loops (default: the LLM itself).

    Called with the still-refining samples' captions, previous motion strings (``<Motion_a>...``, as
    upstream passes them) and the round index; returns one instruction per sample.
    """

    def __call__(
        self, captions: Sequence[str], motion_texts: Sequence[str], round_index: int
    ) -> list[str]: ...


# ----------------------------------------------------------------------------------------------------
# The engine


class MotionLLMEngine:
    """Batched inference for every evaluation task (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        vocab: MotionVocab,
        settings: GenerationSettings | None = None,
        record_inputs: bool = False,
    ) -> None:
        self.model, self.tokenizer, self.vocab = model, tokenizer, vocab
        self.settings = settings or GenerationSettings()
        self.record_inputs = record_inputs
        self.stats = EngineStats()
        self._cache: dict[tuple, tuple[Generation, int]] = {}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos_ids = self._model_eos_ids()
        self._answer_open = tokenizer.encode("<answer>", add_special_tokens=False)
        self._answer_open_alt = tokenizer.encode("><answer>", add_special_tokens=False)
        self._answer_close = tokenizer.encode("</answer>", add_special_tokens=False)

    # ------------------------------------------------------------------ basics
    def _model_eos_ids(self) -> tuple[int, ...]:
        config = getattr(self.model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None) if config is not None else None
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        if not ids:
            raise ValueError("neither the generation config nor the tokenizer defines an eos token")
        return tuple(dict.fromkeys(int(i) for i in ids))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reset_stats(self) -> EngineStats:
        """Return the statistics gathered so far and start new ones."""
        stats, self.stats = self.stats, EngineStats()
        return stats

    def clear_cache(self) -> None:
        self._cache.clear()

    def prompt(self, task: str, texts: Mapping[str, str], motions: Mapping[str, Any] | None = None) -> str:
        return build_test_prompt(
            task, texts, motions, prompt_w_response=self.settings.prompt_w_response, vocab=self.vocab
        )

    def tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt with the tokenizer's special tokens (``<bos>``)."""
        return [list(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(np.asarray(ids).tolist()), skip_special_tokens=skip_special_tokens)

    def _sampling(self, task_greedy: bool) -> bool:
        return self.settings.do_sample and (not task_greedy or self.settings.sample_in_loops)

    # ------------------------------------------------------------------ generate
    def _budget(self, kind: str, prompt_len: int) -> int:
        if self.settings.max_new_tokens > 0:
            return self.settings.max_new_tokens
        return max(1, UPSTREAM_MAX_LENGTH[kind] - prompt_len)

    def generate(
        self,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        kind: CallKind,
        *,
        do_sample: bool = False,
        stop_ids: Sequence[int] | None = None,
        extra_stop_ids: Sequence[int] = (),
    ) -> list[Generation]:
        """Complete ``prompts`` (strings, tokenised with ``<bos>``, or token-id lists) in length-sorted
        batches of ``settings.batch_size``; results in input order.

        ``stop_ids`` replaces the default stop ids (model eos ids + ``<eos>``); ``extra_stop_ids`` adds to
        them. The budget per sample is ``settings.max_new_tokens`` or upstream's ``max_length`` of
        ``kind`` minus the prompt length.
        """
        if not prompts:
            return []
        seqs = self.tokenize(prompts) if isinstance(prompts[0], str) else [list(map(int, p)) for p in prompts]
        stops = tuple(dict.fromkeys([*(stop_ids if stop_ids is not None else self.eos_ids), *extra_stop_ids]))
        budgets = [self._budget(kind, len(s)) for s in seqs]
        use_cache = self.settings.cache_greedy and not do_sample
        results: list[Generation | None] = [None] * len(seqs)
        groups: dict[tuple, list[int]] = {}  # identical (prompt, budget) pairs are generated once
        for i, seq in enumerate(seqs):
            cached = self._from_cache((stops, tuple(seq)), budgets[i]) if use_cache else None
            if cached is not None:
                results[i] = cached
                self.stats.cache_hits += 1
            else:
                groups.setdefault((tuple(seq), budgets[i]) if use_cache else (i,), []).append(i)
        heads = sorted(groups.values(), key=lambda members: -len(seqs[members[0]]))
        size = self.settings.batch_size
        for start in range(0, len(heads), size):
            chunk = [members[0] for members in heads[start : start + size]]
            outputs = self._generate_batch(
                [seqs[i] for i in chunk], [budgets[i] for i in chunk], kind, do_sample, stops
            )
            for members, output in zip(heads[start : start + size], outputs, strict=True):
                for i in members:
                    results[i] = output
                self.stats.cache_hits += len(members) - 1  # duplicates served by one generation
                if use_cache:
                    self._cache[(stops, tuple(seqs[members[0]]))] = (output, budgets[members[0]])
        return results  # type: ignore[return-value]

    def _from_cache(self, key: tuple, budget: int) -> Generation | None:
        """A cached greedy completion valid for ``budget``: one made with a larger budget is truncated,
        one made with a smaller budget is valid only if it stopped within it (greedy decoding is causal)."""
        entry = self._cache.get(key)
        if entry is None:
            return None
        generation, made_with = entry
        if generation.finished and len(generation.ids) < budget:
            return generation
        if made_with < budget:
            return None
        argmax = None if generation.motion_argmax is None else generation.motion_argmax[:budget]
        return Generation(generation.prompt_ids, generation.ids[:budget], None, argmax)

    @torch.inference_mode()
    def _generate_batch(
        self, seqs: list[list[int]], budgets: list[int], kind: str, do_sample: bool, stops: tuple[int, ...]
    ) -> list[Generation]:
        longest = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), longest), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(seqs), longest), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, longest - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            attention[row, longest - len(seq) :] = 1
        processors: list[Any] = []
        recorder = MotionArgmaxRecorder(self.vocab) if self.settings.restricted_argmax else None
        if recorder is not None:
            processors.append(recorder)
        if self.settings.motion_constrained:
            processors.append(MotionBlockConstraint(self.vocab, self.settings.max_motion_codes))
        kwargs: dict[str, Any] = {}
        if do_sample:
            for name in ("temperature", "top_k", "top_p"):
                if getattr(self.settings, name) is not None:
                    kwargs[name] = getattr(self.settings, name)
        from transformers import LogitsProcessorList

        device = self.device
        began = time.perf_counter()
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max(budgets),
            do_sample=do_sample,
            eos_token_id=list(stops),
            pad_token_id=self.pad_id,
            logits_processor=LogitsProcessorList(processors),
            use_cache=True,
            **kwargs,
        )
        seconds = time.perf_counter() - began
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        completions = sequences[:, longest:].cpu().numpy()
        argmax = recorder.result() if recorder is not None else None
        stop_array = np.asarray(stops, dtype=np.int64)
        results, new_tokens = [], 0
        for row, seq in enumerate(seqs):
            completion = completions[row, : budgets[row]]
            stop_at = np.flatnonzero(np.isin(completion, stop_array))
            if stop_at.size:
                end, stop_id = int(stop_at[0]), int(completion[stop_at[0]])
                new_tokens += end + 1
            else:
                end, stop_id = len(completion), None
                new_tokens += end
                self.stats.budget_exhausted += 1
            local = None
            if argmax is not None:
                local = argmax[row, : end + (stop_id is not None)]
            results.append(Generation(seq, completion[:end].astype(np.int64), stop_id, local))
        self.stats.calls.append(
            CallRecord(
                kind=kind,
                batch_size=len(seqs),
                prompt_tokens=int(attention.sum()),
                new_tokens=new_tokens,
                steps=completions.shape[1],
                seconds=seconds,
                input_ids=input_ids if self.record_inputs else None,
                attention_mask=attention if self.record_inputs else None,
            )
        )
        return results

    # ------------------------------------------------------------------ motion extraction
    def _parse(self, ids: np.ndarray, select: str) -> ParsedMotion:
        return parse_generated_motion(ids, self.vocab, select=select, stats=self.stats.parse)  # type: ignore[arg-type]

    def forced_motion(self, generation: Generation, prompt: str) -> MotionResult:
        """The motion of a generation-forcing task (the prompt ends with ``<Motion>``)."""
        ids = np.concatenate([[self.vocab.motion_start_id], generation.ids_with_stop])
        text = self.decode(generation.ids_with_stop)
        local = ParseStats()
        parsed = parse_generated_motion(ids, self.vocab, select="first", stats=local)
        if parsed.fallback == "no_block" and parsed.truncated and not generation.finished:
            local = ParseStats()
            parsed = parse_generated_motion(
                np.append(ids, self.vocab.motion_end_id), self.vocab, select="first", stats=local
            )
            self.stats.closed_truncated += 1
        self.stats.parse.merge(local)
        if self.settings.restricted_argmax:
            codes = self._restricted_forced_codes(generation)
            return MotionResult(codes or [0], prompt, text, fallback=None if codes else "empty")
        return MotionResult(parsed.codes, prompt, text, fallback=parsed.fallback)

    def _restricted_forced_codes(self, generation: Generation) -> list[int]:
        """Upstream ``post_process_final_motion_output``: restricted argmax at every step up to the stop,
        restricted to the ``<answer>`` span when one is found, then the tail rule."""
        local = generation.motion_argmax
        assert local is not None
        ids = generation.ids
        start = _find_subsequence(ids, self._answer_open)
        width = len(self._answer_open)
        if start < 0:
            start = _find_subsequence(ids, self._answer_open_alt)
            width = len(self._answer_open_alt)
        close = _find_subsequence(ids, self._answer_close)
        if start >= 0 and close > start:
            local = local[start + width : close]
        return upstream_codes_from_local(local)

    def block_motion(
        self, generation: Generation, prompt: str, select: str, block_index: int | None = None
    ) -> MotionResult:
        """The motion of a free-form completion (CoT): the last / first complete block, or block
        ``block_index`` (clipped to the last one)."""
        ids = generation.ids_with_stop
        text = self.decode(ids, skip_special_tokens=True)
        blocks, _ = find_motion_blocks(ids, self.vocab)
        if block_index is not None and blocks:
            select_index = min(block_index, len(blocks) - 1)
        else:
            select_index = 0 if select == "first" else len(blocks) - 1
        parsed = self._parse(ids, select)
        if blocks and select_index != (0 if select == "first" else len(blocks) - 1):
            parsed = parse_generated_motion(ids[: blocks[select_index][1] + 1], self.vocab, select="last")
        if self.settings.restricted_argmax:
            local_ids = ids - self.vocab.motion_start_id
            is_motion = (local_ids >= 0) & (local_ids < self.vocab.nb_motion_tokens)
            local = np.where(is_motion, local_ids, generation.motion_argmax[: len(ids)])
            span = blocks[select_index] if blocks else (0, len(ids) - 2)
            codes = upstream_codes_from_local(local[span[0] : span[1] + 1])
            reason = None if codes else ("empty" if blocks else "no_block")
            return MotionResult(codes or [0], prompt, text, num_gens=len(blocks), fallback=reason)
        return MotionResult(parsed.codes, prompt, text, num_gens=len(blocks), fallback=parsed.fallback)

    # ------------------------------------------------------------------ tasks
    def text_task(
        self,
        task: str,
        captions: Sequence[str] = (),
        motions: Sequence[Any] = (),
        *,
        do_sample: bool | None = None,
    ) -> list[str]:
        """``m2t`` (motions: code lists), ``prompt_analysis`` (captions) or ``refine_instruction``
        (captions + motion strings/codes): decoded completions (special tokens skipped)."""
        check_task(task, TEXT_TASKS)
        if task == "m2t":
            prompts = [
                self.prompt("m2t", {}, {"<Goal_Motion>": self.vocab.codes_to_text(m)}) for m in motions
            ]
            kind = "m2t"
        elif task == "prompt_analysis":
            prompts = [self.prompt(task, {"<Goal_Caption>": c}) for c in captions]
            kind = "loop"
        else:
            prompts = [
                self.prompt(task, {"<Goal_Caption>": c}, {"<Generated_Motion>": _motion_text(m, self.vocab)})
                for c, m in zip(captions, motions, strict=True)
            ]
            kind = "loop"
        sample = self.settings.do_sample if do_sample is None else do_sample
        generations = self.generate(prompts, kind, do_sample=sample)  # type: ignore[arg-type]
        return [self.decode(g.ids, skip_special_tokens=True) for g in generations]

    def t2m(
        self,
        captions: Sequence[str],
        *,
        task: str = "t2m",
        kind: CallKind = "t2m",
        do_sample: bool | None = None,
    ) -> list[MotionResult]:
        """Direct generation (``t2m`` / ``t2m_motionagent``): one forced block per caption."""
        prompts = [self.prompt(task, {"<Goal_Caption>": c}) for c in captions]
        sample = self.settings.do_sample if do_sample is None else do_sample
        generations = self.generate(prompts, kind, do_sample=sample, extra_stop_ids=self._forced_stop(sample))
        return [self.forced_motion(g, p) for g, p in zip(generations, prompts, strict=True)]

    def instructed_refinement(
        self,
        captions: Sequence[str],
        motions: Sequence[Any],
        instructions: Sequence[str],
        *,
        do_sample: bool = False,
    ) -> list[MotionResult]:
        """``instructed_motion_refinement``: refine each motion (string or codes) as instructed."""
        prompts = [
            self.prompt(
                "instructed_motion_refinement",
                {"<Goal_Caption>": c, "<Refinement_Instruction>": ins},
                {"<Generated_Motion>": _motion_text(m, self.vocab)},
            )
            for c, m, ins in zip(captions, motions, instructions, strict=True)
        ]
        generations = self.generate(
            prompts, "loop", do_sample=do_sample, extra_stop_ids=self._forced_stop(do_sample)
        )
        return [self.forced_motion(g, p) for g, p in zip(generations, prompts, strict=True)]

    def _forced_stop(self, do_sample: bool) -> tuple[int, ...]:
        """Extra stop id of the single-motion tasks: the ``</Motion>`` closing the forced block. Exact for
        greedy decoding and for the emitted-id parser; upstream's scores-based decoding under sampling
        looks at every step up to ``<eos>``, so that combination keeps upstream's stop ids."""
        return () if (self.settings.restricted_argmax and do_sample) else (self.vocab.motion_end_id,)

    def cot(
        self, captions: Sequence[str], task: str = "unified_mogen_cot_v3", max_refine_round: int = 5
    ) -> list[MotionResult]:
        """The CoT family: one generate call produces the whole interleaved reasoning."""
        prompt_task = _COT_PROMPT[task]
        prompts = [self.prompt(prompt_task, {"<Goal_Caption>": c}) for c in captions]
        generations = self.generate(prompts, "cot", do_sample=self.settings.do_sample)
        select = "first" if task == "unified_mogen_cot_v3_initial_gen" else "last"
        index = max_refine_round if task == "unified_mogen_cot_v3_w_max_rounds" else None
        return [self.block_motion(g, p, select, index) for g, p in zip(generations, prompts, strict=True)]

    def cot_v2(self, captions: Sequence[str]) -> list[MotionResult]:
        """Legacy with-answer CoT, decoded as upstream's single-motion tasks (first block / answer span)."""
        prompts = [self.prompt("unified_mogen_cot_v2", {"<Goal_Caption>": c}) for c in captions]
        generations = self.generate(prompts, "t2m", do_sample=self.settings.do_sample)
        results = []
        for g, p in zip(generations, prompts, strict=True):
            if self.settings.restricted_argmax:
                codes = self._restricted_forced_codes(g)
                self._parse(g.ids, "last")
                results.append(
                    MotionResult(
                        codes or [0],
                        p,
                        self.decode(g.ids_with_stop),
                        num_gens=1,
                        fallback=None if codes else "empty",
                    )
                )
            else:
                results.append(self.block_motion(g, p, "last"))
        return results

    def analysis_guided_t2m(self, captions: Sequence[str]) -> list[MotionResult]:
        """``prompt_analysis`` then ``t2m`` with the lower-cased analysis as the caption (both greedy)."""
        sample = self._sampling(task_greedy=True)
        analyses = self.text_task("prompt_analysis", captions, do_sample=sample)
        results = self.t2m([a.lower() for a in analyses], kind="loop", do_sample=sample)
        for result, analysis in zip(results, analyses, strict=True):
            result.trace.insert(0, {"step": "prompt_analysis", "text": analysis})
        return results

    def refinement_loop(
        self,
        captions: Sequence[str],
        max_refine_round: int = 5,
        initial: Literal["direct", "analysis"] = "direct",
        instructor: RefinementInstructor | None = None,
    ) -> list[MotionResult]:
        """Stage-1 IRMoGen: generate, then up to ``max_refine_round`` rounds of (refinement instruction,
        instructed refinement). A sample stops when its instruction is the stop sentence; only samples
        still refining are regenerated. ``instructor`` replaces the LLM's own instructions."""
        sample = self._sampling(task_greedy=True)
        if initial == "direct":
            current = self.t2m(captions, kind="loop", do_sample=sample)
        else:
            current = self.analysis_guided_t2m(captions)
        for result in current:
            result.trace.append({"step": "initial_generation", "text": result.text, "codes": result.codes})
        instruct = instructor or self._llm_instructor(sample)
        active = list(range(len(captions)))
        stopped = [False] * len(captions)
        for round_index in range(max_refine_round):
            motion_texts = [self._previous_motion_text(current[i], initial) for i in active]
            instructions = instruct([captions[i] for i in active], motion_texts, round_index)
            if len(instructions) != len(active):
                raise ValueError(
                    f"instructor returned {len(instructions)} instructions for {len(active)} samples"
                )
            still = []
            for i, motion_text, instruction in zip(active, motion_texts, instructions, strict=True):
                current[i].trace.append(
                    {"step": "refine_instruction", "round": round_index + 1, "text": instruction}
                )
                if is_stop_instruction(instruction, self.settings.lenient_stop):
                    stopped[i] = True
                else:
                    still.append((i, motion_text, instruction))
            if not still:
                active = []
                break
            refined = self.instructed_refinement(
                [captions[i] for i, _, _ in still],
                [m for _, m, _ in still],
                [ins for _, _, ins in still],
                do_sample=sample,
            )
            for (i, _, _), new in zip(still, refined, strict=True):
                new.rounds = current[i].rounds + 1
                new.trace = [
                    *current[i].trace,
                    {
                        "step": "instructed_refinement",
                        "round": round_index + 1,
                        "text": new.text,
                        "codes": new.codes,
                    },
                ]
                current[i] = new
            active = [i for i, _, _ in still]
        for i, result in enumerate(current):
            result.num_gens = 1 + result.rounds
            result.stopped = stopped[i]
        return current

    def _previous_motion_text(self, result: MotionResult, initial: str) -> str:
        """Upstream passes the previous completion's text up to its first ``</Motion>`` (after the last
        ``<Motion>`` before it, for the direct variant) — the emitted text, not the parsed codes."""
        head = result.text.split("</Motion>")[0]
        return head.split("<Motion>")[-1] if initial == "direct" else head

    def _llm_instructor(self, do_sample: bool) -> RefinementInstructor:
        def instruct(captions: Sequence[str], motion_texts: Sequence[str], round_index: int) -> list[str]:
            return self.text_task("refine_instruction", captions, motion_texts, do_sample=do_sample)

        return instruct

    def random_flip(
        self, captions: Sequence[str], negative_codes: Sequence[Sequence[int]]
    ) -> list[MotionResult]:
        """Robustness evaluation: the v3 CoT's first motion is replaced by a foreign motion and the model
        continues (it should assess the foreign motion and refine it). Without a complete block in the
        continuation the foreign motion is the answer (as upstream)."""
        v = self.vocab
        prompts = [self.prompt("unified_mogen_cot_v3", {"<Goal_Caption>": c}) for c in captions]
        sample = self.settings.do_sample
        first = self.generate(
            prompts, "cot", do_sample=sample, stop_ids=(self.tokenizer.eos_token_id, v.motion_end_id)
        )
        continued_inputs = []
        for generation, negative in zip(first, negative_codes, strict=True):
            ids = generation.ids
            if generation.stop_id != v.motion_end_id:
                self.stats.flip_without_first_motion += 1
            starts = np.flatnonzero(ids == v.motion_start_id)
            prefix = ids[: starts[0]] if starts.size else ids
            block = [
                v.motion_start_id,
                *v.codes_to_ids(np.asarray(negative, dtype=np.int64)).tolist(),
                v.motion_end_id,
            ]
            continued_inputs.append(generation.prompt_ids + prefix.tolist() + block)
        second = self.generate(continued_inputs, "cot", do_sample=sample)
        results = []
        for generation, negative in zip(second, negative_codes, strict=True):
            prompt = self.decode(generation.prompt_ids, skip_special_tokens=True)
            blocks, _ = find_motion_blocks(generation.ids, v)
            if blocks:
                result = self.block_motion(generation, prompt, "last")
            else:
                self._parse(generation.ids, "last")
                text = self.decode(generation.ids, skip_special_tokens=True)
                result = MotionResult(list(negative), prompt, text, num_gens=0, fallback="negative_motion")
            results.append(result)
        return results

    def run(
        self,
        task: str,
        captions: Sequence[str],
        *,
        max_refine_round: int = 5,
        negative_codes: Sequence[Sequence[int]] | None = None,
        instructor: RefinementInstructor | None = None,
    ) -> list[MotionResult]:
        """Run a motion-producing evaluation task (:data:`MOTION_TASKS`) on ``captions``."""
        check_task(task, MOTION_TASKS)
        if task in NEGATIVE_MOTION_TASKS and (negative_codes is None or len(negative_codes) != len(captions)):
            raise ValueError(f"task {task!r} needs one negative motion (code list) per caption")
        captions = list(captions)
        if task in ("t2m", "t2m_motionagent"):
            results = self.t2m(captions, task=task)
        elif task == "unified_mogen_cot_v2":
            results = self.cot_v2(captions)
        elif task in _COT_PROMPT:
            results = self.cot(captions, task, max_refine_round)
        elif task == "unified_mogen_cot_v3_random_flip":
            results = self.random_flip(captions, negative_codes)  # type: ignore[arg-type]
        elif task == "pure_random_flip":
            results = [MotionResult(list(n), "", "", num_gens=0) for n in negative_codes]  # type: ignore[union-attr]
        elif task == "analysis_guided_t2m":
            results = self.analysis_guided_t2m(captions)
        else:
            initial = "direct" if task.startswith("direct") else "analysis"
            results = self.refinement_loop(captions, max_refine_round, initial, instructor)  # type: ignore[arg-type]
        for result in results:
            self.stats.num_gens[result.num_gens] += 1
            if result.fallback is not None:
                self.stats.substituted += 1
                self.stats.fallback_reasons[result.fallback] += 1
            if task in REFINEMENT_LOOP_TASKS:
                self.stats.rounds[result.rounds] += 1
                self.stats.stop_reasons["stop_sentence" if result.stopped else "max_rounds"] += 1
        return results


def _motion_text(motion: Any, vocab: MotionVocab) -> str:
    """A motion given as a ``<Motion_a>...`` string (kept as is) or as codes."""
    return motion if isinstance(motion, str) else vocab.codes_to_text(motion)


# ----------------------------------------------------------------------------------------------------
# Loading a model for inference


def load_inference_llm(
    llm_backbone: str,
    llm_ckpt: str = "",
    *,
    llm_tokenizer: str = "",
    attn_implementation: str = "auto",
    dtype: str = "auto",
    merge_lora: bool = False,
    lora_r: int = 64,
    lora_alpha: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[Any, Any, MotionVocab, dict[str, Any]]:
    """``(model, tokenizer, vocab, info)`` ready for inference (frozen, eval mode, on ``device``).

    ``llm_ckpt``: empty (the backbone as is), one of our full HF folders (used as the backbone), or a
    checkpoint for ``models.llm.checkpoints.load_checkpoint`` (authors' ``.pth``, Motion-Agent LoRA,
    our adapter folder — whose stored LoRA rank is used), loaded strictly into a LoRA-wrapped model.
    ``merge_lora`` folds the LoRA into the weights afterwards (faster generation). ``info`` holds the
    backbone, checkpoint, format and the checkpoint's resume information (``epoch``...).
    """
    from models.llm.checkpoints import load_checkpoint
    from models.llm.model import LLMSettings, activate_full_tuning, build_motion_llm, freeze, is_peft_model

    backbone, init = llm_backbone, None
    if llm_ckpt and (Path(llm_ckpt) / "config.json").is_file():
        backbone = llm_ckpt
    elif llm_ckpt:
        init = Path(llm_ckpt)
    adapter_config = init / "shared" / "adapter_config.json" if init is not None else None
    if adapter_config is not None and adapter_config.is_file():
        stored = json.loads(adapter_config.read_text(encoding="utf-8"))
        lora_r, lora_alpha = int(stored.get("r", lora_r)), int(stored.get("lora_alpha", lora_alpha))
    settings = LLMSettings(
        llm_backbone=backbone,
        llm_tokenizer=llm_tokenizer,
        attn_implementation=attn_implementation,
        dtype=dtype,
        use_lora=init is not None,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
    )
    model, tokenizer, vocab = build_motion_llm(settings)
    info: dict[str, Any] = {"backbone": backbone, "checkpoint": str(init) if init else "", "resume_info": {}}
    if init is not None:
        report = load_checkpoint(model, init, vocab, strict=True)
        logger.info("%s", report.summary())
        info["format"] = report.format
        info["resume_info"] = {
            k: v for k, v in report.resume_info.items() if isinstance(v, (int, float, str))
        }
    if merge_lora and is_peft_model(model):
        model = activate_full_tuning(model)
    freeze(model)
    return model.to(device).eval(), tokenizer, vocab, info

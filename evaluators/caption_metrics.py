"""Motion-to-text caption metrics with several references per prediction: BLEU-1/4, ROUGE-L, CIDEr, BERTScore.

- **BLEU** is the TF-NMT corpus formula of upstream's ``utils/bleu.py`` (re-implemented here): n-gram
  counts clipped by the per-n-gram maximum over a prediction's references, brevity penalty against the
  *shortest* reference, geometric mean 0 if any precision is 0 (unless ``smooth``). It differs from
  ``nltk.corpus_bleu``, which uses the closest reference length.
- **ROUGE-L**: ``rouge-score`` (no stemmer), per prediction the reference with the best F-measure, averaged.
  Upstream segmented with jieba for Chinese; for English text rouge-score's own tokenizer is used.
- **CIDEr**: ``pycocoevalcap``'s CIDEr-D scorer (pure Python), fed with our tokenization below instead of
  the Java PTB tokenizer; corpus-level IDF from the references, scaled by 10 as in COCO.
- **BERTScore**: the ``bert-score`` package with a configurable model name or local path (no download
  when a local path is given); with several references the best-matching one counts (bert-score's rule).

Tokenization for BLEU/CIDEr (:func:`simple_tokenize`): lower-case, every non-alphanumeric character
except the apostrophe becomes a space, split on whitespace.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_NON_WORD_RE = re.compile(r"[^0-9a-z']+")


def simple_tokenize(text: str) -> list[str]:
    """``"A man walks, then jumps!"`` -> ``["a", "man", "walks", "then", "jumps"]``."""
    return _NON_WORD_RE.sub(" ", text.lower()).split()


def _check_inputs(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError("no predictions to score")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"references[{i}] must be a non-empty list of strings, got {refs!r}")


def _ngram_counts(tokens: Sequence[str], max_order: int) -> Counter[tuple[str, ...]]:
    return Counter(
        tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1)
    )


def bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4, smooth: bool = False
) -> float:
    """Corpus BLEU up to ``max_order`` (1 -> BLEU-1, 4 -> BLEU-4), TF-NMT formula, in [0, 1]."""
    _check_inputs(predictions, references)
    matches = [0] * max_order
    possible = [0] * max_order
    pred_length = ref_length = 0
    for prediction, refs in zip(predictions, references, strict=True):
        hyp = simple_tokenize(prediction)
        ref_tokens = [simple_tokenize(r) for r in refs]
        pred_length += len(hyp)
        ref_length += min(len(r) for r in ref_tokens)
        max_ref_counts: Counter[tuple[str, ...]] = Counter()
        for tokens in ref_tokens:
            max_ref_counts |= _ngram_counts(tokens, max_order)
        for ngram, count in (_ngram_counts(hyp, max_order) & max_ref_counts).items():
            matches[len(ngram) - 1] += count
        for n in range(1, max_order + 1):
            possible[n - 1] += max(len(hyp) - n + 1, 0)
    if smooth:
        precisions = [(m + 1.0) / (p + 1.0) for m, p in zip(matches, possible, strict=True)]
    else:
        precisions = [m / p if p > 0 else 0.0 for m, p in zip(matches, possible, strict=True)]
    if pred_length == 0 or min(precisions) <= 0:
        return 0.0
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order)
    ratio = pred_length / ref_length if ref_length else float("inf")
    brevity = 1.0 if ratio > 1.0 else math.exp(1.0 - 1.0 / ratio)
    return geo_mean * brevity


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE-L ``precision``/``recall``/``fmeasure``; each prediction takes its best reference (by F)."""
    from rouge_score.rouge_scorer import RougeScorer

    _check_inputs(predictions, references)
    scorer = RougeScorer(["rougeL"], use_stemmer=False)
    scores = [
        scorer.score_multi(list(refs), prediction)["rougeL"]
        for prediction, refs in zip(predictions, references, strict=True)
    ]
    return {
        name: sum(getattr(s, name) for s in scores) / len(scores)
        for name in ("precision", "recall", "fmeasure")
    }


def cider(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus CIDEr-D (pycocoevalcap, n=4, sigma=6, ×10) with :func:`simple_tokenize` tokenization."""
    from pycocoevalcap.cider.cider import Cider

    _check_inputs(predictions, references)
    hypotheses = {i: [" ".join(simple_tokenize(p))] for i, p in enumerate(predictions)}
    refs = {i: [" ".join(simple_tokenize(r)) for r in group] for i, group in enumerate(references)}
    score, _ = Cider().compute_score(refs, hypotheses)
    return float(score)


def bert_score(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    model: str | Path,
    num_layers: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    idf: bool = False,
) -> dict[str, float]:
    """Mean BERTScore ``precision``/``recall``/``f1`` with the model ``model`` (hub name or local folder).

    ``num_layers`` = the layer whose token embeddings are compared; default: the model's last layer
    (bert-score's tuned defaults exist only for hub names, pass theirs to reproduce published numbers,
    e.g. 17 for ``roberta-large``). Requires ``bert-score`` and the model files (offline: a local path).
    """
    from bert_score import score as bert_score_fn

    _check_inputs(predictions, references)
    model_id = str(model)
    if num_layers is None:
        from transformers import AutoConfig

        num_layers = AutoConfig.from_pretrained(model_id).num_hidden_layers
    precision, recall, f1 = bert_score_fn(
        list(predictions),
        [list(r) for r in references],
        model_type=model_id,
        num_layers=num_layers,
        batch_size=batch_size,
        device=device,
        idf=idf,
    )
    return {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())}


def caption_metrics(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    bert_model: str | Path | None = None,
    **bert_kwargs: Any,
) -> dict[str, float]:
    """All caption metrics: ``bleu_1, bleu_4, rouge_l, cider`` and, with ``bert_model``, ``bertscore_*``."""
    results = {
        "bleu_1": bleu(predictions, references, max_order=1),
        "bleu_4": bleu(predictions, references, max_order=4),
        "rouge_l": rouge_l(predictions, references)["fmeasure"],
        "cider": cider(predictions, references),
    }
    if bert_model is not None:
        scores = bert_score(predictions, references, bert_model, **bert_kwargs)
        results.update({f"bertscore_{k}": v for k, v in scores.items()})
    return results

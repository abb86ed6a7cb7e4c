"""``SFT/test_m2t.py`` end to end on the tiny toy world (untrained LLM, random VQ and evaluator)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def test_m2t_end_to_end(
    load_script, toy_root, tiny_llm_dir, tiny_vq_path, tiny_evaluator_dir, glove_dir, tmp_path
):
    driver = load_script("SFT/test_m2t.py")
    result = driver.main([
        "--data-root", str(toy_root), "--llm-backbone", str(tiny_llm_dir), "--vq-ckpt", str(tiny_vq_path),
        "--evaluator-dir", str(tiny_evaluator_dir), "--glove-dir", str(glove_dir), "--text-backend", "rules",
        "--max-new-tokens", "8", "--eval-batch-size", "64", "--r-precision-repeats", "3",
        "--dtype", "fp32", "--attn-implementation", "eager", "--results-dir", str(tmp_path / "m2t"),
    ])  # fmt: skip
    folder = Path(result["results_dir"])
    metrics = result["caption_metrics"]
    assert set(metrics) == {"bleu_1", "bleu_4", "rouge_l", "cider"}
    assert all(np.isfinite(v) and v >= 0 for v in metrics.values())
    retrieval = result["retrieval"]["summary"]
    for key in ("generated", "real"):
        assert (
            0
            <= retrieval[f"{key}_R_precision_top1"]["mean"]
            <= retrieval[f"{key}_R_precision_top3"]["mean"]
            <= 1
        )
        assert retrieval[f"{key}_matching_score"]["mean"] > 0
    items = result["counts"]["items"]
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == items and all(row["references"] and row["codes"] for row in rows)
    generation = result["generation"]
    assert generation["by_kind"]["m2t"]["prompts"] + generation["cache_hits"] == items
    assert "| Generated |" in (folder / "m2t_results.md").read_text()
    assert json.loads((folder / "m2t_results.json").read_text())["counts"]["items"] == items

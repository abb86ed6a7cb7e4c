"""prepare/build_token_cache.py: default location, stored statistics, annotation sub-clips, reuse."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models.vqvae import save_vqvae
from models.vqvae.training import NORMALIZATION_KEY, load_normalization


def _annotation_file(path, motion_id: str, start: float, end: float):
    record = {"id": 0, "task": "t2m_direct_generation",
              "conversations": [{"from": "system", "value": "<General_System_Prompt>"},
                                {"from": "human", "value": "<Text2Motion_Template>"},
                                {"from": "gpt", "value": "<Goal_Motion>"}],
              "motions": {"<Goal_Motion>": {"motion_name": motion_id, "f_tag": start, "to_tag": end}},
              "text": {"<Goal_Caption>": ["a person moves"]}}
    path.write_text(json.dumps({"annotations": [record]}), encoding="utf-8")
    return path


def test_cli_builds_next_to_the_data_then_reuses(load_script, coded_vq, tiny_world, tiny_dataset, tmp_path,
                                                 capsys):
    main = load_script("prepare/build_token_cache.py").main
    stats = load_normalization(tiny_dataset)
    vq_path = save_vqvae(coded_vq, tmp_path / "vqvae.pt", extra={NORMALIZATION_KEY: stats.to_checkpoint()})
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    annotations = _annotation_file(tmp_path / "annots.json", "T_000002", 0.5, 2.5)  # decorated name, seconds

    cache = main(["--data-root", str(root), "--vq", str(vq_path), "--annotations", str(annotations),
                  "--no-progress"])
    out = capsys.readouterr().out
    assert cache.folder == root / "token_cache" and "built on cpu" in out
    assert f"motions {len(cache.motion_ids)}" in out and "extra 1" in out
    assert cache.variants("000002", 10, 50) == 1  # [int(0.5 * 20), int(2.5 * 20))
    assert cache.metadata["normalization"]["source"] == f"dataset:{tiny_world}"  # stored in the checkpoint

    again = main(["--data-root", str(root), "--vq", str(vq_path), "--annotations", str(annotations),
                  "--no-progress"])
    assert again.from_existing and "up to date" in capsys.readouterr().out

    meta = tmp_path / "meta"
    meta.mkdir()
    np.save(meta / "mean.npy", stats.mean + 1)
    np.save(meta / "std.npy", stats.std)
    with pytest.raises(SystemExit, match="differs from the statistics"):
        main(["--data-root", str(root), "--vq", str(vq_path), "--meta-dir", str(meta), "--no-progress"])

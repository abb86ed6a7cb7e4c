"""prepare/download_{glove,extractor}.sh offline behaviour: clear message, no hang, hand-placed zips unpacked.

The network is made unreachable through a closed local proxy port, so these tests never download.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from evaluators.word_vectors import WordVectorizer, save_our_vab

OFFLINE_ENV = {
    **os.environ,
    "https_proxy": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "PATH": "/usr/bin:/bin",
}


def _run(repo_root: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(repo_root / "prepare" / script), *args],
        env=OFFLINE_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("script", "hint"),
    [
        ("download_glove.sh", "glove/our_vab_data.npy"),
        ("download_extractor.sh", "t2m/text_mot_match/model/finest.tar"),
    ],
)
def test_offline_run_fails_fast_with_manual_instructions(repo_root, tmp_path, script, hint):
    result = _run(repo_root, script, "--root", str(tmp_path))
    assert result.returncode == 2
    assert "cannot reach drive.google.com" in result.stderr and hint in result.stderr
    assert "https://drive.google.com/file/d/" in result.stderr


def test_hand_placed_glove_zip_is_verified_and_unpacked(repo_root, tmp_path):
    staging = tmp_path / "staging"
    words = ["sos", "eos", "unk", "walk"]
    save_our_vab(np.eye(4, dtype=np.float32), words, staging / "glove")
    cache = tmp_path / "root" / "checkpoints" / ".downloads"
    cache.mkdir(parents=True)
    with zipfile.ZipFile(cache / "glove.zip", "w") as archive:
        for path in sorted((staging / "glove").iterdir()):
            archive.write(path, f"glove/{path.name}")
    result = _run(
        repo_root,
        "download_glove.sh",
        "--root",
        str(tmp_path / "root"),
        "--checksums",
        str(tmp_path / "none.sha256"),
    )
    assert result.returncode == 0, result.stderr
    assert "sha256 " in result.stderr and "no recorded sum" in result.stderr
    assert WordVectorizer.load_our_vab(tmp_path / "root" / "glove").words == words
    assert not (cache / "glove.zip").exists()
    again = _run(repo_root, "download_glove.sh", "--root", str(tmp_path / "root"))
    assert again.returncode == 0 and "already complete" in again.stderr


def test_extractor_zip_with_wrong_checksum_is_rejected(repo_root, tmp_path):
    cache = tmp_path / "checkpoints" / ".downloads"
    cache.mkdir(parents=True)
    with zipfile.ZipFile(cache / "t2m.zip", "w") as archive:
        archive.writestr("t2m/text_mot_match/model/finest.tar", b"weights")
    (tmp_path / "sums").write_text(f"{'0' * 64}  t2m.zip\n")
    result = _run(
        repo_root,
        "download_extractor.sh",
        "--root",
        str(tmp_path),
        "--dataset",
        "t2m",
        "--checksums",
        str(tmp_path / "sums"),
    )
    assert result.returncode == 2 and "sha256 mismatch for t2m.zip" in result.stderr
    assert (cache / "t2m.zip.bad").exists()


def test_extractor_zip_with_recorded_checksum_unpacks_and_checks_contents(repo_root, tmp_path):
    import hashlib

    cache = tmp_path / "checkpoints" / ".downloads"
    cache.mkdir(parents=True)
    needed = [
        "t2m/text_mot_match/model/finest.tar",
        "t2m/Comp_v6_KLD005/opt.txt",
        "t2m/VQVAEV3_CB1024_CMT_H1024_NRES3/meta/mean.npy",
        "t2m/VQVAEV3_CB1024_CMT_H1024_NRES3/meta/std.npy",
    ]
    with zipfile.ZipFile(cache / "t2m.zip", "w") as archive:
        for name in needed:
            archive.writestr(name, b"x")
    digest = hashlib.sha256((cache / "t2m.zip").read_bytes()).hexdigest()
    (tmp_path / "sums").write_text(f"{digest}  t2m.zip\n")
    result = _run(
        repo_root,
        "download_extractor.sh",
        "--root",
        str(tmp_path),
        "--dataset",
        "t2m",
        "--checksums",
        str(tmp_path / "sums"),
    )
    assert result.returncode == 0, result.stderr
    assert "sha256 verified (t2m.zip)" in result.stderr
    assert all((tmp_path / "checkpoints" / name).is_file() for name in needed)

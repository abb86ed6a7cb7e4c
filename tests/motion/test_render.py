"""Rendering writes valid multi-frame animations; the CLI renders features and joints files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from models.common.errors import DataError
from models.motion.render import load_motion, render_grid, render_motion
from models.motion.skeleton import HUMANML3D_SKELETON, KIT_SKELETON


def frames_of(path) -> int:
    with Image.open(path) as image:
        assert image.format == "GIF"
        return image.n_frames


def test_render_single_gif(motion_repr, tmp_path):
    joints = motion_repr["reference_new_joints"][:12]
    out = render_motion(joints, tmp_path / "walk.gif", HUMANML3D_SKELETON, caption="a person walks forward")
    assert out == tmp_path / "walk.gif" and frames_of(out) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["walk.gif"]  # no temporary file left behind


def test_render_grid_of_three_mixed_inputs(motion_repr, tmp_path):
    features = motion_repr["features"]
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-3
    normalised = (features[:8] - mean) / std
    out = render_grid([normalised, normalised[:5], normalised[:6]], ["goal", "generated", None],
                      tmp_path / "cmp.gif", HUMANML3D_SKELETON, mean=mean, std=std, fps=10)
    assert frames_of(out) == 8
    with Image.open(out) as image:
        assert image.size[0] > 2 * image.size[1]  # three panels side by side


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg present: mp4 is written")
def test_mp4_falls_back_to_gif_without_ffmpeg(motion_repr, tmp_path):
    out = render_motion(motion_repr["reference_new_joints"][:3], tmp_path / "x.mp4", HUMANML3D_SKELETON)
    assert out == tmp_path / "x.gif" and frames_of(out) == 3


def test_kit_features_render(make_synthetic_motion, tmp_path):
    from models.motion.representation import joints_to_features

    features = joints_to_features(make_synthetic_motion(KIT_SKELETON, frames=6), KIT_SKELETON)
    assert frames_of(render_motion(features, tmp_path / "kit.gif", KIT_SKELETON)) == 5


def test_load_motion_errors(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((5, 100), np.float32))
    with pytest.raises(DataError, match=r"bad\.npy: expected 263 features per frame, got 100"):
        load_motion(tmp_path / "bad.npy", HUMANML3D_SKELETON)
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(DataError, match=r"junk\.npy: cannot read"):
        load_motion(tmp_path / "junk.npy", HUMANML3D_SKELETON)
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        render_motion(np.zeros((3, 22, 3), np.float32), tmp_path / "x.png", HUMANML3D_SKELETON)


def test_cli_renders_side_by_side(motion_samples_dir, tmp_path, capsys):
    from importlib import import_module

    cli = import_module("prepare.render_motion")
    features = np.load(motion_samples_dir / "new_joint_vecs_012314.npy")[:10]
    joints = np.load(motion_samples_dir / "new_joints_012314.npy")[:7]
    np.save(tmp_path / "feats.npy", features)
    np.save(tmp_path / "joints.npy", joints)
    out = cli.main(["--inputs", str(tmp_path / "feats.npy"), str(tmp_path / "joints.npy"),
                    "--captions", "from features", "from joints",
                    "--out", str(tmp_path / "both.gif"), "--fps", "5"])
    assert frames_of(out) == 10
    assert f"wrote {out}" in capsys.readouterr().out

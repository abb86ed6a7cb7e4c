"""Headless stick-figure animations of motions: one clip, or several side by side.

Motions are joint positions ``[T, J, 3]`` or HumanML3D-style features ``[T, 12J-1]`` (recovered with
``recover_from_ric``; pass ``mean``/``std`` to undo a normalisation first). Output is mp4 through
matplotlib's ``FFMpegWriter`` when the path ends in ``.mp4`` and ``ffmpeg`` is on PATH, else an animated
gif through ``PillowWriter``. Figures are built on an Agg canvas without pyplot, so rendering never
touches a display or global matplotlib state. Files are written atomically.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.common.errors import DataError
from models.motion.layout import check_features, feature_layout
from models.motion.representation import check_joints, recover_from_ric
from models.motion.skeleton import SkeletonSpec

logger = logging.getLogger(__name__)

_LEFT, _RIGHT, _CENTRE = "#1f77b4", "#d62728", "#404040"
_PROGRESS_MIN_FRAMES = 120  # show a progress bar for renders at least this long


def motion_to_joints(motion: np.ndarray, skeleton: SkeletonSpec, *, mean: np.ndarray | None = None,
                     std: np.ndarray | None = None, source: object = None) -> np.ndarray:
    """Joint positions ``[T, J, 3]`` (float32) of a joints array or a (normalised) feature array."""
    motion = np.asarray(motion)
    if motion.ndim == 3:
        return check_joints(motion, skeleton, source=source, min_frames=1).astype(np.float32)
    dim = feature_layout(skeleton.joints_num).dim
    features = check_features(motion, dim, source=source).astype(np.float32)
    if (mean is None) != (std is None):
        raise ValueError("pass both mean and std to denormalise features, or neither")
    if mean is not None:
        features = features * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return recover_from_ric(features, skeleton.joints_num)


def load_motion(path: str | Path, skeleton: SkeletonSpec, *, mean: np.ndarray | None = None,
                std: np.ndarray | None = None) -> np.ndarray:
    """Joint positions ``[T, J, 3]`` from a ``.npy`` of joints or features."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read a numpy array ({err})", path=path) from err
    return motion_to_joints(array, skeleton, mean=mean, std=std, source=path)


def _chain_colours(skeleton: SkeletonSpec) -> list[str]:
    """Left chains blue, right chains red, chains that mirror onto themselves (spine) grey."""
    perm = skeleton.mirror_permutation
    colours = []
    for chain in skeleton.kinematic_chain:
        if all(perm[j] == j for j in chain[1:]):
            colours.append(_CENTRE)
        else:
            end = skeleton.joint_names[chain[-1]].lower()
            colours.append(_LEFT if end.startswith("l") else _RIGHT)
    return colours


class _StickFigure:
    """One 3D axes showing one motion; ``draw(t)`` updates it to frame ``t`` (held at its last frame)."""

    def __init__(self, ax, joints: np.ndarray, skeleton: SkeletonSpec, caption: str | None) -> None:
        # data: x left, y up, z forward (right-handed); plot: (x, -z, y), so matplotlib's z is up and the
        # picture is not mirrored. The default camera then sees a +z-facing character from the front.
        self.joints = np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], axis=-1)
        self.chains = skeleton.kinematic_chain
        lo = self.joints.reshape(-1, 3).min(axis=0)
        hi = self.joints.reshape(-1, 3).max(axis=0)
        floor = min(float(lo[2]), 0.0)
        height = max(float(hi[2]) - floor, 1e-6)
        half = 0.55 * max(float((hi - lo)[:2].max()), 0.8 * height)
        centre = (lo + hi) / 2
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(floor, floor + 1.05 * height)
        ax.set_box_aspect((2 * half, 2 * half, 1.05 * height), zoom=1.25)
        ax.view_init(elev=20, azim=-60)
        ax.set_axis_off()
        self._ground(ax, centre, half)
        if caption:
            ax.set_title(caption, fontsize=8)
        self.trajectory = ax.plot([], [], [], color="#ff7f0e", linewidth=1.0)[0]
        self.lines = [ax.plot([], [], [], color=c, linewidth=2.5 if c == _CENTRE else 2.0, marker="o",
                              markersize=2)[0] for c in _chain_colours(skeleton)]

    @staticmethod
    def _ground(ax, centre: np.ndarray, half: float) -> None:
        ticks = np.linspace(-half, half, 9)
        for offset in ticks:
            ax.plot([centre[0] + offset] * 2, [centre[1] - half, centre[1] + half], [0, 0], color="#cccccc",
                    linewidth=0.6)
            ax.plot([centre[0] - half, centre[0] + half], [centre[1] + offset] * 2, [0, 0], color="#cccccc",
                    linewidth=0.6)

    def draw(self, t: int) -> None:
        t = min(t, len(self.joints) - 1)
        pose = self.joints[t]
        for line, chain in zip(self.lines, self.chains):
            points = pose[list(chain)]
            line.set_data_3d(points[:, 0], points[:, 1], points[:, 2])
        path = self.joints[: t + 1, 0]
        self.trajectory.set_data_3d(path[:, 0], path[:, 1], np.zeros(len(path)))


def _wrap(caption: str | None, panel_size: float) -> str | None:
    return "\n".join(textwrap.wrap(caption, int(panel_size * 14))) if caption else caption


def _writer_for(path: Path, fps: float):
    from matplotlib import animation

    if path.suffix.lower() == ".mp4":
        if shutil.which("ffmpeg") is not None:
            return path, animation.FFMpegWriter(fps=fps)
        logger.warning("ffmpeg is not on PATH; writing a gif instead of %s", path)
        path = path.with_suffix(".gif")
    elif path.suffix.lower() != ".gif":
        raise ValueError(f"output must end in .gif or .mp4, got {path}")
    return path, animation.PillowWriter(fps=fps)


def render_grid(motions: Sequence[np.ndarray], captions: Sequence[str | None] | None, path: str | Path,
                skeleton: SkeletonSpec, ncols: int | None = None, *, fps: float | None = None,
                title: str | None = None, mean: np.ndarray | None = None, std: np.ndarray | None = None,
                dpi: int = 80, panel_size: float = 3.2, progress: bool | None = None) -> Path:
    """Animate several motions side by side (e.g. goal / generated / refined) into one gif or mp4.

    Shorter motions hold their last pose. Returns the path written (``.gif`` if mp4 was asked for but
    ``ffmpeg`` is missing).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not motions:
        raise ValueError("no motions to render")
    captions = list(captions) if captions is not None else [None] * len(motions)
    if len(captions) != len(motions):
        raise ValueError(f"{len(motions)} motions but {len(captions)} captions")
    joints = [motion_to_joints(m, skeleton, mean=mean, std=std) for m in motions]
    ncols = ncols or len(joints)
    nrows = math.ceil(len(joints) / ncols)
    fps = float(fps or skeleton.fps)
    frames = max(len(j) for j in joints)

    captions = [_wrap(c, panel_size) for c in captions]
    caption_lines = max((c.count("\n") + 1 for c in captions if c), default=0)
    head = 0.15 * caption_lines + (0.35 if title else 0.0) + 0.05  # inches above the first row
    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + head))
    FigureCanvasAgg(fig)
    figures = [_StickFigure(fig.add_subplot(nrows, ncols, i + 1, projection="3d"), j, skeleton, c)
               for i, (j, c) in enumerate(zip(joints, captions))]
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - head / fig.get_figheight(), wspace=0, hspace=0.15)

    path, writer = _writer_for(Path(path), fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    show = frames >= _PROGRESS_MIN_FRAMES if progress is None else progress
    try:
        with writer.saving(fig, tmp_name, dpi):
            for t in tqdm(range(frames), desc=f"render {path.name}", unit="frame", disable=not show,
                          leave=False):
                for figure in figures:
                    figure.draw(t)
                writer.grab_frame()
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def render_motion(motion: np.ndarray, path: str | Path, skeleton: SkeletonSpec, caption: str | None = None,
                  **kwargs) -> Path:
    """Animate one motion (joints ``[T, J, 3]`` or features ``[T, D]``); see ``render_grid`` for options."""
    return render_grid([motion], [caption], path, skeleton, **kwargs)

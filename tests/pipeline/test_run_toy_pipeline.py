"""The main job's orchestration: skip finished stages, rerun changed ones and all after, resume interrupted ones.

The stages here are tiny real subprocesses (one-line Python programs that append to a log and write an
output), driven by ``prepare/run_toy_pipeline.py``'s own ``run_stages``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def pipeline(load_script):
    return load_script("prepare/run_toy_pipeline.py")


def _stages(pipeline, greeting: str = "hello"):
    """a -> b -> c; each appends its name to runs.log and writes <name>.out (b's text is ``greeting``)."""

    def stage(name: str, text: str):
        program = (f"import pathlib; o = pathlib.Path({{out!r}}); o.joinpath('runs.log').open('a').write('{name}\\n'); "
                   f"o.joinpath('{name}.out').write_text('{text}')")
        return pipeline.Stage(
            name, f"stage {name}",
            lambda p, c: [c.python, "-c", program.format(out=str(p.out))],
            lambda p: p.out / f"{name}.out",
            lambda p: [p.out / f"{name}.out"],
        )

    return [stage("a", "A"), stage("b", greeting), stage("c", "C")]


def _run(pipeline, out: Path, stages, **overrides) -> list[str]:
    """Run the stages; return the names of the stages that actually ran this time."""
    log = out / "runs.log"
    before = log.read_text().split() if log.is_file() else []
    cfg = pipeline.PipelineConfig(out=str(out), python=sys.executable, **overrides)
    timings = pipeline.run_stages(stages, pipeline.Paths(out), cfg)
    assert set(timings) == {stage.name for stage in stages}
    return log.read_text().split()[len(before):]


def test_finished_stages_are_skipped_and_changes_rerun_everything_after(pipeline, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    assert _run(pipeline, out, _stages(pipeline)) == ["a", "b", "c"]
    assert _run(pipeline, out, _stages(pipeline)) == []
    assert _run(pipeline, out, _stages(pipeline, greeting="bonjour")) == ["b", "c"]
    assert (out / "b.out").read_text() == "bonjour"
    assert _run(pipeline, out, _stages(pipeline, greeting="bonjour"), redo_from="c") == ["c"]
    (out / "a.out").unlink()  # a finished stage whose output vanished reruns, and so does everything after
    assert _run(pipeline, out, _stages(pipeline, greeting="bonjour")) == ["a", "b", "c"]
    marks = json.loads((out / ".pipeline" / "b.json").read_text())
    assert marks["command"][0] == "PYTHON" and "seconds" in marks


def test_an_interrupted_stage_keeps_its_outputs_and_a_changed_one_loses_them(pipeline, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    stages = _stages(pipeline)
    _run(pipeline, out, stages)
    cfg = pipeline.PipelineConfig(out=str(out), python=sys.executable)
    paths = pipeline.Paths(out)
    # b was killed mid-run: its started-marker holds the same signature, its finished-marker is gone
    (out / ".pipeline" / "b.json").unlink()
    (out / ".pipeline" / "b.started.json").write_text(json.dumps(stages[1].signature(paths, cfg)))
    (out / "partial_checkpoint").write_text("kept")
    stages[1].outputs = lambda p: [p.out / "partial_checkpoint"]
    assert _run(pipeline, out, stages) == ["b", "c"]
    assert (out / "partial_checkpoint").read_text() == "kept"
    assert not (out / ".pipeline" / "b.started.json").exists()
    # a changed command reruns from scratch: the stale outputs are removed first
    changed = _stages(pipeline, greeting="hola")
    changed[1].outputs = lambda p: [p.out / "partial_checkpoint"]
    assert _run(pipeline, out, changed) == ["b", "c"]
    assert not (out / "partial_checkpoint").exists()


def test_unknown_redo_stage_and_failing_stage_are_reported(pipeline, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(SystemExit, match="unknown stage 'z'.*a, b, c"):
        _run(pipeline, out, _stages(pipeline), redo_from="z")
    failing = pipeline.Stage("boom", "fails", lambda p, c: [c.python, "-c", "raise SystemExit('bad input x')"],
                             lambda p: p.out / "never", lambda p: [])
    with pytest.raises(SystemExit, match="(?s)stage boom failed.*bad input x"):
        pipeline.run_stages([failing], pipeline.Paths(out), pipeline.PipelineConfig(out=str(out), python=sys.executable))
    assert (out / ".pipeline" / "boom.started.json").is_file() and not (out / ".pipeline" / "boom.json").exists()

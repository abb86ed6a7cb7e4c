"""The writer cache: nothing is paid twice, runs resume after a crash, failures are retried."""

from __future__ import annotations

import sqlite3

import pytest

from data_engine.build_annotations import BuildAnnotationsConfig, run
from data_engine.writers.base import AssessmentRequest, GoalAnalysisRequest, WriterFailure
from data_engine.writers.cache import ResponseCache, cache_key, run_requests
from data_engine.writers.offline import OfflineWriter


class CountingWriter(OfflineWriter):
    """The real offline writer, counting the requests it is asked to answer."""

    def __init__(self, seed: int = 0, crash_after: int | None = None, fail: set[str] | None = None) -> None:
        super().__init__(seed)
        self.calls = 0
        self.crash_after = crash_after
        self.fail = fail or set()

    def generate(self, requests):
        for index, request in enumerate(requests):
            if self.crash_after is not None and self.calls >= self.crash_after:
                raise RuntimeError("simulated crash")
            self.calls += 1
            if getattr(request, "caption", None) in self.fail:
                yield index, WriterFailure("simulated failure")
            else:
                yield index, self.write(request)


REQUESTS = [GoalAnalysisRequest(f"a person jumps forward {n} times.") for n in range(10)] + [
    AssessmentRequest("a person jumps.", ("a person waves.",)),
    GoalAnalysisRequest("a person jumps forward 0 times."),  # duplicate: asked once
]


def test_responses_survive_reopening_and_duplicates_are_asked_once(tmp_path):
    writer = CountingWriter()
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        first = run_requests(writer, REQUESTS, cache, progress=False)
    assert writer.calls == 11 and first.calls == 11 and len(first.responses) == 12
    assert first.responses[0] == first.responses[11]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        second = run_requests(writer, REQUESTS, cache, progress=False)
        assert len(cache) == 11
    assert writer.calls == 11 and second.calls == 0 and second.cached == 11
    assert second.responses == first.responses
    mode = sqlite3.connect(tmp_path / "cache.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_keys_depend_on_writer_model_and_templates():
    request = REQUESTS[0]
    assert cache_key(OfflineWriter(0), request) == cache_key(OfflineWriter(0), request)
    assert cache_key(OfflineWriter(0), request) != cache_key(OfflineWriter(1), request)
    assert cache_key(OfflineWriter(0), request) != cache_key(OfflineWriter(0), REQUESTS[1])


def test_an_interrupted_run_resumes_with_only_the_remaining_calls(tmp_path):
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache, pytest.raises(RuntimeError, match="simulated crash"):
        run_requests(CountingWriter(crash_after=4), REQUESTS, cache, progress=False)
    resumed = CountingWriter()
    with ResponseCache(path) as cache:
        result = run_requests(resumed, REQUESTS, cache, progress=False)
    assert resumed.calls == 11 - 4 and result.cached == 4 and len(result.responses) == 12


def test_failures_are_reported_and_retried_on_the_next_run(tmp_path):
    path = tmp_path / "cache.sqlite"
    failing = CountingWriter(fail={"a person jumps forward 3 times."})
    with ResponseCache(path) as cache:
        result = run_requests(failing, REQUESTS, cache, progress=False)
    assert list(result.failures) == [3] and 3 not in result.responses
    retry = CountingWriter()
    with ResponseCache(path) as cache:
        again = run_requests(retry, REQUESTS, cache, progress=False)
    assert retry.calls == 1 and not again.failures


def test_a_second_build_makes_no_writer_calls(toy_root, toy_negatives, tmp_path):
    config = BuildAnnotationsConfig(
        dataset_root=str(toy_root),
        negatives=str(toy_negatives),
        out=str(tmp_path / "a"),
        stages=["1", "2", "3"],
        progress=False,
    )
    writer = CountingWriter()
    first = run(config, writer=writer)
    calls = writer.calls
    assert calls == first["writer_calls"] > 100
    second = run(config, writer=writer)
    assert writer.calls == calls and second["writer_calls"] == 0 and second["cached_calls"] == calls
    assert second["counts"] == first["counts"]
    # a later stage-2-only build reuses the cache too
    only2 = BuildAnnotationsConfig(
        dataset_root=str(toy_root),
        negatives=str(toy_negatives),
        out=str(tmp_path / "a"),
        stages=["2"],
        progress=False,
    )
    assert run(only2, writer=writer)["writer_calls"] == 0 and writer.calls == calls


def test_a_crashed_build_resumes(toy_root, toy_negatives, tmp_path):
    config = BuildAnnotationsConfig(
        dataset_root=str(toy_root),
        negatives=str(toy_negatives),
        out=str(tmp_path / "b"),
        stages=["2"],
        progress=False,
    )
    with pytest.raises(RuntimeError):
        run(config, writer=CountingWriter(crash_after=50))
    resumed = CountingWriter()
    summary = run(config, writer=resumed)
    assert summary["cached_calls"] == 50 and resumed.calls == summary["writer_calls"] > 0

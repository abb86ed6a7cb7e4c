"""The OpenAI-compatible writer against a local fake chat-completions server on loopback."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data_engine.writers.base import (
    AssessmentRequest,
    AssessmentResponse,
    GoalAnalysisRequest,
    GoalAnalysisResponse,
    WriterFailure,
    WriterFatalError,
)
from data_engine.writers.cache import ResponseCache, run_requests
from data_engine.writers.openai_api import OpenAISettings, OpenAIWriter, parse_retry_after

PROMPT_TOKENS, COMPLETION_TOKENS = 120, 40


class FakeChatServer:
    """Answers /chat/completions according to a directive word in the goal text of the request:

    ``@r429`` -> 429 with Retry-After 2 on the first attempt; ``@r500`` -> 500 twice; ``@garbage`` ->
    non-JSON content; ``@nofield`` -> JSON without the requested field; ``@auth`` -> 401; ``@slow`` -> a
    valid reply after 0.3 s; anything else a valid reply for the requested kind. Tracks attempts per
    directive and the peak concurrency.
    """

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert (
                    self.path == "/v1/chat/completions" and self.headers["Authorization"] == "Bearer sk-test"
                )
                prompt = body["messages"][-1]["content"]
                directives = ("r429", "r500", "garbage", "nofield", "auth", "slow")
                directive = next((w for w in directives if f"@{w}" in prompt), "ok")
                with server.lock:
                    server.attempts[directive] += 1
                    attempt = server.attempts[directive]
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                try:
                    self.answer(directive, attempt, body)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def answer(self, directive: str, attempt: int, body: dict) -> None:
                if directive == "r429" and attempt == 1:
                    return self.reply(429, {"error": "rate limited"}, {"Retry-After": "2"})
                if directive == "r500" and attempt <= 2:
                    return self.reply(500, {"error": "server error"})
                if directive == "auth":
                    return self.reply(401, {"error": "invalid api key"})
                if directive == "slow":
                    time.sleep(0.3)
                content = json.dumps(self.valid_reply(body["messages"][-1]["content"]))
                if directive == "garbage":
                    content = "Sure! Here is what you asked for."
                if directive == "nofield":
                    content = json.dumps({"assessment": "The generated motion waves."})
                self.reply(
                    200,
                    {
                        "choices": [{"message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS},
                    },
                )

            @staticmethod
            def valid_reply(user: str) -> dict:
                match = re.search(r"exactly (\d+) strings", user)
                n = int(match.group(1)) if match else 1
                if '{"analyses"' in user:
                    return {"analyses": [f"The goal is to generate the motion, part {i}." for i in range(n)]}
                if '{"prompts"' in user:
                    return {"prompts": [f"a person performs the motion, version {i}." for i in range(n)]}
                if '"refinement"' in user:
                    return {
                        "assessment": "The generated motion waves instead of jumping.",
                        "refinement": "Replace the wave with a jump to the left.",
                    }
                return {"assessment": "The generated motion perfectly aligns with the goal text."}

            def reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    fake = FakeChatServer()
    yield fake
    fake.close()


def make_writer(server, waits=None, **overrides) -> OpenAIWriter:
    settings = OpenAISettings(
        base_url=server.url,
        model="fake-gpt",
        api_key="sk-test",
        backoff_base=0.01,
        price_input_per_mtok=2.5,
        price_output_per_mtok=10.0,
        **overrides,
    )
    return OpenAIWriter(settings, sleep=(waits.append if waits is not None else time.sleep), seed=0)


def answers(writer, requests):
    return dict(writer.generate(requests))


def test_success_parses_the_reply_and_estimates_the_cost(server):
    writer = make_writer(server)
    result = answers(
        writer,
        [
            GoalAnalysisRequest("a person jumps to the left."),
            AssessmentRequest("a person jumps.", ("a person waves.",)),
        ],
    )
    assert isinstance(result[0], GoalAnalysisResponse) and len(result[0].analyses) == 4
    assert result[1] == AssessmentResponse(
        "The generated motion waves instead of jumping.", "Replace the wave with a jump to the left."
    )
    assert writer.prompt_tokens == 2 * PROMPT_TOKENS and writer.completion_tokens == 2 * COMPLETION_TOKENS
    assert writer.cost_usd == pytest.approx((240 * 2.5 + 80 * 10.0) / 1e6)
    assert writer.describe()["cost_usd"] == round(writer.cost_usd, 4) and "sk-test" not in json.dumps(
        writer.describe()
    )


def test_429_honours_retry_after_and_500_backs_off(server):
    waits: list[float] = []
    writer = make_writer(server, waits)
    result = answers(writer, [AssessmentRequest("@r429: a person jumps.", ("a person waves.",))])
    assert isinstance(result[0], AssessmentResponse) and server.attempts["r429"] == 2
    assert waits and waits[0] >= 2.0
    waits.clear()
    result = answers(writer, [AssessmentRequest("@r500: a person jumps.", ("a person waves.",))])
    assert isinstance(result[0], AssessmentResponse) and server.attempts["r500"] == 3
    assert len(waits) == 2 and all(0 <= w <= 0.01 * 2**k for k, w in enumerate(waits))


def test_retries_are_bounded(server):
    waits: list[float] = []
    writer = make_writer(server, waits, max_retries=1)
    failure = answers(writer, [AssessmentRequest("@r500: a person jumps.", ("a person waves.",))])[0]
    assert (
        isinstance(failure, WriterFailure) and "HTTP 500" in failure.reason and server.attempts["r500"] == 2
    )


@pytest.mark.parametrize(
    ("directive", "problem"), [("garbage", "no JSON object"), ("nofield", "'refinement'")]
)
def test_malformed_replies_are_retried_then_reported(server, directive, problem):
    writer = make_writer(server, [])
    failure = answers(writer, [AssessmentRequest(f"@{directive}: a person jumps.", ("a person waves.",))])[0]
    assert isinstance(failure, WriterFailure)
    assert failure.reason.startswith("malformed reply after 3 attempts") and problem in failure.reason
    assert server.attempts[directive] == 3 and failure.attempts == 3
    assert writer.prompt_tokens == 3 * PROMPT_TOKENS  # failed attempts are paid for too


def test_authentication_errors_stop_the_run(server):
    writer = make_writer(server, [])
    with pytest.raises(WriterFatalError, match="HTTP 401"):
        answers(writer, [GoalAnalysisRequest("@auth: a person jumps.")])


def test_requests_run_concurrently_up_to_the_limit(server):
    writer = make_writer(server, concurrency=4)
    requests = [GoalAnalysisRequest(f"@slow: a person jumps {i} times.") for i in range(8)]
    started = time.perf_counter()
    result = answers(writer, requests)
    elapsed = time.perf_counter() - started
    assert len(result) == 8 and all(isinstance(r, GoalAnalysisResponse) for r in result.values())
    assert server.peak == 4 and elapsed < 8 * 0.3 * 0.6


def test_cached_run_reports_cost_and_never_pays_twice(server, tmp_path):
    writer = make_writer(server)
    requests = [GoalAnalysisRequest(f"a person hops {i} times.") for i in range(5)]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        first = run_requests(writer, requests, cache, progress=False)
        second = run_requests(writer, requests, cache, progress=False)
    assert first.cost_usd == pytest.approx(5 * (PROMPT_TOKENS * 2.5 + COMPLETION_TOKENS * 10) / 1e6)
    assert second.calls == 0 and second.cost_usd == 0 and writer.http_calls == 5


def test_retry_after_parsing():
    assert (
        parse_retry_after("3") == 3.0
        and parse_retry_after(None) is None
        and parse_retry_after("soon") is None
    )
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0  # a date in the past: no wait


def test_build_annotations_with_the_api_writer(server, toy_root, toy_negatives, tmp_path, monkeypatch):
    from data_engine.build_annotations import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "api"
    argv = [
        "--dataset-root",
        str(toy_root),
        "--negatives",
        str(toy_negatives),
        "--out",
        str(out),
        "--writer",
        "openai",
        "--api-base-url",
        server.url,
        "--api-model",
        "fake-gpt",
        "--max-goals",
        "4",
        "--stages",
        "1",
        "2",
        "3",
        "--no-progress",
    ]
    first = main(argv)
    assert first["writer_calls"] > 20 and first["writer_failures"] == 0
    per_call = (PROMPT_TOKENS * 2.5 + COMPLETION_TOKENS * 10) / 1e6
    assert first["cost_usd"] == pytest.approx(first["writer_calls"] * per_call, abs=1e-4)
    info = json.loads((out / "stage-2" / "sft_motion_assess_cot_v2.json").read_text())["info"]
    assert info["writer"]["kind"] == "openai" and "sk-test" not in (out / "build_info.json").read_text()
    second = main(argv)
    assert second["writer_calls"] == 0 and second["counts"] == first["counts"]

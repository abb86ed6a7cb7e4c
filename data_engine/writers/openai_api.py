"""Writer backed by an OpenAI-compatible chat-completions endpoint (OpenAI, Azure-style proxies, vLLM,
llama.cpp servers ...), with plain ``requests`` — no ``openai`` package.

* endpoint, model and key from :class:`OpenAISettings` (``build_annotations`` fills them from its flags
  and ``$OPENAI_BASE_URL`` / ``$OPENAI_API_KEY``);
* ``concurrency`` requests in flight on a thread pool (one HTTP session per thread);
* transient failures — HTTP 408/409/429/5xx, timeouts, dropped connections — are retried with
  exponential backoff and full jitter, honouring ``Retry-After`` (seconds or an HTTP date);
  401/403/404 stop the run at once (:class:`WriterFatalError`): every further call would fail the same way;
* a reply that is not the requested JSON object (or misses a field) is retried
  ``malformed_retries`` times, then reported as a :class:`WriterFailure` naming the problem;
* token usage of every call (failed attempts included) feeds a running cost estimate from the
  configured per-million-token prices.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import requests

from data_engine.prompts import render_messages, templates_version
from data_engine.writers.base import (
    MalformedReply,
    TextWriter,
    WriterFailure,
    WriterFatalError,
    WriterRequest,
    WriterResponse,
    parse_json_reply,
)

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o"
    api_key: str = ""
    concurrency: int = 8
    timeout: float = 60.0  # seconds per HTTP request
    max_retries: int = 6  # transient HTTP failures per call
    malformed_retries: int = 2  # extra attempts after a reply that is not the requested JSON
    backoff_base: float = 1.0  # seconds; attempt k waits up to base * 2**k (full jitter)
    backoff_max: float = 60.0
    temperature: float = 0.7
    max_tokens: int = 1024
    json_mode: bool = True  # ask for response_format={"type": "json_object"}
    price_input_per_mtok: float = 2.5  # USD per million prompt tokens (gpt-4o list price at writing)
    price_output_per_mtok: float = 10.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_retries < 0 or self.malformed_retries < 0:
            raise ValueError("concurrency must be >= 1 and retry counts >= 0")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")


class _Transient(Exception):
    """A failure worth retrying after ``retry_after`` seconds (None: use the backoff)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number, or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIWriter(TextWriter):
    """Chat-completions writer (module docstring). ``sleep`` is injectable so that tests can record waits."""

    kind = "openai"
    paid = True

    def __init__(
        self, settings: OpenAISettings, sleep: Callable[[float], None] = time.sleep, seed: int | None = None
    ) -> None:
        if not settings.api_key:
            logger.warning("no API key set (OPENAI_API_KEY); requests are sent without authentication")
        self.settings = settings
        self._sleep = sleep
        self._local = threading.local()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.http_calls = 0

    @property
    def model_id(self) -> str:
        return self.settings.model

    @property
    def template_version(self) -> str:
        return templates_version()

    @property
    def cost_usd(self) -> float:
        s = self.settings
        return (
            self.prompt_tokens * s.price_input_per_mtok + self.completion_tokens * s.price_output_per_mtok
        ) / 1e6

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "kind": self.kind,
            "model": s.model,
            "base_url": s.base_url,
            "template_version": self.template_version,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 4),
        }

    # ------------------------------------------------------------------------------ one call
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            session = requests.Session()
            session.headers["Content-Type"] = "application/json"
            if self.settings.api_key:
                session.headers["Authorization"] = f"Bearer {self.settings.api_key}"
            self._local.session = session
        return self._local.session

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.settings.base_url.rstrip("/") + "/chat/completions"
        try:
            reply = self._session().post(url, json=payload, timeout=self.settings.timeout)
        except (requests.Timeout, requests.ConnectionError) as err:
            raise _Transient(f"{type(err).__name__}: {err}") from None
        with self._lock:
            self.http_calls += 1
        if reply.status_code in FATAL_STATUS:
            raise WriterFatalError(f"{url} answered HTTP {reply.status_code}: {reply.text[:300]}")
        if reply.status_code in RETRY_STATUS:
            raise _Transient(
                f"HTTP {reply.status_code}: {reply.text[:200]}",
                parse_retry_after(reply.headers.get("Retry-After")),
            )
        if reply.status_code >= 400:
            raise MalformedReply(f"HTTP {reply.status_code}: {reply.text[:300]}")
        try:
            body = reply.json()
        except ValueError:
            raise MalformedReply(f"response body is not JSON: {reply.text[:200]!r}") from None
        usage = body.get("usage") or {}
        with self._lock:
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
        try:
            return body["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise MalformedReply(f"no choices[0].message in the response: {str(body)[:200]}") from None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        with self._lock:
            jitter = self._rng.uniform(0.0, 1.0)
        wait_s = min(self.settings.backoff_max, self.settings.backoff_base * 2**attempt) * jitter
        return max(wait_s, retry_after) if retry_after is not None else wait_s

    def call(self, request: WriterRequest) -> WriterResponse | WriterFailure:
        """One request with retries; raises ``WriterFatalError`` only for failures that would repeat."""
        s = self.settings
        payload: dict[str, Any] = {
            "model": s.model,
            "messages": render_messages(request),
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
        }
        if s.json_mode:
            payload["response_format"] = {"type": "json_object"}
        transient = malformed = 0
        problem = ""
        while True:
            try:
                message = self._post(payload)
                return request.parse_reply(parse_json_reply(message.get("content") or ""))
            except _Transient as err:
                if transient >= s.max_retries:
                    return WriterFailure(
                        f"gave up after {transient + 1} attempts: {err}", transient + malformed + 1
                    )
                wait_s = self._backoff(transient, err.retry_after)
                logger.debug("retrying in %.2f s after %s", wait_s, err)
                transient += 1
                self._sleep(wait_s)
            except MalformedReply as err:
                problem = str(err)
                if malformed >= s.malformed_retries:
                    return WriterFailure(
                        f"malformed reply after {malformed + 1} attempts: {problem}",
                        transient + malformed + 1,
                    )
                malformed += 1

    # ------------------------------------------------------------------------------ many calls
    def generate(
        self, requests_: Sequence[WriterRequest]
    ) -> Iterator[tuple[int, WriterResponse | WriterFailure]]:
        """Yield answers as they complete, with at most ``concurrency`` calls in flight."""
        limit = self.settings.concurrency
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="openai-writer")
        pending: dict[Future, int] = {}
        position = 0
        try:
            while position < len(requests_) or pending:
                while position < len(requests_) and len(pending) < 2 * limit:
                    pending[pool.submit(self.call, requests_[position])] = position
                    position += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    yield index, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

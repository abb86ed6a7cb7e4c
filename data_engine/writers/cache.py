"""A crash-safe response cache for writer calls, and the loop that runs requests through it.

Every successful call is stored in a SQLite database (WAL journal, committed after each call) under
``sha256(writer kind, model id, template version, request)``. A crash, a rerun or the build of another
stage therefore never pays for the same call twice: :func:`run_requests` looks every request up first
and sends only the missing ones, storing each answer the moment it arrives. Failures are not stored,
so a rerun retries them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tqdm.auto import tqdm

from data_engine.writers.base import (
    TextWriter,
    WriterFailure,
    WriterRequest,
    WriterResponse,
    response_to_dict,
)

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    writer TEXT NOT NULL,
    model TEXT NOT NULL,
    template_version TEXT NOT NULL,
    request_kind TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(writer: TextWriter, request: WriterRequest) -> str:
    """``sha256`` of (writer kind, model id, template version, request content)."""
    payload = json.dumps(
        {
            "writer": writer.kind,
            "model": writer.model_id,
            "template_version": writer.template_version,
            "request": request.to_dict(),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """SQLite store of writer responses; ``path=None`` keeps it in memory (nothing survives the process)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path))
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Stored response dicts of the given keys (missing keys are absent)."""
        found: dict[str, dict] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, response in self._db.execute(
                f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk
            ):
                found[key] = json.loads(response)
        return found

    def put(self, key: str, writer: TextWriter, request: WriterRequest, response: WriterResponse) -> None:
        """Store one response and commit: one transaction per call, so a crash loses only calls in flight."""
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                writer.kind,
                writer.model_id,
                writer.template_version,
                request.kind,
                json.dumps(request.to_dict(), ensure_ascii=False),
                json.dumps(response_to_dict(response), ensure_ascii=False),
                time.time(),
            ),
        )
        self._db.commit()


@dataclass
class RunResult:
    """Responses by request position, failures by position, and what it cost."""

    responses: dict[int, WriterResponse] = field(default_factory=dict)
    failures: dict[int, WriterFailure] = field(default_factory=dict)
    calls: int = 0  # requests sent to the writer (after de-duplication and cache hits)
    cached: int = 0  # distinct requests answered from the cache
    cost_usd: float = 0.0


def run_requests(
    writer: TextWriter,
    requests: Sequence[WriterRequest],
    cache: ResponseCache,
    *,
    progress: bool = True,
    desc: str = "writer",
) -> RunResult:
    """Answer ``requests`` from the cache, sending only the missing distinct ones to ``writer``.

    Each answer is stored as soon as it arrives. tqdm shows calls with ETA and, for paid writers, the
    running cost estimate. A ``WriterFatalError`` (or Ctrl-C) stops the run; everything answered so far
    is already stored.
    """
    keys = [cache_key(writer, r) for r in requests]
    positions: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        positions.setdefault(key, []).append(position)
    stored = cache.get_many(positions)
    result = RunResult(cached=len(stored))
    for key, data in stored.items():
        for position in positions[key]:
            result.responses[position] = requests[position].response_from_dict(data)
    missing = [key for key in positions if key not in stored]
    result.calls = len(missing)
    if not missing:
        return result
    todo = [requests[positions[key][0]] for key in missing]
    start_cost = writer.cost_usd
    bar = tqdm(total=len(todo), desc=desc, unit="call", disable=not progress)
    try:
        for index, answer in writer.generate(todo):
            key = missing[index]
            if isinstance(answer, WriterFailure):
                for position in positions[key]:
                    result.failures[position] = answer
            else:
                cache.put(key, writer, todo[index], answer)
                for position in positions[key]:
                    result.responses[position] = answer
            bar.update(1)
            if writer.paid:
                bar.set_postfix(cost=f"${writer.cost_usd:.4f}", failed=len(result.failures), refresh=False)
    finally:
        bar.close()
        result.cost_usd = writer.cost_usd - start_cost
    if result.failures:
        logger.warning(
            "%s: %d of %d calls failed (not cached; a rerun retries them)",
            desc,
            len({keys[p] for p in result.failures}),
            len(todo),
        )
    return result

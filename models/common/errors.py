"""One exception type for bad input data that always says where the problem is."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input (data file, annotation, checkpoint), naming the file, record/line and field at fault.

    >>> str(DataError("expected 4 '#'-separated fields, got 3", path="texts/000001.txt", line=2))
    "texts/000001.txt, line 2: expected 4 '#'-separated fields, got 3"
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        record: str | int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.record = record
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

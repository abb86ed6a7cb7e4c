"""Reader for Guo et al.'s ``opt.txt`` option dumps (e.g. ``checkpoints/t2m/Comp_v6_KLD005/opt.txt``).

The file is a list of ``key: value`` lines between ``------------ Options -------------`` and
``-------------- End ----------------``. Values are typed the way the upstream parser does it:
``True``/``False`` → bool, ``[-+]digits.digits`` → float, ``[-+]digits`` → int, anything else → str
(so ``1e-05`` stays a string, as upstream).

Unlike upstream, lines without ``': '`` (some redistributed copies append ``window_size = 64``) are
skipped with a logged warning instead of crashing, and a value containing ``': '`` is kept whole.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from models.common.errors import DataError

logger = logging.getLogger(__name__)

_FLOAT_RE = re.compile(r"^[-+]?[0-9]+\.[0-9]+$")
_INT_RE = re.compile(r"^[-+]?[0-9]+$")


def parse_opt_value(value: str) -> bool | int | float | str:
    """Type one ``opt.txt`` value exactly like Guo's ``get_opt`` (bool, float, int, else str)."""
    if value in ("True", "False"):
        return value == "True"
    if _FLOAT_RE.match(value):
        return float(value)
    if _INT_RE.match(value):
        return int(value)
    return value


def read_opt_file(path: str | Path) -> dict[str, Any]:
    """Parse an ``opt.txt`` into an ordered dict of typed values.

    Raises ``DataError`` if the file cannot be read or holds no option line at all.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"cannot read options file ({err})", path=path) from err

    options: dict[str, Any] = {}
    skipped = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("----"):
            continue
        key, sep, value = line.partition(": ")
        if not sep or not key:
            skipped += 1
            logger.warning("%s, line %d: no 'key: value' pair, skipped: %r", path, number, line)
            continue
        options[key.strip()] = parse_opt_value(value.strip())
    if not options:
        raise DataError("no 'key: value' option lines found", path=path)
    if skipped:
        logger.info("%s: %d line(s) without 'key: value' skipped", path, skipped)
    return options

"""The event time of a log record, for judging what it holds as of when it was written.

A record's event time is its own when it has one: a ``timestamp``, ``time``,
``@timestamp``, ``ts`` or ``datetime`` member (RFC 3339 text, or seconds or milliseconds
since the epoch), or an RFC 3339 time at the start of a text line. It decides whether a
leaked JWT was still live when it was logged, so an archive scanned months later is judged
as of its own time, not the scanner's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

TIME_KEYS: Final = ("timestamp", "time", "@timestamp", "ts", "datetime")
_TEXT_TIME: Final = re.compile(
    r"[ \t\[]{0,4}+(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)"
)
_MS_THRESHOLD: Final = 100_000_000_000  # past this, a number is milliseconds (year 5138+)
_MIN_EPOCH: Final = 0
_MAX_EPOCH: Final = 253_402_300_799


def _from_number(value: float) -> datetime | None:
    seconds = value / 1000 if value > _MS_THRESHOLD else value
    if not _MIN_EPOCH <= seconds <= _MAX_EPOCH:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _from_text(text: str) -> datetime | None:
    if len(text) > 64:  # noqa: PLR2004 - no time is this long
        return None
    try:
        value = datetime.fromisoformat(text.replace(",", ".", 1))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_time(content: Any) -> datetime | None:
    """The event time a record carries, in UTC; ``None`` when it carries none."""
    if isinstance(content, dict):
        for key in TIME_KEYS:
            value = content.get(key)
            if value is None:
                continue
            if isinstance(value, str):
                return _from_text(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return _from_number(value)
        return None
    if isinstance(content, str):
        m = _TEXT_TIME.match(content)
        return _from_text(m[1]) if m is not None else None
    return None

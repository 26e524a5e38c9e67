"""Command-line front ends of the compliance tools: ``auditor query|review|export``.

These modules stay light at import time (the ``auditor`` parser imports every command
to build its help); DuckDB and Arrow are imported when a command runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from auditor.errors import InputError

__all__ = ["DB_ENV", "add_db_option", "output_stream", "parse_time_option"]

DB_ENV = "AUDITOR_DB"


def add_db_option(parser: Any, *, required: bool = True) -> None:
    """Add ``--db PATH`` (default: ``$AUDITOR_DB``)."""
    default = os.environ.get(DB_ENV)
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=default,
        required=required and default is None,
        help=f"the audit database (DuckDB file); default ${DB_ENV}",
    )


def parse_time_option(option: str, text: str | None, *, now: datetime) -> datetime | None:
    """Read ``--since`` / ``--until``: ISO 8601, ``now``, or an age such as ``7d``.

    Raises:
        InputError: The text is none of these.
    """
    from dashboards.catalog import parse_timestamp

    if text is None:
        return None
    try:
        return parse_timestamp(text, now=now)
    except ValueError:
        raise InputError(
            f"{option} must be an ISO 8601 date or time, 'now', or an age like 24h, 7d, 2w"
        ) from None


@contextmanager
def output_stream(path: str | None, *, binary: bool = False) -> Iterator[IO[Any]]:
    """Standard output, or ``path`` written atomically (a temporary file renamed at the end).

    An export that fails half-way leaves no half-written file behind.

    Raises:
        InputError: The file cannot be created.
    """
    if path is None or path == "-":
        stream: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        handle = (
            temporary.open("wb") if binary else temporary.open("w", encoding="utf-8", newline="")
        )
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror}") from None
    try:
        with handle:
            yield handle
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

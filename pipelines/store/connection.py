"""Opening the database file and running read-only queries, the same way on every path.

Every connection and cursor the store opens gets the same session: ``TimeZone`` is UTC,
so ``TIMESTAMPTZ`` values come back as UTC Arrow timestamps and ``CAST(ts AS DATE)`` is
the UTC day, whichever process or path ran the query.

A query is one ``SELECT`` statement with bound parameters: SQL text is never assembled
from values, and ``COPY``, ``SET``, ``ATTACH`` or writes are refused on the read path
(the writer process serves reads on its own read-write database, so the statement type is
what keeps them read-only there).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.store.errors import QueryError, StoreBusyError, StoreError

Params = Sequence[object] | Mapping[str, object]
"""Query parameters: positional (``?``, ``$1``) or named (``$name``)."""

DEFAULT_QUERY_TIMEOUT = 300.0
"""Seconds a query may run before it is interrupted; a report over years fits."""

_LOCK_CONFLICT = "Could not set lock on file"
_HOLDER_PID = re.compile(r"\(PID (\d+)\)")


@dataclass(frozen=True, slots=True)
class LockConflict:
    """Another process holds the database file's lock."""

    pid: int | None


def lock_conflict(exc: duckdb.Error) -> LockConflict | None:
    """The lock conflict that ``exc`` reports, or ``None`` for any other error."""
    message = str(exc)
    if _LOCK_CONFLICT not in message:
        return None
    match = _HOLDER_PID.search(message)
    return LockConflict(int(match[1]) if match else None)


def prepare_session(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Give a connection or cursor the store's session settings; returns it."""
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def open_database(
    path: Path,
    *,
    read_only: bool,
    lock_timeout: float,
    config: Mapping[str, str | int | bool | float] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the database file, waiting while another process briefly holds its lock.

    Readers without a writer open the file for one query at a time, so a lock conflict
    usually clears within milliseconds; this retries with backoff until ``lock_timeout``.

    Raises:
        StoreBusyError: The lock was still held after ``lock_timeout`` seconds.
        StoreError: The file cannot be opened for another reason.
    """
    deadline = time.monotonic() + lock_timeout
    delay = 0.01
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
        except duckdb.Error as exc:
            conflict = lock_conflict(exc)
            if conflict is None:
                # DuckDB's open errors name the file and the OS error, never row data.
                raise StoreError(f"cannot open {path}: {exc}") from None
            if time.monotonic() >= deadline:
                holder = f"process {conflict.pid}" if conflict.pid else "another process"
                raise StoreBusyError(
                    f"{path} is locked by {holder}, which serves no auditor access endpoint "
                    f"(waited {lock_timeout:g} s); stop that process or retry when it is done"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
            continue
        return prepare_session(conn)


def bind(params: Params | None) -> list[object] | dict[str, object] | None:
    """Parameters in the shape DuckDB binds; ``None`` when there are none.

    Raises:
        QueryError: ``params`` is a string or bytes (a common slip for ``[value]``).
    """
    if params is None:
        return None
    if isinstance(params, str | bytes):
        raise QueryError("query parameters are a sequence or a mapping, not a single string")
    if isinstance(params, Mapping):
        return dict(params) or None
    return list(params) or None


def require_select(conn: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but exactly one ``SELECT`` statement.

    Raises:
        QueryError: The SQL does not parse, holds several statements, or is not a SELECT.
    """
    try:
        statements = conn.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise QueryError(f"a query is exactly one statement, got {len(statements)}")
    kind = statements[0].type
    if kind is not duckdb.StatementType.SELECT:
        raise QueryError(f"only SELECT queries are allowed here, got {kind.name}")


@contextmanager
def interrupt_after(conn: duckdb.DuckDBPyConnection, seconds: float | None) -> Iterator[None]:
    """Interrupt what ``conn`` runs once ``seconds`` have passed.

    Raises:
        QueryError: The statement was interrupted by the deadline.
    """
    if seconds is None:
        yield
        return
    timer = threading.Timer(seconds, conn.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise QueryError(f"the query ran longer than {seconds:g} s and was stopped") from None
    finally:
        timer.cancel()


def select_reader(
    conn: duckdb.DuckDBPyConnection, sql: str, params: Params | None, *, batch_rows: int = 65_536
) -> pa.RecordBatchReader:
    """Start one read-only query and return a stream of its result.

    Raises:
        QueryError: The statement is not a single SELECT, or DuckDB rejects it or its
            parameters (DuckDB's message is kept: it names the column, type or parameter
            that is wrong, which is what a caller needs to fix it).
    """
    require_select(conn, sql)
    try:
        reader: pa.RecordBatchReader = conn.sql(sql, params=bind(params)).to_arrow_reader(
            batch_rows
        )
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    return reader


def select_table(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    params: Params | None,
    *,
    timeout: float | None = DEFAULT_QUERY_TIMEOUT,
) -> pa.Table:
    """Run one read-only query and return its whole result as an Arrow table.

    Raises:
        QueryError: See ``select_reader``; also when the query outlives ``timeout``.
    """
    with interrupt_after(conn, timeout):
        reader = select_reader(conn, sql, params)
        try:
            return reader.read_all()
        except duckdb.InterruptException:
            raise
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            # pyarrow raises DuckDB's errors from inside a stream as OSError.
            raise QueryError(str(exc)) from None


__all__ = [
    "DEFAULT_QUERY_TIMEOUT",
    "LockConflict",
    "Params",
    "bind",
    "interrupt_after",
    "lock_conflict",
    "open_database",
    "prepare_session",
    "require_select",
    "select_reader",
    "select_table",
]

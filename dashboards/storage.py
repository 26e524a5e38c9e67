"""The one seam between the compliance tools and the DuckDB store.

Every query, review append and export in ``dashboards`` goes through :func:`open_store`.
It has exactly the shape of ``pipelines.store.access.open_store`` (the store's client API,
which also talks to a running pipeline's writer over its local socket), so switching to
it is a one-line change of import here. Until then this module opens the file directly:

- queries use a read-only connection (many readers at once, never a write);
- review appends use a short-lived read-write connection, retried briefly while another
  process holds the file, and committed in one transaction.

Parameters are always bound, never pasted into SQL. Sessions run in UTC so timestamps
read the same on every machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from auditor.errors import ConfigurationError, InputError, MissingExtraError

try:
    import duckdb
except ModuleNotFoundError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("the compliance tools", "pipeline") from None

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["REVIEW_COLUMNS", "Params", "StoreHandle", "open_store"]

Params = Sequence[object] | Mapping[str, object]
"""Bound query parameters: positional (``?``) or named (``$name``)."""

REVIEW_COLUMNS = (
    "review_id",
    "finding_id",
    "action",
    "actor",
    "assignee",
    "note",
    "reviewed_at",
)
"""The columns of one row of the ``reviews`` table, in table order."""

_LOCK_RETRY_SECONDS = 5.0
_LOCK_RETRY_PAUSE = 0.05


class StoreHandle(Protocol):
    """Access to one audit database, for queries and review appends.

    Called by the query, review and export commands and by the dashboard, once per
    request. ``query`` may block on I/O; both methods raise ``AuditorError`` subclasses
    for problems a user can fix (missing file, database busy).
    """

    def query(self, sql: str, params: Params = ()) -> pa.Table:
        """Run one read-only statement with bound parameters; return its rows."""
        ...

    def append_reviews(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Append review rows (keys: ``REVIEW_COLUMNS``) in one transaction."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _DirectStore:
    """A :class:`StoreHandle` that opens the DuckDB file itself."""

    def __init__(self, path: Path, *, write: bool) -> None:
        self._path = path
        self._write = write
        self._reader: duckdb.DuckDBPyConnection | None = None

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + _LOCK_RETRY_SECONDS
        while True:
            try:
                con = duckdb.connect(str(self._path), read_only=read_only)
            except duckdb.IOException as exc:
                # Another process holds the file read-write: wait a little, then give up
                # with a message that says so (not DuckDB's, which names the lock holder pid).
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise InputError(
                        f"cannot open the audit database {self._path}: it is in use by "
                        "another process"
                    ) from None
                time.sleep(_LOCK_RETRY_PAUSE)
                continue
            con.execute("SET TimeZone = 'UTC'")
            return con

    def query(self, sql: str, params: Params = ()) -> pa.Table:
        """Run one read-only statement with bound parameters; return its rows."""
        if self._reader is None:
            self._reader = self._connect(read_only=True)
        table: pa.Table = self._reader.sql(sql, params=_as_duckdb_params(params)).to_arrow_table()
        return table

    def append_reviews(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Append review rows in one short read-write transaction.

        Raises:
            ConfigurationError: The store was opened without ``write=True``.
            InputError: Another process keeps the file busy past the retry window.
        """
        if not self._write:
            raise ConfigurationError("open the store with write=True to record reviews")
        if not rows:
            return
        # DuckDB refuses a read-write connection while this process holds a read-only one
        # on the same file, so the reader is dropped and reopened on the next query.
        self.close()
        con = self._connect(read_only=False)
        columns = ", ".join(REVIEW_COLUMNS)
        marks = ", ".join("?" for _ in REVIEW_COLUMNS)
        try:
            con.execute("BEGIN TRANSACTION")
            # A review is a handful of rows typed by a person: executemany is fast enough
            # here (bulk loads go through Arrow in the pipeline's writer).
            con.executemany(
                f"INSERT INTO reviews ({columns}) VALUES ({marks})",  # noqa: S608 - fixed column list
                [[row.get(c) for c in REVIEW_COLUMNS] for row in rows],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def close(self) -> None:
        """Release the connection."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _as_duckdb_params(params: Params) -> list[object] | dict[str, object] | None:
    if isinstance(params, Mapping):
        return dict(params) if params else None
    return list(params) if params else None


def open_store(path: str | Path, *, write: bool = False) -> StoreHandle:
    """Open the audit database at ``path`` for queries (and review appends).

    Raises:
        InputError: The file does not exist or cannot be opened.
    """
    db = Path(path)
    if not db.is_file():
        raise InputError(f"no audit database at {db}")
    return _DirectStore(db, write=write)

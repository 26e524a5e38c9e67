"""``open_store``: query, review and prune a store whether or not the pipeline is writing.

Every call picks its route afresh:

0. When this very process holds the store's writer (the embedded pipeline serving its own
   dashboard), the call runs on a cursor of that writer.
1. When the store's writer advertises itself (``<db>.writer.json``) and answers on its
   socket, the call goes to the writer: queries run on the writer's own database (a
   consistent snapshot while batches commit), reviews and retention run between batches.
2. Otherwise the call opens the file itself for just that call — read-only for queries,
   read-write for a review append or a retention run — and closes it, so that a writer can
   start at any moment (it waits while such a call holds the file).
3. When the file is locked by a process that serves no endpoint (a writer starting up,
   another reader's review append), the call retries until ``lock_timeout``.

So the dashboard, ``auditor query`` and ``auditor retention`` work the same way while
``auditor run`` writes, after it stopped, and after it crashed (a stale advert is
ignored: its socket does not answer).

Both routes behave alike: the same statement checks (one SELECT), the same parameter
binding (Arrow carries the parameters' types to the writer), the same UTC session, the
same errors.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Final, Self, TypeVar

import duckdb
import pyarrow as pa

from auditor.errors import InputError
from pipelines.store import schema, statements, tables, wire
from pipelines.store.connection import (
    DEFAULT_QUERY_TIMEOUT,
    Params,
    open_database,
    select_table,
)
from pipelines.store.endpoint import Advert, read_advert
from pipelines.store.errors import QueryError, StoreBusyError, StoreError
from pipelines.store.retention import (
    RetentionCutoffs,
    RetentionPolicy,
    RetentionReport,
    apply_retention,
)
from pipelines.store.writer import StoreWriter, live_writer

T = TypeVar("T")

DEFAULT_LOCK_TIMEOUT: Final = 10.0
"""Seconds a call waits while the file is locked by a process without an endpoint."""

_DIRECT_LOCK_WAIT: Final = 0.25  # per attempt; the advert is read again between attempts


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """How a store was reached and what it holds.

    Attributes:
        path: The database file.
        route: ``writer`` (through the live writer's endpoint) or ``file`` (opened directly).
        writer_pid: The live writer's pid, when there is one.
        schema_version: The database's schema version.
    """

    path: Path
    route: str
    writer_pid: int | None
    schema_version: int


class StoreHandle:
    """A store opened by ``open_store``; holds no file open between calls."""

    def __init__(
        self, path: Path, *, write: bool, lock_timeout: float, query_timeout: float
    ) -> None:
        self._path = path
        self._write = write
        self._lock_timeout = lock_timeout
        self._query_timeout = query_timeout
        self._closed = False

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def writable(self) -> bool:
        """Whether reviews and retention are allowed (``open_store(..., write=True)``)."""
        return self._write

    def query(self, sql: str, params: Params = ()) -> pa.Table:
        """Run one read-only SELECT with bound parameters; returns the whole result.

        Args:
            sql: One ``SELECT`` (``WITH … SELECT`` included); ``?``/``$1`` or ``$name``
                placeholders. Never paste values into it.
            params: A sequence for positional placeholders, a mapping for named ones.

        Raises:
            QueryError: Not one SELECT, bad SQL, a bad parameter, or a timeout.
            StoreBusyError: The file stayed locked by a process without an endpoint.
            SchemaError: The database's schema does not match this code.
        """
        self._require_open()

        def here(writer: StoreWriter) -> pa.Table:
            cursor = writer.new_cursor()
            try:
                return select_table(cursor, sql, params, timeout=self._query_timeout)
            finally:
                cursor.close()

        return self._route(
            lambda client: client.query(sql, params, timeout=self._query_timeout),
            lambda: self._query_file(sql, params),
            here,
        )

    def append_reviews(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Append review rows to the append-only review history.

        Each row holds ``finding_id``, ``action``, ``actor``, ``reviewed_at`` (an aware
        datetime) and optionally ``assignee``, ``note`` and ``review_id``. A row without
        ``review_id`` gets a random one before it is sent, so a retry after a lost answer
        stores it once; a row whose ``review_id`` is stored is skipped.

        Raises:
            StoreError: The handle was opened without ``write=True``.
            StoreWriteError: A row is malformed (the message names row and column).
        """
        self._require_open()
        self._require_write("append reviews")
        table = tables.reviews_table(rows)
        if table.num_rows == 0:
            return
        self._route(
            lambda client: client.append_reviews(table),
            lambda: self._append_reviews_file(table),
            lambda writer: writer.append_reviews(table),
        )

    def apply_retention(
        self,
        policy: RetentionPolicy,
        *,
        now: datetime | None = None,
        archive: str | PathLike[str] | None = None,
        dry_run: bool = False,
    ) -> RetentionReport:
        """Apply ``policy`` (see ``pipelines.store.retention``), or count it when ``dry_run``.

        Args:
            policy: The horizons.
            now: The reference time (default: the wall clock).
            archive: Folder for the Parquet archive of deleted rows.
            dry_run: Change nothing; report what would change.

        Raises:
            StoreError: A real run on a handle opened without ``write=True``.
        """
        self._require_open()
        if not dry_run:
            self._require_write("apply retention")
        cutoffs = policy.cutoffs(now or datetime.now(UTC))
        folder = Path(archive).absolute() if archive is not None else None
        clock = now or datetime.now(UTC)

        def on_file() -> RetentionReport:
            conn = self._open_file(read_only=dry_run)
            try:
                return apply_retention(conn, cutoffs, now=clock, archive=folder, dry_run=dry_run)
            finally:
                conn.close()

        return self._route(
            lambda client: client.retention(cutoffs, folder, dry_run),
            on_file,
            lambda writer: writer.apply_retention(cutoffs, archive=folder, dry_run=dry_run),
        )

    def status(self) -> StoreStatus:
        """Which route a call takes now, and the schema version found there."""
        self._require_open()

        def on_file() -> StoreStatus:
            conn = self._open_file(read_only=True)
            try:
                version = max(schema.applied(conn))
            finally:
                conn.close()
            return StoreStatus(self._path, "file", None, version)

        return self._route(
            lambda client: client.status(self._path),
            on_file,
            lambda writer: StoreStatus(self._path, "writer", os.getpid(), writer.schema_version),
        )

    def close(self) -> None:
        """Mark the handle closed; it holds no file or connection between calls."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _route(
        self,
        remote: Callable[[_WriterClient], T],
        on_file: Callable[[], T],
        here: Callable[[StoreWriter], T],
    ) -> T:
        deadline = time.monotonic() + self._lock_timeout
        while True:
            writer = live_writer(self._path)
            if writer is not None:
                return here(writer)
            advert = read_advert(self._path)
            if advert is not None:
                client = _WriterClient(advert, timeout=self._query_timeout + 30.0)
                try:
                    return remote(client)
                except _WriterGoneError:
                    pass  # a stale advert, or the writer is stopping: try the file
            if not self._path.exists():
                raise InputError(f"no audit database at {self._path}")
            try:
                return on_file()
            except StoreBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _open_file(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        conn = open_database(self._path, read_only=read_only, lock_timeout=_DIRECT_LOCK_WAIT)
        try:
            if read_only:
                schema.check(conn, where=str(self._path))
            else:
                schema.migrate(conn, where=str(self._path))
        except BaseException:
            conn.close()
            raise
        return conn

    def _query_file(self, sql: str, params: Params) -> pa.Table:
        conn = self._open_file(read_only=True)
        try:
            return select_table(conn, sql, params, timeout=self._query_timeout)
        finally:
            conn.close()

    def _append_reviews_file(self, table: pa.Table) -> None:
        conn = self._open_file(read_only=False)
        try:
            statements.insert_reviews(conn, table)
        finally:
            conn.close()

    def _require_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store handle of {self._path} is closed")

    def _require_write(self, what: str) -> None:
        if not self._write:
            raise StoreError(f"cannot {what}: open the store with open_store(path, write=True)")


def open_store(
    path: str | PathLike[str],
    *,
    write: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
) -> StoreHandle:
    """Open a store for queries (and, with ``write=True``, reviews and retention).

    Works while the pipeline's writer holds the file (through its endpoint) and when no
    writer runs (opening the file per call). See the module's docstring.

    Raises:
        InputError: There is no store at ``path``.
    """
    db = Path(path).resolve()
    if not db.exists() and read_advert(db) is None:
        raise InputError(f"no audit database at {db}")
    return StoreHandle(db, write=write, lock_timeout=lock_timeout, query_timeout=query_timeout)


class _WriterGoneError(Exception):
    """The advertised writer did not answer: it stopped or died."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


_GONE: Final = (FileNotFoundError, ConnectionError, http.client.HTTPException)


class _WriterClient:
    """Talks to one advertised writer; one HTTP request per connection."""

    def __init__(self, advert: Advert, *, timeout: float) -> None:
        self._advert = advert
        self._timeout = timeout

    def query(self, sql: str, params: Params, *, timeout: float) -> pa.Table:
        request = wire.encode_query(sql, params, timeout=timeout)
        body = self._post(wire.QUERY, request, wire.ARROW_STREAM)
        if not body.endswith(wire.TRAILER):
            if _alive(self._advert.pid):
                raise QueryError(
                    "the writer cut the result short: the query failed or timed out midway"
                )
            raise _WriterGoneError
        return wire.decode_table(body[: -len(wire.TRAILER)])

    def append_reviews(self, table: pa.Table) -> int:
        body = self._post(wire.REVIEWS, wire.encode_table(table), wire.ARROW_STREAM)
        return int(json.loads(body)["appended"])

    def retention(
        self, cutoffs: RetentionCutoffs, archive: Path | None, dry_run: bool
    ) -> RetentionReport:
        request = {
            "cutoffs": cutoffs.to_json(),
            "archive": str(archive) if archive is not None else None,
            "dry_run": dry_run,
        }
        body = self._post(wire.RETENTION, json.dumps(request).encode(), wire.JSON)
        return RetentionReport.from_json(json.loads(body))

    def status(self, path: Path) -> StoreStatus:
        data = json.loads(self._exchange("GET", wire.STATUS, None, None))
        return StoreStatus(path, "writer", int(data["pid"]), int(data["schema_version"]))

    def _post(self, route: str, body: bytes, content_type: str) -> bytes:
        return self._exchange("POST", route, body, content_type)

    def _exchange(
        self, method: str, route: str, body: bytes | None, content_type: str | None
    ) -> bytes:
        conn = _UnixHTTPConnection(self._advert.socket, self._timeout)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            conn.request(method, route, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except _GONE:
            raise _WriterGoneError from None
        except TimeoutError:
            raise StoreError(
                f"the store's writer (pid {self._advert.pid}) did not answer within "
                f"{self._timeout:g} s"
            ) from None
        finally:
            conn.close()
        if response.status != 200:  # noqa: PLR2004 - HTTP OK
            wire.raise_error(response.status, data)
        return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["DEFAULT_LOCK_TIMEOUT", "StoreHandle", "StoreStatus", "open_store"]

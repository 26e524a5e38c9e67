"""The writer's local access endpoint: reads, review appends and retention while it writes.

DuckDB lets one process hold a database file read-write, and while it does no other
process can open the file at all. So the writer serves the others: HTTP over a Unix
socket beside the database (``audit.duckdb.sock``, mode 0600, and only peers of the same
user are answered), advertised by ``audit.duckdb.writer.json`` (pid, socket, schema
version; mode 0600). ``access.open_store`` reads the advert and talks to the socket; when
there is no live writer it opens the file itself.

Each query runs on its own cursor of the writer's database, so it reads a consistent
snapshot (DuckDB's MVCC) while batches commit, and is interrupted after the query timeout.
Review appends and retention take the writer's lock and run between batches.

When the database path is too long for a Unix socket address (108 bytes on Linux), the
socket goes in a private per-user folder under the temporary directory instead; the advert
always names where it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import socket
import socketserver
import struct
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import duckdb
import pyarrow as pa
import structlog

from pipelines.store import tables, wire
from pipelines.store.connection import interrupt_after, select_reader
from pipelines.store.errors import QueryError, StoreError, StoreWriteError
from pipelines.store.retention import RetentionCutoffs, RetentionReport

_log = structlog.get_logger("auditor.store.endpoint")

ADVERT_SUFFIX: Final = ".writer.json"
SOCKET_SUFFIX: Final = ".sock"
_MAX_SOCKET_PATH: Final = 100  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS
_SO_PEERCRED: Final = getattr(socket, "SO_PEERCRED", None)
_POLL_S: Final = 0.02
"""How often the serving loop looks whether it should stop: ``close`` waits up to this long
(it waited 0.2 s at every close of the store before; 50 idle wake-ups a second cost nothing
measurable)."""


class EndpointBackend(Protocol):
    """What the endpoint needs from the writer. ``StoreWriter`` implements it.

    Called from the endpoint's request threads, concurrently with the pipeline's
    ``write_batch``: each method must be safe to call from any thread.
    """

    @property
    def path(self) -> Path:
        """The database file."""
        ...

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        ...

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one request; the caller closes it."""
        ...

    def append_reviews(self, table: pa.Table) -> int:
        """Append checked review rows; returns how many were new."""
        ...

    def apply_retention(
        self, cutoffs: RetentionCutoffs, *, archive: Path | None, dry_run: bool
    ) -> RetentionReport:
        """Run retention between batches."""
        ...


@dataclass(frozen=True, slots=True)
class Advert:
    """What ``<db>.writer.json`` says about the live writer."""

    pid: int
    socket: str
    db: str
    schema_version: int
    started_at: str

    def to_json(self) -> str:
        """The file's content."""
        return json.dumps(asdict(self), indent=2) + "\n"


def advert_path(db: Path) -> Path:
    """Where the writer of ``db`` advertises itself."""
    return db.with_name(db.name + ADVERT_SUFFIX)


def read_advert(db: Path) -> Advert | None:
    """The advert of ``db``'s writer, or ``None`` when there is none or it is unreadable."""
    try:
        data = json.loads(advert_path(db).read_text(encoding="utf-8"))
        return Advert(
            pid=int(data["pid"]),
            socket=str(data["socket"]),
            db=str(data["db"]),
            schema_version=int(data["schema_version"]),
            started_at=str(data["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def socket_path_for(db: Path) -> Path:
    """The endpoint's socket: beside the database, or in a private folder if too long."""
    beside = db.with_name(db.name + SOCKET_SUFFIX)
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH:
        return beside
    folder = Path(tempfile.gettempdir()) / f"cds-hooks-auditor-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise StoreError(f"{folder} must belong to this user with mode 0700")
    digest = hashlib.sha256(os.fsencode(db)).hexdigest()[:24]
    return folder / f"{digest}{SOCKET_SUFFIX}"


class WriterEndpoint:
    """Serves the access endpoint of one writer on a background thread.

    Args:
        backend: The writer.
        query_timeout: Seconds a query may run before it is interrupted.
    """

    def __init__(self, backend: EndpointBackend, *, query_timeout: float) -> None:
        self._backend = backend
        self.query_timeout = query_timeout
        self.socket_path = socket_path_for(backend.path)
        self.advert_path = advert_path(backend.path)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._active: set[duckdb.DuckDBPyConnection] = set()
        self._active_lock = threading.Lock()

    @property
    def backend(self) -> EndpointBackend:
        """The writer this endpoint serves."""
        return self._backend

    def start(self) -> None:
        """Bind the socket, start serving and publish the advert.

        The caller holds the database's lock, so a socket or advert left at these paths
        belongs to a writer that died: it is replaced.
        """
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = _Server(self.socket_path, self)
        self.socket_path.chmod(0o600)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_S},
            name="auditor-store-endpoint",
            daemon=True,
        )
        self._thread.start()
        advert = Advert(
            pid=os.getpid(),
            socket=str(self.socket_path),
            db=str(self._backend.path),
            schema_version=self._backend.schema_version,
            started_at=datetime.now(UTC).isoformat(),
        )
        _write_private(self.advert_path, advert.to_json())

    def close(self) -> None:
        """Withdraw the advert, stop serving, interrupt running queries, remove the socket."""
        current = read_advert(self._backend.path)
        if current is not None and current.pid == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.advert_path.unlink()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._active_lock:
            for cursor in self._active:
                cursor.interrupt()
        server.server_close()  # joins the request threads
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def track(self, cursor: duckdb.DuckDBPyConnection, *, active: bool) -> None:
        """Remember a cursor while a request uses it, so ``close`` can interrupt it."""
        with self._active_lock:
            if active:
                self._active.add(cursor)
            else:
                self._active.discard(cursor)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, path: Path, endpoint: WriterEndpoint) -> None:
        self.endpoint = endpoint
        super().__init__(str(path), _Handler)

    def server_bind(self) -> None:
        # The socket is created with mode 0600 from the start, not chmod-ed afterwards.
        previous = os.umask(0o177)
        try:
            super().server_bind()
        finally:
            os.umask(previous)

    def verify_request(self, request: Any, client_address: Any) -> bool:  # noqa: ARG002 - socketserver's signature
        if _SO_PEERCRED is None:
            return True  # not Linux: the socket's mode 0600 is the guard
        creds = request.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return bool(uid == os.getuid())


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    wbufsize = 1 << 16
    server_version = "cds-hooks-auditor-store"
    sys_version = ""

    def setup(self) -> None:
        # A client that stops reading must not hold a request thread, and so the writer's
        # close, forever: socket operations time out a while after the query would.
        super().setup()
        self.connection.settimeout(self.server.endpoint.query_timeout + 60.0)

    def do_GET(self) -> None:
        """Serve ``/v1/status``."""
        if self.path != wire.STATUS:
            self._send_json(404, {"error": "StoreError", "message": "no such resource"})
            return
        backend = self.server.endpoint.backend
        self._send_json(
            200,
            {
                "pid": os.getpid(),
                "db": str(backend.path),
                "schema_version": backend.schema_version,
            },
        )

    def do_POST(self) -> None:
        """Serve queries, review appends and retention."""
        routes = {
            wire.QUERY: self._query,
            wire.REVIEWS: self._reviews,
            wire.RETENTION: self._retention,
        }
        route = routes.get(self.path)
        if route is None:
            self._send_json(404, {"error": "StoreError", "message": "no such resource"})
            return
        started = time.perf_counter()
        try:
            route(self._read_body())
        except StoreError as exc:
            status = 400 if isinstance(exc, QueryError | StoreWriteError) else 500
            self._send_error(status, exc)
        except (ValueError, KeyError, TypeError) as exc:
            self._send_error(400, QueryError(f"malformed request ({type(exc).__name__})"))
        except Exception as exc:  # noqa: BLE001 - the endpoint must answer and keep serving
            _log.error("store.endpoint_failed", path=self.path, error=type(exc).__name__)
            self._send_error(500, exc)
        finally:
            _log.debug(
                "store.endpoint_request",
                path=self.path,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )

    def _query(self, body: bytes) -> None:
        sql, params, asked = wire.decode_query(body)
        endpoint = self.server.endpoint
        # The client's timeout, capped by the writer's: a query must not hold it forever.
        timeout = min(asked, endpoint.query_timeout) if asked else endpoint.query_timeout
        cursor = endpoint.backend.new_cursor()
        endpoint.track(cursor, active=True)
        try:
            with interrupt_after(cursor, timeout):
                reader = select_reader(cursor, sql, params)
                # The first batch is read before answering, so that errors of planning and
                # of blocking operators (ORDER BY, GROUP BY) still get a proper status.
                first = _next_batch(reader)
                self.send_response(200)
                self.send_header("Content-Type", wire.ARROW_STREAM)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self._stream(reader, first)
        finally:
            endpoint.track(cursor, active=False)
            cursor.close()

    def _stream(self, reader: pa.RecordBatchReader, first: pa.RecordBatch | None) -> None:
        try:
            with pa.ipc.new_stream(self.wfile, reader.schema) as out:
                if first is not None:
                    out.write_batch(first)
                for batch in reader:
                    out.write_batch(batch)
            self.wfile.write(wire.TRAILER)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            # The status is already sent: cut the stream short (no trailer), which the
            # client reports. pyarrow raises DuckDB's errors from a stream as OSError.
            _log.warning("store.endpoint_stream_aborted", error=type(exc).__name__)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

    def _reviews(self, body: bytes) -> None:
        # Checked again here: the endpoint trusts the socket's owner, not the bytes.
        rows = wire.decode_table(body).to_pylist()
        appended = self.server.endpoint.backend.append_reviews(tables.reviews_table(rows))
        self._send_json(200, {"appended": appended})

    def _retention(self, body: bytes) -> None:
        request = json.loads(body)
        archive = request.get("archive")
        report = self.server.endpoint.backend.apply_retention(
            RetentionCutoffs.from_json(request["cutoffs"]),
            archive=Path(archive) if archive else None,
            dry_run=bool(request.get("dry_run", False)),
        )
        self._send_json(200, report.to_json())

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length", "0"))
        if length < 0 or length > wire.MAX_REQUEST_BYTES:
            raise QueryError(f"a request body is at most {wire.MAX_REQUEST_BYTES} bytes")
        return self.rfile.read(length)

    def _send_error(self, status: int, exc: BaseException) -> None:
        body = wire.error_body(exc)
        self._send_bytes(status, wire.JSON, body)

    def _send_json(self, status: int, data: object) -> None:
        self._send_bytes(status, wire.JSON, json.dumps(data).encode())

    def _send_bytes(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "local"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - http.server's signature
        # http.server would print every request line to stderr; requests are logged once,
        # without bodies, in do_POST.
        return


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except (pa.ArrowException, OSError) as exc:  # DuckDB's errors, as pyarrow raises them
        raise QueryError(str(exc)) from None


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by this user only, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


__all__ = [
    "ADVERT_SUFFIX",
    "SOCKET_SUFFIX",
    "Advert",
    "EndpointBackend",
    "WriterEndpoint",
    "advert_path",
    "read_advert",
    "socket_path_for",
]

"""``StoreWriter``: the one process that holds the DuckDB file read-write.

The pipeline's store stage owns a writer. Each ``write_batch`` commits a batch's events,
findings, dead letters, alerts and the input offsets they consumed in one transaction, so
after a crash the store resumes from ``resume_offsets()`` and every row is stored exactly
once. While it runs, the writer serves the local access endpoint (``endpoint.py``) on
which other processes query, append reviews and run retention; ``access.open_store``
finds it.

Threads: ``write_batch``, ``begin_run``, ``end_run`` and ``resume_offsets`` are called
from one pipeline thread. The endpoint serves requests on its own threads with their own
cursors; everything that writes takes the writer's lock, so writes never conflict, and
reads run without it on a consistent snapshot (DuckDB's MVCC).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any, Final, Self

import duckdb
import pyarrow as pa
import structlog

from auditor.errors import InputError
from auditor.vocabulary import RunMode, RunStatus
from pipelines.store import schema, statements, tables
from pipelines.store.connection import DEFAULT_QUERY_TIMEOUT, open_database, prepare_session
from pipelines.store.endpoint import WriterEndpoint
from pipelines.store.errors import StoreBusyError, StoreError, StoreWriteError
from pipelines.store.records import Batch, BatchReport, Checkpoint, OffsetKey, RunCounters
from pipelines.store.retention import RetentionCutoffs, RetentionReport, apply_retention
from pipelines.store.scrubbing import without_secrets

_log = structlog.get_logger("auditor.store")

Clock = Callable[[], datetime]

DEFAULT_LOCK_TIMEOUT: Final = 30.0
"""Seconds ``open`` waits for readers that hold the file briefly (one query each)."""

DEFAULT_CHECKPOINT_MIB: Final = 256
"""The write-ahead log's size (MiB) at which DuckDB folds it into the file (a checkpoint).

DuckDB's default, 16 MiB, checkpoints after nearly every batch of the store stage (an
event takes ~490 bytes of log), and a checkpoint costs more the larger the table: over
1.44 million events in 5,000-event transactions, 40-41 µs of CPU per event with the
default against 27-28 µs with 256 MiB (``bench/store_growth.py``). The price is
recovery: after a crash the next open replays up to this much log (231 MiB: 1.7 s
here). A clean close always checkpoints.
"""


def writer_settings(
    checkpoint_mib: int = DEFAULT_CHECKPOINT_MIB,
    extra: Mapping[str, str | int | bool | float] | None = None,
) -> dict[str, str | int | bool | float]:
    """The DuckDB settings of the writer's connection.

    The checkpoint threshold first, then ``extra``, which wins.
    """
    return {"checkpoint_threshold": f"{checkpoint_mib}MiB", **(extra or {})}


_LIVE: dict[Path, StoreWriter] = {}
_LIVE_LOCK = threading.Lock()


def live_writer(path: Path) -> StoreWriter | None:
    """The writer of ``path`` open in this process, if any (``open_store`` uses it)."""
    with _LIVE_LOCK:
        return _LIVE.get(path)


class _StoredAlready(Exception):
    """An appended event's id is in the store already; the transaction was rolled back."""


@dataclass(frozen=True, slots=True)
class _BatchRows:
    """The Arrow tables of one batch, built once for however many transactions it takes."""

    events: pa.Table
    event_json: pa.Table
    checkpoints: pa.Table
    findings: pa.Table
    dead_letters: pa.Table
    alerts: pa.Table
    offsets: pa.Table


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StoreWriter:
    """The single read-write owner of one DuckDB store file.

    Build with ``StoreWriter.open(path)``. Use as a context manager or call ``close``.
    """

    def __init__(
        self,
        path: Path,
        conn: duckdb.DuckDBPyConnection,
        *,
        clock: Clock,
        schema_version: int,
    ) -> None:
        self._path = path
        self._conn = conn
        self._clock = clock
        self._schema_version = schema_version
        self._lock = threading.Lock()
        # Endpoint threads spawn their cursors from this one, never touching ``conn``
        # while the pipeline thread uses it.
        self._cursor_root = conn.cursor()
        self._cursor_lock = threading.Lock()
        self._endpoint: WriterEndpoint | None = None
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str | PathLike[str],
        *,
        serve: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        clock: Clock = _utcnow,
        checkpoint_mib: int = DEFAULT_CHECKPOINT_MIB,
        duckdb_config: Mapping[str, str | int | bool | float] | None = None,
    ) -> StoreWriter:
        """Open (or create) the store, apply pending migrations and serve the endpoint.

        Args:
            path: The database file; created with the current schema when missing.
            serve: Whether to serve the local access endpoint (``<path>.sock``) so that
                other processes can query and review while this one writes.
            lock_timeout: Seconds to wait while readers hold the file.
            query_timeout: Seconds a query on the endpoint may run.
            clock: Wall clock for ``ingested_at`` and ``*_stored_at`` (tests pass one).
            checkpoint_mib: The write-ahead log's size at which DuckDB checkpoints
                (``DEFAULT_CHECKPOINT_MIB`` says why it is larger than DuckDB's).
            duckdb_config: DuckDB settings, e.g. ``{"memory_limit": "2GB", "threads": 2}``.

        Raises:
            InputError: The folder of ``path`` does not exist.
            StoreBusyError: Another process holds the file, or this one has a writer on it.
            SchemaError: The file is newer than this code or not an auditor store.
        """
        db = Path(path).resolve()
        if not db.parent.is_dir():
            raise InputError(f"cannot create the store {db}: {db.parent} is not a folder")
        if live_writer(db) is not None:
            # DuckDB would hand this process a second connection to the same database
            # without any lock conflict; one writer per file is the rule, so refuse.
            raise StoreBusyError(f"{db} already has a writer in this process")
        conn = open_database(
            db,
            read_only=False,
            lock_timeout=lock_timeout,
            config=writer_settings(checkpoint_mib, duckdb_config),
        )
        try:
            applied = schema.migrate(conn, where=str(db), now=clock())
            interrupted = conn.execute(
                "UPDATE runs SET status = ? WHERE status = ?",
                [RunStatus.INTERRUPTED.value, RunStatus.RUNNING.value],
            ).fetchone()
            writer = cls(db, conn, clock=clock, schema_version=schema.code_version())
            if serve:
                writer._endpoint = WriterEndpoint(writer, query_timeout=query_timeout)
                writer._endpoint.start()
        except BaseException:
            conn.close()
            raise
        with _LIVE_LOCK:
            _LIVE[db] = writer
        _log.info(
            "store.opened",
            db=str(db),
            schema_version=writer.schema_version,
            migrations_applied=[m.version for m in applied],
            runs_marked_interrupted=int(interrupted[0]) if interrupted else 0,
            endpoint=str(writer._endpoint.socket_path) if writer._endpoint else None,
        )
        return writer

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._schema_version

    @property
    def endpoint_socket(self) -> Path | None:
        """The Unix socket of the access endpoint, when serving."""
        return self._endpoint.socket_path if self._endpoint else None

    def begin_run(
        self,
        *,
        mode: RunMode | str,
        inputs: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        fingerprint_key_id: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record the start of a pipeline run; returns its id.

        Args:
            mode: ``kafka`` or ``embedded``.
            inputs: File paths or topic names.
            config: The effective configuration. Values under secret-looking names
                (password, token, key, secret ...), URL credentials and token-shaped
                strings are replaced with ``[removed]`` before it is stored.
            fingerprint_key_id: The key id of the run's fingerprints (never the key).
            run_id: An id chosen by the caller; a random UUID by default.
        """
        run = run_id or str(uuid.uuid4())
        config_json = None
        if config is not None:
            config_json = tables.json_text(without_secrets(config))
        with self._lock:
            self._require_open()
            self._conn.execute(
                "INSERT INTO runs (run_id, started_at, mode, status, inputs, config_json, "
                "fingerprint_key_id, auditor_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run,
                    self._clock(),
                    RunMode(mode).value,
                    RunStatus.RUNNING.value,
                    list(inputs),
                    config_json,
                    fingerprint_key_id,
                    schema.auditor_version(),
                ],
            )
        _log.info("store.run_begun", run_id=run, mode=RunMode(mode).value)
        return run

    def write_batch(self, batch: Batch) -> BatchReport:
        """Commit a batch and the offsets it consumed in one transaction.

        Returns:
            What the batch changed; all zeros when it had been written before.

        Raises:
            StoreWriteError: The batch could not be stored; nothing of it was committed.
        """
        now = self._clock()
        try:
            events = tables.events_table(batch.events, ingested_at=now, run_id=batch.run_id)
            event_json = tables.event_json_table(batch.event_json)
            checkpoints = tables.checkpoints_table(
                batch.checkpoints, written_at=now, run_id=batch.run_id
            )
            findings = tables.findings_table(batch.findings, stored_at=now, run_id=batch.run_id)
            dead_letters = tables.dead_letters_table(batch.dead_letters, run_id=batch.run_id)
            alerts = tables.alerts_table(batch.alerts)
            offsets = tables.offsets_table(batch.offsets, updated_at=now)
        except (pa.ArrowException, ValueError, TypeError, AttributeError) as exc:
            # pyarrow's conversion messages quote the value; keep only the kind of error.
            raise StoreWriteError(
                f"the batch could not be converted to rows ({type(exc).__name__})"
            ) from None
        rows = _BatchRows(events, event_json, checkpoints, findings, dead_letters, alerts, offsets)
        with self._lock:
            self._require_open()
            try:
                return self._commit(batch, rows, now, append=True)
            except _StoredAlready:
                # An event of the batch is in the store already (the same input read again
                # under another name, a producer's resend): the batch again, skipping those.
                return self._commit(batch, rows, now, append=False)

    def _commit(
        self, batch: Batch, rows: _BatchRows, now: datetime, *, append: bool
    ) -> BatchReport:
        """One transaction of ``write_batch``.

        With ``append``, an event whose id is stored already raises ``_StoredAlready``
        (nothing committed); without, such events are skipped.
        """
        with statements.transaction(self._conn, "writing a batch") as steps:
            steps.append("events")
            try:
                n_events = statements.insert_arrow(
                    self._conn,
                    statements.APPEND_EVENTS if append else statements.INSERT_EVENTS,
                    rows.events,
                    view="_batch_events",
                )
                n_events += statements.insert_arrow(
                    self._conn,
                    statements.APPEND_EVENTS_JSON if append else statements.INSERT_EVENTS_JSON,
                    rows.event_json,
                    view="_batch_event_json",
                    parameters=[now, batch.run_id],
                )
            except duckdb.ConstraintException:
                if not append:
                    raise
                raise _StoredAlready from None
            steps.append("findings")
            n_findings = self._upsert_findings(rows.findings)
            steps.append("dead_letters")
            n_dead = self._insert_dead_letters(rows.dead_letters)
            steps.append("alerts")
            n_alerts = self._insert_alerts(rows.alerts)
            steps.append("ingest_offsets")
            n_offsets = self._advance_offsets(rows.offsets)
            steps.append("detector_checkpoints")
            statements.insert_arrow(
                self._conn,
                statements.UPSERT_CHECKPOINTS,
                rows.checkpoints,
                view="_batch_checkpoints",
            )
            # A batch whose offsets all stood still is a redelivery: count it once.
            if n_offsets or not batch.offsets:
                steps.append("runs")
                self._count_run(batch.run_id, batch.counters)
        return BatchReport(n_events, n_findings, n_dead, n_alerts, n_offsets)

    def resume_offsets(self) -> dict[OffsetKey, int]:
        """The next position to consume for every ``(source, part)`` the store has seen."""
        with self._lock:
            self._require_open()
            rows = self._conn.execute(
                "SELECT source, part, next_offset FROM ingest_offsets"
            ).fetchall()
        return {(str(source), int(part)): int(offset) for source, part, offset in rows}

    def load_checkpoint(self, stream: str) -> Checkpoint | None:
        """The detector state last stored for ``stream`` with its input positions, if any."""
        with self._lock:
            self._require_open()
            row = self._conn.execute(
                "SELECT positions_json, state FROM detector_checkpoints WHERE stream = ?",
                [stream],
            ).fetchone()
        if row is None:
            return None
        positions = {str(k): int(v) for k, v in json.loads(row[0]).items()}
        return Checkpoint(positions=positions, state=bytes(row[1]))

    def end_run(
        self,
        run_id: str,
        status: RunStatus | str,
        counters: RunCounters | None = None,
    ) -> None:
        """Record the end of a run: its status, end time and, when given, final counters.

        Raises:
            StoreError: No run has this id.
        """
        final = RunStatus(status)
        with self._lock:
            self._require_open()
            if counters is None:
                row = self._conn.execute(
                    "UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?",
                    [final.value, self._clock(), run_id],
                ).fetchone()
            else:
                row = self._conn.execute(
                    "UPDATE runs SET status = ?, ended_at = ?, events_in = ?, logs_in = ?, "
                    "findings_out = ?, dead_letters = ?, late_events = ? WHERE run_id = ?",
                    [
                        final.value,
                        self._clock(),
                        counters.events_in,
                        counters.logs_in,
                        counters.findings_out,
                        counters.dead_letters,
                        counters.late_events,
                        run_id,
                    ],
                ).fetchone()
        if not row or not row[0]:
            raise StoreError(f"no run {run_id!r} in the store")
        _log.info("store.run_ended", run_id=run_id, status=final.value)

    def close(self) -> None:
        """Stop the endpoint and close the database (DuckDB checkpoints on close)."""
        if self._closed:
            return
        with _LIVE_LOCK:
            if _LIVE.get(self._path) is self:
                del _LIVE[self._path]
        if self._endpoint is not None:
            self._endpoint.close()
        with self._lock, self._cursor_lock:
            self._closed = True
            self._cursor_root.close()
            self._conn.close()
        _log.info("store.closed", db=str(self._path))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The endpoint calls these from its own threads (see endpoint.EndpointBackend).

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor with the store's session, for one request on one endpoint thread."""
        with self._cursor_lock:
            self._require_open()
            return prepare_session(self._cursor_root.cursor())

    def append_reviews(self, table: pa.Table) -> int:
        """Append review rows (already checked by ``tables.reviews_table``)."""
        with self._lock:
            self._require_open()
            cursor = self.new_cursor()
            try:
                return statements.insert_reviews(cursor, table)
            finally:
                cursor.close()

    def apply_retention(
        self, cutoffs: RetentionCutoffs, *, archive: Path | None, dry_run: bool
    ) -> RetentionReport:
        """Run retention here, between batches: it takes the write lock while it runs."""
        with self._lock:
            self._require_open()
            cursor = self.new_cursor()
            try:
                return apply_retention(
                    cursor, cutoffs, now=self._clock(), archive=archive, dry_run=dry_run
                )
            finally:
                cursor.close()

    # Steps of write_batch, one per table; each returns the number of rows changed.

    def _upsert_findings(self, table: pa.Table) -> int:
        return statements.insert_arrow(
            self._conn, statements.UPSERT_FINDINGS, table, view="_batch_findings"
        )

    def _insert_dead_letters(self, table: pa.Table) -> int:
        return statements.insert_arrow(
            self._conn, statements.INSERT_DEAD_LETTERS, table, view="_batch_dead_letters"
        )

    def _insert_alerts(self, table: pa.Table) -> int:
        return statements.insert_arrow(
            self._conn, statements.INSERT_ALERTS, table, view="_batch_alerts"
        )

    def _advance_offsets(self, table: pa.Table) -> int:
        return statements.insert_arrow(
            self._conn, statements.ADVANCE_OFFSETS, table, view="_batch_offsets"
        )

    def _count_run(self, run_id: str | None, counters: RunCounters | None) -> None:
        if run_id is None or counters is None:
            return
        row = self._conn.execute(
            "UPDATE runs SET events_in = events_in + ?, logs_in = logs_in + ?, "
            "findings_out = findings_out + ?, dead_letters = dead_letters + ?, "
            "late_events = late_events + ? WHERE run_id = ?",
            [
                counters.events_in,
                counters.logs_in,
                counters.findings_out,
                counters.dead_letters,
                counters.late_events,
                run_id,
            ],
        ).fetchone()
        if not row or not row[0]:
            raise StoreWriteError(f"the batch names run {run_id!r}, which is not in the store")

    def _require_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store writer of {self._path} is closed")


__all__ = [
    "DEFAULT_CHECKPOINT_MIB",
    "DEFAULT_LOCK_TIMEOUT",
    "StoreWriter",
    "live_writer",
    "writer_settings",
]

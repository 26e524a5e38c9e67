"""The statements that write rows, and the transaction they run in.

Each insert reads a registered Arrow table (``INSERT … SELECT … FROM <view>``) and
decides duplicates in SQL, so a batch written twice changes nothing:

- events: a plain ``INSERT`` first, and ``INSERT OR IGNORE`` on their primary key when it
  meets an id stored already (``APPEND_EVENTS*`` then ``INSERT_EVENTS*``; the writer
  retries the batch);
- dead letters, alerts, reviews: ``INSERT OR IGNORE`` on their primary key;
- findings: ``ON CONFLICT DO UPDATE … WHERE excluded.revision > findings.revision``,
  keeping ``first_stored_at`` and moving ``last_stored_at``;
- offsets: ``ON CONFLICT DO UPDATE … WHERE excluded.next_offset > next_offset``, so a
  redelivered batch never moves a stored offset back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Final

import duckdb
import pyarrow as pa

from pipelines.store import tables
from pipelines.store.errors import StoreWriteError


def _upsert_set(schema: pa.Schema, *, keep: frozenset[str]) -> str:
    return ", ".join(f'"{n}" = excluded."{n}"' for n in schema.names if n not in keep)


INSERT_EVENTS: Final = (
    f"INSERT OR IGNORE INTO events ({tables.column_list(tables.EVENTS)}) "  # noqa: S608 - our own columns
    f"SELECT {tables.column_list(tables.EVENTS)} FROM {{view}}"
)
APPEND_EVENTS: Final = INSERT_EVENTS.replace("INSERT OR IGNORE", "INSERT", 1)
"""``INSERT_EVENTS`` without the conflict handling: it fails on an id stored already.

DuckDB checks each row against the primary key either way, but ``OR IGNORE`` costs 4-5 µs
more per event (``bench/store.py``: 13.5 against 8.4 µs): the writer appends, and only a
batch that meets a stored id is written again with ``INSERT_EVENTS``.
"""
UPSERT_FINDINGS: Final = (
    f"INSERT INTO findings ({tables.column_list(tables.FINDINGS)}) "  # noqa: S608 - our own columns
    f"SELECT {tables.column_list(tables.FINDINGS)} FROM {{view}} "
    "ON CONFLICT (finding_id) DO UPDATE SET "
    f"{_upsert_set(tables.FINDINGS, keep=frozenset({'finding_id', 'first_stored_at'}))} "
    "WHERE excluded.revision > findings.revision"
)
INSERT_DEAD_LETTERS: Final = (
    f"INSERT OR IGNORE INTO dead_letters ({tables.column_list(tables.DEAD_LETTERS)}) "  # noqa: S608 - our own columns
    f"SELECT {tables.column_list(tables.DEAD_LETTERS)} FROM {{view}}"
)
INSERT_ALERTS: Final = (
    f"INSERT OR IGNORE INTO alerts ({tables.column_list(tables.ALERTS)}) "  # noqa: S608 - our own columns
    f"SELECT {tables.column_list(tables.ALERTS)} FROM {{view}}"
)
ADVANCE_OFFSETS: Final = (
    f"INSERT INTO ingest_offsets ({tables.column_list(tables.OFFSETS)}) "  # noqa: S608 - our own columns
    f"SELECT {tables.column_list(tables.OFFSETS)} FROM {{view}} "
    "ON CONFLICT (source, part) DO UPDATE SET "
    "next_offset = excluded.next_offset, updated_at = excluded.updated_at "
    "WHERE excluded.next_offset > ingest_offsets.next_offset"
)
# The fast path: DuckDB parses each event's contract JSON once into a struct (from_json,
# in C++ and without the GIL) and the columns are read from it. The struct names the
# contract's fields and types; `time` is written by pydantic as RFC 3339 in UTC, `aud` and
# `scopes` as arrays, an empty `attributes` as {} (stored NULL, as the model path does).
_EVENT_STRUCT: Final = (
    '{"time":"TIMESTAMPTZ","source":{"role":"VARCHAR","name":"VARCHAR","instance":"VARCHAR"},'
    '"action":"VARCHAR","outcome":"VARCHAR","reason":"VARCHAR","detail":"VARCHAR",'
    '"http_status":"SMALLINT","client":{"iss":"VARCHAR","tenant":"VARCHAR"},'
    '"service":{"id":"VARCHAR","url":"VARCHAR"},'
    '"token":{"jti":"VARCHAR","kid":"VARCHAR","alg":"VARCHAR","typ":"VARCHAR","iat":"BIGINT",'
    '"nbf":"BIGINT","exp":"BIGINT","aud":"VARCHAR[]","jku":"VARCHAR","fingerprint":"VARCHAR"},'
    '"hook":"VARCHAR","hook_instance":"VARCHAR","fhir_server":"VARCHAR",'
    '"fhir_authorization":"BOOLEAN","scopes":"VARCHAR[]","payload_bytes":"BIGINT",'
    '"tls":{"version":"VARCHAR","cipher":"VARCHAR","error":"VARCHAR"},"peer":{"ip":"VARCHAR"},'
    '"trace_id":"VARCHAR","span_id":"VARCHAR","attributes":"JSON"}'
)
_EVENT_JSON_COLUMNS: Final = (
    "v.event_id, e.time, e.source.role, e.source.name, e.source.instance, e.action, "
    "e.outcome, e.reason, e.detail, e.http_status, e.client.iss, e.client.tenant, "
    "e.service.id, e.service.url, e.token.jti, e.token.kid, e.token.alg, e.token.typ, "
    "e.token.iat, e.token.nbf, e.token.exp, e.token.aud, e.token.jku, e.token.fingerprint, "
    "e.hook, e.hook_instance, e.fhir_server, e.fhir_authorization, coalesce(e.scopes, []), "
    "e.payload_bytes, e.tls.version, e.tls.cipher, e.tls.error, e.peer.ip, e.trace_id, "
    "e.span_id, nullif(CAST(e.attributes AS VARCHAR), '{}'), v.origin, ?, ?"
)
INSERT_EVENTS_JSON: Final = (
    f"INSERT OR IGNORE INTO events ({tables.column_list(tables.EVENTS)}) "  # noqa: S608 - our own columns
    f"SELECT {_EVENT_JSON_COLUMNS} FROM "
    f"(SELECT event_id, origin, from_json(json, '{_EVENT_STRUCT}') AS e FROM {{view}}) AS v"
)
"""Parameters: ``ingested_at``, ``run_id``."""
APPEND_EVENTS_JSON: Final = INSERT_EVENTS_JSON.replace("INSERT OR IGNORE", "INSERT", 1)
"""``INSERT_EVENTS_JSON`` without the conflict handling (see ``APPEND_EVENTS``)."""
UPSERT_CHECKPOINTS: Final = (
    f"INSERT INTO detector_checkpoints ({tables.column_list(tables.CHECKPOINTS)}) "  # noqa: S608 - our own columns
    f"SELECT {tables.column_list(tables.CHECKPOINTS)} FROM {{view}} "
    "ON CONFLICT (stream) DO UPDATE SET "
    f"{_upsert_set(tables.CHECKPOINTS, keep=frozenset({'stream'}))}"
)
INSERT_REVIEWS: Final = (
    f"INSERT OR IGNORE INTO reviews ({tables.column_list(tables.REVIEWS)}) "  # noqa: S608 - our own columns
    f"SELECT {tables.column_list(tables.REVIEWS)} FROM {{view}}"
)


def insert_arrow(
    conn: duckdb.DuckDBPyConnection,
    statement: str,
    table: pa.Table,
    *,
    view: str,
    parameters: list[object] | None = None,
) -> int:
    """Run ``statement`` over ``table`` registered as ``view``; returns the rows changed.

    Runs nothing for an empty table.
    """
    if table.num_rows == 0:
        return 0
    conn.register(view, table)
    try:
        row = conn.execute(statement.replace("{view}", view), parameters).fetchone()
    except BaseException:
        # A failed statement aborts the transaction, and DuckDB then refuses to unregister
        # too: the statement's own error is the one raised.
        with suppress(duckdb.Error):
            conn.unregister(view)
        raise
    conn.unregister(view)
    return int(row[0]) if row else 0


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection, what: str) -> Iterator[list[str]]:
    """Run the block in one transaction; roll back and raise ``StoreWriteError`` on failure.

    The block appends the name of each step it starts to the yielded list, so the error
    says where it failed. DuckDB's message is dropped: it can quote a row's value.

    Raises:
        StoreWriteError: A statement failed; nothing of the block was committed.
    """
    steps: list[str] = []
    conn.execute("BEGIN TRANSACTION")
    try:
        yield steps
        conn.execute("COMMIT")
    except duckdb.Error as exc:
        conn.execute("ROLLBACK")
        where = f" at {steps[-1]}" if steps else ""
        raise StoreWriteError(
            f"{what} failed{where} ({type(exc).__name__}); nothing was committed"
        ) from None
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def insert_reviews(conn: duckdb.DuckDBPyConnection, table: pa.Table) -> int:
    """Append review rows in one transaction; rows whose ``review_id`` exists are skipped.

    Returns:
        The number of rows appended.
    """
    with transaction(conn, "appending reviews") as steps:
        steps.append("reviews")
        return insert_arrow(conn, INSERT_REVIEWS, table, view="_incoming_reviews")


__all__ = [
    "ADVANCE_OFFSETS",
    "APPEND_EVENTS",
    "APPEND_EVENTS_JSON",
    "INSERT_ALERTS",
    "INSERT_DEAD_LETTERS",
    "INSERT_EVENTS",
    "INSERT_EVENTS_JSON",
    "INSERT_REVIEWS",
    "UPSERT_CHECKPOINTS",
    "UPSERT_FINDINGS",
    "insert_arrow",
    "insert_reviews",
    "transaction",
]

"""Arrow tables of the store's rows, built column by column from the contracts.

The writer inserts whole batches with ``INSERT … SELECT … FROM <arrow table>``: DuckDB
scans Arrow columns directly, two orders of magnitude faster than ``executemany``
(bench/store.py measures both). The schemas here mirror the SQL schema's columns and
types; ``tests/test_store_tables.py`` checks that they stay in step with the migrations.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

from auditor.models import AuthzEvent, Finding
from auditor.vocabulary import ReviewAction
from pipelines.store.errors import StoreWriteError
from pipelines.store.records import (
    AlertRecord,
    Checkpoint,
    DeadLetter,
    EventJson,
    IngestedEvent,
    OffsetKey,
)

try:
    import orjson

    _ORJSON_OPTIONS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

    def json_text(value: object) -> str:
        """Compact JSON with sorted keys, as the store keeps JSON columns."""
        try:
            return orjson.dumps(value, option=_ORJSON_OPTIONS, default=str).decode()
        except orjson.JSONEncodeError:
            # orjson stops at 64-bit integers; JSON has no such limit, and an event may
            # carry a bigger one in its attributes. The slow path keeps it exact.
            return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)

except ImportError:  # pragma: no cover - orjson comes with the pipeline extra

    def json_text(value: object) -> str:
        """Compact JSON with sorted keys, as the store keeps JSON columns."""
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _schema(columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema(columns)


TS: Final = pa.timestamp("us", tz="UTC")
TEXT: Final = pa.string()
TEXT_LIST: Final = pa.list_(pa.string())

EVENTS: Final[pa.Schema] = _schema(
    [
        ("event_id", pa.uuid()),  # Arrow's UUID type: no text round trip, DuckDB reads it as UUID
        ("time", TS),
        ("source_role", TEXT),
        ("source_name", TEXT),
        ("source_instance", TEXT),
        ("action", TEXT),
        ("outcome", TEXT),
        ("reason", TEXT),
        ("detail", TEXT),
        ("http_status", pa.int16()),
        ("client_iss", TEXT),
        ("client_tenant", TEXT),
        ("service_id", TEXT),
        ("service_url", TEXT),
        ("token_jti", TEXT),
        ("token_kid", TEXT),
        ("token_alg", TEXT),
        ("token_typ", TEXT),
        ("token_iat", pa.int64()),
        ("token_nbf", pa.int64()),
        ("token_exp", pa.int64()),
        ("token_aud", TEXT_LIST),
        ("token_jku", TEXT),
        ("token_fingerprint", TEXT),
        ("hook", TEXT),
        ("hook_instance", TEXT),
        ("fhir_server", TEXT),
        ("fhir_authorization", pa.bool_()),
        ("scopes", TEXT_LIST),
        ("payload_bytes", pa.int64()),
        ("tls_version", TEXT),
        ("tls_cipher", TEXT),
        ("tls_error", TEXT),
        ("peer_ip", TEXT),
        ("trace_id", TEXT),
        ("span_id", TEXT),
        ("attributes_json", TEXT),
        ("origin", TEXT),
        ("ingested_at", TS),
        ("run_id", TEXT),
    ]
)

FINDINGS: Final[pa.Schema] = _schema(
    [
        ("finding_id", TEXT),
        ("detector", TEXT),
        ("rule", TEXT),
        ("kind", TEXT),
        ("severity", TEXT),
        ("severity_rank", pa.int8()),
        ("observed_at", TS),
        ("title", TEXT),
        ("client_iss", TEXT),
        ("service_id", TEXT),
        ("fingerprint", TEXT),
        ("location", TEXT),
        ("origin", TEXT),
        ("event_ids", TEXT_LIST),
        ("evidence", TEXT),
        ("safeguard", TEXT),
        ("reference", TEXT),
        ("window_start", TS),
        ("window_end", TS),
        ("count", pa.int64()),
        ("revision", pa.int32()),
        ("facts_json", TEXT),
        ("first_stored_at", TS),
        ("last_stored_at", TS),
        ("run_id", TEXT),
    ]
)

DEAD_LETTERS: Final[pa.Schema] = _schema(
    [
        ("dead_letter_id", TEXT),
        ("received_at", TS),
        ("reason", TEXT),
        ("detail", TEXT),
        ("source", TEXT),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("line", pa.int64()),
        ("size_bytes", pa.int64()),
        ("run_id", TEXT),
    ]
)

ALERTS: Final[pa.Schema] = _schema(
    [
        ("alert_id", TEXT),
        ("finding_id", TEXT),
        ("revision", pa.int32()),
        ("severity", TEXT),
        ("sent_at", TS),
        ("channels", TEXT_LIST),
    ]
)

EVENT_JSON: Final[pa.Schema] = _schema([("event_id", pa.uuid()), ("json", TEXT), ("origin", TEXT)])
"""The fast path's input: DuckDB builds the ``events`` columns from ``json`` itself."""

CHECKPOINTS: Final[pa.Schema] = _schema(
    [
        ("stream", TEXT),
        ("positions_json", TEXT),
        ("state", pa.binary()),
        ("state_bytes", pa.int64()),
        ("written_at", TS),
        ("run_id", TEXT),
    ]
)

OFFSETS: Final[pa.Schema] = _schema(
    [("source", TEXT), ("part", pa.int32()), ("next_offset", pa.int64()), ("updated_at", TS)]
)

REVIEWS: Final[pa.Schema] = _schema(
    [
        ("review_id", TEXT),
        ("finding_id", TEXT),
        ("action", TEXT),
        ("actor", TEXT),
        ("assignee", TEXT),
        ("note", TEXT),
        ("reviewed_at", TS),
    ]
)
REVIEW_REQUIRED: Final = frozenset({"finding_id", "action", "actor", "reviewed_at"})
MAX_REVIEW_TEXT: Final = 4096
_REVIEW_ACTIONS: Final = frozenset(action.value for action in ReviewAction)


def events_table(
    events: Iterable[AuthzEvent | IngestedEvent], *, ingested_at: datetime, run_id: str | None
) -> pa.Table:
    """The ``events`` rows of a batch, deduplicated by ``event_id`` (first one wins)."""
    kept: dict[uuid.UUID, tuple[AuthzEvent, str | None]] = {}
    for item in events:
        event, origin = (
            (item.event, item.origin) if isinstance(item, IngestedEvent) else (item, None)
        )
        kept.setdefault(event.event_id, (event, origin))
    evs = [event for event, _ in kept.values()]
    # Column by column: one pass per column is faster in CPython than transposing rows.
    # Enum members go in as they are: a StrEnum is a str, and Arrow takes its value.
    sources = [e.source for e in evs]
    clients = [e.client for e in evs]
    services = [e.service for e in evs]
    tokens = [e.token for e in evs]
    tls = [e.tls for e in evs]
    columns: list[list[Any] | pa.Array[Any]] = [
        list(kept),
        [e.time for e in evs],
        [s.role for s in sources],
        [s.name for s in sources],
        [s.instance for s in sources],
        [e.action for e in evs],
        [e.outcome for e in evs],
        [e.reason for e in evs],
        [e.detail for e in evs],
        [e.http_status for e in evs],
        [c.iss if c else None for c in clients],
        [c.tenant if c else None for c in clients],
        [s.id if s else None for s in services],
        [s.url if s else None for s in services],
        [t.jti if t else None for t in tokens],
        [t.kid if t else None for t in tokens],
        [t.alg if t else None for t in tokens],
        [t.typ if t else None for t in tokens],
        [t.iat if t else None for t in tokens],
        [t.nbf if t else None for t in tokens],
        [t.exp if t else None for t in tokens],
        [list(t.aud) if t else None for t in tokens],
        [t.jku if t else None for t in tokens],
        [t.fingerprint if t else None for t in tokens],
        [e.hook for e in evs],
        [e.hook_instance for e in evs],
        [e.fhir_server for e in evs],
        [e.fhir_authorization for e in evs],
        [list(e.scopes) for e in evs],
        [e.payload_bytes for e in evs],
        [t.version if t else None for t in tls],
        [t.cipher if t else None for t in tls],
        [t.error if t else None for t in tls],
        [e.peer.ip if e.peer else None for e in evs],
        [e.trace_id for e in evs],
        [e.span_id for e in evs],
        [json_text(e.attributes) if e.attributes else None for e in evs],
        [origin for _, origin in kept.values()],
        _repeat(ingested_at, TS, len(evs)),
        _repeat(run_id, TEXT, len(evs)),
    ]
    return _from_columns(columns, EVENTS)


def event_json_table(items: Iterable[EventJson]) -> pa.Table:
    """The fast-path events of a batch, deduplicated by ``event_id`` (first one wins)."""
    kept: dict[bytes, EventJson] = {}
    for item in items:
        kept.setdefault(item.event_key, item)
    rows = kept.values()
    ids = pa.array(list(kept), type=pa.binary(16))
    # The JSON arrives as bytes; Arrow checks the UTF-8 once for the whole column.
    texts = pa.array([item.json for item in rows], type=pa.binary()).cast(TEXT)
    return pa.Table.from_arrays(
        [
            pa.ExtensionArray.from_storage(pa.uuid(), ids),
            texts,
            pa.array([item.origin for item in rows], type=TEXT),
        ],
        schema=EVENT_JSON,
    )


def checkpoints_table(
    checkpoints: Mapping[str, Checkpoint], *, written_at: datetime, run_id: str | None
) -> pa.Table:
    """The ``detector_checkpoints`` rows of a batch, one per stream."""
    return pa.table(
        {
            "stream": list(checkpoints),
            "positions_json": [json_text(dict(c.positions)) for c in checkpoints.values()],
            "state": [c.state for c in checkpoints.values()],
            "state_bytes": [len(c.state) for c in checkpoints.values()],
            "written_at": [written_at] * len(checkpoints),
            "run_id": [run_id] * len(checkpoints),
        },
        schema=CHECKPOINTS,
    )


def findings_table(
    findings: Iterable[Finding], *, stored_at: datetime, run_id: str | None
) -> pa.Table:
    """The ``findings`` rows of a batch: one per id, the highest revision of the batch."""
    latest: dict[str, Finding] = {}
    for finding in findings:
        kept = latest.get(finding.finding_id)
        if kept is None or finding.revision > kept.revision:
            latest[finding.finding_id] = finding
    rows = [
        (
            f.finding_id,
            f.detector.value,
            f.rule,
            f.kind,
            f.severity.value,
            f.severity.rank,
            f.observed_at,
            f.title,
            f.client_iss,
            f.service_id,
            f.fingerprint,
            f.location,
            f.origin,
            list(f.event_ids),
            f.evidence,
            str(f.safeguard) if f.safeguard is not None else None,
            f.reference,
            f.window_start,
            f.window_end,
            f.count,
            f.revision,
            json_text(f.facts) if f.facts else None,
            stored_at,
            stored_at,
            run_id,
        )
        for f in latest.values()
    ]
    return _from_rows(rows, FINDINGS)


def _from_rows(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema.names]
    return _from_columns(columns, schema)


def _from_columns(columns: Sequence[Sequence[Any] | pa.Array[Any]], schema: pa.Schema) -> pa.Table:
    arrays = [
        column if isinstance(column, pa.Array) else pa.array(column, type=field.type)
        for column, field in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _repeat(value: object, type_: pa.DataType, count: int) -> pa.Array[Any]:
    # A batch-wide value (store time, run id) is converted once, not once per row.
    # (pyarrow-stubs lists pa.repeat per concrete scalar type, not for a generic Scalar.)
    repeated: pa.Array[Any] = pa.repeat(pa.scalar(value, type=type_), count)  # type: ignore[call-overload]
    return repeated


def dead_letters_table(dead_letters: Iterable[DeadLetter], *, run_id: str | None) -> pa.Table:
    """The ``dead_letters`` rows of a batch, one per source position."""
    rows = {d.dead_letter_id: d for d in dead_letters}
    return pa.table(
        {
            "dead_letter_id": list(rows),
            "received_at": [d.received_at for d in rows.values()],
            "reason": [d.reason.value for d in rows.values()],
            "detail": [d.detail for d in rows.values()],
            "source": [d.source for d in rows.values()],
            "kafka_partition": [d.kafka_partition for d in rows.values()],
            "kafka_offset": [d.kafka_offset for d in rows.values()],
            "line": [d.line for d in rows.values()],
            "size_bytes": [d.size_bytes for d in rows.values()],
            "run_id": [run_id] * len(rows),
        },
        schema=DEAD_LETTERS,
    )


def alerts_table(alerts: Iterable[AlertRecord]) -> pa.Table:
    """The ``alerts`` rows of a batch, one per finding revision."""
    rows = {a.alert_id: a for a in alerts}
    return pa.table(
        {
            "alert_id": list(rows),
            "finding_id": [a.finding_id for a in rows.values()],
            "revision": [a.revision for a in rows.values()],
            "severity": [a.severity.value for a in rows.values()],
            "sent_at": [a.sent_at for a in rows.values()],
            "channels": [list(a.channels) for a in rows.values()],
        },
        schema=ALERTS,
    )


def offsets_table(offsets: Mapping[OffsetKey, int], *, updated_at: datetime) -> pa.Table:
    """The ``ingest_offsets`` rows of a batch."""
    for (source, part), offset in offsets.items():
        if not source or part < 0 or offset < 0:
            raise StoreWriteError("an offset needs a source name, a part >= 0 and an offset >= 0")
    return pa.table(
        {
            "source": [source for source, _ in offsets],
            "part": [part for _, part in offsets],
            "next_offset": list(offsets.values()),
            "updated_at": [updated_at] * len(offsets),
        },
        schema=OFFSETS,
    )


def reviews_table(rows: Sequence[Mapping[str, object]]) -> pa.Table:
    """Review rows checked against the ``reviews`` columns.

    A row without ``review_id`` gets a random one here, before it travels, so a retried
    append stores it once.

    Raises:
        StoreWriteError: A row has an unknown or missing column, or a value of the wrong
            type. The message names the row and column, never the value.
    """
    columns: dict[str, list[Any]] = {name: [] for name in REVIEWS.names}
    for index, row in enumerate(rows):
        unknown = set(row) - set(REVIEWS.names)
        if unknown:
            raise StoreWriteError(f"review row {index}: unknown columns {sorted(unknown)}")
        missing = REVIEW_REQUIRED - {k for k, v in row.items() if v is not None}
        if missing:
            raise StoreWriteError(f"review row {index}: missing {sorted(missing)}")
        for name in REVIEWS.names:
            value = row.get(name)
            if name == "review_id" and value is None:
                value = uuid.uuid4().hex
            _check_review_value(index, name, value)
            columns[name].append(value)
    return pa.table(columns, schema=REVIEWS)


def _check_review_value(index: int, name: str, value: object) -> None:
    if name == "reviewed_at":
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise StoreWriteError(f"review row {index}: reviewed_at must be an aware datetime")
        return
    if value is None:
        return
    if name == "action" and value not in _REVIEW_ACTIONS:
        raise StoreWriteError(
            f"review row {index}: action must be one of {sorted(_REVIEW_ACTIONS)}"
        )
    if not isinstance(value, str) or not value or len(value) > MAX_REVIEW_TEXT:
        raise StoreWriteError(
            f"review row {index}: {name} must be a non-empty string of at most "
            f"{MAX_REVIEW_TEXT} characters"
        )


def column_list(schema: pa.Schema) -> str:
    """The schema's column names, quoted, for an ``INSERT INTO t (...)`` clause."""
    return ", ".join(f'"{name}"' for name in schema.names)


__all__ = [
    "ALERTS",
    "CHECKPOINTS",
    "DEAD_LETTERS",
    "EVENTS",
    "EVENT_JSON",
    "FINDINGS",
    "OFFSETS",
    "REVIEWS",
    "alerts_table",
    "checkpoints_table",
    "column_list",
    "dead_letters_table",
    "event_json_table",
    "events_table",
    "findings_table",
    "json_text",
    "offsets_table",
    "reviews_table",
]

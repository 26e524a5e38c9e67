"""Rows of the audit database built by the store's own code, for scenario fixtures.

The compliance and dashboard fixtures write a known history straight into a DuckDB file
(no pipeline run): the rows come from the same Arrow builders the ``StoreWriter`` uses, so
what the queries and pages read is what the pipeline would have stored. Only the
bookkeeping a real store would have spread over many batches (when each row was stored,
by which run) is set per row here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from auditor import AuthzEvent, Finding
from pipelines.store import tables
from pipelines.store.records import IngestedEvent

_PLACEHOLDER_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def events_rows(
    events: Sequence[AuthzEvent],
    *,
    origin: str,
    ingested_after: timedelta,
    run_of: Callable[[AuthzEvent], str],
) -> pa.Table:
    """The ``events`` rows of ``events``, each ingested ``ingested_after`` its own time."""
    table = tables.events_table(
        [IngestedEvent(event, origin) for event in events],
        ingested_at=_PLACEHOLDER_TIME,
        run_id=None,
    )
    if table.num_rows != len(events):
        msg = "scenario events must have distinct event ids"
        raise ValueError(msg)
    return _with_columns(
        table,
        {
            "ingested_at": [event.time + ingested_after for event in events],
            "run_id": [run_of(event) for event in events],
        },
    )


def findings_rows(
    findings: Iterable[Finding],
    *,
    stored_after: Callable[[Finding], timedelta],
    updated_after: Callable[[Finding], timedelta],
    run_id: str,
) -> pa.Table:
    """The ``findings`` rows: first stored ``stored_after`` the observation, then updated."""
    kept = list({finding.finding_id: finding for finding in findings}.values())
    table = tables.findings_table(kept, stored_at=_PLACEHOLDER_TIME, run_id=run_id)
    first = [finding.observed_at + stored_after(finding) for finding in kept]
    return _with_columns(
        table,
        {
            "first_stored_at": first,
            "last_stored_at": [
                when + updated_after(finding) for when, finding in zip(first, kept, strict=True)
            ],
        },
    )


def insert(
    con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table | list[dict[str, object]]
) -> None:
    """Append ``rows`` (an Arrow table, or dicts keyed by column) to ``table``."""
    arrow = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    con.register("incoming", arrow)
    try:
        columns = ", ".join(arrow.column_names)
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")  # noqa: S608 -- table and column names come from this test module, not from input
    finally:
        con.unregister("incoming")


def _with_columns(table: pa.Table, columns: Mapping[str, Sequence[object]]) -> pa.Table:
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        field = table.schema.field(index)
        table = table.set_column(index, field, pa.array(values, type=field.type))
    return table

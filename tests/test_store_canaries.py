"""A secret never travels: the store's own code adds no token or PHI it was handed.

Redaction happens upstream; the writer stores events' attributes and findings' evidence
as given. What the writer itself handles — the run's configuration, failed statements,
its endpoint, its logs — must not carry a secret into the database, its WAL, an error
message or a log line. Canary values are planted there and then searched for in the bytes
and the rows (``assert_no_canaries``), which must also catch a canary that did get in.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest
import store_support as support
import structlog

from pipelines.store import (
    Batch,
    IngestedEvent,
    RunCounters,
    StoreWriteError,
    StoreWriter,
    assert_no_canaries,
    find_canaries,
    statements,
)
from pipelines.store.access import _WriterClient
from pipelines.store.connection import open_database
from pipelines.store.endpoint import read_advert

CANARIES = {
    "jwt": "eyJhbGciOiJFUzM4NCJ9.eyJjYW5hcnkiOiJzdG9yZS0xIn0.Q2FuYXJ5U2lnbmF0dXJl",
    "password": "canary-pw-7f3a9b2c41d0",
    "ssn": "078-05-1120",
    "url-credential": "canaryuser:canary-url-secret-9e1d",
}


def _config():
    return {
        "kafka": {
            "bootstrap_servers": "127.0.0.1:9092",
            "sasl_plain_password": CANARIES["password"],
        },
        "webhook": {"url": f"https://{CANARIES['url-credential']}@hooks.example.org/alerts"},
        "notes": [f"pasted by mistake: {CANARIES['jwt']}"],
        "patient_ssn_example": CANARIES["ssn"],
        "token_file": "/etc/auditor/token",
    }


def test_the_writer_stores_no_canary_it_was_handed(tmp_path):
    db = tmp_path / "audit.duckdb"
    with structlog.testing.capture_logs() as logs:
        writer = StoreWriter.open(db, duckdb_config={"force_compression": "uncompressed"})
        run = writer.begin_run(mode="embedded", config=_config())
        # A batch that fails: none of its rows, and nothing of the failure, may stay.
        (batch, _) = next(support.batches({0: 0, 1: 0}, 20, 40))
        failing = Batch(
            events=batch.events, run_id="no-such-run", counters=RunCounters(events_in=1)
        )
        with pytest.raises(StoreWriteError) as failure:
            writer.write_batch(failing)
        writer.write_batch(Batch(events=batch.events, offsets=batch.offsets, run_id=run))
        # The endpoint: a query whose parameter is a canary answers the caller, and
        # writes the value nowhere else.
        advert = read_advert(db)
        assert advert is not None
        answer = _WriterClient(advert, timeout=10).query(
            "SELECT count(*) AS n FROM events WHERE client_iss = ?", [CANARIES["ssn"]], timeout=5
        )
        assert answer.to_pylist() == [{"n": 0}]
        writer.end_run(run, "completed")
        wal_hits = find_canaries(db, CANARIES)  # while the WAL still holds the last commits
        writer.close()

    assert wal_hits == []
    assert_no_canaries(db, CANARIES)
    for value in CANARIES.values():
        assert value not in str(failure.value)
        assert value not in repr(logs)


def test_a_failed_statement_drops_duckdbs_message_which_can_quote_the_value(tmp_path):
    conn = open_database(tmp_path / "x.duckdb", read_only=False, lock_timeout=1)
    try:
        with pytest.raises(StoreWriteError) as failure, statements.transaction(conn, "a step"):
            # DuckDB would say: Could not convert string '<value>' to INT32.
            conn.execute("SELECT CAST(? AS INTEGER)", [CANARIES["password"]]).fetchall()
    finally:
        conn.close()
    assert CANARIES["password"] not in str(failure.value)
    assert "ConversionException" in str(failure.value)


def test_a_canary_that_got_in_is_found_in_the_bytes_and_in_the_rows(tmp_path):
    db = tmp_path / "audit.duckdb"
    record = support.record(0, 1)
    assert record.event is not None
    # An upstream redaction failure: the attributes arrive with a token in them.
    leaked = record.event.event.model_copy(update={"attributes": {"note": CANARIES["jwt"]}})
    with StoreWriter.open(
        db, serve=False, duckdb_config={"force_compression": "uncompressed"}
    ) as w:
        w.write_batch(Batch(events=[IngestedEvent(leaked, record.event.origin)]))
        live = find_canaries(db, CANARIES)
    after_checkpoint = find_canaries(db, CANARIES)

    assert {hit.label for hit in live} == {"jwt"}
    assert any("file audit.duckdb.wal" in hit.where for hit in live)
    assert any("table events, column attributes_json (1 rows)" in hit.where for hit in live)
    assert any(hit.where.startswith("file audit.duckdb at byte") for hit in after_checkpoint)
    with pytest.raises(AssertionError, match="jwt in table events") as failure:
        assert_no_canaries(db, CANARIES)
    assert CANARIES["jwt"] not in str(failure.value)


def test_the_row_scan_finds_a_canary_that_compression_hides_from_the_bytes(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    conn = duckdb.connect(str(db))
    # Many similar strings: DuckDB compresses the column (FSST), so most copies of the
    # canary are not in the file as plain bytes.
    conn.execute(
        "INSERT INTO dead_letters SELECT 'id' || range, ?, 'oversized', "
        "'near ' || ? || ' row ' || range, 'a.jsonl', NULL, NULL, range, 1, NULL "
        "FROM range(20000)",
        [datetime(2026, 11, 28, tzinfo=UTC), CANARIES["password"]],
    )
    conn.execute("CHECKPOINT")
    conn.close()
    hits = find_canaries(db, {"password": CANARIES["password"]})
    assert any("table dead_letters, column detail (20000 rows)" in hit.where for hit in hits)


def test_canaries_too_short_to_be_unique_are_refused(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    with pytest.raises(ValueError, match="shorter than 8"):
        find_canaries(db, ["abc"])

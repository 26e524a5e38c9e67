"""Reading and reviewing while the writer writes: the same answers on every route.

A store is reached three ways — through a writer in another process (its Unix-socket
endpoint), through a writer in this process, or on the file when no writer runs — and
callers must not be able to tell which, except by ``status().route``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime

import pytest
import store_support as support

from auditor.errors import InputError
from pipelines.store import (
    QueryError,
    StoreError,
    StoreWriteError,
    StoreWriter,
    open_store,
)
from pipelines.store.endpoint import advert_path, read_advert, socket_path_for

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _start_writer(db, *extra):
    proc = subprocess.Popen(  # noqa: S603 - our own test script, run with this interpreter
        [
            sys.executable,
            str(support.SCRIPT),
            "--db",
            str(db),
            "--per-partition",
            "1000000",
            "--batch",
            "40",
            "--pause",
            "0.01",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("committed"):
            return proc
    pytest.fail("the writer process did not start")


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    return proc.returncode


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A store whose writer runs in another process and keeps writing."""
    db = tmp_path_factory.mktemp("served") / "audit.duckdb"
    proc = _start_writer(db)
    yield db
    assert _stop(proc) == 0


@pytest.fixture(params=["file", "writer process", "writer in this process"])
def route(request, tmp_path):
    """A store path reached by one route."""
    if request.param == "writer process":
        return request.getfixturevalue("served")
    db = tmp_path / "audit.duckdb"
    if request.param == "file":
        StoreWriter.open(db, serve=False).close()
        return db
    writer = StoreWriter.open(db, serve=False)
    request.addfinalizer(writer.close)  # noqa: PT021 - a parametrised fixture with one teardown
    return db


def test_parameters_bind_to_the_same_values_on_every_route(route):
    params = [
        T0,
        date(2026, 11, 28),
        ["a", "b"],
        None,
        uuid.UUID("0b0f5c1e-7c55-4b8a-9d2e-5c1f0e9a7b21"),
        "https://ehr.example.org",
        7,
        2.5,
        True,
    ]
    with open_store(route) as store:
        table = store.query(
            "SELECT ?::TIMESTAMPTZ AS ts, ?::DATE AS d, ?::VARCHAR[] AS l, ?::VARCHAR AS n, "
            "?::UUID AS u, ? AS s, ? AS i, ? AS f, ? AS b",
            params,
        )
    assert table.to_pylist() == [
        {
            "ts": T0,
            "d": date(2026, 11, 28),
            "l": ["a", "b"],
            "n": None,
            "u": "0b0f5c1e-7c55-4b8a-9d2e-5c1f0e9a7b21",  # DuckDB exports UUIDs as text
            "s": "https://ehr.example.org",
            "i": 7,
            "f": 2.5,
            "b": True,
        }
    ]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_named_parameters_bind_on_every_route(route):
    with open_store(route) as store:
        table = store.query(
            "SELECT $iss AS iss, $since < TIMESTAMPTZ '2027-01-01 00:00Z' AS before",
            {"iss": "https://ehr.example.org", "since": T0},
        )
    assert table.to_pylist() == [{"iss": "https://ehr.example.org", "before": True}]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # Writes, settings and file output are refused even on the writer's own database.
        ("DELETE FROM events", "only SELECT queries are allowed here, got DELETE"),
        ("COPY (SELECT 1) TO '/tmp/out.csv'", "got COPY"),
        ("SET threads = 1", "got SET"),
        ("ATTACH ':memory:' AS other", "got ATTACH"),
        # A second statement cannot ride along behind a SELECT.
        ("SELECT 1; DELETE FROM events", "exactly one statement, got 2"),
        ("SELEC 1", "does not parse"),
    ],
)
def test_only_one_select_is_accepted_on_every_route(route, sql, message):
    with open_store(route) as store, pytest.raises(QueryError, match=message):
        store.query(sql)


def test_a_query_error_carries_duckdbs_explanation_on_every_route(route):
    with open_store(route) as store, pytest.raises(QueryError, match="no_such_table"):
        store.query("SELECT * FROM no_such_table")


def test_a_bad_parameter_is_a_query_error_on_every_route(route):
    with open_store(route) as store, pytest.raises(QueryError, match="Conversion Error"):
        store.query("SELECT ?::INTEGER", ["not a number"])


def test_a_query_longer_than_its_timeout_is_stopped_on_every_route(route):
    with open_store(route, query_timeout=0.3) as store, pytest.raises(QueryError):
        store.query("SELECT count(*) FROM range(1000000000000)")
    # The store is still usable afterwards.
    with open_store(route) as store:
        assert store.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_a_query_that_fails_after_its_first_rows_is_an_error_not_a_short_result(route):
    # The writer has already answered 200 and streamed rows when the error comes; an Arrow
    # stream cut between two batches reads as a valid shorter one, so the client must not
    # take it for the whole result.
    sql = (
        "SELECT CASE WHEN range < 1000000 THEN range ELSE error('stop') END AS x "
        "FROM range(1000010)"
    )
    with open_store(route) as store, pytest.raises(QueryError, match=r"stop|cut the result short"):
        store.query(sql)


def test_reading_and_reviewing_while_another_process_writes(tmp_path):
    db = tmp_path / "audit.duckdb"
    proc = _start_writer(db)
    try:
        store = open_store(db, write=True)
        assert store.status().route == "writer"
        seen = []
        for _ in range(15):
            # Every offset is one record: an event or a dead letter. A snapshot that saw
            # the rows of a batch but not its offsets (or the reverse) would break this.
            (row,) = store.query(
                "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM dead_letters) "
                "AS records, (SELECT sum(next_offset) FROM ingest_offsets) AS offsets"
            ).to_pylist()
            assert row["records"] == row["offsets"]
            seen.append(row["records"])
            time.sleep(0.02)
        assert seen == sorted(seen)
        assert seen[-1] > seen[0], "the writer should have committed batches meanwhile"

        store.append_reviews(
            [
                {
                    "finding_id": support.incident_id(0),
                    "action": "acknowledge",
                    "actor": "security-officer",
                    "note": "seen",
                    "reviewed_at": T0,
                }
            ]
        )
        reviews = store.query("SELECT actor, action FROM reviews").to_pylist()
        assert reviews == [{"actor": "security-officer", "action": "acknowledge"}]
    finally:
        assert _stop(proc) == 0

    # The writer has gone: the same handle now reads the file, reviews included.
    assert store.status().route == "file"
    assert store.query("SELECT count(*) AS n FROM reviews").to_pylist() == [{"n": 1}]
    assert not advert_path(db).exists()


def test_a_stale_advert_left_by_a_killed_writer_is_ignored(tmp_path):
    db = tmp_path / "audit.duckdb"
    proc = _start_writer(db)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert read_advert(db) is not None  # the dead writer could not withdraw it
    with open_store(db) as store:
        assert store.status().route == "file"
        (row,) = store.query("SELECT count(*) AS n FROM events").to_pylist()
    assert row["n"] > 0


def test_the_endpoint_socket_and_advert_are_private_to_the_user(tmp_path):
    db = tmp_path / "audit.duckdb"
    with StoreWriter.open(db) as writer:
        advert = read_advert(db)
        assert advert is not None
        assert advert.pid == os.getpid()
        assert writer.endpoint_socket is not None
        assert stat.S_IMODE(writer.endpoint_socket.stat().st_mode) == 0o600
        assert stat.S_IMODE(advert_path(db).stat().st_mode) == 0o600
        assert json.loads(advert_path(db).read_text())["socket"] == str(writer.endpoint_socket)
    assert not advert_path(db).exists()


def test_a_database_path_too_long_for_a_socket_puts_the_socket_in_a_private_folder(tmp_path):
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    sock = socket_path_for(deep / "audit.duckdb")
    assert len(str(sock)) < 108
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


def test_a_read_only_handle_refuses_to_append_reviews(route):
    with open_store(route) as store, pytest.raises(StoreError, match="write=True"):
        store.append_reviews([])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        # Each message names the row and the column, never the value.
        (
            {"action": "resolve", "actor": "a", "reviewed_at": T0},
            r"row 0: missing \['finding_id'\]",
        ),
        (
            {"finding_id": "f", "action": "resolve", "actor": "a", "reviewed_at": T0, "x": 1},
            r"unknown columns \['x'\]",
        ),
        (
            {
                "finding_id": "f",
                "action": "resolve",
                "actor": "a",
                "reviewed_at": T0.replace(tzinfo=None),
            },
            "aware datetime",
        ),
        ({"finding_id": "f", "action": "resolve", "actor": 7, "reviewed_at": T0}, "actor must be"),
        # The review history speaks the vocabulary's actions only.
        (
            {"finding_id": "f", "action": "delete", "actor": "a", "reviewed_at": T0},
            "action must be",
        ),
    ],
)
def test_a_malformed_review_row_is_refused(tmp_path, row, message):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    with open_store(db, write=True) as store, pytest.raises(StoreWriteError, match=message):
        store.append_reviews([row])


def test_a_retried_review_append_is_stored_once(route):
    row = {
        "review_id": "r-1",
        "finding_id": "f",
        "action": "assign",
        "actor": "lead",
        "assignee": "analyst",
        "reviewed_at": T0,
    }
    with open_store(route, write=True) as store:
        store.append_reviews([row])
        store.append_reviews([row])  # the first answer was lost; the caller retries
        assert store.query(
            "SELECT count(*) AS n FROM reviews WHERE review_id = 'r-1'"
        ).to_pylist() == [{"n": 1}]


def test_opening_a_missing_store_says_so(tmp_path):
    with pytest.raises(InputError, match="no audit database at"):
        open_store(tmp_path / "missing.duckdb")

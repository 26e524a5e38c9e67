"""The store writer: one transaction per batch, duplicates change nothing, offsets only advance."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import store_support as support

from auditor import AuthzEvent, Finding, finding_id
from auditor.vocabulary import DeadLetterReason, RunStatus, Severity
from pipelines.store import (
    AlertRecord,
    Batch,
    DeadLetter,
    EventJson,
    IngestedEvent,
    RunCounters,
    StoreBusyError,
    StoreError,
    StoreWriteError,
    StoreWriter,
    open_store,
    statements,
)
from pipelines.store.scrubbing import without_secrets

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _finding(revision: int = 0, **overrides: object) -> Finding:
    fields: dict[str, object] = {
        "finding_id": finding_id("replay_burst", "jti-reuse", "iss-1"),
        "detector": "replay_burst",
        "rule": "jti-reuse",
        "kind": "replay",
        "severity": "high",
        "observed_at": T0,
        "title": "jti reused",
        "revision": revision,
        "count": revision + 1,
        "evidence": f"revision {revision}",
    }
    fields.update(overrides)
    return Finding.model_validate(fields)


def _rows(db, sql):
    with open_store(db) as store:
        return store.query(sql).to_pylist()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def writer(tmp_path, clock):
    with StoreWriter.open(tmp_path / "audit.duckdb", serve=False, clock=clock) as w:
        yield w


def test_every_event_field_lands_in_its_column(tmp_path, clock):
    event = AuthzEvent.model_validate(
        {
            "event_id": "0b0f5c1e-7c55-4b8a-9d2e-5c1f0e9a7b21",
            "time": "2026-11-28T09:59:58.250Z",
            "source": {"role": "service", "name": "cds-greeter", "instance": "pod-7"},
            "action": "token.rejected",
            "outcome": "failure",
            "reason": "aud_mismatch",
            "detail": "aud is not this endpoint",
            "http_status": 401,
            "client": {"iss": "https://ehr.example.org", "tenant": "t9"},
            "service": {"id": "pg", "url": "https://cds.example.com/cds-services/pg"},
            "token": {
                "jti": "j-1",
                "kid": "k1",
                "alg": "ES384",
                "typ": "JWT",
                "iat": 100,
                "nbf": 100,
                "exp": 400,
                "aud": ["https://a", "https://b"],
                "jku": "https://ehr.example.org/jwks",
                "fingerprint": "k0123abcd:0123456789abcdef0123456789abcdef",
            },
            "hook": "patient-view",
            "hook_instance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhir_server": "https://fhir.example.org",
            "fhir_authorization": True,
            "scopes": ["patient/Patient.read"],
            "payload_bytes": 2048,
            "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "error": None},
            "peer": {"ip": "10.0.0.7"},
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "attributes": {"route": "/cds-services/pg", "b": [1, 2]},
        }
    )
    db = tmp_path / "audit.duckdb"
    with StoreWriter.open(db, serve=False, clock=clock) as w:
        run = w.begin_run(mode="embedded")
        w.write_batch(Batch(events=[IngestedEvent(event, "logs/a.jsonl:7")], run_id=run))
    (row,) = _rows(db, "SELECT * EXCLUDE (event_id), CAST(event_id AS VARCHAR) AS id FROM events")
    assert row == {
        "id": "0b0f5c1e-7c55-4b8a-9d2e-5c1f0e9a7b21",
        "time": datetime(2026, 11, 28, 9, 59, 58, 250000, tzinfo=UTC),
        "source_role": "service",
        "source_name": "cds-greeter",
        "source_instance": "pod-7",
        "action": "token.rejected",
        "outcome": "failure",
        "reason": "aud_mismatch",
        "detail": "aud is not this endpoint",
        "http_status": 401,
        "client_iss": "https://ehr.example.org",
        "client_tenant": "t9",
        "service_id": "pg",
        "service_url": "https://cds.example.com/cds-services/pg",
        "token_jti": "j-1",
        "token_kid": "k1",
        "token_alg": "ES384",
        "token_typ": "JWT",
        "token_iat": 100,
        "token_nbf": 100,
        "token_exp": 400,
        "token_aud": ["https://a", "https://b"],
        "token_jku": "https://ehr.example.org/jwks",
        "token_fingerprint": "k0123abcd:0123456789abcdef0123456789abcdef",
        "hook": "patient-view",
        "hook_instance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhir_server": "https://fhir.example.org",
        "fhir_authorization": True,
        "scopes": ["patient/Patient.read"],
        "payload_bytes": 2048,
        "tls_version": "TLSv1.3",
        "tls_cipher": "TLS_AES_256_GCM_SHA384",
        "tls_error": None,
        "peer_ip": "10.0.0.7",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "attributes_json": '{"b":[1,2],"route":"/cds-services/pg"}',
        "origin": "logs/a.jsonl:7",
        "ingested_at": T0,
        "run_id": run,
    }


def test_a_finding_is_stored_with_its_rank_facts_and_store_times(writer, tmp_path):
    finding = _finding(
        facts={"jti_reuses": 3, "window": ("a", "b")},
        safeguard="local-policy:jti-once",
        window_start=T0 - timedelta(minutes=5),
        window_end=T0,
        event_ids=("e1", "e2"),
    )
    writer.write_batch(Batch(findings=[finding]))
    (row,) = _rows(tmp_path / "audit.duckdb", "SELECT * FROM findings")
    assert row["severity"] == "high"
    assert row["severity_rank"] == Severity.HIGH.rank
    assert row["facts_json"] == '{"jti_reuses":3,"window":["a","b"]}'
    assert row["event_ids"] == ["e1", "e2"]
    assert row["safeguard"] == "local-policy:jti-once"
    assert row["window_start"] == T0 - timedelta(minutes=5)
    assert row["first_stored_at"] == row["last_stored_at"] == T0


def test_a_higher_revision_replaces_the_finding_and_keeps_first_stored_at(writer, clock, tmp_path):
    writer.write_batch(Batch(findings=[_finding(0)]))
    clock.now = T0 + timedelta(minutes=1)
    report = writer.write_batch(Batch(findings=[_finding(3)]))
    (row,) = _rows(tmp_path / "audit.duckdb", "SELECT * FROM findings")
    assert report.findings_written == 1
    assert (row["revision"], row["count"], row["evidence"]) == (3, 4, "revision 3")
    assert row["first_stored_at"] == T0
    assert row["last_stored_at"] == T0 + timedelta(minutes=1)


def test_an_older_or_equal_revision_changes_nothing(writer, clock, tmp_path):
    writer.write_batch(Batch(findings=[_finding(3)]))
    clock.now = T0 + timedelta(minutes=1)
    # A late replay of revision 1, and revision 3 again: the incident has moved on.
    report = writer.write_batch(Batch(findings=[_finding(1), _finding(3)]))
    (row,) = _rows(tmp_path / "audit.duckdb", "SELECT revision, last_stored_at FROM findings")
    assert report.findings_written == 0
    assert row == {"revision": 3, "last_stored_at": T0}


def test_the_highest_revision_wins_within_one_batch(writer, tmp_path):
    writer.write_batch(Batch(findings=[_finding(2), _finding(5), _finding(4)]))
    assert _rows(tmp_path / "audit.duckdb", "SELECT revision FROM findings") == [{"revision": 5}]


def test_the_same_batch_written_twice_adds_nothing(writer, clock, tmp_path):
    db = tmp_path / "audit.duckdb"
    run = writer.begin_run(mode="kafka")
    (batch, _) = next(support.batches({0: 0, 1: 0}, 60, 120))
    batch = Batch(
        events=batch.events,
        findings=batch.findings,
        dead_letters=batch.dead_letters,
        alerts=[AlertRecord(_finding(0).finding_id, 0, Severity.HIGH, T0, ("kafka",))],
        offsets=batch.offsets,
        run_id=run,
        counters=RunCounters(events_in=len(batch.events)),
    )
    first = writer.write_batch(batch)
    before = support.snapshot(db)
    clock.now = T0 + timedelta(hours=1)  # a later delivery must not even touch timestamps
    second = writer.write_batch(batch)
    after = support.snapshot(db)
    assert first.changed_anything
    assert not second.changed_anything
    for table, rows in before.items():
        assert after[table].equals(rows), table


def test_an_event_id_seen_twice_in_a_batch_is_stored_once(writer, tmp_path):
    event = support.record(0, 1).event
    assert event is not None
    report = writer.write_batch(Batch(events=[event, event.event, event]))
    assert report.events_inserted == 1
    assert _rows(tmp_path / "audit.duckdb", "SELECT count(*) AS n FROM events") == [{"n": 1}]


def _fast(event: AuthzEvent) -> EventJson:
    return EventJson(event.event_id.bytes, event.model_dump_json(exclude_none=True).encode())


@pytest.mark.parametrize("form", ["models", "json"])
def test_a_batch_meeting_stored_events_stores_the_rest_once(writer, tmp_path, form):
    # The same events read again under another name (or resent by a producer): the batch's
    # other rows, its offsets and its new events are stored; the stored events once.
    db = tmp_path / "audit.duckdb"
    run = writer.begin_run(mode="embedded", inputs=["a.jsonl", "copy.jsonl"])
    events = [e for e in (support.record(0, n).event for n in range(1, 9)) if e is not None]
    old, new = events[:4], events[4:]

    def batch(items: list[IngestedEvent], source: str, **rows: object) -> Batch:
        plain = [item.event for item in items]
        return Batch(
            events=items if form == "models" else [],
            event_json=[_fast(e) for e in plain] if form == "json" else [],
            offsets={(source, 0): 100},
            run_id=run,
            counters=RunCounters(events_in=len(items)),
            **rows,  # type: ignore[arg-type]
        )

    assert writer.write_batch(batch(old, "a.jsonl")).events_inserted == len(old)
    report = writer.write_batch(batch(old[1:3] + new, "copy.jsonl", findings=[_finding(0)]))
    assert report.events_inserted == len(new)
    assert report.findings_written == 1
    assert report.offsets_advanced == 1
    stored = _rows(db, "SELECT event_id, count(*) AS n FROM events GROUP BY event_id")
    assert sorted(str(r["event_id"]) for r in stored) == sorted(
        str(e.event.event_id) for e in events
    )
    assert {r["n"] for r in stored} == {1}
    assert writer.resume_offsets() == {("a.jsonl", 0): 100, ("copy.jsonl", 0): 100}
    assert _rows(db, "SELECT events_in FROM runs") == [{"events_in": len(old) + 6}]


def test_events_are_appended_and_a_conflict_alone_takes_the_skipping_statement(
    writer, tmp_path, monkeypatch
):
    # The skipping statement is made to fail: new events never reach it; a batch that meets
    # a stored id does, and fails whole.
    monkeypatch.setattr(statements, "INSERT_EVENTS_JSON", "SELECT error('skipping statement')")
    events = [e for e in (support.record(0, n).event for n in range(1, 5)) if e is not None]
    first = writer.write_batch(Batch(event_json=[_fast(e.event) for e in events[:2]]))
    second = writer.write_batch(Batch(event_json=[_fast(e.event) for e in events[2:]]))
    assert (first.events_inserted, second.events_inserted) == (2, 2)
    with pytest.raises(StoreWriteError, match="at events"):
        writer.write_batch(
            Batch(event_json=[_fast(e.event) for e in events[1:3]], offsets={("t", 0): 5})
        )
    assert writer.resume_offsets() == {}
    assert _rows(tmp_path / "audit.duckdb", "SELECT count(*) AS n FROM events") == [{"n": 4}]


def test_a_stored_offset_never_moves_back(writer):
    writer.write_batch(Batch(offsets={("cds.authz", 0): 100, ("cds.authz", 1): 7}))
    # A redelivered batch from before the last commit carries older offsets.
    report = writer.write_batch(Batch(offsets={("cds.authz", 0): 40, ("cds.authz", 1): 9}))
    assert report.offsets_advanced == 1
    assert writer.resume_offsets() == {("cds.authz", 0): 100, ("cds.authz", 1): 9}


def test_a_failing_batch_commits_none_of_its_rows(writer, tmp_path):
    event = support.record(0, 1).event
    assert event is not None
    batch = Batch(
        events=[event],
        offsets={("cds.authz", 0): 2},
        run_id="no-such-run",
        counters=RunCounters(events_in=1),
    )
    with pytest.raises(StoreWriteError, match="not in the store"):
        writer.write_batch(batch)
    assert writer.resume_offsets() == {}
    assert _rows(tmp_path / "audit.duckdb", "SELECT count(*) AS n FROM events") == [{"n": 0}]


def test_a_redelivered_batch_is_not_counted_twice_in_its_run(writer, tmp_path):
    run = writer.begin_run(mode="kafka", inputs=["cds.authz"])
    batch = Batch(offsets={("cds.authz", 0): 10}, run_id=run, counters=RunCounters(events_in=10))
    writer.write_batch(batch)
    writer.write_batch(batch)
    writer.write_batch(
        Batch(offsets={("cds.authz", 0): 15}, run_id=run, counters=RunCounters(events_in=5))
    )
    rows = _rows(tmp_path / "audit.duckdb", "SELECT events_in FROM runs")
    assert rows == [{"events_in": 15}]


def test_a_run_is_recorded_from_begin_to_end(writer, clock, tmp_path):
    run = writer.begin_run(mode="embedded", inputs=["a.jsonl"], fingerprint_key_id="k1234")
    clock.now = T0 + timedelta(minutes=2)
    writer.end_run(run, RunStatus.COMPLETED, RunCounters(events_in=5, logs_in=7, findings_out=2))
    (row,) = _rows(tmp_path / "audit.duckdb", "SELECT * FROM runs")
    assert row["status"] == "completed"
    assert (row["started_at"], row["ended_at"]) == (T0, T0 + timedelta(minutes=2))
    assert (row["events_in"], row["logs_in"], row["findings_out"]) == (5, 7, 2)
    assert row["inputs"] == ["a.jsonl"]
    assert row["fingerprint_key_id"] == "k1234"


def test_ending_an_unknown_run_is_an_error(writer):
    with pytest.raises(StoreError, match="no run"):
        writer.end_run("nope", "completed")


def test_a_run_left_running_by_a_crash_is_marked_interrupted_on_reopen(tmp_path):
    db = tmp_path / "audit.duckdb"
    writer = StoreWriter.open(db, serve=False)
    run = writer.begin_run(mode="kafka")
    writer.close()  # no end_run: as if the process had died
    StoreWriter.open(db, serve=False).close()
    assert _rows(db, "SELECT run_id, status FROM runs") == [
        {"run_id": run, "status": "interrupted"}
    ]


def test_dead_letters_and_alerts_are_stored_once_per_position_and_revision(writer, tmp_path):
    dead = DeadLetter(
        source="logs/a.jsonl",
        reason=DeadLetterReason.INVALID_UTF8,
        size_bytes=12,
        received_at=T0,
        line=3,
    )
    alert = AlertRecord("f" * 32, 1, Severity.CRITICAL, T0, ("kafka", "webhook"))
    report = writer.write_batch(Batch(dead_letters=[dead, dead], alerts=[alert, alert]))
    assert (report.dead_letters_inserted, report.alerts_inserted) == (1, 1)
    (row,) = _rows(tmp_path / "audit.duckdb", "SELECT * FROM alerts")
    assert row["alert_id"] == "f" * 32 + ":1"
    assert row["channels"] == ["kafka", "webhook"]


@pytest.mark.parametrize(
    ("position", "message"),
    [
        # The id derives from the position: without one, two bad records would collide.
        ({}, "needs a position"),
        ({"kafka_partition": 0}, "needs a position"),
    ],
)
def test_a_dead_letter_without_a_position_is_refused(position, message):
    with pytest.raises(ValueError, match=message):
        DeadLetter("t", DeadLetterReason.OVERSIZED, 1, T0, **position)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        # Secret-looking names lose their values, however they are spelled or nested.
        (
            {"kafka": {"sasl_plain_password": "p4ss-w0rd"}},
            {"kafka": {"sasl_plain_password": "[removed]"}},
        ),
        ({"webhookToken": "abc"}, {"webhookToken": "[removed]"}),
        ({"api_key": "abc", "keyFile": "/etc/k"}, {"api_key": "[removed]", "keyFile": "[removed]"}),
        # Credentials inside URLs go, the rest of the URL stays.
        (
            {"webhook": "https://user:pw@hooks.example.org/x?access_token=abc&team=sec"},
            {"webhook": "https://hooks.example.org/x?access_token=[removed]&team=sec"},
        ),
        # A token pasted where no one expected one is still caught by its shape.
        ({"note": "Bearer abc.def"}, {"note": "[removed]"}),
        ({"note": ["eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.sig"]}, {"note": ["[removed]"]}),
        # So is PHI pasted into an example value: an SSN, an MRN-like long number.
        (
            {"example": "078-05-1120", "mrn": "MRN 123456789"},
            {"example": "[removed]", "mrn": "[removed]"},
        ),
        # Ordinary settings are kept as they are.
        (
            {"topics": ["cds.authz", "cds.logs"], "partitions": 6, "tls": True, "empty_key": None},
            {"topics": ["cds.authz", "cds.logs"], "partitions": 6, "tls": True, "empty_key": None},
        ),
    ],
)
def test_run_configuration_is_stored_without_secrets(config, kept):
    assert without_secrets(config) == kept


def test_a_second_writer_on_the_same_file_is_refused(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    holder = subprocess.Popen(  # noqa: S603 - our own test script, run with this interpreter
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
                " sys.stdin.read()"
            ),
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError, match=f"locked by process {holder.pid}"):
            StoreWriter.open(db, serve=False, lock_timeout=0.3)
    finally:
        holder.communicate("")


def test_a_second_writer_in_the_same_process_is_refused(writer):
    # DuckDB itself would allow it (one database instance per process); the store does not.
    with pytest.raises(StoreBusyError, match="already has a writer in this process"):
        StoreWriter.open(writer.path, serve=False)


def test_a_closed_writer_refuses_to_write(tmp_path):
    writer = StoreWriter.open(tmp_path / "audit.duckdb", serve=False)
    writer.close()
    with pytest.raises(StoreError, match="closed"):
        writer.write_batch(Batch())


def test_events_given_without_an_origin_are_stored_with_none(writer, tmp_path):
    event = AuthzEvent.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "time": "2026-11-28T10:00:00Z",
            "source": {"role": "client", "name": "ehr"},
            "action": "token.issued",
            "outcome": "success",
        }
    )
    writer.write_batch(Batch(events=[event]))
    rows = _rows(tmp_path / "audit.duckdb", "SELECT origin, token_aud, scopes FROM events")
    assert rows == [{"origin": None, "token_aud": None, "scopes": []}]


def _settings_value(db, name):
    rows = _rows(db, f"SELECT value FROM duckdb_settings() WHERE name = '{name}'")  # noqa: S608
    return rows[0]["value"]


@pytest.mark.parametrize(
    ("kwargs", "threshold"),
    [
        ({}, "256.0 MiB"),  # DEFAULT_CHECKPOINT_MIB, not DuckDB's 16 MiB
        ({"checkpoint_mib": 7}, "7.0 MiB"),
        ({"checkpoint_mib": 7, "duckdb_config": {"checkpoint_threshold": "9MiB"}}, "9.0 MiB"),
    ],
)
def test_the_writer_sets_its_checkpoint_threshold(tmp_path, kwargs, threshold):
    db = tmp_path / "audit.duckdb"
    with StoreWriter.open(db, **kwargs):
        # Through the writer's own connection (open_store finds the live writer).
        assert _settings_value(db, "checkpoint_threshold") == threshold


def test_commits_stay_in_the_log_until_it_reaches_the_checkpoint_threshold(tmp_path):
    wal_size = {}
    for mib in (256, 1):
        db = tmp_path / f"audit-{mib}.duckdb"
        wal = db.with_name(db.name + ".wal")
        with StoreWriter.open(db, serve=False, checkpoint_mib=mib) as writer:
            # ~3,700 events: about 1.8 MB of log, over 1 MiB and far under 256 MiB.
            for batch, _size in support.batches({0: 0, 1: 0}, 2_000, 4_000):
                writer.write_batch(batch)
            wal_size[mib] = wal.stat().st_size if wal.exists() else 0
        # A clean close folds the log into the file, whatever the threshold.
        assert not wal.exists() or wal.stat().st_size == 0
        assert _rows(db, "SELECT count(*) AS n FROM events") == [
            {"n": len(support.expected(2_000)["event_ids"])}  # type: ignore[arg-type]
        ]
    assert wal_size[256] > 1 << 20  # committed, still in the log: no checkpoint per commit
    assert wal_size[1] < wal_size[256] // 4  # past 1 MiB, DuckDB checkpointed

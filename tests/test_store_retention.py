"""Retention: prune by horizon, keep the compliance record, archive to Parquet exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
import store_support as support

from auditor import Finding, finding_id
from auditor.vocabulary import DeadLetterReason, Severity
from pipelines.store import (
    AlertRecord,
    Batch,
    DeadLetter,
    Horizon,
    RetentionPolicy,
    StoreWriter,
    open_store,
)
from pipelines.store.retention import STAGING

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICY = RetentionPolicy()  # 400d events, 90d evidence, 6y findings


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _finding(name: str, observed: datetime) -> Finding:
    return Finding(
        finding_id=finding_id("leaked_token", "jwt", name),
        detector="leaked_token",
        rule="jwt",
        kind="jwt",
        severity="critical",
        observed_at=observed,
        title=f"JWT in a log line ({name})",
        evidence=f"Authorization: Bearer [REDACTED:jwt] ({name})",
    )


FID = {name: finding_id("leaked_token", "jwt", name) for name in ("A", "B", "C", "D")}


def fill(db, now=NOW):
    """A store with rows on both sides of every horizon.

    Finding A: observed 8 years ago, never looked at since: past the compliance period.
    Finding B: observed 7 years ago but reviewed last year: still in effect, kept.
    Finding C: 100 days old: kept, but past the evidence horizon.
    Finding D: 10 days old: kept whole.
    """
    clock = Clock()
    years = lambda n: timedelta(days=365 * n + 2)  # noqa: E731 - a unit, read as one
    with StoreWriter.open(db, serve=False, clock=clock) as writer:
        clock.now = now - years(7)
        old_run = writer.begin_run(mode="embedded", inputs=["old.jsonl"])
        writer.end_run(old_run, "completed")
        for name, age in (
            ("A", years(8)),
            ("B", years(7)),
            ("C", timedelta(100)),
            ("D", timedelta(10)),
        ):
            clock.now = now - age
            writer.write_batch(
                Batch(
                    findings=[_finding(name, now - age)],
                    alerts=[AlertRecord(FID[name], 0, Severity.CRITICAL, now - age)],
                )
            )
        clock.now = now
        events = [support.record(0, o) for o in (1, 2, 3, 4, 5)]
        writer.write_batch(Batch(events=[r.event for r in events if r.event is not None]))
        # Three events from 500 days ago, two from 10 days ago.
        old = [str(support.event_id(0, o)) for o in (1, 2, 3)]
        writer._conn.execute(
            "UPDATE events SET time = CASE WHEN event_id IN (?, ?, ?) THEN ? ELSE ? END",
            [*old, now - timedelta(500), now - timedelta(10)],
        )
        for line, age in ((1, 500), (2, 1)):
            writer.write_batch(
                Batch(
                    dead_letters=[
                        DeadLetter(
                            "a.jsonl",
                            DeadLetterReason.OVERSIZED,
                            9,
                            now - timedelta(age),
                            line=line,
                        )
                    ]
                )
            )
    with open_store(db, write=True) as store:
        store.append_reviews(
            [
                {
                    "finding_id": FID["A"],
                    "action": "resolve",
                    "actor": "x",
                    "reviewed_at": now - years(7),
                },
                {
                    "finding_id": FID["B"],
                    "action": "acknowledge",
                    "actor": "x",
                    "reviewed_at": now - years(7),
                },
                {
                    "finding_id": FID["B"],
                    "action": "reopen",
                    "actor": "y",
                    "reviewed_at": now - years(1),
                },
            ]
        )


def _scalar(db, sql, params=()):
    with open_store(db) as store:
        return store.query(sql, params).to_pylist()[0]["v"]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "audit.duckdb"
    fill(path)
    return path


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("400d", 400),
        ("13w", 91),
        # A year is a calendar year: 2026-11-28 minus 6y is 2020-11-28, 2191 days (2 leap days).
        ("6y", 2191),
    ],
)
def test_a_horizon_counts_back_from_now(text, days):
    assert NOW - Horizon.parse(text).before(NOW) == timedelta(days=days)


def test_a_year_back_from_february_29_lands_on_the_28th():
    # The earlier of the two candidate days: a year of retention is never a day short.
    leap = datetime(2028, 2, 29, tzinfo=UTC)
    assert Horizon.parse("1y").before(leap) == datetime(2027, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize("text", ["0d", "6", "6m", "-1d", "1.5y", "d", ""])
def test_a_malformed_horizon_is_refused(text):
    with pytest.raises(ValueError, match="not a horizon"):
        Horizon.parse(text)


def test_a_dry_run_counts_what_a_real_run_then_does_and_changes_nothing(db):
    before = support.snapshot(db)
    with open_store(db, write=True) as store:
        dry = store.apply_retention(POLICY, now=NOW, dry_run=True)
        after_dry = support.snapshot(db)
        real = store.apply_retention(POLICY, now=NOW)
    for table, rows in before.items():
        assert after_dry[table].equals(rows), table
    assert dry.rows == real.rows
    assert dry.rows == {
        "reviews": 1,
        "alerts": 1,
        "findings": 1,
        "evidence": 2,
        "events": 3,
        "dead_letters": 1,
        "runs": 1,
    }
    assert dry.retention_id is None
    assert real.retention_id is not None


def test_retention_keeps_the_compliance_record_and_drops_the_rest(db):
    with open_store(db, write=True) as store:
        store.apply_retention(POLICY, now=NOW)
        findings = store.query(
            "SELECT finding_id, evidence FROM findings ORDER BY observed_at"
        ).to_pylist()
        reviews = store.query("SELECT finding_id FROM reviews").column("finding_id").to_pylist()
        alerts = store.query("SELECT finding_id FROM alerts").column("finding_id").to_pylist()
    assert findings == [
        {"finding_id": FID["B"], "evidence": None},  # reviewed a year ago: still in effect
        {"finding_id": FID["C"], "evidence": None},  # kept, evidence past its 90 days
        {"finding_id": FID["D"], "evidence": "Authorization: Bearer [REDACTED:jwt] (D)"},
    ]
    assert sorted(reviews) == [FID["B"], FID["B"]]
    assert sorted(alerts) == sorted([FID["B"], FID["C"], FID["D"]])
    assert (
        _scalar(db, "SELECT count(*) AS v FROM events WHERE time < ?", [NOW - timedelta(400)]) == 0
    )
    assert _scalar(db, "SELECT count(*) AS v FROM events") == 2
    assert _scalar(db, "SELECT count(*) AS v FROM dead_letters") == 1
    assert _scalar(db, "SELECT count(*) AS v FROM runs") == 0


def test_every_real_run_is_recorded_in_the_ledger_and_a_dry_run_is_not(db):
    with open_store(db, write=True) as store:
        store.apply_retention(POLICY, now=NOW, dry_run=True)
        first = store.apply_retention(POLICY, now=NOW)
        second = store.apply_retention(POLICY, now=NOW)
        ledger = store.query(
            "SELECT retention_id, events_deleted, evidence_blanked FROM retention_runs "
            "ORDER BY events_deleted DESC"
        ).to_pylist()
    assert ledger == [
        {"retention_id": first.retention_id, "events_deleted": 3, "evidence_blanked": 2},
        {"retention_id": second.retention_id, "events_deleted": 0, "evidence_blanked": 0},
    ]


def test_pruned_rows_are_archived_by_day_and_duckdb_reads_them_back(db, tmp_path):
    archive = tmp_path / "archive"
    with open_store(db) as store:
        doomed = store.query(
            "SELECT CAST(event_id AS VARCHAR) AS id, CAST(time AS DATE) AS day FROM events "
            "WHERE time < ? ORDER BY id",
            [NOW - timedelta(400)],
        ).to_pylist()
    with open_store(db, write=True) as store:
        report = store.apply_retention(POLICY, now=NOW, archive=archive)
        again = store.apply_retention(POLICY, now=NOW, archive=archive)
    assert report.archived_files >= 5  # events, dead letters, findings, reviews, alerts, runs
    assert again.archived_files == 0
    assert (archive / "events" / f"day={doomed[0]['day'].isoformat()}").is_dir()
    assert not (archive / STAGING).exists()

    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    archived = conn.execute(
        "SELECT CAST(event_id AS VARCHAR) AS id, day "
        "FROM read_parquet(?, hive_partitioning = true) ORDER BY id",
        [str(archive / "events" / "*" / "*.parquet")],
    ).fetchall()
    assert archived == [(row["id"], row["day"]) for row in doomed]
    for table, rows in (
        ("findings", 1),
        ("reviews", 1),
        ("alerts", 1),
        ("dead_letters", 1),
        ("runs", 1),
    ):
        (count,) = conn.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = true, union_by_name = true)",
            [str(archive / table / "*" / "*.parquet")],
        ).fetchone()
        assert count == rows, table
    conn.close()


def test_a_crash_between_commit_and_publishing_is_repaired_by_the_next_run(db, tmp_path):
    archive = tmp_path / "archive"
    with open_store(db, write=True) as store:
        report = store.apply_retention(POLICY, now=NOW, archive=archive)
    # Put the committed run's files back in staging, as if the process had died after
    # COMMIT and before moving them; and leave a staging folder of a run that never
    # committed (its rows are still in the database).
    staged = archive / STAGING / str(report.retention_id)
    for path in sorted(archive.rglob("*.parquet")):
        target = staged / path.relative_to(archive)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
    rolled_back = archive / STAGING / ("f" * 32) / "events" / "day=2025-01-01"
    rolled_back.mkdir(parents=True)
    (rolled_back / ("f" * 32 + "-0.parquet")).write_bytes(b"PAR1")

    with open_store(db, write=True) as store:
        store.apply_retention(POLICY, now=NOW, archive=archive)
    published = sorted(p.name for p in archive.rglob("*.parquet"))
    assert len(published) == report.archived_files
    assert all(name.startswith(str(report.retention_id)) for name in published)
    assert not (archive / STAGING).exists()


def test_retention_runs_through_the_writer_while_it_writes(tmp_path):
    db = tmp_path / "audit.duckdb"
    fill(db)
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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("committed"):
                break
        with open_store(db, write=True) as store:
            assert store.status().route == "writer"
            report = store.apply_retention(POLICY, now=NOW, archive=tmp_path / "archive")
            (row,) = store.query(
                "SELECT count(*) AS n FROM findings WHERE finding_id = ?", [FID["A"]]
            ).to_pylist()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert report.rows["findings"] == 1
    assert report.rows["events"] == 3  # the stream's own events are recent: kept
    assert row["n"] == 0
    assert report.archived_files >= 5

"""Exactly-once into DuckDB: a writer process SIGKILLed anywhere loses and doubles nothing.

The writer runs in a real subprocess (tests/store_support.py) and is killed with SIGKILL —
no cleanup, no checkpoint, a WAL left behind — between batches and inside a batch's
transaction. Each restart resumes from the offsets stored with the rows; at the end every
event, finding and dead letter of the stream is in the store exactly once.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import store_support as support

from pipelines.store import open_store

pytestmark = pytest.mark.slow


def _start(db: Path, *extra: str, per_partition: int, batch: int = 60) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own test script, run with this interpreter
        [
            sys.executable,
            str(support.SCRIPT),
            "--db",
            str(db),
            "--per-partition",
            str(per_partition),
            "--batch",
            str(batch),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _wait_for(proc: subprocess.Popen[str], prefix: str) -> bool:
    """Read the child's lines until one starts with ``prefix``; False when it exits first."""
    assert proc.stdout is not None
    return any(line.startswith(prefix) for line in proc.stdout)


def _assert_exactly_once(db: Path, per_partition: int) -> None:
    want = support.expected(per_partition)
    with open_store(db) as store:
        ids = store.query("SELECT CAST(event_id AS VARCHAR) AS id FROM events").column("id")
        findings = store.query("SELECT count(*) AS n FROM findings").column("n")[0].as_py()
        dead = store.query("SELECT count(*) AS n FROM dead_letters").column("n")[0].as_py()
        revisions = store.query(
            "SELECT DISTINCT revision FROM findings WHERE detector = 'replay_burst'"
        ).column("revision")
        offsets = store.query("SELECT source, part, next_offset FROM ingest_offsets").to_pylist()
    assert len(ids) == len(want["event_ids"])  # type: ignore[arg-type]
    assert set(ids.to_pylist()) == want["event_ids"]
    assert findings == want["findings"]
    assert dead == want["dead_letters"]
    assert revisions.to_pylist() == [want["incident_revision"]]
    assert {(o["source"], o["part"]): o["next_offset"] for o in offsets} == want["offsets"]


def test_sigkill_at_random_moments_leaves_every_row_exactly_once(tmp_path):
    db = tmp_path / "audit.duckdb"
    per_partition = 400
    rng = random.Random(20261128)
    kills = 0
    for _attempt in range(40):
        with _start(db, per_partition=per_partition, batch=50) as proc:
            assert _wait_for(proc, "ready")
            # Let a few batches commit, then kill at a random moment: between two batches
            # or in the middle of one (a batch takes a few milliseconds to write).
            for _ in range(rng.randint(1, 3)):
                if not _wait_for(proc, "committed"):
                    break
            time.sleep(rng.uniform(0, 0.015))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        if proc.returncode == 0:
            break
    else:
        pytest.fail("the writer never got to the end of the stream")
    assert kills >= 5, "the test should kill the writer several times before it finishes"
    _assert_exactly_once(db, per_partition)


def test_a_kill_inside_the_transaction_stores_nothing_of_that_batch(tmp_path):
    db = tmp_path / "audit.duckdb"
    per_partition = 300
    # Dies after inserting events and findings of its third batch, before the offsets.
    with _start(db, "--kill-inside", "2", per_partition=per_partition, batch=60) as proc:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # The two committed batches are in the write-ahead log only (the writer checkpoints
    # rarely): what follows reads them back from it.
    assert db.with_name(db.name + ".wal").stat().st_size > 0
    with open_store(db) as store:
        events = store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py()
        offsets = store.query("SELECT sum(next_offset) AS n FROM ingest_offsets")
    # Two batches of 30 records per partition committed; the third left no trace.
    assert offsets.column("n")[0].as_py() == 2 * 60
    assert events == sum(1 for p in support.PARTITIONS for o in range(60) if o % 13)

    with _start(db, per_partition=per_partition, batch=200) as resumed:
        assert resumed.wait(timeout=60) == 0
    _assert_exactly_once(db, per_partition)


def test_redelivering_the_whole_stream_adds_nothing(tmp_path):
    db = tmp_path / "audit.duckdb"
    per_partition = 200
    with _start(db, per_partition=per_partition, batch=100) as first:
        assert first.wait(timeout=60) == 0
    before = support.snapshot(db)

    # At-least-once delivery from Kafka: the same records arrive again from offset 0.
    with _start(db, "--from-zero", per_partition=per_partition, batch=100) as again:
        assert again.wait(timeout=60) == 0

    after = support.snapshot(db)
    for table in ("events", "findings", "dead_letters", "ingest_offsets"):
        assert after[table].equals(before[table]), table
    _assert_exactly_once(db, per_partition)

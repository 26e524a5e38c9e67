"""The Kafka store stage commits the detect stage's outputs promptly, whatever the backlog.

The store reads the events in one consumer and the findings, dead letters and alerts in
another, polls the outputs first every round, and commits a round's rows with the offsets
of exactly the partitions they came from, in slices of ``store_batch_records``. These tests build
an authz backlog before the store starts, then produce a finding after it has begun, and
look at what DuckDB holds: the finding is committed while events are still waiting, and a
store killed between its transactions resumes every partition exactly where it stood.
No timing thresholds: the backlog is many store rounds long, the finding needs one.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from authz_events import event
from pipeline_support import count, kafka_env, running_pipeline, stored

from auditor.models import Finding, finding_id
from auditor.vocabulary import DetectorName, Severity
from pipelines.kafka import open_producer
from pipelines.settings import AuditorSettings, PipelineSettings

AUDITOR = [sys.executable, "-m", "auditor.cli.main"]
BACKLOG = 12_000
"""Events waiting before the store starts: at ``ROUND`` events a round, 240 rounds."""
ROUND = 50
SMALL = {"store_batch_records": ROUND, "store_wait_ms": 100, "alerts": {"log": False}}


def _settings(settings: AuditorSettings) -> AuditorSettings:
    return settings.model_copy(update={"pipeline": PipelineSettings.model_validate(SMALL)})


def _backlog(settings: AuditorSettings, events: int) -> None:
    """``events`` valid authz events (one template, fresh ids) spread over the partitions."""
    template = event(0).model_dump_json(exclude_none=True)
    marker = template.split('"event_id":"')[1].split('"')[0]
    producer = open_producer(settings, linger_ms=20)
    partitions = settings.topics.authz.partitions
    try:
        for n in range(events):
            value = template.replace(marker, str(uuid.uuid4())).encode()
            producer.send(settings.topics.authz.name, value=value, partition=n % partitions)
        producer.flush()
    finally:
        producer.close()


def _finding(n: int = 0) -> Finding:
    origin = f"test/0@{n}"
    return Finding(
        finding_id=finding_id("policy", "alg_none_or_hmac", origin, "$.token.alg"),
        detector=DetectorName.POLICY,
        rule="alg_none_or_hmac",
        kind="policy_violation",
        severity=Severity.HIGH,
        observed_at=event(0).time,
        title="A token signed with alg none was accepted",
        location="$.token.alg",
        origin=origin,
    )


def _produce_finding(settings: AuditorSettings, finding: Finding) -> None:
    producer = open_producer(settings)
    try:
        producer.send(
            settings.topics.findings.name,
            key=finding.finding_id.encode(),
            value=finding.model_dump_json().encode(),
        )
        producer.flush()
    finally:
        producer.close()


def _findings(db: Path) -> list[str]:
    return [r["finding_id"] for r in stored(db, "SELECT finding_id FROM findings")]


def _wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001, S110 - the store may not be open yet
            pass
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the store")


def test_a_finding_is_committed_while_an_event_backlog_is_still_being_stored(
    kafka_settings, tmp_path
):
    settings = _settings(kafka_settings)
    _backlog(settings, BACKLOG)
    db = tmp_path / "audit.duckdb"
    finding = _finding()
    with running_pipeline(settings, db, stage="store"):
        _wait_until(lambda: count(db, "events") > 0)
        _produce_finding(settings, finding)
        _wait_until(lambda: _findings(db) == [finding.finding_id])
        stored_then = count(db, "events")
        _wait_until(lambda: count(db, "events") == BACKLOG)
    # In one consumer the finding waited behind every event fetched before it.
    assert stored_then < BACKLOG


def test_a_store_killed_between_its_transactions_resumes_each_partition_exactly_once(
    kafka_settings, tmp_path
):
    settings = _settings(kafka_settings)
    _backlog(settings, BACKLOG)
    db = tmp_path / "audit.duckdb"
    env = kafka_env(settings, store_batch_records=ROUND, store_wait_ms=100)
    command = [*AUDITOR, "run", "--kafka", "--stage", "store", "--db", str(db), "--quiet"]
    first, second = _finding(1), _finding(2)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603 - our own command
    try:
        _wait_until(lambda: count(db, "events") > 0)
        _produce_finding(settings, first)
        _wait_until(lambda: first.finding_id in _findings(db))
    finally:
        # The finding's transaction is committed and the events' are not all: a kill now
        # leaves the partitions of the two consumers at different points.
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert count(db, "events") < BACKLOG
    _produce_finding(settings, first)  # at least once upstream: a duplicate
    _produce_finding(settings, second)
    final = subprocess.run(  # noqa: S603 - our own command
        [*command, "--exit-when-idle", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    ids = [r["id"] for r in stored(db, "SELECT CAST(event_id AS VARCHAR) AS id FROM events")]
    assert len(ids) == len(set(ids)) == BACKLOG
    assert sorted(_findings(db)) == sorted([first.finding_id, second.finding_id])
    assert _offsets(db, settings.topics.authz.name) == BACKLOG
    assert _offsets(db, settings.topics.findings.name) == 3


def _offsets(db: Path, topic: str) -> int:
    rows: list[dict[str, Any]] = stored(
        db,
        f"SELECT sum(next_offset) AS n FROM ingest_offsets WHERE source = '{topic}'",  # noqa: S608 - a test's own topic name
    )
    return int(rows[0]["n"] or 0)

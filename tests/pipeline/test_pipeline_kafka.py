"""``auditor run --kafka`` against the real broker: end to end, scaled out, killed, cut off.

Every test here talks to the real Kafka broker of ``tests/fixtures/kafka.py`` (marked
``kafka`` automatically) and stays under a minute.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from authz_events import event
from pipeline_support import (
    POISON,
    Canaries,
    call_events,
    count,
    kafka_env,
    log_line,
    planted_lines,
    running_pipeline,
    stored,
)

from auditor.models import AuthzEvent
from detectors import stream_detectors
from pipelines.emit import KafkaEmitter
from pipelines.kafka import open_producer
from pipelines.runtime import latest_revisions, run_stream
from pipelines.settings import AuditorSettings, PipelineSettings
from pipelines.store import assert_no_canaries
from pipelines.topology import run_kafka
from tests.fixtures.kafka import read_topic

AUDITOR = [sys.executable, "-m", "auditor.cli.main"]
FAST = {
    "session_timeout_ms": 6000,  # the broker's group.min.session.timeout.ms
    "checkpoint_interval_s": 1.0,
    "idle_advance_s": 1.0,
    "poll_ms": 50,
    "store_wait_ms": 100,
    "batch_records": 200,
}


def _settings(settings: AuditorSettings, **pipeline: Any) -> AuditorSettings:
    merged = {**FAST, "alerts": {"log": False}, **pipeline}
    return settings.model_copy(update={"pipeline": PipelineSettings.model_validate(merged)})


def _produce(
    settings: AuditorSettings, events: Sequence[AuthzEvent], logs: Sequence[bytes] = ()
) -> None:
    """Send events keyed by their client, one client's events on one partition.

    The partition is chosen from the client's number rather than by hashing its ``iss``,
    so that every partition has clients however few there are.
    """
    producer = open_producer(settings)
    partitions = settings.topics.authz.partitions
    try:
        for e in events:
            iss = e.client_iss or ""
            number = int("".join(c for c in iss if c.isdigit()) or 0)
            producer.send(
                settings.topics.authz.name,
                key=iss.encode(),
                value=e.model_dump_json(exclude_none=True).encode(),
                partition=number % partitions,
            )
        for line in logs:
            producer.send(settings.topics.logs.name, value=line)
        producer.flush()
    finally:
        producer.close()


def _expected_ids(events: Sequence[AuthzEvent]) -> set[str]:
    return {f.finding_id for f in latest_revisions(run_stream(stream_detectors(), events))}


_STREAM_FINDINGS = (
    "SELECT finding_id FROM findings "
    "WHERE detector IN ('replay_burst', 'validation_anomaly', 'policy')"
)


def _finding_ids(db: Path) -> set[str]:
    return {r["finding_id"] for r in stored(db, _STREAM_FINDINGS)}


def _event_ids(db: Path) -> list[str]:
    return [r["id"] for r in stored(db, "SELECT CAST(event_id AS VARCHAR) AS id FROM events")]


def _wait_until(
    condition: Callable[[], bool], timeout: float = 40.0, context: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001, S110 - the store may be between runs
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for the pipeline\n{context()}")


def test_events_logs_and_poison_flow_through_to_the_store(kafka_settings, tmp_path):
    settings = _settings(kafka_settings)
    events = call_events(120)
    leak = log_line("auth", authorization="Bearer abcdefghijklmnopqrstuvwxyz012345")
    _produce(settings, events, [leak, b"plain text log line"])
    producer = open_producer(settings)
    for raw in (POISON["malformed_json"], POISON["schema_violation"], POISON["invalid_utf8"]):
        producer.send(settings.topics.authz.name, value=raw, partition=0)
    producer.send(settings.topics.logs.name, value=POISON["too_deep"], partition=0)
    producer.flush()
    producer.close()
    db = tmp_path / "audit.duckdb"
    summary = run_kafka(settings, db, idle_exit_s=3.0)
    assert sorted(_event_ids(db)) == sorted(str(e.event_id) for e in events)
    assert _finding_ids(db) == _expected_ids(events)
    assert stored(db, "SELECT count(*) AS n FROM findings WHERE detector = 'leaked_token'") == [
        {"n": 1}
    ]
    dead = stored(
        db, "SELECT reason, source, kafka_partition, kafka_offset FROM dead_letters ORDER BY reason"
    )
    assert [(d["reason"], d["source"]) for d in dead] == [
        ("invalid_utf8", settings.topics.authz.name),
        ("malformed_json", settings.topics.authz.name),
        ("schema_violation", settings.topics.authz.name),
        ("too_deep", settings.topics.logs.name),
    ]
    assert all(d["kafka_offset"] is not None for d in dead)
    assert summary.counters.logs_in == 2


def test_alerts_go_to_the_alerts_topic_once_per_incident_revision_and_are_stored(
    kafka_settings, tmp_path
):
    settings = _settings(kafka_settings, alerts={"log": False, "min_severity": "high"})
    events = call_events(200)
    _produce(settings, events)
    db = tmp_path / "audit.duckdb"
    run_kafka(settings, db, idle_exit_s=3.0, content=())
    records = read_topic(settings, settings.topics.alerts.name, expected=1, timeout=10)
    keys = [key.decode() for key, *_ in records if key]
    assert keys, "no alert was produced"
    assert len(keys) == len(set(keys))  # one per incident revision
    bodies = [orjson.loads(value) for _key, value, *_ in records]
    assert {b["severity"] for b in bodies} <= {"high", "critical"}
    assert all("evidence" not in b for b in bodies)
    stored_ids = {r["alert_id"] for r in stored(db, "SELECT alert_id FROM alerts")}
    assert stored_ids == set(keys)


def test_two_detect_processes_share_the_partitions_and_store_everything_once(
    kafka_settings, tmp_path
):
    settings = _settings(kafka_settings)
    events = call_events(300, clients=6)
    partitions = settings.topics.authz.partitions + settings.topics.logs.partitions
    other = subprocess.Popen(  # noqa: S603 - our own command
        [*AUDITOR, "run", "--kafka", "--stage", "detect"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kafka_env(settings, **FAST),
    )
    logged: list[str] = []
    assert other.stderr is not None
    reader = threading.Thread(target=logged.extend, args=(other.stderr,))
    reader.start()
    db = tmp_path / "audit.duckdb"
    try:
        with running_pipeline(settings, db, content=()):
            # Both members are in the group once the other process holds only a share.
            # A join waits for every member to rejoin: slow on a loaded machine.
            _wait_until(
                lambda: any(_assigned(line, partitions) for line in logged),
                timeout=90.0,
                context=lambda: "the other process logged:\n" + "".join(logged),
            )
            _produce(settings, events)
            _wait_until(lambda: _finding_ids(db) == _expected_ids(events))
            other.send_signal(signal.SIGTERM)  # leaves the group cleanly
            out, _err = other.communicate(timeout=60)
    finally:
        other.kill()
        other.wait(30)
        reader.join(10)
        for pipe in (other.stdout, other.stderr):
            if pipe is not None:
                pipe.close()
    assert other.returncode == 0, "".join(logged)
    theirs = int(out.split("authz events ")[1].split()[0].replace(",", ""))
    assert 0 < theirs < len(events)
    assert sorted(_event_ids(db)) == sorted(str(e.event_id) for e in events)


def _assigned(line: str, total: int) -> bool:
    if '"detect.assigned"' not in line:
        return False
    held = orjson.loads(line)["partitions"]
    return 0 < len(held) < total


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_doubles_nothing(kafka_settings, tmp_path):
    settings = _settings(kafka_settings)
    events = call_events(1200, clients=6)
    db = tmp_path / "audit.duckdb"
    # A static member: each restart takes the partitions back at once, no rebalance.
    env = kafka_env(settings, **FAST, instance_id="detect-1")
    command = [*AUDITOR, "run", "--kafka", "--db", str(db), "--quiet"]
    rng = random.Random(7)

    feeding = threading.Thread(target=_feed_slowly, args=(settings, events, 8.0))
    feeding.start()
    kills = 0
    try:
        while feeding.is_alive() or kills < 3:
            proc = subprocess.Popen(  # noqa: S603 - our own command
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
            )
            logged: list[str] = []
            assert proc.stderr is not None
            reader = threading.Thread(target=logged.extend, args=(proc.stderr,))
            reader.start()
            try:
                # A random point of the run's work, counted from when it holds its
                # partitions (a kill while the interpreter still starts would test nothing
                # of ours, and how long a start takes depends on the machine's load).
                _wait_until(
                    lambda lines=logged: any('"detect.assigned"' in x for x in lines),
                    context=lambda lines=logged: "".join(lines),
                )
                time.sleep(rng.uniform(0.2, 2.5))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                reader.join(10)
                proc.stderr.close()
            kills += 1
    finally:
        feeding.join()
    final = subprocess.run(  # noqa: S603 - our own command
        [*command, "--exit-when-idle", "4"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    ids = _event_ids(db)
    assert len(ids) == len(set(ids)) == len(events)
    assert set(ids) == {str(e.event_id) for e in events}
    assert _finding_ids(db) == _expected_ids(events)
    runs = stored(db, "SELECT status FROM runs ORDER BY started_at")
    assert [r["status"] for r in runs] == ["interrupted"] * kills + ["completed"]


def _feed_slowly(settings: AuditorSettings, events: Sequence[AuthzEvent], seconds: float) -> None:
    producer = open_producer(settings)
    pause = seconds / max(len(events) / 50, 1)
    for start in range(0, len(events), 50):
        for e in events[start : start + 50]:
            producer.send(
                settings.topics.authz.name,
                key=(e.client_iss or "").encode(),
                value=e.model_dump_json(exclude_none=True).encode(),
            )
        producer.flush()
        time.sleep(pause)
    producer.close()


def test_a_broker_outage_mid_stream_loses_nothing(kafka_settings, kafka_outage, tmp_path):
    settings = _settings(kafka_settings)
    events = call_events(200)
    half = len(events) // 2
    db = tmp_path / "audit.duckdb"
    with KafkaEmitter(settings) as emitter, running_pipeline(settings, db, content=()):
        for e in events[:half]:
            emitter(e)
        _wait_until(lambda: count(db, "events") == half)
        kafka_outage.stop()
        for e in events[half:]:
            emitter(e)  # spooled to disk while the broker is down
        time.sleep(1.0)
        kafka_outage.start()
        _wait_until(lambda: count(db, "events") == len(events), timeout=50)
        expected = _expected_ids(events)
        # The detect stage rejoins its group after the outage (a new coordinator session)
        # before its findings flow again: allow for a slow rejoin on a loaded machine.
        _wait_until(lambda: _finding_ids(db) == expected, timeout=60)
    assert sorted(_event_ids(db)) == sorted(str(e.event_id) for e in events)


def test_state_restored_from_the_checkpoint_finds_a_replay_across_a_restart(
    kafka_settings, tmp_path
):
    settings = _settings(kafka_settings)
    first = event(0, jti="jti-across-restart", hook_instance="h1", peer="10.0.0.5")
    again = event(30, jti="jti-across-restart", hook_instance="h2", peer="203.0.113.9")
    db = tmp_path / "audit.duckdb"
    _produce(settings, [first])
    run_kafka(settings, db, idle_exit_s=2.0, content=())
    assert stored(db, "SELECT rule FROM findings") == []
    _produce(settings, [again])
    run_kafka(settings, db, idle_exit_s=2.0, content=())
    assert stored(db, "SELECT rule FROM findings") == [{"rule": "jti_replay"}]


def test_planted_secrets_reach_no_store_file_alert_dead_letter_or_log(kafka_settings, tmp_path):
    settings = _settings(kafka_settings)
    canaries = Canaries.make()
    leaky, *logs = planted_lines(canaries, event(0, alg="none"))
    producer = open_producer(settings)
    producer.send(settings.topics.authz.name, value=leaky)
    for line in logs:
        producer.send(settings.topics.logs.name, value=line)
    producer.send(settings.topics.logs.name, value=b'{"cut": "' + canaries.jwt.encode())
    producer.flush()
    producer.close()
    db = tmp_path / "audit.duckdb"
    result = subprocess.run(  # noqa: S603 - our own command
        [
            *AUDITOR,
            "run",
            "--kafka",
            "--db",
            str(db),
            "--exit-when-idle",
            "3",
            "--min-severity",
            "info",
        ],
        capture_output=True,
        text=True,
        env=kafka_env(settings, **FAST),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert count(db, "dead_letters") == 1
    assert count(db, "alerts") >= 1
    assert_no_canaries(db, canaries.labelled())
    alerts = read_topic(settings, settings.topics.alerts.name, expected=1, timeout=10)
    dead = read_topic(settings, settings.topics.deadletters.name, expected=1, timeout=10)
    published = b"".join(value for _k, value, *_ in alerts + dead).decode()
    logged = result.stderr + result.stdout
    assert "alert.raised" in logged
    for label, value in canaries.labelled().items():
        assert value not in published, f"{label} in the alerts or dead-letter topic"
        assert value not in logged, f"{label} in the pipeline's own log"

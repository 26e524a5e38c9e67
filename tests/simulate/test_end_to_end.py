"""End to end: demo traffic with every incident type through the production pipeline.

The traffic goes through ``run_embedded`` (what ``auditor run --input`` and ``auditor demo``
run) into DuckDB, and the findings are read back from the file. Every injected incident
must be reported by the detector its label expects (matched on client, time window,
detector, kind and rule), and the clean traffic must raise nothing.
"""

from __future__ import annotations

import pytest

from auditor.cli.main import main
from pipelines.demo.session import DEMO_DURATION, DEMO_START, demo_pipeline, stored_findings
from pipelines.kafka import open_producer
from pipelines.simulate import (
    JsonLinesOutput,
    Simulation,
    SimulationConfig,
    SimulationResult,
    all_incidents,
)
from pipelines.simulate.scoring import Scorecard, score
from pipelines.store import open_store
from pipelines.topology import RunSummary, run_embedded
from tests.simulate.simulation_support import TEST_KEY

pytestmark = pytest.mark.slow


def _simulate_and_store(tmp_path, incidents) -> tuple[SimulationResult, RunSummary, list]:
    traffic = tmp_path / "traffic.jsonl"
    config = SimulationConfig(
        seed=21,
        start=DEMO_START,
        duration=DEMO_DURATION,
        rate=1.0,
        incidents=incidents,
        fingerprinter=TEST_KEY,
    )
    with traffic.open("wb") as stream:
        simulation = Simulation(config, JsonLinesOutput(stream)).run()
    db = tmp_path / "audit.duckdb"
    stored = run_embedded([traffic], db, demo_pipeline(), fingerprinter=TEST_KEY)
    return simulation, stored, stored_findings(db)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[SimulationResult, RunSummary, Scorecard]:
    simulation, stored, findings = _simulate_and_store(
        tmp_path_factory.mktemp("e2e"), all_incidents()
    )
    return simulation, stored, score(simulation.labels, findings)


@pytest.mark.parametrize("incident", [spec.name for spec in all_incidents()])
def test_the_incident_is_reported_by_the_detector_its_label_expects(demo, incident):
    _, _, card = demo
    [detection] = [d for d in card.detections if d.label.name == incident]
    expected = detection.label.expected
    assert detection.detected, (
        f"{incident}: no {expected.detector}/{expected.rule or expected.kind}"
    )


def test_no_finding_falls_outside_an_injected_incident(demo):
    _, _, card = demo
    assert [(f.detector.value, f.rule, f.client_iss) for f in card.false_alarms] == []


def test_every_event_and_every_log_record_was_read_and_none_set_aside(demo):
    simulation, stored, _ = demo
    assert stored.counters.events_in == simulation.events
    assert stored.counters.logs_in == simulation.logs
    assert stored.counters.dead_letters == 0


def test_clean_traffic_raises_no_finding(tmp_path):
    simulation, _, findings = _simulate_and_store(tmp_path, ())
    assert simulation.calls > 1000
    assert [(f.detector.value, f.rule, f.client_iss) for f in findings] == []


def test_the_demo_command_scores_the_run_and_writes_the_database_and_report(tmp_path, capsys):
    db, report = tmp_path / "audit.duckdb", tmp_path / "audit-report.html"
    code = main(["demo", "--db", str(db), "--report", str(report), "--rate", "0.4"])
    out = capsys.readouterr().out
    assert "Did the auditor find them?" in out
    assert f"auditor query leaked_tokens --db {db}" in out
    assert report.read_text().lower().startswith("<!doctype html>")
    with open_store(db) as store:
        events = store.query("SELECT count(*) AS n FROM events").column(0)[0].as_py()
    assert events > 2_000
    assert code == 0  # every incident its detectors could see was detected, nothing else fired
    assert "MISSED" not in out
    assert "FALSE ALARM" not in out


def test_a_second_demo_replaces_its_own_database_but_never_another(tmp_path, capsys):
    db = tmp_path / "audit.duckdb"
    args = ["demo", "--db", str(db), "--report", str(tmp_path / "r.html"), "--rate", "0.3"]
    main(args)
    first = db.stat().st_mtime_ns
    main(args)
    assert db.stat().st_mtime_ns != first
    with open_store(db) as store:
        runs = store.query("SELECT count(*) FROM runs").column(0)[0].as_py()
    assert runs == 1  # a fresh database, not a second run stacked on the first
    other = tmp_path / "real.duckdb"
    from pipelines.store import StoreWriter

    with StoreWriter.open(other, serve=False) as writer:
        writer.begin_run(mode="embedded", inputs=["/var/log/cds/app.jsonl"])
    assert main(["demo", "--db", str(other), "--report", str(tmp_path / "x.html")]) == 2
    assert "did not come from 'auditor demo'" in capsys.readouterr().err


def test_the_demo_goes_through_a_real_broker_with_kafka(kafka_settings, tmp_path, capsys):
    topics = kafka_settings.topics
    roles = ("authz", "logs", "findings", "alerts", "deadletters", "state")
    config = tmp_path / "auditor.toml"
    config.write_text(
        "".join(
            f'[topics.{role}]\nname = "{getattr(topics, role).name}"\n'
            f"partitions = {getattr(topics, role).partitions}\n"
            for role in roles
        )
    )
    # Earlier traffic on the topics (here a line that is not an event) is not the demo's:
    # the pipeline starts where this run's records begin, so it never dead-letters it.
    producer = open_producer(kafka_settings)
    producer.send(topics.authz.name, value=b'{"kind": "authz", "not": "an event"}')
    producer.flush()
    producer.close()
    bootstrap = kafka_settings.kafka.bootstrap_servers[0]
    db = tmp_path / "audit.duckdb"
    argv = ["demo", "--kafka", bootstrap, "--config", str(config), "--db", str(db),
            "--report", str(tmp_path / "r.html"), "--rate", "0.3"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "simulate into Kafka" in out
    assert "auditor run --kafka" in out
    with open_store(db) as store:
        [run] = store.query("SELECT mode, inputs, events_in FROM runs").to_pylist()
        dead = store.query("SELECT count(*) FROM dead_letters").column(0)[0].as_py()
    assert run["mode"] == "kafka"
    assert run["inputs"] == [topics.authz.name, topics.logs.name]
    assert run["events_in"] > 1_000
    assert dead == 0

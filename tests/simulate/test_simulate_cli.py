"""The ``auditor simulate`` command, and publishing a simulation to the real broker."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest

from auditor.cli.main import main
from pipelines.emit import KafkaEmitter
from pipelines.simulate import KafkaOutput, Simulation, SimulationConfig, parse_incidents
from pipelines.simulate.policy import detector_config
from tests.fixtures.kafka import read_topic
from tests.simulate.simulation_support import TEST_KEY


def test_list_incidents_names_every_type_with_its_variants(capsys):
    assert main(["simulate", "--list-incidents"]) == 0
    out = capsys.readouterr().out
    assert "token_leak: jwt, bearer_token, url_token, private_jwk" in out
    assert "failure_spike" in out


def test_writes_traffic_labels_and_the_detector_configuration(tmp_path, capsys):
    out, labels, policy = tmp_path / "t.jsonl", tmp_path / "l.jsonl", tmp_path / "p.json"
    code = main(
        ["simulate", "--duration", "2m", "--rate", "2", "--incidents", "phi_leak:ssn",
         "--out", str(out), "--labels", str(labels), "--policy", str(policy)]
    )  # fmt: skip
    assert code == 0
    assert out.stat().st_size > 10_000
    [label] = [json.loads(line) for line in labels.read_text().splitlines()]
    assert label["type"] == "phi_leak"
    assert label["expected"] == {"detector": "phi_in_logs", "kind": "ssn", "rule": None}
    assert json.loads(policy.read_text()) == detector_config()
    err = capsys.readouterr().err
    assert "hook calls" in err
    assert "1 incidents" in err


def test_two_runs_with_one_seed_write_identical_files(tmp_path):
    for name in ("a", "b"):
        out, labels = str(tmp_path / f"{name}.jsonl"), str(tmp_path / f"{name}.l")
        argv = ["simulate", "--seed", "4", "--duration", "90s", "--incidents", "replay_burst",
                "--out", out, "--labels", labels]  # fmt: skip
        assert main(argv) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.l").read_bytes() == (tmp_path / "b.l").read_bytes()


@pytest.mark.parametrize(
    ("incidents", "message"),
    [
        # A typo must not silently simulate nothing.
        ("replay_bursts", "unknown incident type 'replay_bursts'"),
        # Variants are checked against the type's list.
        ("phi_leak:passport", "phi_leak has no variant 'passport'"),
        # A spike cannot stand out before the detector has learnt a baseline.
        ("failure_spike", "failure_spike needs a run of at least 20 minutes"),
    ],
)
def test_an_impossible_incident_request_is_a_usage_error(incidents, message, tmp_path, capsys):
    code = main(["simulate", "--duration", "5m", "--incidents", incidents,
                 "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_all_leaves_out_the_spike_in_a_short_run_and_says_so(tmp_path, capsys):
    labels = tmp_path / "l.jsonl"
    code = main(["simulate", "--duration", "4m", "--incidents", "all",
                 "--out", str(tmp_path / "t"), "--labels", str(labels)])  # fmt: skip
    assert code == 0
    assert "failure_spike left out" in capsys.readouterr().err
    assert len(labels.read_text().splitlines()) == 22


def test_a_bad_duration_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--duration", "ten minutes"])
    assert exit_info.value.code == 2
    assert "a duration like 90s, 10m, 2h or 1d" in capsys.readouterr().err


def test_a_simulation_published_to_kafka_arrives_keyed_by_client(kafka_settings):
    config = SimulationConfig(
        seed=2,
        duration=timedelta(minutes=1),
        rate=2.0,
        incidents=parse_incidents("token_leak:jwt"),
        fingerprinter=TEST_KEY,
    )
    result = Simulation(config, KafkaOutput(KafkaEmitter(kafka_settings))).run()
    events = read_topic(kafka_settings, kafka_settings.topics.authz.name, result.events)
    logs = read_topic(kafka_settings, kafka_settings.topics.logs.name, result.logs)
    assert len(events) == result.events
    assert len(logs) == result.logs
    for key, value, _headers, _partition in events:
        event = json.loads(value)
        assert key == (event["client"]["iss"].encode() if "client" in event else None)
    kinds = Counter(json.loads(value)["kind"] for _k, value, _h, _p in logs)
    assert kinds == {"log": result.logs}
    leaked = [json.loads(v) for _k, v, _h, _p in logs if b'"jwt"' in v]
    assert len(leaked) == 2  # the injected leak travels like any log line


def test_the_site_configuration_is_valid_stream_detector_configuration():
    from detectors import StreamDetectorsConfig

    config = StreamDetectorsConfig.model_validate(detector_config())
    mercy = config.policy.clients["https://ehr.mercy-general.example"]
    # Discovery is called with a token too: its endpoint must be allowed, not only services.
    assert "https://cds.greeter.example/cds-services" in (mercy.allowed_services or ())
    assert mercy.approved_jku == {"https://ehr.mercy-general.example/.well-known/jwks.json"}
    assert config.policy.services["patient-greeter"].allowed_fhir_hosts == {
        "fhir.lakeside-clinic.example",
        "fhir.mercy-general.example",
        "fhir.st-olaf.example",
    }

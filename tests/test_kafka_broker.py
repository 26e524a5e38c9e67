"""The development broker of scripts/kafka: local only, ready when it says so."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import pytest

from pipelines.kafka.broker import BrokerConfig, BrokerError, _server_properties, probe_metadata
from tests.fixtures.kafka import ROOT, SCRIPT


def test_every_listener_binds_the_loopback_address_only():
    properties = _server_properties(BrokerConfig(port=29092, controller_port=29093))
    listeners = re.findall(r"^(?:advertised\.)?listeners=(.*)$", properties, re.MULTILINE)
    addresses = [entry.split("://")[1] for line in listeners for entry in line.split(",")]
    assert addresses
    assert all(address.startswith("127.0.0.1:") for address in addresses)


def test_topics_are_never_created_implicitly():
    assert "auto.create.topics.enable=false" in _server_properties(BrokerConfig())


def test_the_client_and_controller_ports_must_differ():
    with pytest.raises(BrokerError, match="differ"):
        BrokerConfig.from_environment(
            {"AUDITOR_KAFKA_PORT": "20000", "AUDITOR_KAFKA_CONTROLLER_PORT": "20000"}
        )


def test_a_port_that_accepts_connections_but_is_not_kafka_is_not_ready():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not probe_metadata("127.0.0.1", port, timeout=0.3)


def test_a_closed_port_is_not_ready():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert not probe_metadata("127.0.0.1", port, timeout=0.3)


@pytest.mark.kafka
def test_the_started_broker_answers_a_metadata_request(kafka_broker):
    host, _, port = kafka_broker.bootstrap.rpartition(":")
    assert probe_metadata(host, int(port))


@pytest.mark.kafka
def test_status_reports_the_running_broker_and_its_address(kafka_broker):
    if not kafka_broker.managed:
        pytest.skip("status describes a broker this session started")
    result = subprocess.run(  # noqa: S603 - our own script
        [str(SCRIPT), "status"], env=kafka_broker.env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert f"running on {kafka_broker.bootstrap}" in result.stdout


@pytest.mark.kafka
def test_starting_a_running_broker_leaves_it_running(kafka_broker):
    kafka_broker.start()
    host, _, port = kafka_broker.bootstrap.rpartition(":")
    assert probe_metadata(host, int(port))


def _tools_without_java(tmp_path):
    """A PATH with what scripts/kafka needs to run, but no java and no mvn."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


def test_a_missing_java_is_named(tmp_path):
    env = {"PATH": _tools_without_java(tmp_path), "AUDITOR_KAFKA_DATA_DIR": str(tmp_path / "d")}
    result = subprocess.run(  # noqa: S603 - our own script
        [str(SCRIPT), "start"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "java is not on PATH" in result.stderr


def test_a_missing_maven_is_named(tmp_path):
    env = {"PATH": _tools_without_java(tmp_path), "AUDITOR_KAFKA_CACHE": str(tmp_path / "c")}
    result = subprocess.run(  # noqa: S603 - our own script
        [str(SCRIPT), "fetch"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "mvn (Apache Maven) is not on PATH" in result.stderr


NEEDS_BROKER = """
def test_uses_the_broker(kafka_broker):
    pass
"""


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        # In CI a broker that cannot start must fail the run, never pass by skipping.
        ("true", {"errors": 1}),
        # On a developer's machine without Java the Kafka tests are skipped with the reason.
        ("", {"skipped": 1}),
    ],
)
def test_a_broker_that_cannot_start_fails_in_ci_and_skips_elsewhere(
    pytester, tmp_path, monkeypatch, ci, outcome
):
    monkeypatch.delenv("AUDITOR_TEST_KAFKA", raising=False)
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PATH", _tools_without_java(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(NEEDS_BROKER)
    result = pytester.runpytest_subprocess(
        "-p", "tests.fixtures.kafka", "-p", "no:cacheprovider", "-rs", "-W", "ignore"
    )
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines(["*the Kafka broker for the tests could not start*"])
    result.stdout.fnmatch_lines(["*java is not on PATH*"])

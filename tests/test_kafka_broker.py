"""The development broker of scripts/kafka: local only, ready when it says so."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from pipelines.kafka.broker import BrokerConfig, BrokerError, _server_properties, probe_metadata
from tests.fixtures.kafka import SCRIPT


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

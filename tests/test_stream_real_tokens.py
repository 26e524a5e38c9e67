"""The stream detectors over events from the real token path: real keys, real signatures.

A CDS client mints ES256 tokens with ``auditor.cdshooks``; services verify them with the
real ``Verifier``, which emits the authz events the detectors consume. No event here is
hand-written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditor.cdshooks import CdsClient, ListSink, SigningKey, TrustedIssuer, TrustRegistry, Verifier
from auditor.cdshooks.adversary import Forger
from auditor.fingerprints import Fingerprinter
from auditor.models import Finding
from detectors import stream_detectors
from pipelines.runtime import latest_revisions, run_stream

ISS = "https://ehr.example.org"
BASE = "https://cds.example.com"
ENDPOINT = f"{BASE}/cds-services/patient-greeter"
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def fingerprinter() -> Fingerprinter:
    return Fingerprinter(b"test-key-0123456789abcdef")


def _client(key: SigningKey, sink: ListSink, fingerprinter: Fingerprinter) -> CdsClient:
    return CdsClient(issuer=ISS, keys=key, services=[BASE], sink=sink, fingerprinter=fingerprinter)


def _service(client: CdsClient, sink: ListSink, fingerprinter: Fingerprinter) -> Verifier:
    """One service instance, with its own in-memory replay cache."""
    registry = TrustRegistry([TrustedIssuer(ISS, jwks=client.jwks(now=START))])
    return Verifier(registry, base_url=BASE, sink=sink, fingerprinter=fingerprinter)


def _detect(sink: ListSink) -> dict[str, Finding]:
    return {f.rule: f for f in latest_revisions(run_stream(stream_detectors(), list(sink)))}


def test_a_token_replayed_to_a_second_instance_without_a_shared_cache_is_critical(
    key: SigningKey, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    # Two instances of one service, each with its own replay cache: the second accepts
    # the stolen token — exactly the gap a per-process cache leaves, and the auditor sees.
    client = _client(key, sink, fingerprinter)
    first, second = _service(client, sink, fingerprinter), _service(client, sink, fingerprinter)
    token = client.mint(ENDPOINT, now=START)
    assert first.verify(token.token, "patient-greeter", now=START, peer_ip="10.0.0.5").ok
    later = START + timedelta(seconds=40)
    assert second.verify(token.token, "patient-greeter", now=later, peer_ip="203.0.113.9").ok

    found = _detect(sink)
    assert set(found) == {"jti_replay"}
    replay = found["jti_replay"]
    assert replay.severity.value == "critical"
    assert replay.facts["peers"] == ("10.0.0.5", "203.0.113.9")
    assert replay.fingerprint is not None
    assert replay.fingerprint == fingerprinter(token.token)  # correlates with log findings
    assert token.jti not in replay.model_dump_json()


def test_a_replay_the_service_refused_is_still_an_incident(
    key: SigningKey, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    client = _client(key, sink, fingerprinter)
    service = _service(client, sink, fingerprinter)
    token = client.mint(ENDPOINT, now=START)
    assert service.verify(token.token, "patient-greeter", now=START, peer_ip="10.0.0.5").ok
    refused = service.verify(
        token.token, "patient-greeter", now=START + timedelta(seconds=5), peer_ip="203.0.113.9"
    )
    assert refused.reason is not None
    assert refused.reason.value == "replayed_jti"
    found = _detect(sink)
    assert found["jti_replay"].severity.value == "high"


def test_an_alg_none_attack_through_the_real_verifier(
    key: SigningKey, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    client = _client(key, sink, fingerprinter)
    service = _service(client, sink, fingerprinter)
    forger = Forger.for_client(client)
    for i in range(6):
        now = START + timedelta(seconds=5 * i)
        result = service.verify(
            forger.alg_none(ENDPOINT, now), "patient-greeter", now=now, peer_ip="198.51.100.66"
        )
        assert not result.ok
    found = _detect(sink)
    assert set(found) == {"attack_signature"}
    assert found["attack_signature"].severity.value == "critical"
    assert found["attack_signature"].facts["forged_alg"] is True


def test_clean_traffic_through_the_real_path_raises_nothing(
    key: SigningKey, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    client = _client(key, sink, fingerprinter)
    service = _service(client, sink, fingerprinter)
    for i in range(20):
        now = START + timedelta(seconds=15 * i)
        token = client.mint(ENDPOINT, now=now)
        assert service.verify(token.token, "patient-greeter", now=now, peer_ip="10.0.0.5").ok
    assert {e.action.value for e in sink} == {"token.issued", "token.validated"}
    assert _detect(sink) == {}

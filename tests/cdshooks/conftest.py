"""Fixtures for the CDS Hooks token helpers: real keys, real sinks, real verifiers."""

from __future__ import annotations

import socket

import pytest
from cdshooks_support import BASE, ISS, NOW

from auditor.cdshooks import (
    CdsClient,
    ListSink,
    SigningKey,
    TrustedIssuer,
    TrustRegistry,
    Verifier,
)
from auditor.cdshooks.adversary import Forger
from auditor.fingerprints import Fingerprinter


@pytest.fixture(scope="session")
def es256_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="session")
def es384_key() -> SigningKey:
    return SigningKey.generate("ES384")


@pytest.fixture(scope="session")
def rs384_key() -> SigningKey:
    return SigningKey.generate("RS384")


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def ehr(es256_key: SigningKey, sink: ListSink, fingerprinter: Fingerprinter) -> CdsClient:
    return CdsClient(
        issuer=ISS, keys=es256_key, services=[BASE], sink=sink, fingerprinter=fingerprinter
    )


@pytest.fixture
def registry(ehr: CdsClient) -> TrustRegistry:
    return TrustRegistry([TrustedIssuer(ISS, jwks=ehr.jwks(now=NOW))])


@pytest.fixture
def verifier(registry: TrustRegistry, sink: ListSink, fingerprinter: Fingerprinter) -> Verifier:
    return Verifier(registry, base_url=BASE, sink=sink, fingerprinter=fingerprinter)


@pytest.fixture
def forger(ehr: CdsClient) -> Forger:
    return Forger.for_client(ehr)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"

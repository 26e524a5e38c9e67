"""The HTTP helper against real servers: idempotent retries, TLS verified, graceful failure."""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cdshooks_support import ISS, SERVICE, serve
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auditor.cdshooks import (
    CdsClient,
    CdsHttpClient,
    FhirServerPolicy,
    ListSink,
    ServiceNotAllowed,
    SigningKey,
    TrustedIssuer,
    TrustRegistry,
    Verifier,
)
from auditor.cdshooks.example import create_app
from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.vocabulary import AuthzAction, FailureReason

BODY = {
    "hook": "patient-view",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"userId": "Practitioner/1", "patientId": "p-1"},
    "prefetch": {"patient": {"resourceType": "Patient", "name": [{"given": ["Ada"]}]}},
}


class Sleeps(list[float]):
    """Records waits instead of sleeping: retries are tested without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _client(
    key: SigningKey, base_url: str, sink: ListSink, fingerprinter: Fingerprinter
) -> CdsClient:
    return CdsClient(
        issuer=ISS,
        keys=key,
        services=[base_url],
        allow_http=True,
        sink=sink,
        fingerprinter=fingerprinter,
    )


@pytest.fixture
def example_url(es256_key: SigningKey, fingerprinter: Fingerprinter) -> Iterator[str]:
    registry = TrustRegistry([TrustedIssuer(ISS, jwks={"keys": [es256_key.public_jwk()]})])

    def make(base_url: str) -> Any:
        verifier = Verifier(
            registry, base_url=base_url, fingerprinter=fingerprinter, allow_http=True
        )
        return create_app(verifier=verifier, fhir_servers=FhirServerPolicy())

    with serve(make) as base_url:
        yield base_url


class Flaky:
    """A service that fails with 503 (Retry-After: 1) a number of times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[str, str | None]] = []

    def app(self, _base_url: str) -> Starlette:
        async def handle(request: Request) -> Response:
            self.requests.append((request.method, request.headers.get("authorization")))
            if self.failures > 0:
                self.failures -= 1
                return JSONResponse({}, status_code=503, headers={"retry-after": "1"})
            return JSONResponse({"services": [], "cards": []})

        def slow(_request: Request) -> Response:  # sync: Starlette runs it in a thread
            time.sleep(0.5)
            return JSONResponse({"cards": []})

        return Starlette(
            routes=[
                Route("/cds-services", handle, methods=["GET"]),
                Route("/cds-services/slow", slow, methods=["POST"]),
                Route("/cds-services/{id}", handle, methods=["POST"]),
            ]
        )


def test_discovery_returns_the_services(
    es256_key: SigningKey, example_url: str, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    with CdsHttpClient(_client(es256_key, example_url, sink, fingerprinter)) as http:
        result = http.discover(example_url)
    assert result.ok
    assert result.body["services"][0]["id"] == SERVICE
    issued, sent = sink
    assert issued.token is not None
    assert issued.token.aud == (f"{example_url}/cds-services",)
    assert sent.action is AuthzAction.REQUEST_SENT
    assert sent.http_status == 200


def test_a_hook_call_returns_the_cards(
    es256_key: SigningKey, example_url: str, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    with CdsHttpClient(_client(es256_key, example_url, sink, fingerprinter)) as http:
        result = http.call(example_url, SERVICE, BODY)
    assert result.ok
    assert result.body["cards"][0]["summary"] == "Now seeing: Ada"


def test_an_unreachable_service_degrades_to_a_result_after_backoff(
    es256_key: SigningKey,
    closed_port_url: str,
    sink: ListSink,
    sleeps: Sleeps,
    fingerprinter: Fingerprinter,
) -> None:
    client = _client(es256_key, closed_port_url, sink, fingerprinter)
    with CdsHttpClient(client, sleep=sleeps, backoff=0.5) as http:
        result = http.discover(closed_port_url)
    assert (result.ok, result.status, result.reason, result.attempts) == (
        False,
        None,
        FailureReason.UNREACHABLE,
        3,
    )
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5
    assert 0 <= sleeps[1] <= 1.0
    sent = [e for e in sink if e.action is AuthzAction.REQUEST_SENT]
    assert [e.reason for e in sent] == [FailureReason.UNREACHABLE] * 3
    assert len({e.token.jti for e in sent if e.token}) == 3


def test_a_hook_call_is_not_retried_by_default(
    es256_key: SigningKey,
    closed_port_url: str,
    sink: ListSink,
    sleeps: Sleeps,
    fingerprinter: Fingerprinter,
) -> None:
    client = _client(es256_key, closed_port_url, sink, fingerprinter)
    with CdsHttpClient(client, sleep=sleeps) as http:
        result = http.call(closed_port_url, SERVICE, BODY)
    assert (result.reason, result.attempts, sleeps) == (FailureReason.UNREACHABLE, 1, [])


def test_a_retried_hook_call_mints_a_new_token_each_time(
    es256_key: SigningKey,
    closed_port_url: str,
    sink: ListSink,
    sleeps: Sleeps,
    fingerprinter: Fingerprinter,
) -> None:
    client = _client(es256_key, closed_port_url, sink, fingerprinter)
    with CdsHttpClient(client, sleep=sleeps, hook_attempts=3) as http:
        result = http.call(closed_port_url, SERVICE, BODY)
    assert result.attempts == 3
    issued = [e.token.jti for e in sink if e.action is AuthzAction.TOKEN_ISSUED and e.token]
    assert len(set(issued)) == 3


def test_discovery_retries_a_503_and_honours_retry_after(
    es256_key: SigningKey, sink: ListSink, sleeps: Sleeps, fingerprinter: Fingerprinter
) -> None:
    flaky = Flaky(failures=1)
    with serve(flaky.app) as base_url:
        client = _client(es256_key, base_url, sink, fingerprinter)
        with CdsHttpClient(client, sleep=sleeps) as http:
            result = http.discover(base_url)
    assert (result.ok, result.attempts, sleeps) == (True, 2, [1.0])
    tokens = [auth for _, auth in flaky.requests]
    assert tokens[0] != tokens[1]  # every attempt carries its own token


def test_a_hook_call_is_not_resent_after_the_service_answered(
    es256_key: SigningKey, sink: ListSink, sleeps: Sleeps, fingerprinter: Fingerprinter
) -> None:
    # The POST reached the service: resending could act twice. 503 is final for a hook call.
    flaky = Flaky(failures=5)
    with serve(flaky.app) as base_url:
        client = _client(es256_key, base_url, sink, fingerprinter)
        with CdsHttpClient(client, sleep=sleeps, hook_attempts=3) as http:
            result = http.call(base_url, SERVICE, BODY)
    assert (result.status, result.reason, result.attempts) == (503, FailureReason.SERVICE_ERROR, 1)
    assert len(flaky.requests) == 1


def test_a_read_timeout_is_final_for_a_hook_call(
    es256_key: SigningKey, sink: ListSink, sleeps: Sleeps, fingerprinter: Fingerprinter
) -> None:
    with serve(Flaky(failures=0).app) as base_url:
        client = _client(es256_key, base_url, sink, fingerprinter)
        with CdsHttpClient(client, sleep=sleeps, hook_attempts=3, timeout=0.1) as http:
            result = http.call(base_url, "slow", BODY)
    assert (result.reason, result.attempts) == (FailureReason.TIMEOUT, 1)


def test_a_service_that_refuses_the_token_is_reported_as_unauthorized(
    example_url: str, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    stranger = SigningKey.generate("ES256")  # not the key the service trusts
    with CdsHttpClient(_client(stranger, example_url, sink, fingerprinter)) as http:
        result = http.call(example_url, SERVICE, BODY)
    assert (result.status, result.reason) == (401, FailureReason.UNAUTHORIZED)


def test_a_call_to_a_service_off_the_allowlist_is_refused(
    es256_key: SigningKey, example_url: str, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    with (
        CdsHttpClient(_client(es256_key, example_url, sink, fingerprinter)) as http,
        pytest.raises(ServiceNotAllowed),
    ):
        http.call("http://127.0.0.2:9", SERVICE, BODY)


def test_tls_verification_cannot_be_turned_off(es256_key: SigningKey) -> None:
    client = CdsClient(issuer=ISS, keys=es256_key, services=["https://cds.example.com"])
    with pytest.raises(ConfigurationError, match="TLS verification"):
        CdsHttpClient(client, verify=False)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_an_untrusted_certificate_is_refused_and_recorded_as_tls_failed(
    es256_key: SigningKey, tmp_path: Path, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    cert, key = _self_signed(tmp_path)
    flaky = Flaky(failures=0)
    with serve(flaky.app, scheme="https", ssl_certfile=str(cert), ssl_keyfile=str(key)) as base_url:
        client = _client(es256_key, base_url, sink, fingerprinter)
        with CdsHttpClient(client) as http:
            result = http.call(base_url, SERVICE, BODY)
        assert result.reason is FailureReason.TLS_ERROR
        assert flaky.requests == []  # the token never left the client
        failed = sink[-1]
        assert failed.action is AuthzAction.TLS_FAILED
        assert failed.tls is not None
        assert failed.tls.error == "ConnectError"
        # Trusting that certificate explicitly (a pinned CA) makes the same call work.
        context = ssl.create_default_context(cafile=str(cert))
        with CdsHttpClient(client, verify=context) as http:
            assert http.call(base_url, SERVICE, BODY).ok


def test_the_default_http_client_does_not_follow_redirects(es256_key: SigningKey) -> None:
    client = CdsClient(issuer=ISS, keys=es256_key, services=["https://cds.example.com"])
    with CdsHttpClient(client) as http:
        assert http.http.follow_redirects is False
        assert isinstance(http.http, httpx.Client)

"""The middleware and the example service through uvicorn on 127.0.0.1 with a real httpx client."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from cdshooks_support import ISS, NOW, SERVICE, serve
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auditor.cdshooks import (
    CdsClient,
    CdsHooksMiddleware,
    CdsHttpClient,
    FhirServerPolicy,
    InMemoryReplayCache,
    ListSink,
    ReplayVerdict,
    SigningKey,
    TokenBucketLimiter,
    TrustRegistry,
    Verifier,
    verified_call,
)
from auditor.cdshooks.adversary import EXPECTED_REASON, Forger
from auditor.cdshooks.example import create_app
from auditor.fingerprints import Fingerprinter
from auditor.models import Source
from auditor.vocabulary import AuthzAction, FailureReason, Outcome

FHIR = "https://fhir.example.org/r4"
FHIR_ACCESS_TOKEN = "fhir-access-7Qm2ZxR4vT9pLk3sW8nB"  # a secret the service must never echo
PATIENT_NAME = "Zebulon"  # PHI in prefetch that must not reach events


def hook_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid4()),
        "fhirServer": FHIR,
        "fhirAuthorization": {
            "access_token": FHIR_ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/Patient.read user/Practitioner.read",
            "subject": "cds-service",
        },
        "context": {"userId": "Practitioner/123", "patientId": "1288992"},
        "prefetch": {
            "patient": {
                "resourceType": "Patient",
                "id": "1288992",
                "name": [{"given": [PATIENT_NAME]}],
            }
        },
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


class Clock:
    """A settable clock shared by the test and the service."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Service:
    base_url: str
    url: str
    client: CdsClient
    events: ListSink
    clock: Clock
    http: httpx.Client

    def mint(self) -> str:
        return self.client.mint(self.url, now=self.clock.now).token

    def post(self, token: str | None, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None and "content" not in kwargs:
            kwargs["json"] = body
        return self.http.post(self.url, headers=headers, **kwargs)


@pytest.fixture
def service_factory(es256_key: SigningKey, fingerprinter: Fingerprinter) -> Iterator[Any]:
    stack: list[Any] = []

    def start(
        *,
        rate_limiter: TokenBucketLimiter | None = None,
        max_body_bytes: int = 64 * 1024,
        fhir_servers: FhirServerPolicy | None = None,
        app: Any = None,
    ) -> Service:
        events = ListSink()
        clock = Clock(NOW)
        registry = TrustRegistry([_trusted(es256_key)])

        def make(base_url: str) -> Any:
            verifier = Verifier(
                registry,
                base_url=base_url,
                sink=events,
                source=Source(role="service", name="test-service"),
                fingerprinter=fingerprinter,
                allow_http=True,
            )
            if app is not None:
                return app(verifier, clock)
            return create_app(
                verifier=verifier,
                fhir_servers=fhir_servers or FhirServerPolicy([FHIR]),
                rate_limiter=rate_limiter,
                max_body_bytes=max_body_bytes,
                clock=clock,
            )

        context = serve(make)
        base_url = context.__enter__()
        stack.append(context)
        client = CdsClient(
            issuer=ISS,
            keys=es256_key,
            services=[base_url],
            allow_http=True,
            fingerprinter=fingerprinter,
        )
        http = httpx.Client(timeout=10)
        stack.append(http)
        return Service(base_url, f"{base_url}/cds-services/{SERVICE}", client, events, clock, http)

    yield start
    for item in reversed(stack):
        item.__exit__(None, None, None)


def _trusted(key: SigningKey) -> Any:
    from auditor.cdshooks import TrustedIssuer

    return TrustedIssuer(ISS, jwks={"keys": [key.public_jwk()]})


def test_discovery_is_open_and_records_nothing(service_factory: Any) -> None:
    svc = service_factory()
    response = svc.http.get(f"{svc.base_url}/cds-services")
    assert response.status_code == 200
    assert response.json()["services"][0]["id"] == SERVICE
    assert list(svc.events) == []


def test_a_cors_preflight_passes_without_a_token(service_factory: Any) -> None:
    svc = service_factory()
    response = svc.http.options(
        svc.url,
        headers={"origin": "https://ehr.example.org", "access-control-request-method": "POST"},
    )
    assert response.status_code != 401  # the router answers; no hook logic ran
    assert list(svc.events) == []


def test_a_valid_hook_call_gets_its_card_and_one_validated_event(service_factory: Any) -> None:
    svc = service_factory()
    client_events = ListSink()
    client = CdsClient(
        issuer=ISS,
        keys=svc.client.keyring,
        services=[svc.base_url],
        allow_http=True,
        sink=client_events,
        fingerprinter=svc.client.fingerprinter,
    )
    body = hook_body()
    with CdsHttpClient(client, clock=svc.clock) as http:
        result = http.call(svc.base_url, SERVICE, body)
    assert result.ok
    assert result.body["cards"][0]["summary"] == f"Now seeing: {PATIENT_NAME}"
    assert client_events.actions() == ["token.issued", "request.sent"]
    [event] = svc.events
    assert event.action is AuthzAction.TOKEN_VALIDATED
    assert event.http_status == 200
    assert event.hook == "patient-view"
    assert event.hook_instance == body["hookInstance"]
    assert event.fhir_server == FHIR
    assert event.fhir_authorization is True
    assert event.scopes == ("patient/Patient.read", "user/Practitioner.read")
    assert event.payload_bytes is not None
    assert event.payload_bytes > 0
    assert event.peer is not None
    assert event.peer.ip == "127.0.0.1"
    assert event.token is not None
    assert event.token.jti == result.jti
    # The same fingerprint on both sides correlates the call without storing the token.
    assert event.token.fingerprint == client_events[0].token.fingerprint  # type: ignore[union-attr]


def test_a_request_without_a_token_gets_a_bare_401(service_factory: Any) -> None:
    svc = service_factory()
    response = svc.post(None, hook_body())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "unauthorized"}
    [event] = svc.events
    assert event.action is AuthzAction.TOKEN_REJECTED
    assert event.reason is FailureReason.MISSING_TOKEN
    assert event.http_status == 401


@pytest.mark.parametrize(
    "forgery", ["expired", "alg_none", "tampered", "unknown_kid", "wrong_audience", "clock_ahead"]
)
def test_every_refused_token_gets_the_same_answer_and_a_precise_event(
    forgery: str, service_factory: Any
) -> None:
    svc = service_factory()
    token = getattr(Forger.for_client(svc.client), forgery)(svc.url, NOW)
    response = svc.post(token, hook_body())
    # The caller learns nothing about why: same status, header and body for every reason.
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.content == b'{"error":"unauthorized"}'
    [event] = svc.events
    assert event.reason is EXPECTED_REASON[forgery]
    assert event.reason.value not in response.text


def test_a_replayed_token_is_refused_the_second_time(service_factory: Any) -> None:
    svc = service_factory()
    token = svc.mint()
    assert svc.post(token, hook_body()).status_code == 200
    assert svc.post(token, hook_body()).status_code == 401
    assert [e.reason for e in svc.events] == [None, FailureReason.REPLAYED_JTI]


def test_the_token_is_checked_before_the_body_is_read(service_factory: Any) -> None:
    # A bad token with an oversized body gets 401, not 413: the body was never read.
    svc = service_factory(max_body_bytes=1024)
    response = svc.post(
        "not-a-token", content=b"x" * 50_000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


def test_an_unauthenticated_request_never_reaches_receive(
    registry: TrustRegistry, fingerprinter: Fingerprinter
) -> None:
    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        raise AssertionError("the application must not run")

    verifier = Verifier(registry, base_url="https://cds.example.com", fingerprinter=fingerprinter)
    middleware = CdsHooksMiddleware(app, verifier=verifier)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read before the token was checked")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/cds-services/{SERVICE}",
        "headers": [(b"authorization", b"Bearer x.y.z")],
    }
    asyncio.run(middleware(scope, receive, send))
    assert sent[0]["status"] == 401


def test_a_client_that_leaves_mid_body_is_still_recorded(
    ehr: CdsClient, registry: TrustRegistry, fingerprinter: Fingerprinter
) -> None:
    events = ListSink()
    verifier = Verifier(
        registry, base_url="https://cds.example.com", sink=events, fingerprinter=fingerprinter
    )
    app = create_app(verifier=verifier, clock=lambda: NOW)
    token = ehr.mint(f"https://cds.example.com/cds-services/{SERVICE}", now=NOW).token
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/cds-services/{SERVICE}",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    messages = [{"type": "http.request", "body": b"{", "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent == []
    [event] = events
    assert event.action is AuthzAction.PAYLOAD_REJECTED
    assert event.http_status is None
    assert event.token is not None
    assert event.token.jti is not None


def test_a_body_over_the_cap_is_refused_from_its_content_length(service_factory: Any) -> None:
    svc = service_factory(max_body_bytes=2048)
    response = svc.post(
        svc.mint(), hook_body(context={"userId": "u", "patientId": "p", "pad": "x" * 5000})
    )
    assert response.status_code == 413
    [event] = svc.events
    assert event.action is AuthzAction.PAYLOAD_REJECTED
    assert event.reason is FailureReason.PAYLOAD_TOO_LARGE


def test_a_streamed_body_over_the_cap_is_refused_while_it_arrives(service_factory: Any) -> None:
    svc = service_factory(max_body_bytes=2048)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(64):
            yield b" " * 1024

    response = svc.post(svc.mint(), content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert svc.events[0].reason is FailureReason.PAYLOAD_TOO_LARGE


INVALID_BODIES = [
    # Each case: the body overrides, and why such a body must be refused.
    ({"hookInstance": None}, "hookInstance is required"),
    ({"hookInstance": "not-a-uuid"}, "hookInstance is a UUID"),
    ({"context": None}, "context is required"),
    ({"context": {"userId": "Practitioner/1"}}, "patient-view requires patientId"),
    ({"fhirServer": None}, "fhirAuthorization without fhirServer (cds-r-1)"),
    ({"surprise": 1}, "unknown top-level members are refused"),
    ({"fhirAuthorization": {"access_token": FHIR_ACCESS_TOKEN}}, "incomplete fhirAuthorization"),
    ({"hook": "order-sign"}, "a hook this service does not serve"),
    ({"hookInstance": 12345}, "no coercion of numbers to strings"),
]


@pytest.mark.parametrize(("overrides", "why"), INVALID_BODIES, ids=[w for _, w in INVALID_BODIES])
def test_an_invalid_body_is_refused_with_400(
    overrides: dict[str, Any], why: str, service_factory: Any
) -> None:
    svc = service_factory()
    response = svc.post(svc.mint(), hook_body(**overrides))
    assert response.status_code == 400, why
    [event] = svc.events
    assert event.action is AuthzAction.PAYLOAD_REJECTED
    assert event.reason is FailureReason.INVALID_REQUEST
    recorded = event.model_dump_json()
    assert FHIR_ACCESS_TOKEN not in recorded
    assert PATIENT_NAME not in recorded


def test_a_body_that_is_not_json_is_refused_with_415(service_factory: Any) -> None:
    svc = service_factory()
    response = svc.post(
        svc.mint(), content=b"hook=patient-view", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert svc.events[0].reason is FailureReason.INVALID_REQUEST


FHIR_SERVERS = [
    ("https://evil.example.org/fhir", "not on the allowlist"),
    ("http://fhir.example.org/r4", "plain http"),
    ("https://user:pw@fhir.example.org/r4", "credentials in the URL"),
]


@pytest.mark.parametrize(("server", "why"), FHIR_SERVERS, ids=[w for _, w in FHIR_SERVERS])
def test_a_fhir_server_off_the_allowlist_is_refused_with_403(
    server: str, why: str, service_factory: Any
) -> None:
    svc = service_factory()
    response = svc.post(svc.mint(), hook_body(fhirServer=server))
    assert response.status_code == 403, why
    [event] = svc.events
    assert event.reason is FailureReason.FHIR_SERVER_NOT_ALLOWED
    assert "pw" not in (event.fhir_server or "")


def test_without_an_allowlist_an_internal_fhir_server_is_refused(service_factory: Any) -> None:
    # SSRF: the cloud metadata address, reached with the FHIR token the EHR handed over.
    svc = service_factory(fhir_servers=FhirServerPolicy())
    response = svc.post(svc.mint(), hook_body(fhirServer="https://169.254.169.254/latest"))
    assert response.status_code == 403
    assert svc.events[0].fhir_server == "https://169.254.169.254/latest"


def test_a_client_over_its_rate_gets_429_with_retry_after(service_factory: Any) -> None:
    svc = service_factory(rate_limiter=TokenBucketLimiter(rate=1.0, burst=2))
    statuses = [svc.post(svc.mint(), hook_body()).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    svc.clock.now = NOW + timedelta(seconds=1)
    last = svc.post(svc.mint(), hook_body())
    assert last.status_code == 200
    refused = svc.events[2]
    assert refused.action is AuthzAction.RATELIMIT_EXCEEDED
    assert refused.reason is FailureReason.RATE_LIMITED


def test_the_retry_after_header_says_when_to_come_back(service_factory: Any) -> None:
    svc = service_factory(rate_limiter=TokenBucketLimiter(rate=0.1, burst=1))
    svc.post(svc.mint(), hook_body())
    response = svc.post(svc.mint(), hook_body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "10"


def test_a_missing_prefetch_gets_412_and_the_event_records_it(service_factory: Any) -> None:
    svc = service_factory()
    response = svc.post(svc.mint(), hook_body(prefetch=None))
    assert response.status_code == 412
    assert svc.events[0].action is AuthzAction.TOKEN_VALIDATED
    assert svc.events[0].http_status == 412


def test_an_application_crash_is_recorded_as_500(service_factory: Any) -> None:
    def crashing(verifier: Verifier, clock: Clock) -> Starlette:
        async def boom(_request: Request) -> JSONResponse:
            raise RuntimeError("bug")

        return Starlette(
            routes=[Route(f"/cds-services/{SERVICE}", boom, methods=["POST"])],
            middleware=[Middleware(CdsHooksMiddleware, verifier=verifier, clock=clock)],
        )

    svc = service_factory(app=crashing)
    response = svc.post(svc.mint(), hook_body())
    assert response.status_code == 500
    assert svc.events[0].http_status == 500
    assert svc.events[0].outcome is Outcome.SUCCESS  # the token was fine; the app was not


def test_verification_in_a_worker_thread_gives_the_same_decisions(service_factory: Any) -> None:
    # With a JWK Set URL the middleware verifies off the event loop; force that path here.
    threads: list[str] = []

    class RecordingCache(InMemoryReplayCache):
        def check_and_remember(self, *args: Any, **kwargs: Any) -> ReplayVerdict:
            threads.append(threading.current_thread().name)
            return super().check_and_remember(*args, **kwargs)

    def offloaded(verifier: Verifier, clock: Clock) -> Starlette:
        verifier.replay_cache = RecordingCache()
        app = create_app(verifier=verifier, fhir_servers=FhirServerPolicy([FHIR]), clock=clock)
        app.user_middleware[0].kwargs["offload"] = True
        return app

    svc = service_factory(app=offloaded)
    token = svc.mint()
    assert svc.post(token, hook_body()).status_code == 200
    assert svc.post(token, hook_body()).status_code == 401
    assert [e.reason for e in svc.events] == [None, FailureReason.REPLAYED_JTI]
    assert len(threads) == 2
    assert all(name.startswith("AnyIO worker thread") for name in threads), threads


def test_the_application_sees_the_verified_call(service_factory: Any) -> None:
    seen: dict[str, Any] = {}

    def spying(verifier: Verifier, clock: Clock) -> Starlette:
        async def handler(request: Request) -> JSONResponse:
            call = verified_call(request.scope)
            seen["iss"] = call.verification.issuer
            seen["hook"] = call.request.hook if call.request else None
            seen["body"] = await request.json()
            return JSONResponse({"cards": []})

        return Starlette(
            routes=[Route(f"/cds-services/{SERVICE}", handler, methods=["POST"])],
            middleware=[Middleware(CdsHooksMiddleware, verifier=verifier, clock=clock)],
        )

    svc = service_factory(app=spying)
    body = hook_body()
    assert svc.post(svc.mint(), body).status_code == 200
    assert seen == {"iss": ISS, "hook": "patient-view", "body": body}


def test_events_carry_the_trace_of_the_request_span(service_factory: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    spans: list[Any] = []

    def traced(verifier: Verifier, clock: Clock) -> Any:
        inner = create_app(verifier=verifier, fhir_servers=FhirServerPolicy([FHIR]), clock=clock)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            # What an OpenTelemetry ASGI instrumentation does: a server span around the call.
            with tracer.start_as_current_span("POST /cds-services") as span:
                spans.append(span)
                await inner(scope, receive, send)

        return app

    svc = service_factory(app=traced)
    assert svc.post(svc.mint(), hook_body()).status_code == 200
    context = spans[0].get_span_context()
    assert svc.events[0].trace_id == f"{context.trace_id:032x}"


def test_no_token_or_fhir_token_reaches_responses_or_events(service_factory: Any) -> None:
    import structlog

    svc = service_factory(rate_limiter=TokenBucketLimiter(rate=100, burst=100))
    forger = Forger.for_client(svc.client)
    tokens = [svc.mint() for _ in range(2)] + [
        getattr(forger, name)(svc.url, NOW) for name in ("expired", "alg_none", "tampered")
    ]
    texts: list[str] = []
    with structlog.testing.capture_logs() as logs:
        for token in [*tokens, tokens[0]]:  # the last one is a replay
            response = svc.post(token, hook_body())
            texts += [response.text, json.dumps(dict(response.headers))]
        texts.append(svc.post(svc.mint(), hook_body(hookInstance="x")).text)
    texts += [e.model_dump_json() for e in svc.events] + [repr(entry) for entry in logs]
    blob = "\n".join(texts)
    assert FHIR_ACCESS_TOKEN not in blob
    for token in tokens:
        assert token not in blob
        signature = token.rpartition(".")[2]
        assert not signature or signature not in blob


def test_the_tls_session_from_the_asgi_tls_extension_reaches_the_event(
    ehr: CdsClient, registry: TrustRegistry, fingerprinter: Fingerprinter
) -> None:
    # Servers that implement the ASGI TLS extension report the negotiated version; a
    # TLS 1.0 client must show up in the record for the policy detector.
    events = ListSink()
    verifier = Verifier(
        registry, base_url="https://cds.example.com", sink=events, fingerprinter=fingerprinter
    )
    app = create_app(verifier=verifier, fhir_servers=FhirServerPolicy([FHIR]), clock=lambda: NOW)
    body = json.dumps(hook_body()).encode()
    token = ehr.mint(f"https://cds.example.com/cds-services/{SERVICE}", now=NOW).token
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": f"/cds-services/{SERVICE}",
        "raw_path": f"/cds-services/{SERVICE}".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("10.0.0.9", 50000),
        "server": ("10.0.0.1", 443),
        "extensions": {"tls": {"tls_version": 0x0301, "cipher_suite": 0x002F}},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    [event] = events
    assert event.tls is not None
    assert (event.tls.version, event.tls.cipher) == ("TLSv1.0", "0x002f")
    assert event.peer is not None
    assert event.peer.ip == "10.0.0.9"


def test_an_absurdly_long_path_is_answered_and_recorded(service_factory: Any) -> None:
    svc = service_factory()
    response = svc.http.post(f"{svc.base_url}/cds-services/{'x' * 3000}", json=hook_body())
    assert response.status_code == 401
    [event] = svc.events
    assert event.service is not None
    assert event.service.id is None  # too long to record, never a reason to fail

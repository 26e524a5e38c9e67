"""Cost of CdsHooksMiddleware per request, in process (no network), against the bare app.

    .venv/bin/python bench/cdshooks_middleware.py [--requests 2000]

Both variants run the example ``patient-greeter`` endpoint on the same ASGI event loop with
the same 1.5 KB hook body; the guarded one also verifies a fresh ES256 token (thread hop
included), rate-limits, reads and validates the body, checks ``fhirServer`` and emits one
event. Prints microseconds per request, best of interleaved rounds, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auditor.cdshooks import (
    CdsClient,
    FhirServerPolicy,
    ListSink,
    SigningKey,
    TokenBucketLimiter,
    TrustedIssuer,
    TrustRegistry,
    Verifier,
)
from auditor.cdshooks.example import create_app, greeting_card
from auditor.fingerprints import Fingerprinter

BASE = "https://cds.example.com"
ISS = "https://ehr.example.org"
URL = f"{BASE}/cds-services/patient-greeter"
BODY = json.dumps(
    {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://fhir.example.org/r4",
        "fhirAuthorization": {
            "access_token": "x" * 200,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/Patient.read",
            "subject": "svc",
        },
        "context": {"userId": "Practitioner/1", "patientId": "p-1"},
        "prefetch": {
            "patient": {
                "resourceType": "Patient",
                "name": [{"given": ["Ada"], "family": "Lovelace"}],
                "address": [{"line": ["1 Main St"] * 10}],
            }
        },
    }
).encode()


async def _call(app: Any, token: str | None) -> int:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/cds-services/patient-greeter",
        "raw_path": b"/cds-services/patient-greeter",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 443),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def main() -> None:
    """Print the comparison."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    fingerprinter = Fingerprinter(b"bench-key-0123456789abcdef")
    key = SigningKey.generate("ES256")
    client = CdsClient(issuer=ISS, keys=key, services=[BASE], fingerprinter=fingerprinter)
    sink = ListSink()
    verifier = Verifier(
        TrustRegistry([TrustedIssuer(ISS, jwks=client.jwks(now=now))]),
        base_url=BASE,
        sink=sink,
        fingerprinter=fingerprinter,
    )
    guarded = create_app(
        verifier=verifier,
        fhir_servers=FhirServerPolicy(["https://fhir.example.org/r4"]),
        rate_limiter=TokenBucketLimiter(rate=1e9, burst=1e9),
        clock=lambda: now,
    )

    async def unguarded(request: Request) -> JSONResponse:
        # What the endpoint does without the middleware: parse the body, answer a card.
        body = await request.json()
        return JSONResponse({"cards": [greeting_card(body["prefetch"]["patient"])]})

    bare = Starlette(routes=[Route("/cds-services/patient-greeter", unguarded, methods=["POST"])])

    async def run() -> tuple[float, float]:
        best = [float("inf"), float("inf")]
        rounds, per_round = 5, max(1, args.requests // 5)
        for _ in range(rounds):
            tokens = [client.mint(URL, now=now).token for _ in range(per_round)]
            start = time.perf_counter()
            for _ in range(per_round):
                await _call(bare, None)
            best[0] = min(best[0], (time.perf_counter() - start) / per_round * 1e6)
            start = time.perf_counter()
            for token in tokens:
                assert await _call(guarded, token) != 401
            best[1] = min(best[1], (time.perf_counter() - start) / per_round * 1e6)
            sink.clear()
        return best[0], best[1]

    bare_us, guarded_us = asyncio.run(run())
    print(f"bare endpoint      {bare_us:8.0f} us/request")
    print(f"behind middleware  {guarded_us:8.0f} us/request  ratio {guarded_us / bare_us:.1f}")
    print(f"middleware cost    {guarded_us - bare_us:8.0f} us/request")


if __name__ == "__main__":
    main()

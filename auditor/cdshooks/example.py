"""A working CDS service behind :class:`CdsHooksMiddleware`: discovery and ``patient-greeter``.

Run it on 127.0.0.1 (``--port 0`` picks a free port and prints the URL first)::

    python -m auditor.cdshooks.example --port 0 --trust trust.json --events events.jsonl

``trust.json`` lists the CDS clients it accepts (see ``TrustRegistry.from_file``). The
service answers ``patient-view`` with a card greeting the patient named in the
``patient`` prefetch, and ``412`` when that prefetch is missing (it does not fetch from
the FHIR server itself). It logs nothing about the patient.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auditor.cdshooks.hooks import FhirServerPolicy
from auditor.cdshooks.middleware import CdsHooksMiddleware, verified_call
from auditor.cdshooks.ratelimit import TokenBucketLimiter
from auditor.cdshooks.trust import TrustRegistry
from auditor.cdshooks.verification import Verifier
from auditor.models import AuthzEvent, Source
from auditor.protocols import EventSink

SERVICE_ID: Final = "patient-greeter"
HOOK: Final = "patient-view"

DISCOVERY: Final = {
    "services": [
        {
            "hook": HOOK,
            "id": SERVICE_ID,
            "title": "Patient greeter",
            "description": "Greets the patient whose chart is opened.",
            "prefetch": {"patient": "Patient/{{context.patientId}}"},
        }
    ]
}


async def _discovery(_request: Request) -> JSONResponse:
    return JSONResponse(DISCOVERY)


async def _patient_greeter(request: Request) -> JSONResponse:
    call = verified_call(request.scope)
    assert call.request is not None  # the middleware validated this hook call
    patient = (call.request.prefetch or {}).get("patient")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        # CDS Hooks: 412 when the service cannot obtain the data it needs.
        return JSONResponse({"error": "prefetch patient is required"}, status_code=412)
    return JSONResponse({"cards": [greeting_card(patient)]})


def greeting_card(patient: dict[str, Any]) -> dict[str, Any]:
    """The card for a FHIR Patient: its first given name, or a neutral greeting."""
    names = patient.get("name") or [{}]
    first = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    given = first.get("given") or []
    name = given[0] if isinstance(given, list) and given and isinstance(given[0], str) else None
    return {
        "summary": f"Now seeing: {name}" if name else "Now seeing: this patient",
        "indicator": "info",
        "source": {"label": "CDS Hooks Auditor example service"},
    }


def create_app(
    *,
    verifier: Verifier,
    fhir_servers: FhirServerPolicy | None = None,
    rate_limiter: TokenBucketLimiter | None = None,
    max_body_bytes: int = 1024 * 1024,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The example service as an ASGI application, guarded by :class:`CdsHooksMiddleware`."""
    options: dict[str, Any] = {
        "verifier": verifier,
        "services": {SERVICE_ID: HOOK},
        "fhir_servers": fhir_servers,
        "rate_limiter": rate_limiter,
        "max_body_bytes": max_body_bytes,
    }
    if clock is not None:
        options["clock"] = clock
    return Starlette(
        routes=[
            Route("/cds-services", _discovery, methods=["GET"]),
            Route(f"/cds-services/{SERVICE_ID}", _patient_greeter, methods=["POST"]),
        ],
        middleware=[Middleware(CdsHooksMiddleware, **options)],
    )


class JsonLinesSink:
    """Writes each event as one JSON line to a text stream, flushing each line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: AuthzEvent) -> None:
        """Write one event."""
        self._stream.write(event.model_dump_json() + "\n")
        self._stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example service with uvicorn on 127.0.0.1."""
    parser = argparse.ArgumentParser(prog="python -m auditor.cdshooks.example")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--trust", type=Path, required=True, help="trusted issuers (JSON)")
    parser.add_argument("--events", type=Path, help="append authz events here (JSON lines)")
    parser.add_argument(
        "--base-url", help="public base URL clients call (default: http://127.0.0.1:PORT)"
    )
    parser.add_argument(
        "--fhir-server", action="append", default=[], help="allowed fhirServer (repeatable)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s per client")
    args = parser.parse_args(argv)

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    base_url = args.base_url or f"http://127.0.0.1:{port}"
    events_file = args.events.open("a", encoding="utf-8") if args.events else None
    sink: EventSink | None = JsonLinesSink(events_file) if events_file else None
    verifier = Verifier(
        TrustRegistry.from_file(args.trust),
        base_url=base_url,
        sink=sink,
        source=Source(role="service", name="example-cds-service", instance=f"127.0.0.1:{port}"),
        allow_http=base_url.startswith("http://127.0.0.1"),
    )
    app = create_app(
        verifier=verifier,
        fhir_servers=FhirServerPolicy(args.fhir_server),
        rate_limiter=TokenBucketLimiter(rate=args.rate, burst=max(1.0, args.rate * 2)),
    )
    sys.stdout.write(f"{base_url}\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        verifier.registry.close()
        if events_file is not None:
            events_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

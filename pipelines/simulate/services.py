"""The simulated CDS services: one Starlette application per vendor, behind the real middleware.

Each vendor's application is what a CDS service vendor would deploy: discovery, its hook
endpoints, ``CdsHooksMiddleware`` with the vendor's ``Verifier`` (trust registry, replay
cache, algorithm policy), ``fhirServer`` policy and rate limit, and structlog logging
through the ``auditor.Redactor``. The handlers behave like real services: most calls
return cards after some tens of milliseconds, a call without the prefetch they need gets
``412``, a failing dependency gets ``500`` with a stack trace in the log.

Incidents reach in at two places: ``faults`` (the next call of a service fails) and
``canaries`` — a release that logs what it should not, without the Redactor, for the calls
an incident names.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from structlog.typing import Processor

from auditor.cdshooks import (
    CdsHooksMiddleware,
    FhirServerPolicy,
    HookRequest,
    InMemoryReplayCache,
    TokenBucketLimiter,
    TrustRegistry,
    Verifier,
    verified_call,
)
from auditor.fingerprints import Fingerprinter
from auditor.models import Source
from auditor.protocols import EventSink
from pipelines.simulate.cast import SERVICES, VendorSpec
from pipelines.simulate.clock import SimClock
from pipelines.simulate.logs import LogWriter, process_logger

_TRACEBACK: Final = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/{pkg}/hooks.py", line 118, in handle\n'
    "    evidence = await self.fhir.search(resource, params)\n"
    '  File "/srv/app/{pkg}/fhir_client.py", line 64, in search\n'
    "    response = await self._http.get(url, params=params, timeout=self.timeout)\n"
    '  File "/srv/app/.venv/lib/python3.12/site-packages/httpx/_client.py", line 1814, in get\n'
    "    return await self.request(\n"
    '  File "/srv/app/.venv/lib/python3.12/site-packages/httpx/_transports/default.py", '
    "line 393, in handle_async_request\n"
    "    raise mapped_exc(message) from exc\n"
    "httpx.ReadTimeout: timed out"
)
"""What the vendor's log shows when its FHIR client times out (paths of the vendor's image)."""


@dataclass(frozen=True, slots=True)
class Leak:
    """What a leaking release sees of one call, to log it as the faulty code would.

    Attributes:
        log: The vendor's logger without the Redactor, bound with the request's fields.
        token: The bearer token of the call.
        body: The request body as received.
    """

    log: structlog.typing.FilteringBoundLogger
    token: str
    body: dict[str, Any]


LeakAction = Callable[[Leak], None]


class Vendor:
    """A running CDS service vendor (see the module docstring).

    Args:
        spec: The vendor.
        registry: The EHRs it trusts and their keys.
        fhir_servers: The FHIR servers its EHRs use (its allowlist, when strict).
        clock: Simulated time.
        sink: Where the middleware's authz events go.
        write_log: Where its log lines go.
        redaction: The Redactor of its log chain.
        fingerprinter: Keys the fingerprints of tokens in events.
        rng: Its randomness (processing times, sampling, request ids).
        rate_limit: Requests per second allowed per client.
    """

    def __init__(
        self,
        spec: VendorSpec,
        *,
        registry: TrustRegistry,
        fhir_servers: Iterable[str],
        clock: SimClock,
        sink: EventSink,
        write_log: LogWriter,
        redaction: Processor,
        fingerprinter: Fingerprinter,
        rng: random.Random,
        rate_limit: float,
    ) -> None:
        instance = f"{spec.key}-1"
        self.spec = spec
        self.clock = clock
        self.rng = rng
        self.calls = 0
        self.faults: dict[str, int] = {}
        self.canaries: dict[str, LeakAction] = {}
        """hookInstance -> what the leaking release logs for that call."""
        self.verifier = Verifier(
            registry,
            base_url=spec.base_url,
            sink=sink,
            source=Source(role="service", name=f"cds-{spec.key}", instance=instance),
            fingerprinter=fingerprinter,
            # Every token stays in the cache for its 5 minutes (and the skew): room for
            # the busiest minute times 6, or a high --rate would fill it and fail closed.
            replay_cache=InMemoryReplayCache(max_entries=max(200_000, int(rate_limit * 400))),
        )
        self.log = process_logger(
            clock=clock, write=write_log, redaction=redaction, logger=spec.logger, instance=instance
        )
        self.unredacted = process_logger(
            clock=clock,
            write=write_log,
            redaction=None,
            logger=spec.logger,
            instance=f"{spec.key}-canary",
            version=f"{spec.version}-rc1",
        )
        policy = (
            FhirServerPolicy(fhir_servers)
            if spec.strict_fhir_servers
            else FhirServerPolicy(allow_internal=True)
        )
        self.app = Starlette(
            routes=[
                Route("/cds-services", self._discovery, methods=["GET"]),
                Route("/cds-services/{service_id}", self._hook, methods=["POST"]),
            ],
            middleware=[
                Middleware(
                    CdsHooksMiddleware,
                    verifier=self.verifier,
                    services={s.id: s.hook for s in spec.services},
                    fhir_servers=policy,
                    rate_limiter=TokenBucketLimiter(rate=rate_limit, burst=rate_limit * 2),
                    clock=clock.now,
                    offload=False,  # JWK Sets come from the in-process network: no I/O wait
                )
            ],
        )

    def fail_next(self, service_id: str) -> None:
        """Make the next call of ``service_id`` fail in its FHIR client (a ``500``)."""
        self.faults[service_id] = self.faults.get(service_id, 0) + 1

    def heartbeat(self, inflight: int) -> None:
        """The periodic health line every worker writes."""
        self.log.info(
            "worker.health",
            inflight=inflight,
            calls=self.calls,
            rss_mb=round(180 + self.rng.random() * 40, 1),
            gc_pause_ms=round(self.rng.random() * 3, 2),
        )

    def started(self) -> None:
        """The start-up line."""
        self.log.info(
            "service.starting",
            version=self.spec.version,
            services=[s.id for s in self.spec.services],
            workers=4,
        )

    async def _discovery(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "services": [
                    {
                        "hook": s.hook,
                        "id": s.id,
                        "title": s.title,
                        "description": s.title,
                        "prefetch": {"patient": "Patient/{{context.patientId}}"},
                    }
                    for s in self.spec.services
                ]
            }
        )

    async def _hook(self, request: Request) -> Response:
        call = verified_call(request.scope)
        hook_request = call.request
        assert hook_request is not None  # the middleware validated the hook call
        service = SERVICES[call.service_id or ""]
        self.calls += 1
        client = call.verification.client
        fields = {
            "request_id": f"{self.rng.getrandbits(64):016x}",
            "service": service.id,
            "hook": hook_request.hook,
            "client_iss": client.iss if client else None,
            "tenant": client.tenant if client else None,
        }
        log = self.log.bind(**fields)
        log.info(
            "hook.received",
            hook_instance=hook_request.hook_instance,
            fhir_host=_host(hook_request.fhir_server),
            prefetch_keys=sorted(hook_request.prefetch or {}),
        )
        if self.rng.random() < self.spec.body_sample:
            log.debug("hook.request.sampled", body=json.loads(await request.body()))
        leak = self.canaries.pop(hook_request.hook_instance, None)
        if leak is not None:
            raw = self.unredacted.bind(**fields, hook_instance=hook_request.hook_instance)
            token = request.headers.get("authorization", "").partition(" ")[2]
            leak(Leak(raw, token, json.loads(await request.body())))
        return self._answer(log, service.id, service.cards, hook_request)

    def _answer(
        self,
        log: structlog.typing.FilteringBoundLogger,
        service_id: str,
        cards: tuple[str, ...],
        call: HookRequest,
    ) -> Response:
        if not isinstance((call.prefetch or {}).get("patient"), dict):
            log.warning("prefetch.unavailable", wanted=["patient"], status=412)
            return JSONResponse({"error": "prefetch patient is required"}, status_code=412)
        if self.faults.get(service_id):
            self.faults[service_id] -= 1
            self.clock.advance(2.0)
            log.error(
                "hook.failed",
                status=500,
                duration_ms=2000.0,
                exc_type="httpx.ReadTimeout",
                exception=_TRACEBACK.format(pkg=self.spec.key),
            )
            return JSONResponse({"error": "internal"}, status_code=500)
        duration = self.rng.lognormvariate(-3.3, 0.5)  # ~40 ms, with a long tail
        self.clock.advance(duration)
        log.info("cards.returned", cards=1, status=200, duration_ms=round(duration * 1000, 1))
        return JSONResponse(
            {
                "cards": [
                    {
                        "summary": self.rng.choice(cards),
                        "indicator": "info",
                        "source": {"label": self.spec.base_url.split("//")[1]},
                    }
                ]
            }
        )


def _host(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None

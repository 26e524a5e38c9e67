"""ASGI middleware that guards CDS Hooks endpoints and records every decision.

For each request under ``/cds-services/`` (discovery, ``GET /cds-services``, is left
open as the spec has it, and so are CORS preflight ``OPTIONS`` requests), in this order:

1. the ``Authorization: Bearer`` token is verified **before the body is read**; a refusal
   is a bare ``401`` with ``WWW-Authenticate: Bearer`` and a generic body — the reason
   goes to the event, never to the caller (``503`` when the service itself cannot decide:
   JWK Set unavailable, replay cache full);
2. the verified client is rate-limited (``429`` with ``Retry-After``);
3. the body is read up to ``max_body_bytes`` while it streams in (``413``);
4. a hook call body is validated strictly (``415``/``400``), its ``hook`` must be the
   service's, and its ``fhirServer`` must pass the :class:`FhirServerPolicy` (``403``);
5. the application runs, with the verified call in ``scope["cds_hooks"]``.

Exactly one ``AuthzEvent`` is emitted per guarded request: ``token.rejected``,
``ratelimit.exceeded``, ``payload.rejected``, or ``token.validated`` carrying the
application's status when its response starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import anyio.to_thread
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditor.cdshooks.hooks import FhirServerPolicy, HookRequest, describe_errors
from auditor.cdshooks.ratelimit import TokenBucketLimiter
from auditor.cdshooks.urls import display_url
from auditor.cdshooks.verification import Verification, Verifier
from auditor.errors import ConfigurationError
from auditor.models import Peer, TlsInfo
from auditor.vocabulary import AuthzAction, FailureReason

SCOPE_KEY: Final = "cds_hooks"
"""Where the middleware leaves the :class:`VerifiedCall` in the ASGI scope."""

DEFAULT_MAX_BODY: Final = 1024 * 1024

_TLS_VERSIONS: Final = {0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
_UNAVAILABLE: Final = frozenset({FailureReason.JWKS_UNAVAILABLE, FailureReason.REPLAY_CACHE_FULL})
_BODIES: Final = {
    400: b'{"error":"bad_request"}',
    401: b'{"error":"unauthorized"}',
    403: b'{"error":"forbidden"}',
    413: b'{"error":"payload_too_large"}',
    415: b'{"error":"unsupported_media_type"}',
    429: b'{"error":"too_many_requests"}',
    503: b'{"error":"service_unavailable"}',
}


@dataclass(frozen=True, slots=True)
class VerifiedCall:
    """What the application may rely on once the middleware let a request through.

    Attributes:
        verification: The accepted token's verification (claims, client).
        request: The validated hook call, or ``None`` for other guarded endpoints.
        service_id: The CDS service called.
    """

    verification: Verification
    request: HookRequest | None
    service_id: str | None


def verified_call(scope: Scope) -> VerifiedCall:
    """The :class:`VerifiedCall` of a request that passed the middleware.

    Raises:
        ConfigurationError: The application is not behind :class:`CdsHooksMiddleware`.
    """
    call = scope.get(SCOPE_KEY)
    if not isinstance(call, VerifiedCall):
        raise ConfigurationError("this endpoint is not behind CdsHooksMiddleware")
    return call


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CdsHooksMiddleware:
    """Guards the CDS Hooks endpoints of an ASGI application (see the module docstring).

    Args:
        app: The application (Starlette, FastAPI, any ASGI app).
        verifier: Verifies tokens; its event sink receives this middleware's events.
        services: Service id -> the hook it serves; a call for another hook is refused.
        max_body_bytes: Largest accepted request body.
        fhir_servers: The ``fhirServer`` policy; by default https and no internal address.
        rate_limiter: Per-client limiter; none by default.
        clock: The time of each decision; the wall clock by default.
        prefix: Path of the discovery endpoint, under which services live.
        offload: Verify tokens in a worker thread so a JWK Set fetch cannot stall the
            event loop. By default only when some issuer has a JWK Set URL; with pinned
            keys verification never waits on I/O and runs inline (no thread hop).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        services: Mapping[str, str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        fhir_servers: FhirServerPolicy | None = None,
        rate_limiter: TokenBucketLimiter | None = None,
        clock: Callable[[], datetime] = _utc_now,
        prefix: str = "/cds-services",
        offload: bool | None = None,
    ) -> None:
        if max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ConfigurationError("prefix must start with '/' and not end with it")
        self.app = app
        self.verifier = verifier
        self.services = dict(services or {})
        self.max_body_bytes = max_body_bytes
        self.fhir_servers = fhir_servers or FhirServerPolicy()
        self.rate_limiter = rate_limiter
        self.clock = clock
        self.prefix = prefix
        self.offload = verifier.registry.may_block if offload is None else offload
        self._events = verifier.events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _app_path(scope)
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return
        if path == self.prefix and scope["method"] in {"GET", "HEAD"}:
            await self.app(scope, receive, send)  # discovery is unauthenticated (CDS Hooks)
            return
        if scope["method"] == "OPTIONS":
            # CORS preflight from browser-based CDS clients carries no token by design; it
            # reaches no hook logic (a CORS middleware or the router answers it).
            await self.app(scope, receive, send)
            return
        await _Guard(self, scope, receive, send, path).run()


class _Guard:
    """The checks of one guarded request, and the one event it emits."""

    def __init__(
        self, owner: CdsHooksMiddleware, scope: Scope, receive: Receive, send: Send, path: str
    ) -> None:
        self.owner = owner
        self.scope = scope
        self.receive = receive
        self.send = send
        self.now = owner.clock()
        self.audience = owner.verifier.base_url + path
        rest = path[len(owner.prefix) + 1 :]
        self.service_id = rest.split("/", 1)[0] or None
        self.is_hook_call = bool(rest) and "/" not in rest and scope["method"] == "POST"
        self.fields: dict[str, Any] = {
            "service": owner.verifier.service_ref(self.audience),
            "peer": _peer(scope),
            "tls": _tls(scope),
        }

    async def run(self) -> None:
        owner = self.owner
        token = _bearer_token(self.scope)
        check = partial(owner.verifier.check, token, audience=self.audience, now=self.now)
        verification = await anyio.to_thread.run_sync(check) if owner.offload else check()
        self.fields |= {"client": verification.client, "token": verification.claims}
        if not verification.ok:
            assert verification.reason is not None  # a refused verification has a reason
            status = 503 if verification.reason in _UNAVAILABLE else 401
            await self._refuse(
                AuthzAction.TOKEN_REJECTED, verification.reason, verification.detail, status
            )
            return
        if owner.rate_limiter is not None and verification.issuer is not None:
            wait = owner.rate_limiter.acquire(verification.issuer, self.now.timestamp())
            if wait > 0:
                headers = [(b"retry-after", str(max(1, math.ceil(wait))).encode())]
                await self._refuse(
                    AuthzAction.RATELIMIT_EXCEEDED,
                    FailureReason.RATE_LIMITED,
                    "client is over its rate limit",
                    429,
                    headers,
                )
                return
        body = await self._read_body()
        if body is None:
            return
        request = None
        if self.is_hook_call:
            request = await self._validate(body)
            if request is None:
                return
        self.scope[SCOPE_KEY] = VerifiedCall(verification, request, self.service_id)
        await self._call_app(body)

    async def _read_body(self) -> bytes | None:
        limit = self.owner.max_body_bytes
        declared = _header(self.scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._reject_payload(FailureReason.INVALID_REQUEST, "bad Content-Length", 400)
                return None
            if int(declared) > limit:
                await self._reject_payload(
                    FailureReason.PAYLOAD_TOO_LARGE, f"body over {limit} bytes", 413
                )
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                # Nobody to answer, but the token was spent: record the request anyway.
                self._emit(
                    AuthzAction.PAYLOAD_REJECTED,
                    FailureReason.INVALID_REQUEST,
                    "client disconnected before the body was complete",
                    None,
                )
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._reject_payload(
                    FailureReason.PAYLOAD_TOO_LARGE, f"body over {limit} bytes", 413
                )
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        self.fields["payload_bytes"] = len(body)
        return body

    async def _validate(self, body: bytes) -> HookRequest | None:
        content_type = (_header(self.scope, b"content-type") or "").split(";", 1)[0].strip()
        if content_type.lower() != "application/json":
            await self._reject_payload(
                FailureReason.INVALID_REQUEST, "Content-Type is not application/json", 415
            )
            return None
        try:
            request = HookRequest.model_validate_json(body)
        except ValidationError as exc:
            await self._reject_payload(FailureReason.INVALID_REQUEST, describe_errors(exc), 400)
            return None
        self.fields |= {
            "hook": request.hook,
            "hook_instance": request.hook_instance,
            "fhir_server": display_url(request.fhir_server),
            "fhir_authorization": request.fhir_authorization is not None,
            "scopes": request.scopes[:64],
        }
        expected_hook = self.owner.services.get(self.service_id or "")
        if expected_hook is not None and request.hook != expected_hook:
            await self._reject_payload(
                FailureReason.INVALID_REQUEST, "hook is not the one this service serves", 400
            )
            return None
        if request.fhir_server is not None:
            refusal = self.owner.fhir_servers.refusal(request.fhir_server)
            if refusal is not None:
                await self._reject_payload(FailureReason.FHIR_SERVER_NOT_ALLOWED, refusal, 403)
                return None
        return request

    async def _call_app(self, body: bytes) -> None:
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await self.receive()

        emitted = False

        async def send(message: Message) -> None:
            nonlocal emitted
            if message["type"] == "http.response.start" and not emitted:
                emitted = True
                self._emit(AuthzAction.TOKEN_VALIDATED, None, None, int(message["status"]))
            await self.send(message)

        try:
            await self.owner.app(self.scope, replay, send)
        finally:
            if not emitted:  # the application raised before answering
                self._emit(AuthzAction.TOKEN_VALIDATED, None, None, 500)

    async def _reject_payload(self, reason: FailureReason, detail: str, status: int) -> None:
        await self._refuse(AuthzAction.PAYLOAD_REJECTED, reason, detail, status)

    async def _refuse(
        self,
        action: AuthzAction,
        reason: FailureReason,
        detail: str | None,
        status: int,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self._emit(action, reason, detail, status)
        body = _BODIES[status]
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if status == 401:  # noqa: PLR2004 - RFC 6750 §3: a 401 names the scheme, not the reason
            headers.append((b"www-authenticate", b"Bearer"))
        if status == 503:  # noqa: PLR2004 - transient: let the client retry soon
            headers.append((b"retry-after", b"5"))
        headers.extend(extra_headers or ())
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    def _emit(
        self,
        action: AuthzAction,
        reason: FailureReason | None,
        detail: str | None,
        status: int | None,
    ) -> None:
        events = self.owner._events  # noqa: SLF001 - the middleware's own factory
        if events is not None:
            events.emit(
                action,
                time=self.now,
                reason=reason,
                detail=detail,
                http_status=status,
                **self.fields,
            )


def _app_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.rstrip("/") or "/"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer_token(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def _peer(scope: Scope) -> Peer | None:
    client = scope.get("client")
    if not client:
        return None
    return Peer(ip=str(client[0])[:64])


def _tls(scope: Scope) -> TlsInfo | None:
    tls = (scope.get("extensions") or {}).get("tls")
    if not isinstance(tls, Mapping):
        return None
    version = tls.get("tls_version")
    cipher = tls.get("cipher_suite")
    return TlsInfo(
        version=_TLS_VERSIONS.get(version, f"0x{version:04x}")
        if isinstance(version, int)
        else None,
        cipher=f"0x{cipher:04x}" if isinstance(cipher, int) else None,
    )

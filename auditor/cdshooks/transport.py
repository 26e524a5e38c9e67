"""Client side over HTTP: call CDS services with httpx, degrade gracefully, record each attempt.

- TLS certificates are verified (httpx's default; pass an ``ssl.SSLContext`` to pin a CA).
- Timeouts on connect and read; redirects are not followed (a token is for one URL).
- Discovery (``GET``, idempotent) is retried with exponential backoff and full jitter on
  connection failures, timeouts, ``429`` and ``502``/``503``/``504``, honouring
  ``Retry-After`` up to the backoff cap.
- A hook call (``POST``) is sent once by default. With ``hook_attempts > 1`` it is
  retried only when the connection could not be made — the request never left — and
  every attempt carries a newly minted token: a ``jti`` is never sent twice.
- An unreachable service yields a :class:`CallResult` with ``reason=unreachable`` (or
  ``timeout``, ``tls_error``) and a failure event, never an exception.

Each attempt emits one ``request.sent`` event (``tls.failed`` for a TLS handshake
failure) with the attempt's token claims and fingerprint.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Self

import httpx

from auditor.cdshooks.client import CdsClient, MintedToken, service_url
from auditor.cdshooks.events import client_ref, text, token_claims
from auditor.cdshooks.urls import display_url
from auditor.errors import ConfigurationError
from auditor.models import ServiceRef, TlsInfo
from auditor.vocabulary import AuthzAction, FailureReason, Outcome

DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=3.0)
_RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
_STATUS_REASONS: Final = {
    400: FailureReason.INVALID_REQUEST,
    401: FailureReason.UNAUTHORIZED,
    403: FailureReason.UNAUTHORIZED,
    413: FailureReason.PAYLOAD_TOO_LARGE,
    415: FailureReason.INVALID_REQUEST,
    429: FailureReason.RATE_LIMITED,
}
_MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CallResult:
    """The outcome of a discovery or hook call.

    Attributes:
        ok: A 2xx answer was received.
        status: The last HTTP status, or ``None`` when no answer came.
        reason: Why it failed (``unreachable``, ``timeout``, ``tls_error``, ``unauthorized``
            ...), ``None`` on success.
        attempts: How many requests were made.
        body: The parsed JSON answer (``cards``, ``services``), when there was one.
        jti: The ``jti`` of the last token sent.
    """

    ok: bool
    status: int | None
    reason: FailureReason | None
    attempts: int
    body: Any = None
    jti: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CdsHttpClient:
    """Calls CDS services for one :class:`CdsClient`. Thread-safe; reuse one per process.

    Args:
        client: Mints the tokens and emits the events.
        http: A configured ``httpx.Client``; by default one is made with ``timeout``,
            ``verify`` and no redirects, and closed by :meth:`close`.
        timeout: Seconds, or an ``httpx.Timeout``.
        verify: TLS verification: ``True`` (system CAs), or an ``ssl.SSLContext``.
        discovery_attempts: Tries for discovery (idempotent GET).
        hook_attempts: Tries for a hook call; retries happen only when no connection was made.
        backoff: First backoff in seconds; doubles per retry, with full jitter.
        max_backoff: Largest wait between attempts.
        authenticate_discovery: Send a token on discovery too (its ``aud`` is the discovery URL).
        clock: The time of minting and events; the wall clock by default.
        sleep: How to wait between attempts (tests and simulations pass their own).
        rng: Randomness for jitter.
    """

    def __init__(
        self,
        client: CdsClient,
        *,
        http: httpx.Client | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        verify: bool | ssl.SSLContext = True,
        discovery_attempts: int = 3,
        hook_attempts: int = 1,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        authenticate_discovery: bool = True,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if discovery_attempts < 1 or hook_attempts < 1:
            raise ConfigurationError("attempts must be at least 1")
        if verify is False:
            raise ConfigurationError("TLS verification cannot be turned off for CDS Hooks calls")
        self.client = client
        self._own_http = http is None
        self.http = http or httpx.Client(
            timeout=timeout, verify=verify, follow_redirects=False, trust_env=False
        )
        self.discovery_attempts = discovery_attempts
        self.hook_attempts = hook_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.authenticate_discovery = authenticate_discovery
        self.clock = clock
        self.sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the httpx client this helper made."""
        if self._own_http:
            self.http.close()

    def discover(self, base_url: str) -> CallResult:
        """``GET {base_url}/cds-services``, retried with backoff (an idempotent request)."""
        url = service_url(base_url)
        result = CallResult(ok=False, status=None, reason=FailureReason.UNREACHABLE, attempts=0)
        for attempt in range(1, self.discovery_attempts + 1):
            minted = (
                self.client.mint(url, now=self.clock()) if self.authenticate_discovery else None
            )
            result, retry_after = self._send("GET", url, minted, None, attempt)
            retryable = result.status in _RETRYABLE_STATUS or result.reason in {
                FailureReason.UNREACHABLE,
                FailureReason.TIMEOUT,
            }
            if result.ok or not retryable or attempt == self.discovery_attempts:
                return result
            self.sleep(self._wait(attempt, retry_after))
        return result

    def call(self, base_url: str, service_id: str, body: Mapping[str, Any]) -> CallResult:
        """``POST`` a hook call to ``{base_url}/cds-services/{service_id}``.

        Raises:
            ServiceNotAllowed: The service is not on the client's allowlist.
        """
        url = service_url(base_url, service_id)
        result = CallResult(ok=False, status=None, reason=FailureReason.UNREACHABLE, attempts=0)
        for attempt in range(1, self.hook_attempts + 1):
            minted = self.client.mint(url, now=self.clock())  # a new jti for every attempt
            result, _ = self._send("POST", url, minted, body, attempt)
            if result.ok or result.reason is not FailureReason.UNREACHABLE:
                return result
            if attempt < self.hook_attempts:
                self.sleep(self._wait(attempt, None))
        return result

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        if retry_after is not None:
            return min(self.max_backoff, retry_after)
        return self._rng.uniform(0, cap)

    def _send(
        self,
        method: str,
        url: str,
        minted: MintedToken | None,
        body: Mapping[str, Any] | None,
        attempt: int,
    ) -> tuple[CallResult, float | None]:
        headers = {"Accept": "application/json"}
        if minted is not None:
            headers["Authorization"] = minted.authorization
        jti = minted.jti if minted else None
        tls_error: Exception | None = None
        try:
            response = self.http.request(method, url, headers=headers, json=body)
        except httpx.ConnectError as exc:
            tls_error = exc if _is_tls_error(exc) else None
            reason = FailureReason.TLS_ERROR if tls_error else FailureReason.UNREACHABLE
        except httpx.ConnectTimeout:
            reason = FailureReason.UNREACHABLE  # never connected: the request did not leave
        except httpx.TimeoutException:
            reason = FailureReason.TIMEOUT
        except httpx.HTTPError:
            reason = FailureReason.UNREACHABLE
        else:
            status = response.status_code
            ok = 200 <= status < 300  # noqa: PLR2004 - success range
            failure = None if ok else _STATUS_REASONS.get(status, FailureReason.SERVICE_ERROR)
            self._record(url, minted, status=status, reason=failure, attempt=attempt)
            result = CallResult(
                ok=ok,
                status=status,
                reason=failure,
                attempts=attempt,
                body=_json_body(response) if ok else None,
                jti=jti,
            )
            return result, _retry_after(response)
        self._record(url, minted, status=None, reason=reason, attempt=attempt, tls_error=tls_error)
        return CallResult(ok=False, status=None, reason=reason, attempts=attempt, jti=jti), None

    def _record(
        self,
        url: str,
        minted: MintedToken | None,
        *,
        status: int | None,
        reason: FailureReason | None,
        attempt: int,
        tls_error: Exception | None = None,
    ) -> None:
        events = self.client.events
        if events is None:
            return
        claims = None
        if minted is not None:
            fingerprint = self.client.fingerprinter(minted.token)
            claims = token_claims(minted.header, minted.claims, fingerprint)
        service_id = url.rpartition("/cds-services/")[2].split("/", 1)[0] or None
        events.emit(
            AuthzAction.TLS_FAILED if tls_error is not None else AuthzAction.REQUEST_SENT,
            time=self.clock(),
            reason=reason,
            outcome=Outcome.FAILURE if reason is not None else Outcome.SUCCESS,
            http_status=status,
            client=client_ref({"iss": self.client.issuer, "tenant": self.client.tenant}),
            service=ServiceRef.model_construct(
                id=text(service_id) if "/cds-services/" in url else None, url=display_url(url)
            ),
            token=claims,
            tls=TlsInfo(error=type(tls_error).__name__) if tls_error is not None else None,
            attributes={"attempt": attempt},
        )


def _is_tls_error(exc: httpx.ConnectError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _json_body(response: httpx.Response) -> Any:
    if len(response.content) > _MAX_RESPONSE_BYTES:
        return None
    try:
        return response.json()
    except ValueError:
        return None

"""Access control and hardening of the dashboard.

- **Token login.** Access needs a token: random and printed at start, or configured. It is
  exchanged once, at ``/login``, for a session cookie (``HttpOnly``, ``SameSite=Strict``,
  ``Secure`` behind TLS); after that no URL carries it. Only its SHA-256 is kept in
  memory, compared in constant time.
- **Sessions** live in this process's memory, expire after an idle time and a maximum
  age, and each holds its own CSRF token. A restart signs everyone out.
- **CSRF.** Every state-changing request is a POST with a form field that must equal the
  session's CSRF token, and an ``Origin`` header, when the browser sends one, must be
  this server's. ``SameSite=Strict`` already keeps the cookie off cross-site requests.
- **Host check.** Requests must name this server in ``Host`` (a DNS-rebinding page
  cannot reach a loopback dashboard under its own name).
- **Headers.** A strict Content-Security-Policy (no script at all, styles only from this
  server), ``nosniff``, no framing, no referrer, ``Cache-Control: no-store`` on pages.
- **Access log.** Method, path, status and time; never the query string (the first
  request may carry the token there) and never a cookie.

The middlewares are plain ASGI so they wrap every response, errors included.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditor.errors import ConfigurationError

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "MIN_TOKEN_CHARS",
    "SESSION_COOKIE",
    "AccessLog",
    "FormRejected",
    "Gatekeeper",
    "SecurityHeaders",
    "Session",
    "SessionStore",
    "TokenGuard",
    "check_csrf",
    "generate_token",
    "read_form",
    "same_origin",
]

SESSION_COOKIE: Final = "auditor_session"
MIN_TOKEN_CHARS: Final = 16
MAX_FORM_BYTES: Final = 16 * 1024
MAX_FORM_FIELDS: Final = 32
MAX_SESSIONS: Final = 1000
PUBLIC_PATHS: Final = frozenset({"/login", "/healthz"})

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""No script at all: the pages are HTML forms and server-drawn SVG."""

_HEADERS: Final = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)

access_logger = logging.getLogger("dashboards.access")


def generate_token() -> str:
    """A fresh random access token (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


class TokenGuard:
    """Checks access tokens against the configured one without keeping it.

    Raises:
        ConfigurationError: The token is shorter than ``MIN_TOKEN_CHARS``.
    """

    __slots__ = ("_digest",)

    def __init__(self, token: str) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigurationError(
                f"the dashboard token must be at least {MIN_TOKEN_CHARS} characters long"
            )
        self._digest = hashlib.sha256(token.encode()).digest()

    def __repr__(self) -> str:
        return "TokenGuard(<hidden>)"

    def check(self, candidate: str) -> bool:
        """Whether ``candidate`` is the token (constant time in the token's content)."""
        digest = hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(digest, self._digest)


@dataclass(slots=True)
class Session:
    """One signed-in browser."""

    sid: str
    csrf: str
    created: float
    seen: float
    actor: str | None = None
    flash: tuple[str, str] | None = None

    def pop_flash(self) -> tuple[str, str] | None:
        """The message left for the next page (kind, text), once."""
        flash, self.flash = self.flash, None
        return flash


class SessionStore:
    """Sessions by id, in memory, thread-safe; idle and absolute expiry.

    Args:
        idle_seconds: A session unused this long ends.
        max_seconds: A session ends this long after it began, however busy.
        clock: Monotonic seconds (tests drive it).
    """

    def __init__(
        self,
        *,
        idle_seconds: float = 8 * 3600,
        max_seconds: float = 12 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_seconds <= 0 or max_seconds <= 0:
            raise ConfigurationError("session lifetimes must be positive")
        self._idle = idle_seconds
        self._max = max_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, actor: str | None = None) -> Session:
        """Start a session; the oldest is dropped when too many are open."""
        now = self._clock()
        session = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            created=now,
            seen=now,
            actor=actor,
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.seen)
                del self._sessions[oldest.sid]
            self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        """The live session with id ``sid`` (and mark it used), or ``None``."""
        if not sid:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if now - session.seen > self._idle or now - session.created > self._max:
                del self._sessions[sid]
                return None
            session.seen = now
            return session

    def drop(self, sid: str | None) -> None:
        """End a session (sign out)."""
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)


class FormRejected(Exception):
    """A POST body that is not a small URL-encoded form; carries the HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def read_form(request: Request) -> dict[str, str]:
    """Read a small ``application/x-www-form-urlencoded`` body, each field at most once.

    Raises:
        FormRejected: Wrong content type (415), too large (413), malformed (400).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormRejected(415, "forms are sent URL-encoded")
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        raise FormRejected(413, "the form is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRejected(413, "the form is too large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise FormRejected(400, "the form cannot be read") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise FormRejected(400, "a form field is repeated")
        form[name] = value
    return form


def check_csrf(request: Request, session: Session, form: dict[str, str]) -> bool:
    """Whether a POST comes from this server's pages and carries the session's CSRF token."""
    if not same_origin(request):
        return False
    return hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode())


def same_origin(request: HTTPConnection) -> bool:
    """Whether the browser says the request comes from this server's own pages.

    ``Sec-Fetch-Site`` is authoritative when sent. ``Origin`` is checked when it names a
    site: with ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` even for
    same-origin form posts, so ``null`` proves nothing either way, and neither does a
    missing header (non-browser clients); the CSRF token decides then.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


class SecurityHeaders:
    """Adds the security headers to every HTTP response, and no-store to non-static ones."""

    def __init__(self, app: ASGIApp, *, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope["path"]).startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS:
                    headers[name] = value
                headers["cache-control"] = "private, max-age=300" if static else "no-store"
                if not static:
                    headers["pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AccessLog:
    """One log line per request: client, method, path (no query string), status, time."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger = access_logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            client = scope.get("client")
            self.logger.info(
                '%s "%s %s" %d %.1fms',
                client[0] if client else "-",
                scope["method"],
                # The path only: a query string may hold the access token on first use.
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )


class Gatekeeper:
    """Checks ``Host``, then requires a live session for everything but login and assets.

    A request without a session is sent to ``/login`` (GET) or refused (other methods).
    The session is put in ``request.state.session`` for the handlers.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: SessionStore,
        allowed_hosts: frozenset[str] | None,
        static_prefix: str = "/static/",
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.allowed_hosts = allowed_hosts
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        host = conn.headers.get("host", "")
        if self.allowed_hosts is not None and host.lower() not in self.allowed_hosts:
            response: Response = PlainTextResponse("unknown host", status_code=421)
            await response(scope, receive, send)
            return
        path = str(scope["path"])
        session = self.sessions.get(conn.cookies.get(SESSION_COOKIE))
        scope.setdefault("state", {})["session"] = session
        if session is None and path not in PUBLIC_PATHS and not path.startswith(self.static_prefix):
            if scope["method"] in ("GET", "HEAD"):
                response = RedirectResponse("/login", status_code=303)
            else:
                response = PlainTextResponse("sign in first", status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

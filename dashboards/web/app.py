"""The dashboard's web application: pages over the named queries, review actions on POST.

Every page opens the store read-only for the length of one request (so a pipeline's
writer can take the file between requests) and reads it through :mod:`dashboards.insights`;
the only write is a review act, through :func:`dashboards.review.record_review`, with the
signed-in person as its actor. DuckDB work runs in Starlette's thread pool so the event
loop never blocks on it.

URLs carry finding ids, client iss and service ids, filters and periods — nothing else.
Keyed fingerprints stay out of URLs on purpose: they are not reversible, but a
fingerprint of an SSN in a browser history or a proxy log would still let anyone with
the same key correlate that patient across systems. The incident page shows the
fingerprint trail of a finding reached by its id instead.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from auditor.errors import InputError
from auditor.vocabulary import DetectorName, ReviewAction, ReviewStatus, Severity
from dashboards import charts, insights
from dashboards.catalog import QueryError, parse_timestamp
from dashboards.review import MAX_ACTOR, ReviewError, record_review
from dashboards.storage import StoreHandle, open_store
from dashboards.templating import environment
from dashboards.web.security import (
    SESSION_COOKIE,
    AccessLog,
    FormRejected,
    Gatekeeper,
    SecurityHeaders,
    Session,
    SessionStore,
    TokenGuard,
    check_csrf,
    read_form,
    same_origin,
)

__all__ = ["PERIODS", "DashboardConfig", "create_app", "resolve_period"]

T = TypeVar("T")

PERIODS: Final = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
}
"""The period picker's choices besides ``all`` and ``custom``."""
DEFAULT_PERIOD: Final = "30d"
_FINDING_ID: Final = re.compile(r"^[0-9a-f]{32}$")
_STATIC: Final = Path(__file__).resolve().parent.parent / "static"


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """How one dashboard serves one audit database.

    Attributes:
        db_path: The DuckDB file.
        token: The access token (exchanged for a session at ``/login``).
        allowed_hosts: ``host:port`` values accepted in the Host header; ``None``
            accepts any (only for a deliberate non-loopback bind without a name).
        secure_cookies: Mark the session cookie ``Secure`` (behind a TLS proxy).
        session_idle: Idle time that ends a session.
        session_max: Age that ends a session.
        sla_days: The review deadline the overview counts overdue findings against.
        clock: The wall clock (review times, relative periods); tests may fix it.
    """

    db_path: Path
    token: str = field(repr=False)
    allowed_hosts: frozenset[str] | None
    secure_cookies: bool = False
    session_idle: timedelta = timedelta(hours=8)
    session_max: timedelta = timedelta(hours=12)
    sla_days: int = insights.DEFAULT_SLA_DAYS
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


class _Gate:
    """Many readers or one writer, within this process.

    DuckDB refuses a read-write connection while the same process holds a read-only one
    on the file, so a review append waits for the pages being drawn, and they for it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and self._readers == 0)
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def resolve_period(
    choice: str | None, since: str | None, until: str | None, *, now: datetime
) -> tuple[str, insights.Period]:
    """The period a page shows: a preset (``7d``, ``all`` …) or ``custom`` dates.

    Raises:
        QueryError: A custom date cannot be read, or ends before it starts.
    """
    key = choice or (("custom" if since or until else None) or DEFAULT_PERIOD)
    if key == "all":
        return key, insights.Period(None, None)
    if key in PERIODS:
        return key, insights.Period(now - PERIODS[key], None)
    if key != "custom":
        raise QueryError("the period is one of " + ", ".join([*PERIODS, "all", "custom"]))
    try:
        start = parse_timestamp(since, now=now) if since else None
        end = parse_timestamp(until, now=now) if until else None
    except ValueError:
        raise QueryError("a custom period takes ISO 8601 dates, e.g. 2026-11-01") from None
    if end is not None and len(until or "") == len("2026-11-30"):
        end += timedelta(days=1)  # a date as the end means the whole of that day
    if start and end and end <= start:
        raise QueryError("the period must end after it starts")
    return key, insights.Period(start, end)


class _Dashboard:
    """The handlers, bound to one configuration."""

    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        self.guard = TokenGuard(config.token)
        self.sessions = SessionStore(
            idle_seconds=config.session_idle.total_seconds(),
            max_seconds=config.session_max.total_seconds(),
        )
        self.gate = _Gate()
        self.env = environment()

    # -- plumbing ---------------------------------------------------------------------

    async def read(self, work: Callable[[StoreHandle], T]) -> T:
        """Run ``work`` on a read-only store handle in the thread pool."""

        def run() -> T:
            with self.gate.reading(), open_store(self.config.db_path) as store:
                return work(store)

        return await run_in_threadpool(run)

    def render(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        session: Session | None = request.state.session
        context.setdefault("nav", None)
        page = self.env.get_template(template).render(
            session=session,
            csrf=session.csrf if session else "",
            flash=session.pop_flash() if session else None,
            path=request.url.path,
            db_name=self.config.db_path.name,
            charts=charts,
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.render(
            request, "error.html", status=status, status_code=status, message=message
        )

    def _set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            session.sid,
            max_age=int(self.config.session_max.total_seconds()),
            path="/",
            secure=self.config.secure_cookies,
            httponly=True,
            samesite="strict",
        )

    def _period(self, request: Request) -> tuple[str, insights.Period, dict[str, str]]:
        q = request.query_params
        key, period = resolve_period(
            q.get("period") or None, q.get("since") or None, q.get("until") or None,
            now=self.config.clock(),
        )  # fmt: skip
        keep = {"period": key}
        if key == "custom":
            keep.update({k: q[k] for k in ("since", "until") if q.get(k)})
        return key, period, keep

    # -- sign in and out --------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:
            # The printed link: exchange the token for a session and leave the URL at once.
            if not self.guard.check(token):
                return RedirectResponse("/login?failed=1", status_code=303)
            self.sessions.drop(request.cookies.get(SESSION_COOKIE))
            response = RedirectResponse("/", status_code=303)
            self._set_cookie(response, self.sessions.create())
            return response
        failed = request.query_params.get("failed") == "1"
        return self.render(request, "login.html", status=401 if failed else 200, failed=failed)

    async def login_submit(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormRejected as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)
        if not same_origin(request):
            return PlainTextResponse("cross-site sign-in refused", status_code=403)
        if not self.guard.check(form.get("token", "")):
            return self.render(request, "login.html", status=401, failed=True)
        actor = " ".join(form.get("actor", "").split())[:MAX_ACTOR] or None
        self.sessions.drop(request.cookies.get(SESSION_COOKIE))  # no session fixation
        response = RedirectResponse("/", status_code=303)
        self._set_cookie(response, self.sessions.create(actor))
        return response

    async def logout(self, request: Request) -> Response:
        session: Session = request.state.session
        try:
            form = await read_form(request)
        except FormRejected as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)
        if not check_csrf(request, session, form):
            return PlainTextResponse("the form has expired; reload the page", status_code=403)
        self.sessions.drop(session.sid)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def healthz(self, _request: Request) -> Response:
        return PlainTextResponse("ok")

    # -- pages ------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        key, period, keep = self._period(request)
        now = self.config.clock()
        data = await self.read(
            lambda store: insights.overview(store, period, now=now, sla_days=self.config.sla_days)
        )
        return self.render(
            request, "overview.html", nav="overview", data=data, period_key=key, keep=keep,
            periods=list(PERIODS), sla_days=self.config.sla_days,
            findings_link=lambda **f: _link("/findings", {**keep, **f}),
        )  # fmt: skip

    async def findings(self, request: Request) -> Response:
        key, period, keep = self._period(request)
        q = request.query_params
        filters = insights.FindingFilters(
            **{
                k: (q.get(k) or None)
                for k in ("detector", "severity", "status", "client", "service")
            }
        )
        page = int(q["page"]) if q.get("page", "").isdigit() else 1
        now = self.config.clock()

        def work(store: StoreHandle) -> tuple[insights.FindingsPage, list[str], list[str]]:
            return (
                insights.findings_page(store, filters, period, page=page, now=now),
                insights.party_names(store, "client", now=now),
                insights.party_names(store, "service", now=now),
            )

        result, clients, services = await self.read(work)
        current = {**keep, **{k: v for k, v in filters.as_dict().items() if v}}
        return self.render(
            request, "findings.html", nav="findings", result=result, filters=filters,
            period_key=key, keep=current, periods=list(PERIODS), clients=clients,
            services=services, detectors=[d.value for d in DetectorName],
            severities=[s.value for s in sorted(Severity, reverse=True)],
            statuses=[s.value for s in ReviewStatus],
            page_link=lambda n: _link("/findings", {**current, "page": str(n)}),
        )  # fmt: skip

    async def finding(self, request: Request) -> Response:
        finding_id = request.path_params["finding_id"]
        if not _FINDING_ID.match(finding_id):
            return self.error(request, 404, "No such finding.")
        now = self.config.clock()
        found = await self.read(lambda store: insights.incident(store, finding_id, now=now))
        if found is None:
            return self.error(request, 404, "No such finding in this database.")
        return self.render(request, "incident.html", nav="findings", incident=found)

    async def review(self, request: Request) -> Response:
        finding_id = request.path_params["finding_id"]
        if not _FINDING_ID.match(finding_id):
            return self.error(request, 404, "No such finding.")
        session: Session = request.state.session
        try:
            form = await read_form(request)
        except FormRejected as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)
        if not check_csrf(request, session, form):
            return self.error(request, 403, "The form has expired. Reload the page and try again.")
        await self._record(session, finding_id, form)
        return RedirectResponse(f"/findings/{finding_id}#review", status_code=303)

    async def _record(self, session: Session, finding_id: str, form: dict[str, str]) -> None:
        """Record one review act from a checked form; say how it went in a flash message."""
        try:
            action = ReviewAction(form.get("action", ""))
        except ValueError:
            session.flash = ("error", "Choose a review action.")
            return
        actor = session.actor or " ".join(form.get("actor", "").split()) or None
        if actor is None:
            session.flash = ("error", "Say who you are: a review is recorded with your name.")
            return
        note = form.get("note") or None
        assignee = (form.get("assignee") or None) if action is ReviewAction.ASSIGN else None

        def write() -> str:
            with self.gate.writing(), open_store(self.config.db_path, write=True) as store:
                recorded = record_review(
                    store, finding_id, action, actor=actor, at=self.config.clock(), note=note,
                    assignee=assignee,
                )  # fmt: skip
            return recorded.action.value

        try:
            done = await run_in_threadpool(write)
        except ReviewError as exc:
            session.flash = ("error", str(exc))
            return
        if session.actor is None and len(actor) <= MAX_ACTOR:
            session.actor = actor
        session.flash = ("ok", f"Recorded: {done.replace('_', ' ')} by {actor}.")

    async def parties(self, request: Request) -> Response:
        party = "client" if request.url.path == "/clients" else "service"
        key, period, keep = self._period(request)
        now = self.config.clock()
        listed = await self.read(
            lambda store: insights.rows(store, "parties", now, party=party, **period.params())
        )
        return self.render(
            request, "parties.html", nav=f"{party}s", party=party, parties=listed,
            period_key=key, keep=keep, periods=list(PERIODS), period=period,
        )  # fmt: skip

    async def party(self, request: Request) -> Response:
        party = "client" if request.url.path == "/client" else "service"
        name = request.query_params.get("iss" if party == "client" else "id", "")
        if not name or len(name) > 512 or not name.isprintable():  # noqa: PLR2004 - ShortText
            return self.error(request, 404, f"Name a {party}.")
        key, period, keep = self._period(request)
        now = self.config.clock()
        page = await self.read(
            lambda store: insights.party_page(store, party, name, period, now=now)
        )
        ident = {"iss" if party == "client" else "id": name}
        return self.render(
            request, "party.html", nav=f"{party}s", page=page, period_key=key,
            keep={**keep, **ident}, periods=list(PERIODS),
            findings_link=_link("/findings", {**keep, party: name}),
        )  # fmt: skip


def _link(path: str, params: dict[str, str]) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{path}?{query}" if query else path


def create_app(config: DashboardConfig) -> Starlette:
    """The dashboard as an ASGI application (serve it with uvicorn)."""
    dash = _Dashboard(config)

    async def on_query_error(request: Request, exc: Exception) -> Response:
        return dash.error(request, 400, str(exc))

    async def on_input_error(request: Request, exc: Exception) -> Response:
        return dash.error(request, 503, f"The audit database is not available: {exc}")

    async def on_http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: "No such page.", 405: "That is not allowed here."}.get(status, "Error.")
        if getattr(request.state, "session", None) is None:
            return PlainTextResponse(message, status_code=status)
        return dash.error(request, status, message)

    routes = [
        Route("/login", dash.login_page, methods=["GET"]),
        Route("/login", dash.login_submit, methods=["POST"]),
        Route("/logout", dash.logout, methods=["POST"]),
        Route("/healthz", dash.healthz, methods=["GET"]),
        Route("/", dash.overview, methods=["GET"]),
        Route("/findings", dash.findings, methods=["GET"]),
        Route("/findings/{finding_id}", dash.finding, methods=["GET"]),
        Route("/findings/{finding_id}/review", dash.review, methods=["POST"]),
        Route("/clients", dash.parties, methods=["GET"]),
        Route("/services", dash.parties, methods=["GET"]),
        Route("/client", dash.party, methods=["GET"]),
        Route("/service", dash.party, methods=["GET"]),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
    middleware = [
        Middleware(AccessLog),
        Middleware(SecurityHeaders),
        Middleware(Gatekeeper, sessions=dash.sessions, allowed_hosts=config.allowed_hosts),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            QueryError: on_query_error,
            InputError: on_input_error,
            HTTPException: on_http_error,
        },
    )

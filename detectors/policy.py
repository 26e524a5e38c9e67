"""``policy``: what was issued or accepted against the CDS Hooks spec and the site's policy.

The policy detector judges *conformance*: tokens a client issued (``token.issued``),
requests a client sent (``request.sent``), and what a service *accepted* (successful
service-side events). What a service refused is the control working; bursts of refusals
are ``validation_anomaly``'s business. TLS failures and rate-limit rejections are the
exceptions: they are failures by nature.

Rules (ids in ``auditor.vocabulary.PolicyRule``, references in ``detectors.rules``):

- normative CDS Hooks: ``alg_none_or_hmac``, ``required_jwt_field_missing`` (kid, typ,
  alg, iss, aud, exp, iat, jti), ``typ_not_jwt``, ``aud_not_endpoint`` (client side;
  the service side is ``replay_burst``'s ``token_wrong_audience``),
  ``fhir_server_missing`` and ``fhir_server_not_https`` when fhirAuthorization is sent;
- best practice: ``issuer_not_allowlisted``, ``service_not_allowlisted``,
  ``fhir_server_not_allowlisted`` (SSRF), ``jku_not_approved``, ``scope_too_broad``,
  ``tls_below_minimum``, ``tls_failure``;
- local policy: ``alg_not_allowed`` (an allowlist tighter than the spec's),
  ``payload_over_cap``, ``rate_limit_burst``, ``request_rate_exceeded``.

Each violation is an incident per (rule, client, role, service, detail — the alg, the
host, the missing fields): a misconfigured client that sends a thousand HS256 tokens is
one finding whose count grows, closed after ``incident_gap`` seconds without a repeat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from auditor.models import AuthzView, FactValue, Finding
from auditor.vocabulary import (
    AuthzAction,
    DetectorName,
    FailureReason,
    Outcome,
    PolicyRule,
    Severity,
)
from detectors._episodes import Episode, Trigger
from detectors._incidents import (
    MAX_EVENT_IDS,
    Incident,
    anchor_time,
    emit,
    incident_id,
    sorted_tuple,
)
from detectors._policy_checks import PolicyChecks
from detectors.config import PolicyConfig
from detectors.rules import RULES

__all__ = ["PolicyDetector", "PolicyState"]

_ISSUED = AuthzAction.TOKEN_ISSUED
_SENT = AuthzAction.REQUEST_SENT
_VALIDATED = AuthzAction.TOKEN_VALIDATED
_REJECTED = AuthzAction.TOKEN_REJECTED
_TLS_FAILED = AuthzAction.TLS_FAILED
_RATE_LIMITED_ACTION = AuthzAction.RATELIMIT_EXCEEDED
# Module constants: reading a member off an enum class costs ~0.1 us on Python 3.11, and
# ``key`` runs for every event.
_RATE_LIMITED = FailureReason.RATE_LIMITED
_TLS_ERROR = FailureReason.TLS_ERROR
_SUCCESS = Outcome.SUCCESS
_TLS_VERSIONS = {"1.0": 1.0, "1.1": 1.1, "1.2": 1.2, "1.3": 1.3}
_MAX_SCOPES_LISTED = 8


@dataclass(slots=True)
class _Violation:
    """An open violation incident and the facts that identify it."""

    incident: Incident
    rule: PolicyRule
    role: str
    service: str | None
    facts: dict[str, FactValue]
    peak: int = 0


@dataclass(slots=True)
class PolicyState:
    """The per-``iss`` state of ``policy``: open violations and rate counters."""

    iss: str | None = None
    violations: dict[tuple[str, str, str, str], _Violation] = field(default_factory=dict)
    violation_deadline: float = math.inf
    rate: Episode | None = None
    window_start: float = math.nan
    window_requests: int = 0
    request_incident: Incident | None = None
    request_peak: int = 0
    last_seen: float = -math.inf


class PolicyDetector:
    """Checks issued tokens, sent requests and accepted calls against policy.

    Args:
        config: The configuration; defaults to ``PolicyConfig()`` (spec rules, TLS 1.2,
            1 MiB payloads, rate-limit bursts of 20 per minute).
    """

    name = DetectorName.POLICY
    state_version = 1

    __slots__ = (
        "_algorithms",
        "_checks",
        "_clients",
        "_config",
        "_counts_requests",
        "_disabled",
        "_max_payload",
        "_rate",
    )

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self._config = config or PolicyConfig()
        c = self._config
        self._disabled = c.disabled_rules
        self._checks = PolicyChecks(c)
        self._counts_requests = c.request_burst is not None
        # Read by ``key`` on every event: plain attributes, not pydantic model lookups.
        self._algorithms = c.allowed_algorithms
        self._clients = c.clients
        self._max_payload = c.max_payload_bytes
        burst = c.rate_limit_burst
        self._rate = None if burst is None else Trigger(burst.count, burst.window, burst.window)

    @property
    def config(self) -> PolicyConfig:
        """The validated configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"PolicyDetector({self._config!r})"

    def key(  # noqa: C901, PLR0911, PLR0912 - one flat pass, no helper calls
        self, event: AuthzView
    ) -> str | None:
        """The client's ``iss`` — or the peer, for TLS failures without a client.

        Only for events that break a rule or feed a rate counter: conformant traffic
        needs no state, so the runtime skips it. Nearly every event is conformant, and this
        runs for every event: one pass over the few fields that matter, without a call or
        an allocation, recognises a plainly conformant one; anything else goes through
        every check (``PolicyChecks.violations``).
        """
        key = event.iss
        action = event.action
        reason = event.reason
        if key is None:
            ip = event.peer_ip
            if action is not _TLS_FAILED or not ip:
                return None
            key = f"peer:{ip}"
        if self._rate is not None and (action is _RATE_LIMITED_ACTION or reason is _RATE_LIMITED):
            return key
        if self._counts_requests and (action is _VALIDATED or action is _REJECTED):
            return key
        if event.tls is not None or action is _TLS_FAILED or reason is _TLS_ERROR:
            return key if self._checks.violations(event) else None
        if event.role == "service":
            if event.outcome is not _SUCCESS:
                return None
            checks_token = action is _VALIDATED
            client_side = False
        elif action is _ISSUED:
            checks_token, client_side = True, False
        elif action is _SENT:
            checks_token, client_side = False, True
        else:
            return None
        if (
            checks_token
            and event.has_token
            and not (
                event.alg in self._algorithms
                and event.typ == "JWT"
                and event.kid is not None
                and event.aud
                and event.exp is not None
                and event.iat is not None
                and event.jti is not None
                and (event.jku is None or not self._clients)
                and event.iss
            )
        ):
            return key if self._checks.violations(event) else None
        if action is _ISSUED:
            return None
        if client_side:
            url = event.service_url
            aud = event.aud
            if url is not None and aud and url not in aud:
                return key if self._checks.violations(event) else None
        size = event.payload_bytes
        cap = self._max_payload
        if (
            self._clients
            or event.fhir_server is not None
            or event.fhir_authorization
            or event.scopes
            or (size is not None and cap is not None and size > cap)
        ):
            return key if self._checks.violations(event) else None
        return None

    def initial_state(self) -> PolicyState:
        """No violations yet."""
        return PolicyState()

    def step(
        self, state: PolicyState, event: AuthzView, now: float
    ) -> tuple[PolicyState, list[Finding]]:
        """Open or grow the incidents of the rules the event breaks; count rates."""
        out: list[Finding] = []
        if state.iss is None:
            state.iss = event.iss
        state.last_seen = max(state.last_seen, now)
        if state.violation_deadline <= now:
            self._close_violations(state, now, out)
        for rule, detail, facts in self._checks.violations(event):
            self._record(state, rule, event, detail=detail, facts=facts, now=now, out=out)
        action = event.action
        if self._rate is not None and (
            action is _RATE_LIMITED_ACTION or event.reason is _RATE_LIMITED
        ):
            self._rate_limited(state, event, now, out)
        if self._config.request_burst is not None and (action is _VALIDATED or action is _REJECTED):
            self._count_request(state, event, now, out)
        return state, out

    def deadline(self, state: PolicyState) -> float | None:
        """When the next incident may close, or when an idle key may go."""
        due = state.violation_deadline
        if state.rate is not None and self._rate is not None:
            due = min(due, state.rate.last + self._rate.gap)
        if state.request_incident is not None or state.window_requests:
            due = min(due, state.window_start + self._request_window())
        if due == math.inf:
            return state.last_seen + self._config.incident_gap
        return due

    def advance(self, state: PolicyState, now: float) -> tuple[PolicyState | None, list[Finding]]:
        """Close quiet incidents; at the end of input, all of them."""
        out: list[Finding] = []
        if state.violation_deadline <= now:
            self._close_violations(state, now, out)
        if state.rate is not None and self._rate is not None and state.rate.ended(now, self._rate):
            self._end_rate(state, out)
        if self._config.request_burst is not None and not math.isnan(state.window_start):
            self._roll_requests(state, now, out)
        idle = (
            not state.violations
            and state.rate is None
            and state.request_incident is None
            and now >= state.last_seen + self._config.incident_gap
        )
        return (None if idle or now == math.inf else state), out

    def size(self, state: PolicyState) -> int:
        """Open violation incidents and bursts."""
        return (
            len(state.violations) + (state.rate is not None) + (state.request_incident is not None)
        )

    # -- checks ---------------------------------------------------------------------------

    # -- incidents ------------------------------------------------------------------------

    def _record(
        self,
        state: PolicyState,
        rule: PolicyRule,
        event: AuthzView,
        *,
        detail: str,
        facts: dict[str, FactValue],
        now: float,
        out: list[Finding],
    ) -> None:
        role = event.role
        service = event.service_id
        key = (rule.value, role, service or "", detail)
        violation = state.violations.get(key)
        if violation is None:
            spec = RULES[rule.value]
            incident = Incident(
                incident_id(spec, state.iss, *key, anchor_time(now)), first=now, last=now
            )
            violation = _Violation(incident, rule, role, service, facts)
            state.violations[key] = violation
        violation.incident.record(now, event.event_id)
        size = facts.get("bytes")
        if isinstance(size, int) and size > violation.peak:
            violation.peak = size
        state.violation_deadline = min(
            state.violation_deadline, violation.incident.last + self._config.incident_gap
        )
        if violation.incident.update_due:
            out.append(self._violation_finding(state, violation, closed=False))

    def _close_violations(self, state: PolicyState, now: float, out: list[Finding]) -> None:
        gap = self._config.incident_gap
        for key, violation in list(state.violations.items()):
            if violation.incident.last + gap <= now:
                del state.violations[key]
                out.append(self._violation_finding(state, violation, closed=True))
        state.violation_deadline = min(
            (v.incident.last + gap for v in state.violations.values()), default=math.inf
        )

    def _severity(self, rule: PolicyRule) -> Severity:
        return self._config.severity.get(rule) or RULES[rule.value].severity

    def _violation_finding(
        self, state: PolicyState, violation: _Violation, *, closed: bool
    ) -> Finding:
        spec = RULES[violation.rule.value]
        incident = violation.incident
        facts = dict(violation.facts)
        facts["role"] = violation.role
        facts["events"] = incident.count
        if violation.rule is PolicyRule.PAYLOAD_OVER_CAP:
            facts["bytes"] = violation.peak
        shown = ", ".join(
            f"{name}={value}" if not isinstance(value, tuple) else f"{name}={' '.join(value)}"
            for name, value in violation.facts.items()
        )
        title = (
            f"{violation.rule.value}: {shown or spec.summary} "
            f"({violation.role} side, {incident.count} event(s))"
        )
        return emit(
            spec,
            incident,
            title=title,
            severity=self._severity(violation.rule),
            client_iss=state.iss,
            service_id=violation.service,
            location=_LOCATIONS.get(violation.rule),
            facts=facts,
            closed=closed,
        )

    # -- rates ----------------------------------------------------------------------------

    def _rate_limited(
        self, state: PolicyState, event: AuthzView, now: float, out: list[Finding]
    ) -> None:
        trigger = self._rate
        assert trigger is not None
        if PolicyRule.RATE_LIMIT_BURST in self._disabled:
            return
        episode = state.rate
        if episode is not None and episode.ended(now, trigger):
            self._end_rate(state, out)
            episode = None
        if episode is None:
            episode = state.rate = Episode.start(now, trigger)
        escalated = episode.note("services", event.service_id)
        escalated |= episode.note("peers", event.peer_ip)
        if episode.add(now, event.event_id, trigger):
            spec = RULES[PolicyRule.RATE_LIMIT_BURST.value]
            episode.open(incident_id(spec, state.iss, anchor_time(episode.first)), trigger)
        if episode.incident is not None:
            episode.incident.escalated |= escalated
            if episode.incident.update_due:
                out.append(self._rate_finding(state, episode, closed=False))

    def _end_rate(self, state: PolicyState, out: list[Finding]) -> None:
        episode = state.rate
        state.rate = None
        if episode is not None and episode.incident is not None:
            out.append(self._rate_finding(state, episode, closed=True))

    def _rate_finding(self, state: PolicyState, episode: Episode, *, closed: bool) -> Finding:
        incident = episode.incident
        assert incident is not None
        burst = self._config.rate_limit_burst
        assert burst is not None
        services = sorted_tuple(episode.dims.get("services", set()))
        return emit(
            RULES[PolicyRule.RATE_LIMIT_BURST.value],
            incident,
            title=(
                f"{incident.count} rate-limit rejections for one client "
                f"(threshold {burst.count} per {int(burst.window)} s)"
            ),
            severity=self._severity(PolicyRule.RATE_LIMIT_BURST),
            client_iss=state.iss,
            service_id=services[0] if len(services) == 1 else None,
            facts={
                "rejections": incident.count,
                "threshold": burst.count,
                "window_seconds": burst.window,
                "services": services,
                "peers": sorted_tuple(episode.dims.get("peers", set())),
            },
            closed=closed,
        )

    def _request_window(self) -> float:
        burst = self._config.request_burst
        return burst.window if burst is not None else math.inf

    def _count_request(
        self, state: PolicyState, event: AuthzView, now: float, out: list[Finding]
    ) -> None:
        window = self._request_window()
        if math.isnan(state.window_start):
            state.window_start = now - now % window
        elif now >= state.window_start + window:
            self._roll_requests(state, now, out)
        state.window_requests += 1
        incident = state.request_incident
        if incident is not None and len(incident.event_ids) < MAX_EVENT_IDS:
            incident.event_ids.append(str(event.event_id))

    def _roll_requests(self, state: PolicyState, now: float, out: list[Finding]) -> None:
        window = self._request_window()
        while state.window_start + window <= now:
            end = state.window_start + window
            self._judge_request_window(state, end, out)
            if state.request_incident is None:
                # Nothing open: the next window is the one that holds ``now``.
                state.window_start = math.nan if now == math.inf else max(end, now - now % window)
                return
            state.window_start = end

    def _judge_request_window(self, state: PolicyState, end: float, out: list[Finding]) -> None:
        burst = self._config.request_burst
        assert burst is not None
        count = state.window_requests
        state.window_requests = 0
        if count >= burst.count and PolicyRule.REQUEST_RATE_EXCEEDED not in self._disabled:
            incident = state.request_incident
            if incident is None:
                spec = RULES[PolicyRule.REQUEST_RATE_EXCEEDED.value]
                incident = state.request_incident = Incident(
                    incident_id(spec, state.iss, anchor_time(state.window_start)),
                    first=state.window_start,
                    last=end,
                )
            incident.count += count
            incident.last = end
            state.request_peak = max(state.request_peak, count)
            if incident.update_due:
                out.append(self._request_finding(state, closed=False))
        elif state.request_incident is not None:
            out.append(self._request_finding(state, closed=True))
            state.request_incident = None
            state.request_peak = 0

    def _request_finding(self, state: PolicyState, *, closed: bool) -> Finding:
        incident = state.request_incident
        burst = self._config.request_burst
        assert incident is not None
        assert burst is not None
        return emit(
            RULES[PolicyRule.REQUEST_RATE_EXCEEDED.value],
            incident,
            title=(
                f"client sent up to {state.request_peak} requests per {int(burst.window)} s "
                f"(threshold {burst.count})"
            ),
            severity=self._severity(PolicyRule.REQUEST_RATE_EXCEEDED),
            client_iss=state.iss,
            facts={
                "requests": incident.count,
                "peak_per_window": state.request_peak,
                "threshold": burst.count,
                "window_seconds": burst.window,
            },
            closed=closed,
        )


_LOCATIONS: dict[PolicyRule, str] = {
    PolicyRule.ALG_NONE_OR_HMAC: "$.token.alg",
    PolicyRule.ALG_NOT_ALLOWED: "$.token.alg",
    PolicyRule.REQUIRED_FIELD_MISSING: "$.token",
    PolicyRule.TYP_NOT_JWT: "$.token.typ",
    PolicyRule.AUD_NOT_ENDPOINT: "$.token.aud",
    PolicyRule.FHIR_SERVER_MISSING: "$.fhir_server",
    PolicyRule.FHIR_SERVER_NOT_HTTPS: "$.fhir_server",
    PolicyRule.FHIR_SERVER_NOT_ALLOWLISTED: "$.fhir_server",
    PolicyRule.ISSUER_NOT_ALLOWLISTED: "$.client.iss",
    PolicyRule.SERVICE_NOT_ALLOWLISTED: "$.service",
    PolicyRule.JKU_NOT_APPROVED: "$.token.jku",
    PolicyRule.SCOPE_TOO_BROAD: "$.scopes",
    PolicyRule.TLS_BELOW_MINIMUM: "$.tls.version",
    PolicyRule.TLS_FAILURE: "$.tls",
    PolicyRule.PAYLOAD_OVER_CAP: "$.payload_bytes",
}

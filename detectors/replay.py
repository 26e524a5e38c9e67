"""``replay_burst``: a JWT presented again, at the wrong service, or living too long.

Keyed by the client's ``iss``. For each client the state holds a compact table of the
``jti``s presented to services — one 60-bit key and one packed integer per token (115-140
bytes each, measured by ``bench/stream_detectors.py``) — expired by their ``exp`` plus
the clock skew, in 10-second buckets. A second presentation of a jti within that horizon is
classified against the first:

- a *benign retry*: same ``hookInstance``, same service, same peer, within
  ``retry_window`` seconds, and no presentation of it accepted yet — counted, no finding;
- a *replay* otherwise (another hookInstance, service or peer, later, or after the token
  was accepted) — one finding per burst (per jti), whose revisions carry the count, the
  services and peers involved and the first and last time; critical once a replayed
  presentation was accepted, high while every replay was rejected.

Only presentations whose claims the service authenticated are tracked: successes, and
rejections for reasons checked after the signature (``expired``, ``aud_mismatch``,
``replayed_jti`` ...). A token with a bad signature, an unknown kid or an unknown issuer
carries claims anyone could have written; ``validation_anomaly`` watches those.

The same detector reports tokens presented at a service that is not in their ``aud``, and
token lifetimes (``exp - iat``) above the SMART Backend Services cap (5 minutes, local
policy) or the CDS Hooks best-practice horizon (one hour): a jti can only be remembered for
as long as the token lives, so a long-lived token is also a hole in replay detection. The
table is capped per client; at the cap the earliest-expiring jtis are forgotten early and a
``jti_table_full`` incident says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from auditor.models import AuthzView, Finding
from auditor.vocabulary import (
    AuthzAction,
    DetectorName,
    Outcome,
    ReplayRule,
)
from detectors._incidents import (
    Incident,
    add_to,
    anchor_time,
    incident_id,
)
from detectors._jti_table import (
    ACCEPTED_BIT,
    BUCKET_SECONDS,
    JtiTable,
    event_hash,
    jti_key,
    small_hash,
    unpack,
)
from detectors._replay_incidents import (
    Aggregate,
    Burst,
    add_replay,
    aggregate_finding,
    burst_finding,
)
from detectors.config import ReplayBurstConfig
from detectors.rules import RULES

__all__ = ["ReplayBurstDetector", "ReplayState"]

_IDLE_TTL = 300.0

_ISSUED = AuthzAction.TOKEN_ISSUED
# What a service records for a token it was presented: accepted, refused, or verified and
# then refused for the request (rate limit, payload) — the jti was spent either way.
_PRESENTED = frozenset(
    {
        AuthzAction.TOKEN_VALIDATED,
        AuthzAction.TOKEN_REJECTED,
        AuthzAction.RATELIMIT_EXCEEDED,
        AuthzAction.PAYLOAD_REJECTED,
    }
)
_SUCCESS = Outcome.SUCCESS
_NOTHING: tuple[Finding, ...] = ()  # returned when nothing is found: no list per event

_SPEC_REPLAY = RULES[ReplayRule.JTI_REPLAY.value]
_SPEC_AUDIENCE = RULES[ReplayRule.WRONG_AUDIENCE.value]
_SPEC_SMART = RULES[ReplayRule.LIFETIME_OVER_SMART_CAP.value]
_SPEC_BEST = RULES[ReplayRule.LIFETIME_OVER_BEST_PRACTICE.value]
_SPEC_FULL = RULES[ReplayRule.JTI_TABLE_FULL.value]


@dataclass(slots=True)
class ReplayState:
    """The per-``iss`` state of ``replay_burst``. Compact: one table entry per live jti."""

    iss: str | None = None
    table: JtiTable = field(default_factory=JtiTable)
    bursts: dict[int, Burst] = field(default_factory=dict)
    aggregates: dict[tuple[str, ...], Aggregate] = field(default_factory=dict)
    aggregate_deadline: float = math.inf
    last_seen: float = -math.inf
    retries: int = 0
    forgotten: int = 0


class ReplayBurstDetector:
    """Detects jti replays, audience misuse and over-long token lifetimes per client.

    Args:
        config: The configuration; defaults to ``ReplayBurstConfig()``.
    """

    name = DetectorName.REPLAY_BURST
    state_version = 1

    __slots__ = ("_cap", "_config", "_retention", "_shortest_cap", "_skew", "_trusted")

    def __init__(self, config: ReplayBurstConfig | None = None) -> None:
        self._config = config or ReplayBurstConfig()
        # Read on every presentation: plain attributes, not pydantic model lookups.
        self._trusted = self._config.trusted_reasons
        self._skew = self._config.clock_skew
        self._retention = self._config.max_retention
        self._cap = self._config.max_jtis_per_client
        caps = (self._config.smart_lifetime_cap, self._config.best_practice_lifetime_cap)
        self._shortest_cap = min((cap for cap in caps if cap is not None), default=math.inf)

    @property
    def config(self) -> ReplayBurstConfig:
        """The validated configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"ReplayBurstDetector({self._config!r})"

    def key(self, event: AuthzView) -> str | None:
        """``iss`` of service-side presentations with trusted claims.

        Also of issued tokens that live too long; conformant issuance needs no state.
        """
        action = event.action
        if action in _PRESENTED:
            reason = event.reason
            if reason is not None and reason not in self._trusted:
                return None
            if event.jti is None:  # no token, or a token without a jti
                return None
            return event.iss if event.role == "service" else None
        if action is _ISSUED:
            exp = event.exp
            iat = event.iat
            if exp is None or iat is None:
                return None
            return event.iss if exp - iat > self._shortest_cap else None
        return None

    def initial_state(self) -> ReplayState:
        """An empty jti table."""
        return ReplayState()

    def step(
        self, state: ReplayState, event: AuthzView, now: float
    ) -> tuple[ReplayState, Sequence[Finding]]:
        """Record a presentation (or an issued token's lifetime) and report what it reveals."""
        if now > state.last_seen:  # noqa: PLR1730 - cheaper than calling max() per event
            state.last_seen = now
        if state.iss is None:
            state.iss = event.iss
        if event.action is _ISSUED:
            out: list[Finding] = []
            self._check_lifetime(state, event, now=now, role="client", out=out)
            return state, out
        jti = event.jti
        if jti is None:  # pragma: no cover - key() let only jtis through
            return state, _NOTHING
        key = jti_key(jti)
        table = state.table
        service_url = event.service_url
        aud = event.aud
        exp = event.exp
        iat = event.iat
        if (
            (service_url is None or not aud or service_url in aud)
            and key not in table.seen
            and (
                exp is None
                or (now <= exp + self._skew and (iat is None or exp - iat <= self._shortest_cap))
            )
            and len(table.seen) < self._cap
        ):
            # The usual case, decided in one pass with nothing allocated: the first
            # presentation of a live token at the right audience and of a lifetime within
            # the caps, in a table with room. ``_present`` takes every other case.
            horizon = now + self._retention
            if exp is not None and exp < horizon:
                horizon = float(exp)
            table.add(
                key,
                event.event_id.int,
                event.hook_instance,
                event.outcome is _SUCCESS,
                event.service_id or service_url,
                event.peer_ip,
                now,
                horizon + self._skew,
            )
            return state, _NOTHING
        out = []
        self._present(state, event, now, key, out)
        return state, out

    def deadline(self, state: ReplayState) -> float | None:
        """The next bucket of jtis to expire, incident to close, or idle eviction."""
        due = state.aggregate_deadline
        heap = state.table.bucket_heap
        if heap and heap[0] * BUCKET_SECONDS < due:  # JtiTable.next_expiry, inlined
            due = heap[0] * BUCKET_SECONDS
        if due == math.inf:
            return state.last_seen + _IDLE_TTL
        return due

    def advance(self, state: ReplayState, now: float) -> tuple[ReplayState | None, list[Finding]]:
        """Forget expired jtis (closing their bursts) and close quiet incidents."""
        out: list[Finding] = []
        if state.bursts:
            for key in state.table.expire(now):
                burst = state.bursts.pop(key, None)
                if burst is not None:
                    out.append(burst_finding(burst, state.iss, closed=True))
        else:
            state.table.expire(now)
        if state.aggregate_deadline <= now:
            self._close_aggregates(state, now, out)
        if (
            not state.table
            and not state.bursts
            and not state.aggregates
            and now >= state.last_seen + _IDLE_TTL
        ):
            return None, out
        return state, out

    def size(self, state: ReplayState) -> int:
        """Live jtis plus open incidents."""
        return len(state.table) + len(state.bursts) + len(state.aggregates)

    # -- presentations ------------------------------------------------------------------

    def _present(
        self, state: ReplayState, event: AuthzView, now: float, key: int, out: list[Finding]
    ) -> None:
        """A presentation off the usual path, checked in the order of the findings.

        Wrong audience, seen before, expired, long-lived, or a full table.
        """
        accepted = event.outcome is _SUCCESS
        service_url = event.service_url
        aud = event.aud
        if service_url is not None and aud and service_url not in aud:
            self._wrong_audience(state, event, now=now, accepted=accepted, out=out)
        table = state.table
        record = table.seen.get(key)
        if record is not None:
            self._again(state, event, now=now, key=key, record=record, accepted=accepted, out=out)
            return
        exp = event.exp
        if exp is not None and now > exp + self._skew:
            return  # presented after its lifetime: an expiry, not remembered
        iat = event.iat
        if iat is not None and exp is not None and exp - iat > self._shortest_cap:
            self._check_lifetime(state, event, now=now, role="service", out=out)
        if len(table.seen) >= self._cap:
            self._forget_earliest(state, event, now=now, out=out)
        horizon = now + self._retention
        if exp is not None and exp < horizon:
            horizon = float(exp)
        table.add(
            key,
            event.event_id.int,
            event.hook_instance,
            accepted,
            event.service_id or service_url,
            event.peer_ip,
            now,
            horizon + self._skew,
        )

    def _again(
        self,
        state: ReplayState,
        event: AuthzView,
        *,
        now: float,
        key: int,
        record: int,
        accepted: bool,
        out: list[Finding],
    ) -> None:
        evh = event_hash(event.event_id.int)
        first = unpack(record)
        if evh == first.event_hash:
            return  # the same event delivered twice (at-least-once), not a presentation
        burst = state.bursts.get(key)
        if burst is not None and evh in burst.seen_events:
            return
        table = state.table
        service_name = event.service_id or event.service_url
        peer_ip = event.peer_ip
        s_idx, p_idx = table.service_id(service_name), table.peer_id(peer_ip)
        if accepted and not first.accepted:
            table.seen[key] = record | ACCEPTED_BIT
        retry = (
            not first.accepted
            and small_hash(event.hook_instance) == first.hook_hash
            and (s_idx == first.service or 0 in (s_idx, first.service))
            and (p_idx == first.peer or 0 in (p_idx, first.peer))
            and now - first.time <= self._config.retry_window
        )
        if retry:
            state.retries += 1
            if burst is not None:
                burst.retries += 1
            return
        if burst is None:
            incident = Incident(
                incident_id(_SPEC_REPLAY, event.iss, key, anchor_time(first.time)),
                first=first.time,
                last=first.time,
                count=1,
            )
            burst = Burst(
                incident=incident,
                services=set(),
                peers=set(),
                first_service=table.services[first.service],
                first_peer=table.peers[first.peer],
                accepted=int(first.accepted),
                rejected=int(not first.accepted),
            )
            add_to(burst.services, burst.first_service)
            add_to(burst.peers, burst.first_peer)
            burst.hook_instances.add(first.hook_hash)
            state.bursts[key] = burst
        add_replay(burst, event, now=now, evh=evh, accepted=accepted)
        if add_to(burst.services, service_name):
            burst.incident.escalated = True
        # The number of peers reaching a power of two is worth a revision; every single
        # new peer of a spray is not.
        if add_to(burst.peers, peer_ip) and len(burst.peers) & (len(burst.peers) - 1) == 0:
            burst.incident.escalated = True
        if burst.incident.update_due:
            out.append(burst_finding(burst, state.iss, closed=False))

    # -- aggregated incidents -----------------------------------------------------------

    def _aggregate(
        self,
        state: ReplayState,
        key: tuple[str, ...],
        spec_rule: str,
        event: AuthzView,
        now: float,
    ) -> Aggregate:
        found = state.aggregates.get(key)
        if found is None:
            spec = RULES[spec_rule]
            incident = Incident(
                incident_id(spec, event.iss, *key, anchor_time(now)), first=now, last=now
            )
            found = Aggregate(incident=incident, spec_rule=spec_rule)
            state.aggregates[key] = found
        found.incident.record(now, event.event_id)
        state.aggregate_deadline = min(
            a.incident.last + self._config.incident_gap for a in state.aggregates.values()
        )
        return found

    def _wrong_audience(
        self,
        state: ReplayState,
        event: AuthzView,
        *,
        now: float,
        accepted: bool,
        out: list[Finding],
    ) -> None:
        service_id = event.service_id or ""
        agg = self._aggregate(state, ("aud", service_id), _SPEC_AUDIENCE.rule, event, now)
        agg.service = event.service_id
        if accepted and agg.accepted == 0:
            agg.incident.escalated = True
        agg.accepted += int(accepted)
        for aud in event.aud:
            if add_to(agg.values, aud):
                agg.incident.escalated = True
        if agg.incident.update_due:
            out.append(aggregate_finding(agg, state.iss, closed=False))

    def _check_lifetime(
        self, state: ReplayState, event: AuthzView, *, now: float, role: str, out: list[Finding]
    ) -> None:
        exp, iat = event.exp, event.iat
        if exp is None or iat is None:
            return
        lifetime = exp - iat
        config = self._config
        best, smart = config.best_practice_lifetime_cap, config.smart_lifetime_cap
        if best is not None and lifetime > best:
            spec, cap = _SPEC_BEST, best
        elif smart is not None and lifetime > smart:
            spec, cap = _SPEC_SMART, smart
        else:
            return
        agg = self._aggregate(state, ("lifetime", spec.rule, role), spec.rule, event, now)
        agg.role = role
        agg.service = agg.service or event.service_id
        agg.peak = max(agg.peak, float(lifetime), cap)
        agg.values.add(str(int(cap)))
        if agg.incident.update_due:
            out.append(aggregate_finding(agg, state.iss, closed=False))

    def _forget_earliest(
        self, state: ReplayState, event: AuthzView, *, now: float, out: list[Finding]
    ) -> None:
        key = state.table.forget_earliest()
        if key is None:  # pragma: no cover - a full table always has a bucket
            return
        state.forgotten += 1
        burst = state.bursts.pop(key, None)
        if burst is not None:
            out.append(burst_finding(burst, state.iss, closed=True))
        agg = self._aggregate(state, ("capacity",), _SPEC_FULL.rule, event, now)
        agg.peak = float(self._config.max_jtis_per_client)
        if agg.incident.update_due:
            out.append(aggregate_finding(agg, state.iss, closed=False))

    def _close_aggregates(self, state: ReplayState, now: float, out: list[Finding]) -> None:
        gap = self._config.incident_gap
        for key, agg in list(state.aggregates.items()):
            if agg.incident.last + gap <= now:
                del state.aggregates[key]
                out.append(aggregate_finding(agg, state.iss, closed=True))
        state.aggregate_deadline = min(
            (a.incident.last + gap for a in state.aggregates.values()), default=math.inf
        )

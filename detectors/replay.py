"""``replay_burst``: a JWT presented again, at the wrong service, or living too long.

Keyed by the client's ``iss``. For each client the state holds a compact table of the
``jti``s presented to services — one 60-bit key and one packed integer per token (about
130 bytes each, measured by ``bench/stream_detectors.py``) — expired by their ``exp`` plus
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

import hashlib
import heapq
import math
import zlib
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from auditor.models import AuthzEvent, FactValue, Finding
from auditor.vocabulary import (
    AuthzAction,
    DetectorName,
    FailureReason,
    Outcome,
    ReplayRule,
    Severity,
)
from detectors._incidents import (
    Incident,
    add_to,
    anchor_time,
    emit,
    incident_id,
    sorted_tuple,
)
from detectors.rules import RULES

__all__ = ["DEFAULT_TRUSTED_REASONS", "ReplayBurstConfig", "ReplayBurstDetector", "ReplayState"]

DEFAULT_TRUSTED_REASONS: frozenset[FailureReason] = frozenset(
    {
        FailureReason.EXPIRED,
        FailureReason.NOT_YET_VALID,
        FailureReason.IAT_IN_FUTURE,
        FailureReason.AUD_MISMATCH,
        FailureReason.REPLAYED_JTI,
        FailureReason.LIFETIME_TOO_LONG,
        FailureReason.MISSING_CLAIM,
        FailureReason.TYP_INVALID,
        FailureReason.RATE_LIMITED,
        FailureReason.PAYLOAD_TOO_LARGE,
        FailureReason.INVALID_REQUEST,
        FailureReason.FHIR_SERVER_NOT_ALLOWED,
        FailureReason.SERVICE_NOT_ALLOWED,
    }
)
"""Rejections whose claims were authenticated: the signature was checked before them."""

_BUCKET = 10.0
_MASK60 = (1 << 60) - 1
_IDLE_TTL = 300.0
_MAX_INTERNED = 0xFFFF

# The packed record of a jti's first presentation, least significant bits first.
_EVH_BITS, _HOOK_BITS, _IDX_BITS = 32, 24, 16
_HOOK_SHIFT = _EVH_BITS
_ACCEPTED_SHIFT = _HOOK_SHIFT + _HOOK_BITS
_SERVICE_SHIFT = _ACCEPTED_SHIFT + 1
_PEER_SHIFT = _SERVICE_SHIFT + _IDX_BITS
_TIME_SHIFT = _PEER_SHIFT + _IDX_BITS
_EVH_MASK = (1 << _EVH_BITS) - 1
_HOOK_MASK = (1 << _HOOK_BITS) - 1
_IDX_MASK = (1 << _IDX_BITS) - 1
_ACCEPTED_BIT = 1 << _ACCEPTED_SHIFT

_VALIDATED = AuthzAction.TOKEN_VALIDATED
_REJECTED = AuthzAction.TOKEN_REJECTED
_ISSUED = AuthzAction.TOKEN_ISSUED
_SUCCESS = Outcome.SUCCESS

_SPEC_REPLAY = RULES[ReplayRule.JTI_REPLAY.value]
_SPEC_AUDIENCE = RULES[ReplayRule.WRONG_AUDIENCE.value]
_SPEC_SMART = RULES[ReplayRule.LIFETIME_OVER_SMART_CAP.value]
_SPEC_BEST = RULES[ReplayRule.LIFETIME_OVER_BEST_PRACTICE.value]
_SPEC_FULL = RULES[ReplayRule.JTI_TABLE_FULL.value]

Seconds = Annotated[float, Field(ge=0, le=30 * 86400)]


class ReplayBurstConfig(BaseModel):
    """Configuration of ``replay_burst``; validated once at start-up.

    Attributes:
        clock_skew: Seconds added to ``exp``: how long after expiry a presentation of the
            same jti is still compared against the first.
        retry_window: A presentation this many seconds after the first, with the same
            hookInstance, service and peer and no acceptance yet, is a benign retry.
        max_retention: The longest a jti is remembered after its first presentation,
            whatever its ``exp`` (bounds the state of long-lived tokens; those are
            reported by the lifetime rules).
        smart_lifetime_cap: ``exp - iat`` above this is ``lifetime_over_smart_cap``
            (SMART Backend Services' 5 minutes, local policy); ``None`` disables it.
        best_practice_lifetime_cap: ``exp - iat`` above this is
            ``lifetime_over_best_practice`` (one hour); ``None`` disables it. A token over
            both caps is reported once, by this rule.
        max_jtis_per_client: Cap of the jti table of one ``iss``.
        trusted_reasons: Rejection reasons whose claims were authenticated.
        incident_gap: Audience, lifetime and capacity incidents close after this many
            seconds without a new occurrence.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    clock_skew: Seconds = 60.0
    retry_window: Seconds = 10.0
    max_retention: Annotated[float, Field(gt=0, le=30 * 86400)] = 3600.0
    smart_lifetime_cap: Seconds | None = 300.0
    best_practice_lifetime_cap: Seconds | None = 3600.0
    max_jtis_per_client: Annotated[int, Field(ge=1)] = 1_000_000
    trusted_reasons: frozenset[FailureReason] = DEFAULT_TRUSTED_REASONS
    incident_gap: Annotated[float, Field(gt=0, le=30 * 86400)] = 3600.0


@dataclass(slots=True)
class _Burst:
    """A replay burst of one jti: the incident plus what a responder needs to know."""

    incident: Incident
    services: set[str]
    peers: set[str]
    first_service: str | None
    first_peer: str | None
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    accepted_replay: bool = False
    fingerprint: str | None = None
    hook_instances: set[int] = field(default_factory=set)
    seen_events: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Aggregate:
    """An incident that aggregates many events: audience misuse, lifetimes, capacity."""

    incident: Incident
    spec_rule: str
    service: str | None = None
    role: str | None = None
    accepted: int = 0
    values: set[str] = field(default_factory=set)
    peak: float = 0.0


@dataclass(slots=True)
class ReplayState:
    """The per-``iss`` state of ``replay_burst``. Compact: one dict entry per live jti."""

    iss: str | None = None
    seen: dict[int, int] = field(default_factory=dict)
    buckets: dict[int, list[int]] = field(default_factory=dict)
    bucket_heap: list[int] = field(default_factory=list)
    services: list[str | None] = field(default_factory=lambda: [None])
    service_index: dict[str, int] = field(default_factory=dict)
    peers: list[str | None] = field(default_factory=lambda: [None])
    peer_index: dict[str, int] = field(default_factory=dict)
    bursts: dict[int, _Burst] = field(default_factory=dict)
    aggregates: dict[tuple[str, ...], _Aggregate] = field(default_factory=dict)
    aggregate_deadline: float = math.inf
    last_seen: float = -math.inf
    retries: int = 0
    forgotten: int = 0


def _jti_key(jti: str) -> int:
    """A stable 60-bit key for a jti (snapshots must survive a process restart).

    Lower-case UUIDs, the usual jti, are read as hexadecimal; anything else is hashed with
    BLAKE2b. Collisions only matter between one client's own live jtis: at a million of
    them the chance of any is below one in a million.
    """
    if len(jti) == 36 and "_" not in jti and jti == jti.lower():
        try:
            return int(jti.replace("-", ""), 16) & _MASK60
        except ValueError:
            pass
    digest = hashlib.blake2b(jti.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK60


def _small_hash(text: str | None) -> int:
    if text is None:
        return 0
    return (zlib.crc32(text.encode("utf-8", "surrogatepass")) & _HOOK_MASK) or 1


def _intern(table: list[str | None], index: dict[str, int], value: str | None) -> int:
    if value is None:
        return 0
    found = index.get(value)
    if found is not None:
        return found
    if len(table) > _MAX_INTERNED:
        return 0  # table full: recorded as unknown, compared as equal (no false replay)
    index[value] = len(table)
    table.append(value)
    return len(table) - 1


class ReplayBurstDetector:
    """Detects jti replays, audience misuse and over-long token lifetimes per client.

    Args:
        config: The configuration; defaults to ``ReplayBurstConfig()``.
    """

    name = DetectorName.REPLAY_BURST
    state_version = 1

    __slots__ = ("_config", "_shortest_cap", "_trusted")

    def __init__(self, config: ReplayBurstConfig | None = None) -> None:
        self._config = config or ReplayBurstConfig()
        self._trusted = self._config.trusted_reasons
        caps = (self._config.smart_lifetime_cap, self._config.best_practice_lifetime_cap)
        self._shortest_cap = min((cap for cap in caps if cap is not None), default=math.inf)

    @property
    def config(self) -> ReplayBurstConfig:
        """The validated configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"ReplayBurstDetector({self._config!r})"

    def key(self, event: AuthzEvent) -> str | None:
        """``iss`` of service-side presentations with trusted claims and of issued tokens."""
        action = event.action
        if action is _VALIDATED or action is _REJECTED:
            reason = event.reason
            if reason is not None and reason not in self._trusted:
                return None
            token = event.token
            client = event.client
            if token is None or token.jti is None or client is None:
                return None
            if event.source.role != "service":
                return None
            return client.iss
        if action is _ISSUED:
            # An issued token matters only when it lives too long: decide it here, so
            # the runtime keeps no state for conformant issuance.
            client = event.client
            token = event.token
            if client is None or token is None or token.exp is None or token.iat is None:
                return None
            return client.iss if token.exp - token.iat > self._shortest_cap else None
        return None

    def initial_state(self) -> ReplayState:
        """An empty jti table."""
        return ReplayState()

    def step(
        self, state: ReplayState, event: AuthzEvent, now: float
    ) -> tuple[ReplayState, list[Finding]]:
        """Record a presentation (or an issued token's lifetime) and report what it reveals."""
        out: list[Finding] = []
        state.last_seen = max(state.last_seen, now)
        if state.iss is None:
            state.iss = event.client_iss
        token = event.token
        if token is None:  # pragma: no cover - key() let only tokens through
            return state, out
        if event.action is _ISSUED:
            self._check_lifetime(state, event, now, "client", out)
            return state, out
        jti = token.jti
        if jti is None:  # pragma: no cover - key() let only jtis through
            return state, out
        accepted = event.outcome is _SUCCESS
        service = event.service
        service_url = service.url if service is not None else None
        if service_url is not None and token.aud and service_url not in token.aud:
            self._wrong_audience(state, event, now, accepted, out)
        h = _jti_key(jti)
        record = state.seen.get(h)
        if record is None:
            self._first_presentation(state, event, now, h, accepted, out)
        else:
            self._again(state, event, now, h, record, accepted, out)
        return state, out

    def deadline(self, state: ReplayState) -> float | None:
        """The next bucket of jtis to expire, incident to close, or idle eviction."""
        due = state.aggregate_deadline
        if state.bucket_heap:
            due = min(due, state.bucket_heap[0] * _BUCKET)
        if due == math.inf:
            return state.last_seen + _IDLE_TTL
        return due

    def advance(self, state: ReplayState, now: float) -> tuple[ReplayState | None, list[Finding]]:
        """Forget expired jtis (closing their bursts) and close quiet incidents."""
        out: list[Finding] = []
        heap = state.bucket_heap
        while heap and heap[0] * _BUCKET <= now:
            bucket = heapq.heappop(heap)
            for h in state.buckets.pop(bucket, ()):
                state.seen.pop(h, None)
                burst = state.bursts.pop(h, None)
                if burst is not None:
                    out.append(self._burst_finding(burst, state, closed=True))
        if state.aggregate_deadline <= now:
            self._close_aggregates(state, now, out)
        if (
            not state.seen
            and not state.bursts
            and not state.aggregates
            and now >= state.last_seen + _IDLE_TTL
        ):
            return None, out
        return state, out

    def size(self, state: ReplayState) -> int:
        """Live jtis plus open incidents."""
        return len(state.seen) + len(state.bursts) + len(state.aggregates)

    # -- presentations ------------------------------------------------------------------

    def _first_presentation(
        self,
        state: ReplayState,
        event: AuthzEvent,
        now: float,
        h: int,
        accepted: bool,
        out: list[Finding],
    ) -> None:
        config = self._config
        token = event.token
        assert token is not None
        exp = token.exp
        if exp is not None and now > exp + config.clock_skew:
            return  # presented after its lifetime: an expiry, not something to remember
        if token.iat is not None and exp is not None:
            self._check_lifetime(state, event, now, "service", out)
        if len(state.seen) >= config.max_jtis_per_client:
            self._forget_earliest(state, event, now, out)
        service = event.service
        peer = event.peer
        service_name = (service.id or service.url) if service is not None else None
        s_idx = _intern(state.services, state.service_index, service_name)
        p_idx = _intern(state.peers, state.peer_index, peer.ip if peer is not None else None)
        state.seen[h] = (
            (event.event_id.int & _EVH_MASK)
            | (_small_hash(event.hook_instance) << _HOOK_SHIFT)
            | (_ACCEPTED_BIT if accepted else 0)
            | (s_idx << _SERVICE_SHIFT)
            | (p_idx << _PEER_SHIFT)
            | (round(now * 1000) << _TIME_SHIFT)
        )
        horizon = now + config.max_retention
        if exp is not None:
            horizon = min(horizon, float(exp))
        bucket = int((horizon + config.clock_skew) // _BUCKET) + 1
        members = state.buckets.get(bucket)
        if members is None:
            state.buckets[bucket] = [h]
            heapq.heappush(state.bucket_heap, bucket)
        else:
            members.append(h)

    def _again(
        self,
        state: ReplayState,
        event: AuthzEvent,
        now: float,
        h: int,
        record: int,
        accepted: bool,
        out: list[Finding],
    ) -> None:
        evh = event.event_id.int & _EVH_MASK
        if evh == record & _EVH_MASK:
            return  # the same event delivered twice (at-least-once), not a presentation
        burst = state.bursts.get(h)
        if burst is not None and evh in burst.seen_events:
            return
        service = event.service
        peer = event.peer
        service_name = (service.id or service.url) if service is not None else None
        peer_ip = peer.ip if peer is not None else None
        s_idx = _intern(state.services, state.service_index, service_name)
        p_idx = _intern(state.peers, state.peer_index, peer_ip)
        first_s = (record >> _SERVICE_SHIFT) & _IDX_MASK
        first_p = (record >> _PEER_SHIFT) & _IDX_MASK
        first_time = (record >> _TIME_SHIFT) / 1000
        was_accepted = bool(record & _ACCEPTED_BIT)
        if accepted and not was_accepted:
            state.seen[h] = record | _ACCEPTED_BIT
        retry = (
            not was_accepted
            and _small_hash(event.hook_instance) == (record >> _HOOK_SHIFT) & _HOOK_MASK
            and (s_idx == first_s or 0 in (s_idx, first_s))
            and (p_idx == first_p or 0 in (p_idx, first_p))
            and now - first_time <= self._config.retry_window
        )
        if retry:
            state.retries += 1
            if burst is not None:
                burst.retries += 1
            return
        if burst is None:
            incident = Incident(
                incident_id(_SPEC_REPLAY, event.client_iss, h, anchor_time(first_time)),
                first=first_time,
                last=first_time,
                count=1,
            )
            burst = _Burst(
                incident=incident,
                services=set(),
                peers=set(),
                first_service=state.services[first_s],
                first_peer=state.peers[first_p],
                accepted=int(was_accepted),
                rejected=int(not was_accepted),
            )
            add_to(burst.services, burst.first_service)
            add_to(burst.peers, burst.first_peer)
            burst.hook_instances.add((record >> _HOOK_SHIFT) & _HOOK_MASK)
            state.bursts[h] = burst
        self._add_replay(burst, event, now, evh, accepted, service_name, peer_ip)
        if burst.incident.update_due:
            out.append(self._burst_finding(burst, state, closed=False))

    def _add_replay(
        self,
        burst: _Burst,
        event: AuthzEvent,
        now: float,
        evh: int,
        accepted: bool,
        service_name: str | None,
        peer_ip: str | None,
    ) -> None:
        burst.incident.record(now, event.event_id)
        if len(burst.seen_events) < 4096:
            burst.seen_events.add(evh)
        if len(burst.hook_instances) < 4096:
            burst.hook_instances.add(_small_hash(event.hook_instance))
        if accepted:
            burst.accepted += 1
            if not burst.accepted_replay:
                burst.accepted_replay = True
                burst.incident.escalated = True
        else:
            burst.rejected += 1
        # A new service, or the number of peers reaching a power of two, is worth a
        # revision; every single new peer of a spray is not.
        if add_to(burst.services, service_name):
            burst.incident.escalated = True
        if add_to(burst.peers, peer_ip) and len(burst.peers) & (len(burst.peers) - 1) == 0:
            burst.incident.escalated = True
        token = event.token
        if burst.fingerprint is None and token is not None:
            burst.fingerprint = token.fingerprint

    def _burst_finding(self, burst: _Burst, state: ReplayState, *, closed: bool) -> Finding:
        incident = burst.incident
        severity = Severity.CRITICAL if burst.accepted_replay else _SPEC_REPLAY.severity
        replays = incident.count - 1
        verb = "accepted" if burst.accepted_replay else "rejected"
        title = (
            f"JWT jti replayed {replays} time(s) ({verb}) across "
            f"{len(burst.services)} service(s) and {len(burst.peers)} peer(s)"
        )
        facts: dict[str, FactValue] = {
            "presentations": incident.count,
            "replays": replays,
            "accepted": burst.accepted,
            "rejected": burst.rejected,
            "retries": burst.retries,
            "accepted_replay": burst.accepted_replay,
            "hook_instances": len(burst.hook_instances),
            "services": sorted_tuple(burst.services),
            "peers": sorted_tuple(burst.peers),
            "first_service": burst.first_service,
            "first_peer": burst.first_peer,
        }
        return emit(
            _SPEC_REPLAY,
            incident,
            title=title,
            severity=severity,
            client_iss=state.iss,
            service_id=burst.first_service,
            fingerprint=burst.fingerprint,
            location="$.token.jti",
            facts=facts,
            closed=closed,
        )

    # -- aggregated incidents -----------------------------------------------------------

    def _aggregate(
        self,
        state: ReplayState,
        key: tuple[str, ...],
        spec_rule: str,
        event: AuthzEvent,
        now: float,
    ) -> _Aggregate:
        found = state.aggregates.get(key)
        if found is None:
            spec = RULES[spec_rule]
            incident = Incident(
                incident_id(spec, event.client_iss, *key, anchor_time(now)), first=now, last=now
            )
            found = _Aggregate(incident=incident, spec_rule=spec_rule)
            state.aggregates[key] = found
        found.incident.record(now, event.event_id)
        state.aggregate_deadline = min(
            a.incident.last + self._config.incident_gap for a in state.aggregates.values()
        )
        return found

    def _wrong_audience(
        self, state: ReplayState, event: AuthzEvent, now: float, accepted: bool, out: list[Finding]
    ) -> None:
        service_id = event.service_id or ""
        agg = self._aggregate(state, ("aud", service_id), _SPEC_AUDIENCE.rule, event, now)
        agg.service = event.service_id
        if accepted and agg.accepted == 0:
            agg.incident.escalated = True
        agg.accepted += int(accepted)
        token = event.token
        assert token is not None
        for aud in token.aud:
            if add_to(agg.values, aud):
                agg.incident.escalated = True
        if agg.incident.update_due:
            out.append(self._aggregate_finding(agg, state.iss, closed=False))

    def _check_lifetime(
        self, state: ReplayState, event: AuthzEvent, now: float, role: str, out: list[Finding]
    ) -> None:
        token = event.token
        assert token is not None
        lifetime = token.lifetime_seconds
        if lifetime is None:
            return
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
            out.append(self._aggregate_finding(agg, state.iss, closed=False))

    def _forget_earliest(
        self, state: ReplayState, event: AuthzEvent, now: float, out: list[Finding]
    ) -> None:
        heap = state.bucket_heap
        while heap and not state.buckets.get(heap[0]):
            state.buckets.pop(heapq.heappop(heap), None)
        if not heap:  # pragma: no cover - a full table always has a bucket
            return
        members = state.buckets[heap[0]]
        h = members.pop()
        if not members:
            del state.buckets[heapq.heappop(heap)]
        state.seen.pop(h, None)
        state.forgotten += 1
        burst = state.bursts.pop(h, None)
        if burst is not None:
            out.append(self._burst_finding(burst, state, closed=True))
        agg = self._aggregate(state, ("capacity",), _SPEC_FULL.rule, event, now)
        agg.peak = float(self._config.max_jtis_per_client)
        if agg.incident.update_due:
            out.append(self._aggregate_finding(agg, state.iss, closed=False))

    def _close_aggregates(self, state: ReplayState, now: float, out: list[Finding]) -> None:
        gap = self._config.incident_gap
        for key, agg in list(state.aggregates.items()):
            if agg.incident.last + gap <= now:
                del state.aggregates[key]
                out.append(self._aggregate_finding(agg, state.iss, closed=True))
        state.aggregate_deadline = min(
            (a.incident.last + gap for a in state.aggregates.values()), default=math.inf
        )

    def _aggregate_finding(self, agg: _Aggregate, iss: str | None, *, closed: bool) -> Finding:
        spec = RULES[agg.spec_rule]
        incident = agg.incident
        facts: dict[str, FactValue]
        if spec is _SPEC_AUDIENCE:
            severity = Severity.HIGH if agg.accepted else spec.severity
            title = (
                f"{incident.count} token(s) presented at service {agg.service or '?'} "
                f"whose aud names another endpoint ({agg.accepted} accepted)"
            )
            facts = {
                "presentations": incident.count,
                "accepted": agg.accepted,
                "audiences": sorted_tuple(agg.values),
            }
        elif spec is _SPEC_FULL:
            severity = spec.severity
            title = (
                f"jti table of a client reached its cap of {int(agg.peak)}; "
                f"{incident.count} jti(s) forgotten before expiry"
            )
            facts = {"cap": int(agg.peak), "forgotten": incident.count}
        else:
            severity = spec.severity
            cap = min(int(v) for v in agg.values)
            title = (
                f"{incident.count} token(s) {'issued' if agg.role == 'client' else 'presented'}"
                f" with exp - iat up to {int(agg.peak)} s, over the {cap} s cap "
                f"({spec.basis.value.replace('_', ' ')})"
            )
            facts = {
                "tokens": incident.count,
                "max_lifetime_seconds": int(agg.peak),
                "cap_seconds": cap,
                "role": agg.role,
            }
        return emit(
            spec,
            incident,
            title=title,
            severity=severity,
            client_iss=iss,
            service_id=agg.service,
            location="$.token.exp" if spec.kind.value == "token_lifetime" else "$.token.aud",
            facts=facts,
            closed=closed,
        )

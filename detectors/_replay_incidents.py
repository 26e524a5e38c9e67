"""The incidents of ``replay_burst`` and how they read as findings.

A ``Burst`` follows the replays of one jti; an ``Aggregate`` gathers the events of one
audience-misuse, lifetime or capacity incident of a client. Both live in the detector's
per-client state (so they pickle with it) and are turned into findings here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.models import AuthzView, FactValue, Finding
from auditor.vocabulary import ReplayRule, Severity
from detectors._incidents import Incident, emit, sorted_tuple
from detectors._jti_table import small_hash
from detectors.rules import RULES

__all__ = ["Aggregate", "Burst", "add_replay", "aggregate_finding", "burst_finding"]

SPEC_REPLAY = RULES[ReplayRule.JTI_REPLAY.value]
SPEC_AUDIENCE = RULES[ReplayRule.WRONG_AUDIENCE.value]
SPEC_FULL = RULES[ReplayRule.JTI_TABLE_FULL.value]
_MAX_EVENTS_REMEMBERED = 4096


@dataclass(slots=True)
class Burst:
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
class Aggregate:
    """An incident that aggregates many events: audience misuse, lifetimes, capacity."""

    incident: Incident
    spec_rule: str
    service: str | None = None
    role: str | None = None
    accepted: int = 0
    values: set[str] = field(default_factory=set)
    peak: float = 0.0


def add_replay(burst: Burst, event: AuthzView, *, now: float, evh: int, accepted: bool) -> None:
    """Count one replayed presentation into its burst."""
    burst.incident.record(now, event.event_id)
    if len(burst.seen_events) < _MAX_EVENTS_REMEMBERED:
        burst.seen_events.add(evh)
    if len(burst.hook_instances) < _MAX_EVENTS_REMEMBERED:
        burst.hook_instances.add(small_hash(event.hook_instance))
    if accepted:
        burst.accepted += 1
        if not burst.accepted_replay:
            burst.accepted_replay = True
            burst.incident.escalated = True
    else:
        burst.rejected += 1
    if burst.fingerprint is None:
        burst.fingerprint = event.fingerprint


def burst_finding(burst: Burst, iss: str | None, *, closed: bool) -> Finding:
    """The next revision of a replay burst's finding."""
    incident = burst.incident
    severity = Severity.CRITICAL if burst.accepted_replay else SPEC_REPLAY.severity
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
        SPEC_REPLAY,
        incident,
        title=title,
        severity=severity,
        client_iss=iss,
        service_id=burst.first_service,
        fingerprint=burst.fingerprint,
        location="$.token.jti",
        facts=facts,
        closed=closed,
    )


def aggregate_finding(agg: Aggregate, iss: str | None, *, closed: bool) -> Finding:
    """The next revision of an audience, lifetime or capacity incident's finding."""
    spec = RULES[agg.spec_rule]
    incident = agg.incident
    facts: dict[str, FactValue]
    if spec is SPEC_AUDIENCE:
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
        location = "$.token.aud"
    elif spec is SPEC_FULL:
        severity = spec.severity
        title = (
            f"jti table of a client reached its cap of {int(agg.peak)}; "
            f"{incident.count} jti(s) forgotten before expiry"
        )
        facts = {"cap": int(agg.peak), "forgotten": incident.count}
        location = None
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
        location = "$.token.exp"
    return emit(
        spec,
        incident,
        title=title,
        severity=severity,
        client_iss=iss,
        service_id=agg.service,
        location=location,
        facts=facts,
        closed=closed,
    )

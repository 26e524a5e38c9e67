"""The incidents of ``validation_anomaly`` and how they read as findings.

A ``Series`` counts the failures of one reason at one service: its EWMA baseline, the
window being counted and the spike incident it may be in. Episodes (``_episodes``) carry
the burst-shaped rules. Both live in the detector's per-key state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.models import FactValue, Finding
from auditor.vocabulary import AnomalyRule, Severity
from detectors._episodes import Episode
from detectors._incidents import Incident, emit, sorted_tuple
from detectors.rules import RULES, RuleSpec

__all__ = ["Series", "episode_finding", "spike_finding"]

SPIKE = RULES[AnomalyRule.FAILURE_RATE_SPIKE.value]
SIGNATURE = RULES[AnomalyRule.ATTACK_SIGNATURE.value]
SKEW = RULES[AnomalyRule.CLOCK_SKEW_DRIFT.value]


@dataclass(slots=True)
class Series:
    """Failures of one reason at one service: the baseline and the window being counted."""

    service: str
    reason: str
    mean: float = 0.0
    var: float = 0.0
    current: int = 0
    window_events: list[str] = field(default_factory=list)
    incident: Incident | None = None
    windows: int = 0
    anomalous_windows: int = 0
    peak: float = 0.0
    last_score: float = 0.0
    last_baseline: float = 0.0
    last_std: float = 0.0
    last_count: int = 0
    last_requests: int = 0


def spike_finding(series: Series, *, iss: str | None, window: float, closed: bool) -> Finding:
    """The next revision of a rate-spike incident's finding."""
    incident = series.incident
    assert incident is not None
    service, reason = series.service, series.reason
    facts: dict[str, FactValue] = {
        "reason": reason,
        "service": service,
        "baseline": round(series.last_baseline, 3),
        "baseline_std": round(series.last_std, 3),
        "score": round(series.last_score, 2),
        "peak_score": round(series.peak, 2),
        "window_seconds": window,
        "window_count": series.last_count,
        "anomalous_windows": series.anomalous_windows,
        "requests_in_window": series.last_requests,
        "failures": incident.count,
    }
    title = (
        f"{reason} failures at {service} spiked to {series.last_count} per "
        f"{int(window)} s (baseline {series.last_baseline:.1f}, "
        f"z {series.last_score:.1f})"
    )
    return emit(
        SPIKE,
        incident,
        title=title,
        client_iss=iss,
        service_id=service,
        location="$.reason",
        facts=facts,
        closed=closed,
    )


def episode_finding(spec: RuleSpec, episode: Episode, *, iss: str | None, closed: bool) -> Finding:
    """The next revision of an attack-signature, clock-skew or expired-token finding."""
    incident = episode.incident
    assert incident is not None
    peers = sorted_tuple(episode.dims.get("peers", set()))
    services = sorted_tuple(episode.dims.get("services", set()))
    facts: dict[str, FactValue] = {
        "failures": incident.count,
        "duration_seconds": round(incident.last - incident.first, 3),
        "peers": peers,
        "services": services,
    }
    severity = None
    if spec is SIGNATURE:
        forged = sorted_tuple(episode.dims.get("forged", set()))
        facts["reasons"] = tuple(sorted(episode.tallies))
        for reason, count in sorted(episode.tallies.items()):
            facts[f"count_{reason}"] = count
        facts["algs"] = sorted_tuple(episode.dims.get("algs", set()))
        facts["forged_alg"] = bool(forged)
        severity = Severity.CRITICAL if forged else None
        title = (
            f"burst of {incident.count} forgery-shaped failures "
            f"({', '.join(sorted(episode.tallies))}) from {len(peers)} peer(s)"
        )
    elif spec is SKEW:
        facts["reasons"] = tuple(sorted(episode.tallies))
        facts["max_skew_seconds"] = None if episode.measured == 0 else round(episode.high, 3)
        mean = episode.mean
        facts["mean_skew_seconds"] = None if mean is None else round(mean, 3)
        title = (
            f"{incident.count} tokens from the future: client clock ahead by up to "
            f"{facts['max_skew_seconds']} s"
        )
    else:
        late_max = None if episode.measured == 0 else round(episode.high, 3)
        late_min = None if episode.measured == 0 else round(episode.low, 3)
        facts["max_seconds_past_exp"] = late_max
        facts["min_seconds_past_exp"] = late_min
        title = (
            f"expired tokens presented {incident.count} times over "
            f"{int(incident.last - incident.first)} s (up to {late_max} s past exp)"
        )
    return emit(
        spec,
        incident,
        title=title,
        severity=severity,
        client_iss=iss,
        service_id=services[0] if len(services) == 1 else None,
        location="$.reason",
        facts=facts,
        closed=closed,
    )

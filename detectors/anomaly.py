"""``validation_anomaly``: failures of token validation that depart from what is normal.

Keyed by the client's ``iss`` — or by the peer (``peer:<ip>``) when the iss cannot be
trusted (``unknown_issuer``, ``malformed``, ``missing_token``, or no client at all), so
that an attacker inventing issuers cannot grow the state without bound. Per key:

- **Rate spikes** (``failure_rate_spike``): failures are counted per (service, reason)
  in tumbling event-time windows (``window`` seconds, aligned to the epoch). Each series
  keeps an EWMA baseline of its count per window and of its variance. A window is
  anomalous when its count is at least ``min_count`` and its z-score
  ``(count - mean) / max(std, 1)`` at least ``z_threshold``, once the client has been
  known for ``warmup`` seconds. While anomalous, the baseline is updated with the count
  clipped at ``mean + z_threshold * std`` so the anomaly cannot teach the baseline that it
  is normal; a real change of level is still learnt, slowly. One incident spans
  consecutive anomalous windows and closes at the first normal one.
- **New failure reasons** (``new_failure_reason``): a reason the client never had before,
  once the client has been known for ``new_reason_warmup`` seconds. Seen reasons are
  remembered for ``new_reason_memory`` seconds of inactivity.
- **Attack signatures** (``attack_signature``): at least ``signature.count`` forgery-
  shaped failures (``alg_not_allowed``, ``unknown_kid``, ``jku_not_allowed``,
  ``aud_mismatch``, ``bad_signature``, ``unknown_issuer``; or any failure of a token
  signed with ``none`` or HMAC) within ``signature.window`` seconds; critical when
  ``none``/HMAC is involved.
- **Clock-skew drift** (``clock_skew_drift``): ``iat_in_future``/``not_yet_valid``
  failures repeating; reports how far ahead the client's clock runs.
- **Sustained expired tokens** (``sustained_expired_tokens``): ``expired`` failures
  continuing for ``expired.duration`` seconds; reports how long past ``exp`` they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from auditor.models import AuthzEvent, FactValue, Finding
from auditor.vocabulary import AnomalyRule, DetectorName, FailureReason, Outcome, Severity
from detectors._episodes import Episode, Trigger
from detectors._incidents import (
    MAX_EVENT_IDS,
    Incident,
    anchor_time,
    emit,
    incident_id,
    sorted_tuple,
)
from detectors.rules import RULES, RuleSpec
from detectors.thresholds import BurstThreshold, Seconds, SustainedThreshold

__all__ = [
    "AnomalyState",
    "ValidationAnomalyConfig",
    "ValidationAnomalyDetector",
]

_SPIKE = RULES[AnomalyRule.FAILURE_RATE_SPIKE.value]
_NEW = RULES[AnomalyRule.NEW_FAILURE_REASON.value]
_SIGNATURE = RULES[AnomalyRule.ATTACK_SIGNATURE.value]
_SKEW = RULES[AnomalyRule.CLOCK_SKEW_DRIFT.value]
_EXPIRED = RULES[AnomalyRule.SUSTAINED_EXPIRED_TOKENS.value]

_FAILURE = Outcome.FAILURE
_NEGLIGIBLE = 1e-3
_SKEW_REASONS = frozenset({FailureReason.IAT_IN_FUTURE, FailureReason.NOT_YET_VALID})


class ValidationAnomalyConfig(BaseModel):
    """Configuration of ``validation_anomaly``; validated once at start-up.

    Attributes:
        window: Length of the tumbling windows of the rate baselines, in seconds.
        alpha: EWMA weight of the newest window (0.1 ~ a memory of ten windows).
        z_threshold: z-score at or above which a window is anomalous.
        min_count: Failures a window needs before it can be anomalous.
        warmup: Seconds a client must have been seen before rate spikes are reported.
        new_reason_warmup: Seconds a client must have been seen before a reason is "new".
        new_reason_memory: Seconds of inactivity after which a client's history is let go.
        signature_reasons: Failure reasons that look like forgery attempts.
        untrusted_issuer_reasons: Reasons whose ``iss`` is attacker-chosen: keyed by peer.
        signature: Burst threshold of attack signatures.
        clock_skew: Burst threshold of clock-skew failures.
        expired: Threshold of sustained use of expired tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Annotated[float, Field(ge=1, le=86400)] = 60.0
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.1
    z_threshold: Annotated[float, Field(gt=0)] = 4.0
    min_count: Annotated[int, Field(ge=1)] = 10
    warmup: Annotated[float, Field(ge=0)] = 900.0
    new_reason_warmup: Annotated[float, Field(ge=0)] = 3600.0
    new_reason_memory: Seconds = 7 * 86400.0
    signature_reasons: frozenset[FailureReason] = frozenset(
        {
            FailureReason.ALG_NOT_ALLOWED,
            FailureReason.UNKNOWN_KID,
            FailureReason.JKU_NOT_ALLOWED,
            FailureReason.AUD_MISMATCH,
            FailureReason.BAD_SIGNATURE,
            FailureReason.UNKNOWN_ISSUER,
        }
    )
    untrusted_issuer_reasons: frozenset[FailureReason] = frozenset(
        {FailureReason.UNKNOWN_ISSUER, FailureReason.MALFORMED, FailureReason.MISSING_TOKEN}
    )
    signature: BurstThreshold = BurstThreshold(count=5, window=60.0)
    clock_skew: BurstThreshold = BurstThreshold(count=3, window=300.0)
    expired: SustainedThreshold = SustainedThreshold(count=10, duration=300.0, gap=300.0)


@dataclass(slots=True)
class _Series:
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


@dataclass(slots=True)
class AnomalyState:
    """The per-key state of ``validation_anomaly``."""

    key: str | None = None
    first_seen: float = math.inf
    last_seen: float = -math.inf
    window_start: float = math.nan
    window_end: float = math.nan
    requests: int = 0
    series: dict[tuple[str, str], _Series] = field(default_factory=dict)
    reasons_seen: set[str] = field(default_factory=set)
    signature: Episode | None = None
    skew: Episode | None = None
    expired: Episode | None = None


def _forged_alg(alg: str | None) -> bool:
    if alg is None:
        return False
    return alg.lower() == "none" or alg.upper().startswith("HS")


class ValidationAnomalyDetector:
    """Watches validation failures per client for spikes, new reasons and attack patterns.

    Args:
        config: The configuration; defaults to ``ValidationAnomalyConfig()``.
    """

    name = DetectorName.VALIDATION_ANOMALY
    state_version = 1

    __slots__ = ("_config", "_expired", "_signature", "_skew", "_untrusted")

    def __init__(self, config: ValidationAnomalyConfig | None = None) -> None:
        self._config = config or ValidationAnomalyConfig()
        c = self._config
        self._untrusted = c.untrusted_issuer_reasons
        self._signature = Trigger(c.signature.count, c.signature.window, c.signature.window)
        self._skew = Trigger(c.clock_skew.count, c.clock_skew.window, c.clock_skew.window)
        self._expired = Trigger(
            c.expired.count, math.inf, c.expired.gap, min_duration=c.expired.duration
        )

    @property
    def config(self) -> ValidationAnomalyConfig:
        """The validated configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"ValidationAnomalyDetector({self._config!r})"

    def key(self, event: AuthzEvent) -> str | None:
        """``iss`` of service-side events and client failures; the peer when iss is untrusted."""
        if event.source.role != "service" and event.outcome is not _FAILURE:
            return None
        client = event.client
        if client is None or (event.reason is not None and event.reason in self._untrusted):
            peer = event.peer
            return f"peer:{peer.ip if peer is not None and peer.ip else '?'}"
        return client.iss

    def initial_state(self) -> AnomalyState:
        """A key with no history."""
        return AnomalyState()

    def step(
        self, state: AnomalyState, event: AuthzEvent, now: float
    ) -> tuple[AnomalyState, list[Finding]]:
        """Count the event in its window; report new reasons and bursts as they happen."""
        out: list[Finding] = []
        if state.key is None:
            state.key = self.key(event)
            state.window_start = now - now % self._config.window
            state.window_end = state.window_start + self._config.window
        elif now >= state.window_end:
            self._roll(state, now, out)
        if state.signature is not None or state.skew is not None or state.expired is not None:
            self._end_episodes(state, now, out)
        state.first_seen = min(state.first_seen, now)
        state.last_seen = max(state.last_seen, now)
        if event.source.role == "service":
            state.requests += 1
        reason = event.reason
        if event.outcome is _FAILURE and reason is not None:
            self._failure(state, event, reason, now, out)
        return state, out

    def deadline(self, state: AnomalyState) -> float | None:
        """The end of the current window while there are series, the end of an episode,
        or when a quiet key's history is let go."""
        due = state.window_end if state.series else math.inf
        if state.signature is not None:
            due = min(due, state.signature.last + self._signature.gap)
        if state.skew is not None:
            due = min(due, state.skew.last + self._skew.gap)
        if state.expired is not None:
            due = min(due, state.expired.last + self._expired.gap)
        if due == math.inf:
            return state.last_seen + self._config.new_reason_memory
        return due

    def advance(self, state: AnomalyState, now: float) -> tuple[AnomalyState | None, list[Finding]]:
        """Close the windows and episodes that ``now`` has passed; at the end, everything."""
        out: list[Finding] = []
        if now == math.inf:
            if state.series:
                self._close_window(state, out)
            for series in state.series.values():
                if series.incident is not None:
                    out.append(self._spike_finding(state, series, closed=True))
            for episode, _ in self._episodes(state):
                self._close_episode(state, episode, out)
            return None, out
        if now >= state.window_end:
            self._roll(state, now, out)
        self._end_episodes(state, now, out)
        quiet = not state.series and not any(True for _ in self._episodes(state))
        if quiet and now >= state.last_seen + self._config.new_reason_memory:
            return None, out
        return state, out

    def size(self, state: AnomalyState) -> int:
        """Series plus open episodes."""
        return len(state.series) + sum(1 for _ in self._episodes(state))

    # -- windows and baselines ----------------------------------------------------------

    def _roll(self, state: AnomalyState, now: float, out: list[Finding]) -> None:
        window = self._config.window
        while state.window_end <= now:
            if not state.series:
                state.window_start = now - now % window
                state.window_end = state.window_start + window
                state.requests = 0
                return
            self._close_window(state, out)
            state.window_start = state.window_end
            state.window_end += window
            state.requests = 0

    def _close_window(self, state: AnomalyState, out: list[Finding]) -> None:
        c = self._config
        warm = state.window_start - state.first_seen >= c.warmup
        for name, series in list(state.series.items()):
            count = series.current
            std = max(math.sqrt(series.var), 1.0)
            score = (count - series.mean) / std
            if warm and count >= c.min_count and score >= c.z_threshold:
                series.last_score, series.last_baseline = score, series.mean
                series.last_std, series.last_count = std, count
                series.last_requests = state.requests
                series.peak = max(series.peak, score)
                self._anomalous_window(state, name, series, out)
                # Protect the baseline: learn the count clipped at the threshold, and at
                # most one standard deviation of spread (clipped at z sigma, the variance
                # would grow geometrically and the anomaly would soon look normal).
                delta = min(count, series.mean + c.z_threshold * std) - series.mean
                series.mean += c.alpha * delta
                series.var = (1 - c.alpha) * (series.var + c.alpha * min(delta * delta, std * std))
            else:
                if series.incident is not None:
                    out.append(self._spike_finding(state, series, closed=True))
                    series.incident = None
                    series.peak = 0.0
                    series.anomalous_windows = 0
                delta = count - series.mean
                series.mean += c.alpha * delta
                series.var = (1 - c.alpha) * (series.var + c.alpha * delta * delta)
            series.current = 0
            series.window_events.clear()
            series.windows += 1
            if series.incident is None and series.mean < _NEGLIGIBLE and series.var < _NEGLIGIBLE:
                del state.series[name]

    def _anomalous_window(
        self, state: AnomalyState, name: tuple[str, str], series: _Series, out: list[Finding]
    ) -> None:
        incident = series.incident
        if incident is None:
            incident = series.incident = Incident(
                incident_id(_SPIKE, state.key, *name, anchor_time(state.window_start)),
                first=state.window_start,
                last=state.window_end,
            )
        incident.count += series.current
        incident.last = state.window_end
        series.anomalous_windows += 1
        room = MAX_EVENT_IDS - len(incident.event_ids)
        incident.event_ids.extend(series.window_events[:room])
        if incident.update_due:
            out.append(self._spike_finding(state, series, closed=False))

    def _spike_finding(self, state: AnomalyState, series: _Series, *, closed: bool) -> Finding:
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
            "window_seconds": self._config.window,
            "window_count": series.last_count,
            "anomalous_windows": series.anomalous_windows,
            "requests_in_window": series.last_requests,
            "failures": incident.count,
        }
        title = (
            f"{reason} failures at {service} spiked to {series.last_count} per "
            f"{int(self._config.window)} s (baseline {series.last_baseline:.1f}, "
            f"z {series.last_score:.1f})"
        )
        return emit(
            _SPIKE,
            incident,
            title=title,
            client_iss=self._iss(state),
            service_id=service,
            location="$.reason",
            facts=facts,
            closed=closed,
        )

    # -- failures -----------------------------------------------------------------------

    def _failure(
        self,
        state: AnomalyState,
        event: AuthzEvent,
        reason: FailureReason,
        now: float,
        out: list[Finding],
    ) -> None:
        service = event.service
        service_name = (service.id or service.url or "?") if service is not None else "?"
        name = (service_name, reason.value)
        series = state.series.get(name)
        if series is None:
            series = state.series[name] = _Series(service_name, reason.value)
        series.current += 1
        if len(series.window_events) < MAX_EVENT_IDS:
            series.window_events.append(str(event.event_id))
        if reason.value not in state.reasons_seen:
            state.reasons_seen.add(reason.value)
            known_for = now - state.first_seen
            if known_for >= self._config.new_reason_warmup and not self._by_peer(state):
                out.append(self._new_reason(state, event, reason, service_name, now, known_for))
        token = event.token
        alg = token.alg if token is not None else None
        forged = _forged_alg(alg)
        if forged or reason in self._config.signature_reasons:
            episode = self._episode(state, "signature", now)
            episode.tally(reason.value)
            episode.note("algs", alg)
            if forged:
                episode.note("forged", alg)
            self._grow(state, episode, _SIGNATURE, self._signature, event, now, out)
        if reason in _SKEW_REASONS:
            episode = self._episode(state, "skew", now)
            episode.tally(reason.value)
            claim = None
            if token is not None:
                claim = token.iat if reason is FailureReason.IAT_IN_FUTURE else token.nbf
            if claim is not None:
                episode.measure(claim - now)
            self._grow(state, episode, _SKEW, self._skew, event, now, out)
        if reason is FailureReason.EXPIRED:
            episode = self._episode(state, "expired", now)
            if token is not None and token.exp is not None:
                episode.measure(now - token.exp)
            self._grow(state, episode, _EXPIRED, self._expired, event, now, out)

    def _new_reason(
        self,
        state: AnomalyState,
        event: AuthzEvent,
        reason: FailureReason,
        service_name: str,
        now: float,
        known_for: float,
    ) -> Finding:
        incident = Incident(
            incident_id(_NEW, state.key, reason.value, anchor_time(now)), first=now, last=now
        )
        incident.record(now, event.event_id)
        severity = Severity.MEDIUM if reason in self._config.signature_reasons else _NEW.severity
        return emit(
            _NEW,
            incident,
            title=f"first {reason.value} failure for this client (known for {int(known_for)} s)",
            severity=severity,
            client_iss=self._iss(state),
            service_id=service_name,
            location="$.reason",
            facts={"reason": reason.value, "action": event.action.value, "service": service_name},
            closed=True,
        )

    # -- episodes -----------------------------------------------------------------------

    def _episodes(self, state: AnomalyState) -> list[tuple[Episode, Trigger]]:
        pairs: list[tuple[Episode, Trigger]] = []
        if state.signature is not None:
            pairs.append((state.signature, self._signature))
        if state.skew is not None:
            pairs.append((state.skew, self._skew))
        if state.expired is not None:
            pairs.append((state.expired, self._expired))
        return pairs

    def _episode(self, state: AnomalyState, kind: str, now: float) -> Episode:
        trigger = {"signature": self._signature, "skew": self._skew}.get(kind, self._expired)
        episode: Episode | None = getattr(state, kind)
        if episode is None:
            episode = Episode.start(now, trigger)
            setattr(state, kind, episode)
        return episode

    def _grow(
        self,
        state: AnomalyState,
        episode: Episode,
        spec: RuleSpec,
        trigger: Trigger,
        event: AuthzEvent,
        now: float,
        out: list[Finding],
    ) -> None:
        peer = event.peer
        escalated = episode.note("peers", peer.ip if peer is not None else None)
        escalated |= episode.note("services", event.service_id)
        if episode.add(now, event.event_id, trigger):
            episode.open(incident_id(spec, state.key, anchor_time(episode.first)), trigger)
        incident = episode.incident
        if incident is None:
            return
        if escalated:
            incident.escalated = True
        if incident.update_due:
            out.append(self._episode_finding(state, episode, closed=False))

    def _end_episodes(self, state: AnomalyState, now: float, out: list[Finding]) -> None:
        for episode, trigger in self._episodes(state):
            if episode.ended(now, trigger):
                self._close_episode(state, episode, out)

    def _close_episode(self, state: AnomalyState, episode: Episode, out: list[Finding]) -> None:
        if episode.incident is not None:
            out.append(self._episode_finding(state, episode, closed=True))
        if state.signature is episode:
            state.signature = None
        elif state.skew is episode:
            state.skew = None
        else:
            state.expired = None

    def _episode_finding(self, state: AnomalyState, episode: Episode, *, closed: bool) -> Finding:
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
        if episode is state.signature:
            spec = _SIGNATURE
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
        elif episode is state.skew:
            spec = _SKEW
            facts["reasons"] = tuple(sorted(episode.tallies))
            facts["max_skew_seconds"] = None if episode.measured == 0 else round(episode.high, 3)
            mean = episode.mean
            facts["mean_skew_seconds"] = None if mean is None else round(mean, 3)
            title = (
                f"{incident.count} tokens from the future: client clock ahead by up to "
                f"{facts['max_skew_seconds']} s"
            )
        else:
            spec = _EXPIRED
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
            client_iss=self._iss(state),
            service_id=services[0] if len(services) == 1 else None,
            location="$.reason",
            facts=facts,
            closed=closed,
        )

    @staticmethod
    def _by_peer(state: AnomalyState) -> bool:
        return state.key is not None and state.key.startswith("peer:")

    @classmethod
    def _iss(cls, state: AnomalyState) -> str | None:
        return None if cls._by_peer(state) else state.key

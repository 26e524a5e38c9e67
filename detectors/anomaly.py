"""``validation_anomaly``: failures of token validation that depart from what is normal.

Keyed by the client's ``iss`` — or by the peer (``peer:<ip>``) when the iss cannot be
trusted (``unknown_issuer``, ``malformed``, ``missing_token``, or no client at all), so
that an attacker inventing issuers cannot grow the state without bound. Per key:

- **Rate spikes** (``failure_rate_spike``): failures are counted per (service, reason)
  in tumbling event-time windows (``window`` seconds, aligned to the epoch). Each series
  keeps an EWMA baseline of its count per window and of its variance. A window is
  anomalous when its count is at least ``min_count`` and its z-score
  ``(count - mean) / max(std, 1)`` at least ``z_threshold``, once the client has been
  known for ``warmup`` seconds. While anomalous, the baseline learns the count clipped at
  ``mean + z_threshold * std`` and at most one standard deviation of spread, so the anomaly
  cannot teach the baseline that it is normal (clipping alone would let the variance grow
  geometrically); a real change of level is still learnt, slowly. One incident spans
  consecutive anomalous windows and closes at the first normal one.
- **New failure reasons** (``new_failure_reason``): a reason the client never had before,
  once the client has been known for ``new_reason_warmup`` seconds. Seen reasons are
  remembered for ``new_reason_memory`` seconds of inactivity (a peer's key is let go as
  soon as its windows and bursts are over).
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
from collections.abc import Sequence
from dataclasses import dataclass, field

from auditor.models import AuthzView, Finding
from auditor.vocabulary import AnomalyRule, DetectorName, FailureReason, Outcome, Severity
from detectors._anomaly_incidents import Series, episode_finding, spike_finding
from detectors._episodes import Episode, Trigger
from detectors._incidents import (
    MAX_EVENT_IDS,
    Incident,
    anchor_time,
    emit,
    incident_id,
)
from detectors.config import ValidationAnomalyConfig, is_forged_alg
from detectors.rules import RULES, RuleSpec

__all__ = [
    "AnomalyState",
    "ValidationAnomalyDetector",
]

_SPIKE = RULES[AnomalyRule.FAILURE_RATE_SPIKE.value]
_NEW = RULES[AnomalyRule.NEW_FAILURE_REASON.value]
_SIGNATURE = RULES[AnomalyRule.ATTACK_SIGNATURE.value]
_SKEW = RULES[AnomalyRule.CLOCK_SKEW_DRIFT.value]
_EXPIRED = RULES[AnomalyRule.SUSTAINED_EXPIRED_TOKENS.value]

_FAILURE = Outcome.FAILURE
_NOTHING: tuple[Finding, ...] = ()  # returned when nothing is found: no list per event
_NEGLIGIBLE = 0.01  # a baseline of one failure per hundred windows is no baseline
_SKEW_REASONS = frozenset({FailureReason.IAT_IN_FUTURE, FailureReason.NOT_YET_VALID})


@dataclass(slots=True)
class AnomalyState:
    """The per-key state of ``validation_anomaly``."""

    key: str | None = None
    first_seen: float = math.inf
    last_seen: float = -math.inf
    window_start: float = math.nan
    window_end: float = math.nan
    requests: int = 0
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    reasons_seen: set[str] = field(default_factory=set)
    episodes: dict[str, Episode] = field(default_factory=dict)
    episode_deadline: float = math.inf


class ValidationAnomalyDetector:
    """Watches validation failures per client for spikes, new reasons and attack patterns.

    Args:
        config: The configuration; defaults to ``ValidationAnomalyConfig()``.
    """

    name = DetectorName.VALIDATION_ANOMALY
    state_version = 1

    __slots__ = ("_config", "_triggers", "_untrusted")

    def __init__(self, config: ValidationAnomalyConfig | None = None) -> None:
        self._config = config or ValidationAnomalyConfig()
        c = self._config
        self._untrusted = c.untrusted_issuer_reasons
        self._triggers = {
            _SIGNATURE.rule: Trigger(c.signature.count, c.signature.window, c.signature.window),
            _SKEW.rule: Trigger(c.clock_skew.count, c.clock_skew.window, c.clock_skew.window),
            _EXPIRED.rule: Trigger(
                c.expired.count, math.inf, c.expired.gap, min_duration=c.expired.duration
            ),
        }

    @property
    def config(self) -> ValidationAnomalyConfig:
        """The validated configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"ValidationAnomalyDetector({self._config!r})"

    def key(self, event: AuthzView) -> str | None:
        """``iss`` of service-side events and client failures; the peer when iss is untrusted."""
        if event.role != "service" and event.outcome is not _FAILURE:
            return None
        iss = event.iss
        reason = event.reason
        if iss is None or (reason is not None and reason in self._untrusted):
            return f"peer:{event.peer_ip or '?'}"
        return iss

    def initial_state(self) -> AnomalyState:
        """A key with no history."""
        return AnomalyState()

    def step(
        self, state: AnomalyState, event: AuthzView, now: float
    ) -> tuple[AnomalyState, Sequence[Finding]]:
        """Count the event in its window; report new reasons and bursts as they happen."""
        if state.key is None:
            state.key = self.key(event)
            state.window_start = now - now % self._config.window
            state.window_end = state.window_start + self._config.window
        elif now >= state.window_end or now >= state.episode_deadline:
            return self._step_after_deadline(state, event, now)
        # Comparisons, not min()/max() calls: this runs for every service-side event.
        if now < state.first_seen:  # noqa: PLR1730 - see above
            state.first_seen = now
        if now > state.last_seen:  # noqa: PLR1730 - see above
            state.last_seen = now
        if event.role == "service":
            state.requests += 1
        reason = event.reason
        if reason is not None and event.outcome is _FAILURE:
            out: list[Finding] = []
            self._failure(state, event, reason, now, out)
            return state, out
        return state, _NOTHING

    def _step_after_deadline(
        self, state: AnomalyState, event: AuthzView, now: float
    ) -> tuple[AnomalyState, list[Finding]]:
        """``step`` for an event that closes a window or an episode first."""
        out: list[Finding] = []
        if now >= state.window_end:
            self._roll(state, now, out)
        if now >= state.episode_deadline:
            self._end_episodes(state, now, out)
        if now < state.first_seen:  # noqa: PLR1730 - as in step
            state.first_seen = now
        if now > state.last_seen:  # noqa: PLR1730 - as in step
            state.last_seen = now
        if event.role == "service":
            state.requests += 1
        reason = event.reason
        if reason is not None and event.outcome is _FAILURE:
            self._failure(state, event, reason, now, out)
        return state, out

    def deadline(self, state: AnomalyState) -> float | None:
        """The end of the current window or of an episode, else the end of the memory.

        While there are series the window must close on time; a quiet key's history is
        let go after ``new_reason_memory``.
        """
        due = state.episode_deadline
        if state.series and state.window_end < due:
            due = state.window_end
        if due == math.inf:
            return state.last_seen + self._memory(state)
        return due

    def advance(self, state: AnomalyState, now: float) -> tuple[AnomalyState | None, list[Finding]]:
        """Close the windows and episodes that ``now`` has passed; at the end, everything."""
        out: list[Finding] = []
        if now == math.inf:
            if state.series:
                self._close_window(state, out)
            out.extend(
                spike_finding(series, iss=self._iss(state), window=self._config.window, closed=True)
                for series in state.series.values()
                if series.incident is not None
            )
            for rule in list(state.episodes):
                self._close_episode(state, rule, out)
            return None, out
        if now >= state.window_end:
            self._roll(state, now, out)
        self._end_episodes(state, now, out)
        quiet = not state.series and not state.episodes
        if quiet and now >= state.last_seen + self._memory(state):
            return None, out
        return state, out

    def size(self, state: AnomalyState) -> int:
        """Series plus open episodes."""
        return len(state.series) + len(state.episodes)

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
                    out.append(
                        spike_finding(
                            series, iss=self._iss(state), window=self._config.window, closed=True
                        )
                    )
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
        self, state: AnomalyState, name: tuple[str, str], series: Series, out: list[Finding]
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
            out.append(
                spike_finding(
                    series, iss=self._iss(state), window=self._config.window, closed=False
                )
            )

    # -- failures -----------------------------------------------------------------------

    def _failure(
        self,
        state: AnomalyState,
        event: AuthzView,
        reason: FailureReason,
        now: float,
        out: list[Finding],
    ) -> None:
        service_name = event.service_id or event.service_url or "?"
        name = (service_name, reason.value)
        series = state.series.get(name)
        if series is None:
            series = state.series[name] = Series(service_name, reason.value)
        series.current += 1
        if len(series.window_events) < MAX_EVENT_IDS:
            series.window_events.append(str(event.event_id))
        if reason.value not in state.reasons_seen:
            state.reasons_seen.add(reason.value)
            known_for = now - state.first_seen
            if known_for >= self._config.new_reason_warmup and not self._by_peer(state):
                out.append(
                    self._new_reason(
                        state,
                        event,
                        reason=reason,
                        service=service_name,
                        now=now,
                        known_for=known_for,
                    )
                )
        self._failure_episodes(state, event, reason, now, out)

    def _failure_episodes(
        self,
        state: AnomalyState,
        event: AuthzView,
        reason: FailureReason,
        now: float,
        out: list[Finding],
    ) -> None:
        alg = event.alg
        forged = alg is not None and is_forged_alg(alg)
        if forged or reason in self._config.signature_reasons:
            episode = self._episode(state, _SIGNATURE.rule, now)
            episode.tally(reason.value)
            episode.note("algs", alg)
            if forged:
                episode.note("forged", alg)
            self._grow(state, _SIGNATURE, episode, event, now=now, out=out)
        if reason in _SKEW_REASONS:
            episode = self._episode(state, _SKEW.rule, now)
            episode.tally(reason.value)
            claim = event.iat if reason is FailureReason.IAT_IN_FUTURE else event.nbf
            if claim is not None:
                episode.measure(claim - now)
            self._grow(state, _SKEW, episode, event, now=now, out=out)
        if reason is FailureReason.EXPIRED:
            episode = self._episode(state, _EXPIRED.rule, now)
            if event.exp is not None:
                episode.measure(now - event.exp)
            self._grow(state, _EXPIRED, episode, event, now=now, out=out)

    def _new_reason(
        self,
        state: AnomalyState,
        event: AuthzView,
        *,
        reason: FailureReason,
        service: str,
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
            service_id=service,
            location="$.reason",
            facts={"reason": reason.value, "action": event.action.value, "service": service},
            closed=True,
        )

    # -- episodes -----------------------------------------------------------------------

    def _episode(self, state: AnomalyState, rule: str, now: float) -> Episode:
        episode = state.episodes.get(rule)
        if episode is None:
            episode = state.episodes[rule] = Episode.start(now, self._triggers[rule])
        return episode

    def _grow(
        self,
        state: AnomalyState,
        spec: RuleSpec,
        episode: Episode,
        event: AuthzView,
        *,
        now: float,
        out: list[Finding],
    ) -> None:
        trigger = self._triggers[spec.rule]
        escalated = episode.note("peers", event.peer_ip)
        escalated |= episode.note("services", event.service_id)
        if episode.add(now, event.event_id, trigger):
            episode.open(incident_id(spec, state.key, anchor_time(episode.first)), trigger)
        end = episode.last + trigger.gap
        if end < state.episode_deadline or state.episode_deadline == math.inf:
            self._plan_episodes(state)
        incident = episode.incident
        if incident is None:
            return
        incident.escalated |= escalated
        if incident.update_due:
            out.append(episode_finding(spec, episode, iss=self._iss(state), closed=False))

    def _end_episodes(self, state: AnomalyState, now: float, out: list[Finding]) -> None:
        for rule, episode in list(state.episodes.items()):
            if episode.ended(now, self._triggers[rule]):
                self._close_episode(state, rule, out)
        self._plan_episodes(state)

    def _plan_episodes(self, state: AnomalyState) -> None:
        """Cache when the next episode ends (read on every event of the key)."""
        triggers = self._triggers
        state.episode_deadline = min(
            (e.last + triggers[rule].gap for rule, e in state.episodes.items()), default=math.inf
        )

    def _close_episode(self, state: AnomalyState, rule: str, out: list[Finding]) -> None:
        episode = state.episodes.pop(rule)
        if episode.incident is not None:
            out.append(episode_finding(RULES[rule], episode, iss=self._iss(state), closed=True))

    def _memory(self, state: AnomalyState) -> float:
        # Only a client's history of reasons is worth remembering; a peer's key (an
        # attacker inventing issuers) goes as soon as its windows and bursts are over, so
        # that a botnet cannot grow the state for a week.
        return 0.0 if self._by_peer(state) else self._config.new_reason_memory

    @staticmethod
    def _by_peer(state: AnomalyState) -> bool:
        return state.key is not None and state.key.startswith("peer:")

    @classmethod
    def _iss(cls, state: AnomalyState) -> str | None:
        return None if cls._by_peer(state) else state.key

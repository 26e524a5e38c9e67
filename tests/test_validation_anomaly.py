"""validation_anomaly: rate spikes over a protected baseline, new reasons, attack patterns."""

from __future__ import annotations

import pytest
from authz_events import BASE_TS, ISS, event
from pydantic import ValidationError

from auditor.models import AuthzEvent, Finding
from detectors import ValidationAnomalyConfig, ValidationAnomalyDetector
from pipelines.runtime import RuntimeConfig, StreamRuntime, latest_revisions, run_stream


def steady(start: float, end: float, every: float, **kw: object) -> list[AuthzEvent]:
    """One event every ``every`` seconds in [start, end)."""
    out = []
    t = start
    while t < end:
        out.append(event(t, **kw))  # type: ignore[arg-type]
        t += every
    return out


def burst(start: float, count: int, span: float, **kw: object) -> list[AuthzEvent]:
    """``count`` events spread evenly over ``span`` seconds from ``start``."""
    return [event(start + i * span / count, **kw) for i in range(count)]  # type: ignore[arg-type]


def run(events: list[AuthzEvent], **config: object) -> list[Finding]:
    detector = ValidationAnomalyDetector(ValidationAnomalyConfig.model_validate(config))
    return run_stream([detector], sorted(events, key=lambda e: e.time))


def final(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in latest_revisions(findings) if f.rule == rule]


TRAFFIC = steady(0, 1800, 10)  # a client calling every 10 s for half an hour


def test_a_spike_after_warm_up_is_one_incident_with_its_baseline_and_score() -> None:
    spike = burst(1800, 30, 50, reason="missing_claim")
    (found,) = final(run(TRAFFIC + spike), "failure_rate_spike")
    assert found.client_iss == ISS
    assert found.service_id == "patient-greeter"
    assert found.facts["reason"] == "missing_claim"
    assert found.facts["window_count"] == 30
    assert found.facts["baseline"] == 0.0
    assert isinstance(found.facts["score"], float)
    assert found.facts["score"] >= 4
    assert found.facts["status"] == "closed"
    assert found.count == 30
    assert found.window_start is not None
    assert found.window_start.timestamp() == BASE_TS + 1800


def test_no_spike_is_reported_while_the_client_is_new() -> None:
    # The first 15 minutes only learn: a fresh client has no baseline worth a z-score.
    findings = run(steady(0, 300, 10) + burst(300, 30, 50, reason="missing_claim"))
    assert final(findings, "failure_rate_spike") == []


def test_a_steady_failure_rate_is_the_baseline_not_an_anomaly() -> None:
    # Five failures a minute for an hour: a chronically broken client, known and stable.
    chronic = steady(0, 3600, 12, reason="missing_claim")
    assert final(run(TRAFFIC + chronic), "failure_rate_spike") == []


def test_a_jump_above_a_steady_rate_is_an_anomaly() -> None:
    chronic = steady(0, 3600, 12, reason="missing_claim")
    jump = burst(3600, 25, 50, reason="missing_claim")
    (found,) = final(run(TRAFFIC + chronic + jump), "failure_rate_spike")
    assert 4.0 <= found.facts["baseline"] <= 5.5  # type: ignore[operator]
    assert found.facts["window_count"] == 25


def test_fewer_failures_than_the_minimum_count_are_not_an_anomaly() -> None:
    # Nine failures from zero is a large z-score but too few to page anyone.
    findings = run(TRAFFIC + burst(1800, 9, 50, reason="missing_claim"))
    assert final(findings, "failure_rate_spike") == []


def test_a_long_attack_does_not_teach_the_baseline_that_it_is_normal() -> None:
    # Twelve minutes at 50 failures a minute stay one anomalous incident throughout: the
    # baseline learns only the clipped count. Unprotected, the EWMA would reach ~36 and
    # the z-score would fall below the threshold after a few windows.
    attack = [e for m in range(12) for e in burst(1800 + 60 * m, 50, 59, reason="missing_claim")]
    findings = run(TRAFFIC + steady(1800, 2800, 10) + attack)
    spikes = final(findings, "failure_rate_spike")
    assert len(spikes) == 1
    assert spikes[0].facts["anomalous_windows"] == 12
    assert spikes[0].count == 600
    assert spikes[0].facts["baseline"] < 15  # type: ignore[operator]


def test_an_incident_closes_at_the_first_normal_window() -> None:
    spike = burst(1800, 30, 50, reason="missing_claim")
    findings = run(TRAFFIC + spike + steady(1860, 3000, 10))
    revisions = [f for f in findings if f.rule == "failure_rate_spike"]
    assert [f.facts["status"] for f in revisions] == ["open", "closed"]
    assert revisions[-1].window_end is not None
    assert revisions[-1].window_end.timestamp() == BASE_TS + 1860


def test_a_new_failure_reason_for_a_known_client_is_reported_once() -> None:
    findings = run(
        [*steady(0, 4000, 60), event(4000, reason="unknown_kid"), event(4010, reason="unknown_kid")]
    )
    (found,) = final(findings, "new_failure_reason")
    assert found.facts["reason"] == "unknown_kid"
    assert found.severity.value == "medium"  # a forgery-shaped reason
    assert found.count == 1


def test_a_new_ordinary_reason_is_low_severity() -> None:
    (found,) = final(
        run([*steady(0, 4000, 60), event(4000, reason="missing_claim")]), "new_failure_reason"
    )
    assert found.severity.value == "low"


def test_every_reason_is_new_to_a_new_client_so_none_is_reported() -> None:
    findings = run([event(0), event(60, reason="unknown_kid")])
    assert final(findings, "new_failure_reason") == []


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        # Five unknown kids in a minute: someone is guessing keys.
        (burst(0, 5, 50, reason="unknown_kid"), "high"),
        # Mixed forgery-shaped reasons count together.
        (
            burst(0, 3, 20, reason="bad_signature") + burst(20, 2, 20, reason="aud_mismatch"),
            "high",
        ),
        # alg none or HMAC among them: an algorithm-confusion attack, critical.
        (burst(0, 5, 50, reason="alg_not_allowed", alg="none"), "critical"),
        (burst(0, 5, 50, reason="malformed", alg="HS256"), "critical"),
    ],
)
def test_attack_signatures(failures: list[AuthzEvent], expected: str) -> None:
    (found,) = final(run(failures), "attack_signature")
    assert found.severity.value == expected
    assert found.count == 5


@pytest.mark.parametrize(
    "failures",
    [
        burst(0, 4, 50, reason="unknown_kid"),  # four is below the threshold of five
        burst(0, 5, 500, reason="unknown_kid"),  # five over eight minutes is no burst
        burst(0, 10, 50, reason="expired"),  # not a forgery-shaped reason
    ],
)
def test_no_attack_signature(failures: list[AuthzEvent]) -> None:
    assert final(run(failures), "attack_signature") == []


def test_unknown_issuers_from_one_peer_are_one_attack_keyed_by_the_peer() -> None:
    # Each request claims a different iss: keyed by iss they would be 20 harmless keys.
    spray = [
        event(i, iss=f"https://forged-{i}.example", reason="unknown_issuer", peer="198.51.100.7")
        for i in range(20)
    ]
    detector = ValidationAnomalyDetector()
    runtime = StreamRuntime([detector], RuntimeConfig(allowed_lateness=0))
    findings = runtime.process(0, spray)
    assert runtime.stats(0).keys == 1
    findings += runtime.flush()
    (found,) = final(findings, "attack_signature")
    assert found.client_iss is None
    assert found.facts["peers"] == ("198.51.100.7",)


def test_a_client_clock_running_ahead_is_reported_with_its_skew() -> None:
    skewed = [event(t, reason="iat_in_future", iat=BASE_TS + int(t) + 120) for t in (0, 60, 120)]
    (found,) = final(run(skewed), "clock_skew_drift")
    assert found.facts["max_skew_seconds"] == 120
    assert found.facts["reasons"] == ("iat_in_future",)


def test_expired_tokens_over_minutes_are_sustained_use() -> None:
    stale = [event(t, reason="expired", exp=BASE_TS + int(t) - 90) for t in range(0, 400, 40)]
    (found,) = final(run(stale), "sustained_expired_tokens")
    assert found.count == 10
    assert found.facts["min_seconds_past_exp"] == 90
    assert found.facts["max_seconds_past_exp"] == 90


def test_a_short_burst_of_expired_tokens_is_not_sustained_use() -> None:
    quick = burst(0, 12, 60, reason="expired")
    assert final(run(quick), "sustained_expired_tokens") == []


def test_a_quiet_clients_history_is_let_go_after_the_memory() -> None:
    runtime = StreamRuntime(
        [ValidationAnomalyDetector(ValidationAnomalyConfig(new_reason_memory=3600))],
        RuntimeConfig(allowed_lateness=0),
    )
    runtime.process(0, [event(0, reason="missing_claim"), event(10)])
    runtime.advance_watermark(0, BASE_TS + 7200)
    assert runtime.stats(0).keys == 0


def test_a_peer_keyed_state_goes_as_soon_as_its_burst_is_over() -> None:
    # A botnet inventing issuers from many addresses must not leave a week of state behind.
    runtime = StreamRuntime([ValidationAnomalyDetector()], RuntimeConfig(allowed_lateness=0))
    spray = [
        event(i, iss=f"https://forged-{i}.example", reason="unknown_issuer", peer=f"198.51.100.{i}")
        for i in range(50)
    ]
    runtime.process(0, spray)
    assert runtime.stats(0).keys == 49  # the last event still waits for the watermark
    runtime.advance_watermark(0, BASE_TS + 4 * 3600)  # windows decayed, no burst open
    assert runtime.stats(0).keys == 0


@pytest.mark.parametrize(
    "config",
    [
        {"alpha": 0},  # no learning at all
        {"alpha": 1},  # no memory at all
        {"window": 0},  # windows must have a length
        {"min_count": 0},  # one failure must never page
        {"signature": {"count": 5}},  # a burst needs its window
        {"z_threshold": -1},  # below the mean is not an anomaly
    ],
)
def test_bad_anomaly_configuration_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ValidationAnomalyConfig.model_validate(config)

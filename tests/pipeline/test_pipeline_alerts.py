"""Alerts: a threshold, one per incident revision, no floods; sent by webhook with retries."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pipeline_support import webhook_receiver

from auditor.models import Finding, finding_id
from auditor.vocabulary import DetectorName, Severity
from pipelines.settings import AlertSettings, WebhookSettings
from pipelines.topology.alerting import AlertPolicy
from pipelines.topology.dispatch import AlertDispatcher, WebhookSender
from pipelines.topology.telemetry import PipelineTelemetry

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def incident(revision: int, severity: Severity = Severity.HIGH, key: str = "jti-1") -> Finding:
    return Finding(
        finding_id=finding_id("replay_burst", "jti_replay", key),
        detector=DetectorName.REPLAY_BURST,
        rule="jti_replay",
        kind="jwt_replay",
        severity=severity,
        observed_at=T0 + timedelta(seconds=revision),
        title="jti_replay: presented twice",
        revision=revision,
        evidence="should never travel in an alert",
    )


def leak(n: int, seconds: float = 0.0, fingerprint: str = "k1:" + "ab" * 16) -> Finding:
    return Finding(
        finding_id=finding_id("leaked_token", "jwt.jws", f"app.log:{n}"),
        detector=DetectorName.LEAKED_TOKEN,
        rule="jwt.jws",
        kind="jwt",
        severity=Severity.HIGH,
        observed_at=T0 + timedelta(seconds=seconds),
        title="jwt in a log",
        fingerprint=fingerprint,
        origin=f"app.log:{n}",
    )


def test_an_incident_alerts_once_per_revision():
    policy = AlertPolicy(AlertSettings())
    alerts = policy.decide([incident(0), incident(0), incident(1), incident(1), incident(2)])
    assert [a.alert_id.rsplit(":", 1)[1] for a in alerts] == ["0", "1", "2"]


def test_a_revision_seen_again_after_a_replay_does_not_alert_again():
    policy = AlertPolicy(AlertSettings())
    policy.decide([incident(0), incident(1)])
    assert policy.decide([incident(0), incident(1)]) == []


def test_findings_below_the_threshold_never_alert():
    policy = AlertPolicy(AlertSettings(min_severity=Severity.CRITICAL))
    assert policy.decide([incident(0, Severity.HIGH)]) == []
    assert len(policy.decide([incident(1, Severity.CRITICAL)])) == 1


def test_a_thousand_copies_of_one_leaked_token_raise_ten_alerts():
    policy = AlertPolicy(AlertSettings())
    alerts = policy.decide([leak(n) for n in range(1000)])
    assert [a.occurrences for a in alerts] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def test_different_leaked_values_are_separate_groups():
    policy = AlertPolicy(AlertSettings())
    alerts = policy.decide(
        [leak(1, fingerprint="k1:" + "aa" * 16), leak(2, fingerprint="k1:" + "bb" * 16)]
    )
    assert [a.occurrences for a in alerts] == [1, 1]


def test_a_group_quiet_longer_than_its_window_starts_over():
    policy = AlertPolicy(AlertSettings(group_window_s=60))
    first = policy.decide([leak(1, 0), leak(2, 10), leak(3, 20)])
    later = policy.decide([leak(4, 200)])
    assert [a.occurrences for a in first] == [1, 2]
    assert [a.occurrences for a in later] == [1]


def test_an_alert_carries_its_id_and_facts_but_no_evidence():
    (alert,) = AlertPolicy(AlertSettings()).decide([incident(3)])
    body = orjson.loads(alert.to_json(("kafka",)))
    assert body["alert_id"] == f"{incident(3).finding_id}:3"
    assert body["channels"] == ["kafka"]
    assert "evidence" not in body
    assert "should never travel" not in alert.to_json().decode()


def _sender(url: str, **overrides: object) -> WebhookSender:
    settings = WebhookSettings(url=url, timeout_s=1.0, retries=3, backoff_s=0.05, **overrides)
    return WebhookSender(settings, PipelineTelemetry())


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():  # type: ignore[operator]
        time.sleep(0.02)


def test_the_webhook_receives_the_alert_with_its_idempotency_key_and_bearer_token():
    with webhook_receiver() as (url, received):
        sender = _sender(url, bearer_token="hook-secret-0123456789")
        sender.submit("abc:1", b'{"alert_id": "abc:1"}')
        sender.close()
    assert received.bodies == [{"alert_id": "abc:1"}]
    assert received.headers[0]["idempotency-key"] == "abc:1"
    assert received.headers[0]["authorization"] == "Bearer hook-secret-0123456789"


def test_the_webhook_is_retried_after_server_errors_until_it_succeeds():
    with webhook_receiver(statuses=[503, 500]) as (url, received):
        sender = _sender(url)
        sender.submit("abc:1", b"{}")
        sender.close()
    assert (received.attempts, len(received.bodies)) == (3, 1)
    assert (sender.sent, sender.failed) == (1, 0)


def test_the_webhook_gives_up_after_its_retries_and_counts_the_failure():
    with webhook_receiver(statuses=[503] * 10) as (url, received):
        sender = _sender(url)
        sender.submit("abc:1", b"{}")
        sender.close()
    assert (received.attempts, received.bodies) == (4, [])  # the first try and 3 retries
    assert (sender.sent, sender.failed) == (0, 1)


def test_a_client_error_is_not_retried():
    with webhook_receiver(statuses=[400, 400]) as (url, received):
        sender = _sender(url)
        sender.submit("abc:1", b"{}")
        sender.close()
    assert sender.failed == 1
    assert received.attempts == 1


def test_a_receiver_slower_than_the_timeout_is_retried_then_failed():
    with webhook_receiver(delay=0.5) as (url, _received):
        sender = WebhookSender(
            WebhookSettings(url=url, timeout_s=0.1, retries=1, backoff_s=0.01),
            PipelineTelemetry(),
        )
        sender.submit("abc:1", b"{}")
        _wait_for(lambda: sender.failed == 1)
        sender.close(timeout=0.1)
    assert sender.failed == 1


def test_a_full_queue_drops_and_counts_instead_of_blocking_the_pipeline():
    with webhook_receiver(delay=0.3) as (url, _received):
        sender = _sender(url, queue=1)
        started = time.monotonic()
        accepted = [sender.submit(f"a:{n}", b"{}") for n in range(20)]
        assert time.monotonic() - started < 0.2
        sender.close(timeout=0.1)
    assert accepted.count(False) >= 15
    assert sender.dropped == accepted.count(False)


def test_the_dispatcher_records_where_each_alert_went(capsys):
    with webhook_receiver() as (url, received):
        dispatcher = AlertDispatcher(
            AlertSettings(webhook={"url": url, "backoff_s": 0.05}),
            PipelineTelemetry(),
            kafka_send=lambda _key, _body: None,
        )
        (alert,) = AlertPolicy(AlertSettings()).decide([incident(0)])
        (record,) = dispatcher.dispatch([alert])
        dispatcher.close()
    assert record.channels == ("kafka", "webhook", "log")
    assert received.bodies[0]["alert_id"] == alert.alert_id
    assert url not in capsys.readouterr().err


@pytest.mark.parametrize("url", ["ftp://example.org/x", "hooks.example.org/x"])
def test_a_webhook_url_must_be_http(url):
    with pytest.raises(ValueError, match="https:// or http://"):
        WebhookSettings(url=url)

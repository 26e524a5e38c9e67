"""Sending alerts: the alerts topic, a webhook, the log. The pipeline never waits for them.

- **kafka**: the detect stage produces each alert to the alerts topic, keyed by its
  ``alert_id`` (``finding_id:revision``), in the same flush as the findings; the store
  stage records it from there.
- **webhook**: a worker thread POSTs each alert as JSON with an ``Idempotency-Key`` header
  (the ``alert_id``), a timeout per attempt and retries with exponential back-off on
  connection errors, timeouts, 429 and 5xx. Its queue is bounded: when the receiver is
  down for long, the oldest waiting alerts are kept and new ones are dropped and counted
  (the alerts topic and the store still have them). The URL is a secret (chat webhooks
  carry their token in it): it is never logged.
- **log**: one ``alert.raised`` line in the pipeline's own (redacted) log.

Delivery is at-least-once: an alert decided again after a restart is sent again with the
same ``alert_id``; receivers deduplicate on it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import httpx
import structlog

from pipelines.settings import AlertSettings, WebhookSettings
from pipelines.store import AlertRecord
from pipelines.topology.alerting import Alert
from pipelines.topology.telemetry import PipelineTelemetry

_log = structlog.get_logger("auditor.alerts")
_RETRY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_BACKOFF_S: Final = 60.0
_STOP: Final = object()

KafkaSend = Callable[[str, bytes], None]
"""Produces one alert: ``(alert_id, body)``. Must not block for long."""


class WebhookSender:
    """POSTs alerts to one URL from its own thread.

    Args:
        settings: URL, bearer token, timeout, retries, back-off, queue bound.
        telemetry: Counts sent, failed and dropped alerts.
        transport: An httpx transport (tests); the default connects for real.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        telemetry: PipelineTelemetry,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if settings.url is None:
            raise ValueError("a webhook sender needs a url")
        self._url = settings.url.get_secret_value()
        headers = {"content-type": "application/json", "user-agent": "cds-hooks-auditor"}
        if settings.bearer_token is not None:
            headers["authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        self._client = httpx.Client(
            timeout=settings.timeout_s,
            headers=headers,
            follow_redirects=False,
            transport=transport,
        )
        self._retries = settings.retries
        self._backoff = settings.backoff_s
        self._telemetry = telemetry
        self._queue: queue.Queue[object] = queue.Queue(maxsize=settings.queue)
        self._stopping = threading.Event()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="auditor-webhook", daemon=True)
        self._thread.start()

    def submit(self, alert_id: str, body: bytes) -> bool:
        """Queue one alert; ``False`` (and counted) when the queue is full."""
        try:
            self._queue.put_nowait((alert_id, body))
        except queue.Full:
            self.dropped += 1
            self._telemetry.alert("webhook", "dropped")
            _log.warning("alert.webhook_dropped", alert_id=alert_id, reason="queue full")
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=max(timeout, 0.01))
        self._thread.join(max(deadline - time.monotonic(), 0.01))
        self._stopping.set()
        self._thread.join(1.0)
        self._client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, tuple)  # only submit() and close() put here
            self._deliver(str(item[0]), bytes(item[1]))

    def _deliver(self, alert_id: str, body: bytes) -> None:
        delay = self._backoff
        status: int | None = None
        error: str | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                if self._stopping.wait(delay):
                    break
                delay = min(delay * 2, _MAX_BACKOFF_S)
            try:
                response = self._client.post(
                    self._url, content=body, headers={"idempotency-key": alert_id}
                )
            except httpx.HTTPError as exc:
                status, error = None, type(exc).__name__
                continue
            status, error = response.status_code, None
            if response.is_success:
                self.sent += 1
                self._telemetry.alert("webhook", "sent")
                return
            if status not in _RETRY_STATUS:
                break
        self.failed += 1
        self._telemetry.alert("webhook", "failed")
        _log.warning("alert.webhook_failed", alert_id=alert_id, status=status, error=error)


class AlertDispatcher:
    """Sends decided alerts to every configured channel and says where they went.

    Args:
        settings: The alert settings (webhook, log).
        telemetry: Counts alerts per channel.
        kafka_send: Produces to the alerts topic (Kafka mode); ``None`` when embedded.
        webhook: A ready sender (tests); built from ``settings.webhook`` by default.
    """

    def __init__(
        self,
        settings: AlertSettings,
        telemetry: PipelineTelemetry,
        *,
        kafka_send: KafkaSend | None = None,
        webhook: WebhookSender | None = None,
    ) -> None:
        self._telemetry = telemetry
        self._kafka = kafka_send
        self._log = settings.log
        if webhook is None and settings.webhook.url is not None:
            webhook = WebhookSender(settings.webhook, telemetry)
        self._webhook = webhook
        channels = []
        if kafka_send is not None:
            channels.append("kafka")
        if webhook is not None:
            channels.append("webhook")
        if settings.log:
            channels.append("log")
        self.channels: tuple[str, ...] = tuple(channels)

    def dispatch(self, alerts: list[Alert]) -> list[AlertRecord]:
        """Send ``alerts``; returns their ``alerts`` rows (for the embedded store)."""
        records = []
        now = datetime.now(UTC)
        for alert in alerts:
            body = alert.to_json(self.channels)
            if self._kafka is not None:
                self._kafka(alert.alert_id, body)
                self._telemetry.alert("kafka", "sent")
            if self._webhook is not None:
                self._webhook.submit(alert.alert_id, body)
            if self._log:
                f = alert.finding
                _log.warning(
                    "alert.raised",
                    alert_id=alert.alert_id,
                    detector=f.detector.value,
                    rule=f.rule,
                    severity=f.severity.value,
                    client_iss=f.client_iss,
                    service_id=f.service_id,
                    occurrences=alert.occurrences,
                    title=f.title,
                )
                self._telemetry.alert("log", "sent")
            records.append(alert.record(now, self.channels))
        return records

    def close(self, timeout: float = 10.0) -> None:
        """Give the webhook up to ``timeout`` seconds to deliver what is queued."""
        if self._webhook is not None:
            self._webhook.close(timeout)


__all__ = ["AlertDispatcher", "KafkaSend", "WebhookSender"]

"""Building the detect stage from the settings: one place for both topologies."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.redaction import Redactor, RedactorConfig
from detectors import ContentConfig, ContentScanner, stream_detectors
from pipelines.runtime import RuntimeConfig, StreamRuntime
from pipelines.settings import PipelineSettings
from pipelines.topology.alerting import AlertPolicy
from pipelines.topology.decoding import RecordDecoder
from pipelines.topology.detection import ContentScan, DetectStage
from pipelines.topology.scrubbing import EventScrubber
from pipelines.topology.telemetry import PipelineTelemetry


def runtime_config(settings: PipelineSettings) -> RuntimeConfig:
    """The stream runtime's configuration from the pipeline's."""
    key = settings.snapshot_key
    return RuntimeConfig(
        allowed_lateness=settings.allowed_lateness_s,
        snapshot_key=key.get_secret_value().encode() if key is not None else None,
    )


def default_content_detectors(
    settings: PipelineSettings, fingerprinter: Fingerprinter | None = None
) -> tuple[ContentScan, ...]:
    """``leaked_token`` and ``phi_in_logs``, as one ``ContentScanner`` (one pass per record).

    Keyed with ``fingerprinter`` (the process's fingerprint key by default); a leaked JWT's
    ``jku`` is judged against every ``jku`` the policy approves.
    """
    approved = frozenset(
        jku for client in settings.detectors.policy.clients.values() for jku in client.approved_jku
    )
    config = ContentConfig(
        fingerprinter=fingerprinter or default_fingerprinter(), jku_allowlist=approved
    )
    return (ContentScanner(config),)


def build_detect_stage(
    settings: PipelineSettings,
    telemetry: PipelineTelemetry,
    *,
    content: Sequence[ContentScan] | None = None,
    redactor: Redactor | None = None,
    fingerprinter: Fingerprinter | None = None,
    wall_clock: Callable[[], float] = time.time,
    keep_events: bool = True,
    fast_path: bool = True,
) -> DetectStage:
    """A detect stage with every detector, configured from ``settings``.

    ``fingerprinter`` keys the content detectors' fingerprints and the scrubber's markers
    (the process's key by default). ``keep_events``: see ``DetectStage``; ``fast_path``: see
    ``RecordDecoder`` (on unless a test compares the two paths).

    Raises:
        ConfigurationError: The detectors' or runtime's configuration is invalid.
    """
    runtime = StreamRuntime(stream_detectors(settings.detectors), runtime_config(settings))
    return DetectStage(
        runtime=runtime,
        content=default_content_detectors(settings, fingerprinter) if content is None else content,
        scrubber=EventScrubber(redactor or Redactor(RedactorConfig(fingerprinter=fingerprinter))),
        decoder=RecordDecoder(settings.limits, fast_path=fast_path),
        alerts=AlertPolicy(settings.alerts),
        telemetry=telemetry,
        wall_clock=wall_clock,
        keep_events=keep_events,
    )


__all__ = [
    "build_detect_stage",
    "default_content_detectors",
    "runtime_config",
]

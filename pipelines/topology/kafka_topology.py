"""``auditor run --kafka``: the stages through Kafka, in the processes you start.

::

    authz topic ─┐                      ┌─▶ findings topic ────┐
                 ├─▶ detect stage ──────┼─▶ alerts topic ──────┤
    logs topic ──┘   (consumer group,   ├─▶ dead-letter topic ─┼─▶ store stage ─▶ DuckDB
                      N processes)      └─▶ state topic        │   (one writer)
    authz topic ───────────────────────────────────────────────┘

- ``--stage all`` (default, needs ``--db``): a detect worker and the store stage in one
  process — the common deployment, and enough up to one process's detection rate;
- ``--stage detect``: a detect worker only; start as many as the authz topic has
  partitions to share (same ``groups.detect``), on any machines;
- ``--stage store`` (needs ``--db``): the store stage only, beside detect-only processes.

One store stage per DuckDB file: the writer's lock refuses a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import structlog

from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.vocabulary import RunMode, RunStatus
from pipelines.settings import AuditorSettings
from pipelines.store import StoreWriter
from pipelines.topology.collector import paced_collector
from pipelines.topology.components import build_detect_stage
from pipelines.topology.detection import ContentScan
from pipelines.topology.handoff import EventHandoff
from pipelines.topology.kafka_detect import DetectWorker
from pipelines.topology.kafka_store import StoreWorker
from pipelines.topology.progress import Progress, RunSummary
from pipelines.topology.telemetry import PipelineTelemetry

Stage = Literal["all", "detect", "store"]

_log = structlog.get_logger("auditor.pipeline")


def run_kafka(
    settings: AuditorSettings,
    db_path: str | PathLike[str] | None,
    *,
    stage: Stage = "all",
    content: Sequence[ContentScan] | None = None,
    telemetry: PipelineTelemetry | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    idle_exit_s: float | None = None,
    record_config: Mapping[str, Any] | None = None,
    fingerprinter: Fingerprinter | None = None,
) -> RunSummary:
    """Run the detect stage, the store stage, or both, until ``stop`` is set (or idle).

    Args:
        settings: Kafka connection, topics, groups and the pipeline section.
        db_path: The store (stages ``all`` and ``store``); ``None`` for ``detect``.
        stage: Which stages this process runs.
        content: The content detectors; those shipped in ``detectors`` by default.
        telemetry: Traces and metrics; built from the settings when ``None``.
        stop: Set it to finish the batch, checkpoint, commit and return.
        progress: Progress lines.
        idle_exit_s: Return once caught up and idle this long (batch runs, tests).
        record_config: The configuration recorded with the run; the settings by default.
        fingerprinter: The key of the run's fingerprints; the process's key by default
            (every detect process of a group and the store must share it).

    Raises:
        ConfigurationError: ``--db`` missing for a store stage, or given to a detect-only one.
        UnavailableError: The cluster cannot be reached.
    """
    if stage in {"all", "store"} and db_path is None:
        raise ConfigurationError(f"--stage {stage} writes the store: give --db PATH")
    if stage == "detect" and db_path is not None:
        raise ConfigurationError("a detect-only process writes no store: drop --db")
    owned = telemetry is None
    telemetry = telemetry or PipelineTelemetry.from_settings(settings.pipeline.telemetry)
    stop = stop or threading.Event()
    progress = progress or Progress(None)
    summary = RunSummary(run_id=None, mode=RunMode.KAFKA.value)
    keyed = _Keyed(content, fingerprinter or default_fingerprinter())
    started = time.monotonic()
    try:
        with paced_collector():
            if stage == "detect":
                _detect(settings, keyed, telemetry, stop, summary, progress, idle_exit_s, None)
            else:
                _with_store(
                    settings,
                    Path(db_path or ""),
                    stage,
                    keyed,
                    telemetry,
                    stop,
                    summary,
                    progress,
                    idle_exit_s,
                    record_config,
                )
    finally:
        summary.seconds = time.monotonic() - started
        if owned:
            telemetry.close()
    summary.status = RunStatus.COMPLETED.value
    return summary


@dataclass(frozen=True, slots=True)
class _Keyed:
    """The content detectors (``None``: the shipped ones) and the run's fingerprint key."""

    content: Sequence[ContentScan] | None
    fingerprinter: Fingerprinter


def _detect(  # noqa: PLR0917 - private; both callers pass every argument
    settings: AuditorSettings,
    keyed: _Keyed,
    telemetry: PipelineTelemetry,
    stop: threading.Event,
    summary: RunSummary,
    progress: Progress,
    idle_exit_s: float | None,
    done: threading.Event | None,
    handoff: EventHandoff | None = None,
) -> None:
    try:
        stage = build_detect_stage(
            settings.pipeline,
            telemetry,
            content=keyed.content,
            fingerprinter=keyed.fingerprinter,
            keep_events=handoff is not None,
        )
        DetectWorker(
            settings,
            stage,
            telemetry,
            stop=stop,
            summary=summary,
            progress=progress,
            idle_exit_s=idle_exit_s,
            handoff=handoff,
        ).run()
    finally:
        if done is not None:
            done.set()


def _with_store(  # noqa: PLR0917 - private; one caller passes every argument
    settings: AuditorSettings,
    db: Path,
    stage: Stage,
    keyed: _Keyed,
    telemetry: PipelineTelemetry,
    stop: threading.Event,
    summary: RunSummary,
    progress: Progress,
    idle_exit_s: float | None,
    record_config: Mapping[str, Any] | None,
) -> None:
    topics = settings.topics
    with StoreWriter.open(db, checkpoint_mib=settings.pipeline.store_checkpoint_mib) as writer:
        run_id = writer.begin_run(
            mode=RunMode.KAFKA,
            inputs=[topics.authz.name, topics.logs.name],
            config=record_config
            if record_config is not None
            else settings.model_dump(mode="json", exclude={"emitter"}),
            fingerprint_key_id=keyed.fingerprinter.key_id,
        )
        summary.run_id = run_id
        stored = RunSummary(run_id=run_id, mode=RunMode.KAFKA.value)
        detect_done = threading.Event() if stage == "all" else None
        # Both stages in one process: the store takes the events the detect stage decoded.
        handoff = EventHandoff() if stage == "all" else None
        try:
            store = StoreWorker(
                settings,
                writer,
                run_id,
                telemetry,
                stop=stop,
                summary=stored,
                progress=progress if stage == "store" else Progress(None),
                idle_exit_s=idle_exit_s,
                upstream_done=detect_done,
                fingerprinter=keyed.fingerprinter,
                handoff=handoff,
            )
            if stage == "store":
                store.run()
            else:
                _both(
                    store,
                    stop,
                    detect_done,
                    lambda: _detect(
                        settings,
                        keyed,
                        telemetry,
                        stop,
                        summary,
                        progress,
                        idle_exit_s,
                        detect_done,
                        handoff,
                    ),
                )
        except BaseException:
            _log.exception("pipeline.failed", run_id=run_id)
            writer.end_run(run_id, RunStatus.FAILED)
            raise
        if stage == "store":
            summary.counters = stored.counters
            summary.alerts = stored.alerts
        writer.end_run(run_id, RunStatus.COMPLETED)


def _both(
    store: StoreWorker,
    stop: threading.Event,
    detect_done: threading.Event | None,
    detect: Callable[[], None],
) -> None:
    """The store stage on a thread, the detect stage here; a store failure stops both."""
    failure: list[BaseException] = []

    def store_thread() -> None:
        try:
            store.run()
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread below
            failure.append(exc)
            stop.set()  # a store that cannot write must stop detection too

    thread = threading.Thread(target=store_thread, name="auditor-store-stage")
    thread.start()
    try:
        detect()
    finally:
        if detect_done is not None:
            detect_done.set()
        thread.join()
    if failure:
        raise failure[0]


__all__ = ["Stage", "run_kafka"]

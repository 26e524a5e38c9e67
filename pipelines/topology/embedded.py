"""``auditor run --input``: the pipeline's topology in one process, over files.

The same stages as through Kafka, connected by an in-memory bus instead of topics: a
reader and the detect stage on the calling thread, the store stage (the single DuckDB
writer) on another, alerts sent as they are decided. Over large inputs the store stage
runs in a process of its own instead (``store_process``), so that the two stages do not
share the GIL. The files are one stream, read in
the order given; the stream detectors' state carries across them.

Exactly once, and resumable at any point: each transaction holds a batch's rows and the
input positions they came from, and every ``checkpoint_interval_s`` also the detectors'
state at those positions (``detector_checkpoints``). A run killed anywhere restarts from
its last checkpoint: it restores that state, re-reads the input from the checkpoint's
positions to the stored ones only to rebuild state (nothing of it is stored or alerted
again), and goes on from there. A run over input it has read to the end adds nothing.
Standard input cannot be re-read: a run that includes ``-`` starts fresh each time (rows
are still stored once: events by id, findings by deterministic id).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Final, Protocol

import structlog

from auditor.errors import AuditorError
from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.models import Finding
from auditor.vocabulary import RunMode, RunStatus
from pipelines.runtime import SnapshotError, latest_revisions
from pipelines.settings import PipelineSettings
from pipelines.store import Checkpoint, StoreWriter
from pipelines.topology.collector import paced_collector
from pipelines.topology.components import build_detect_stage
from pipelines.topology.detection import ContentScan, DetectOutput, DetectStage
from pipelines.topology.dispatch import AlertDispatcher
from pipelines.topology.files import FileReader, InputFile, check_inputs
from pipelines.topology.progress import Progress, RunSummary
from pipelines.topology.store_process import StoreProcess
from pipelines.topology.storing import StoreItem, StoreThread
from pipelines.topology.telemetry import PipelineTelemetry

STREAM: Final = "embedded"
"""The checkpoint name of embedded runs (one stream: the inputs in order)."""
_PARTITION: Final = 0
STORE_PROCESS_FROM_BYTES: Final = 64 << 20
"""``store_process="auto"``: inputs this large in all get a store process (it takes about
a second to start)..."""
STORE_PROCESS_FROM_CORES: Final = 2
"""... on a machine with this many cores for the run at least: one for the reader and the
detect stage, one for the store. On 2 cores, over a million records, 1.18-1.20x the rate of
a store thread (README, "Measured"); with one core the two would only take turns."""

_log = structlog.get_logger("auditor.pipeline")


def run_embedded(
    inputs: Sequence[str | PathLike[str]],
    db_path: str | PathLike[str],
    config: PipelineSettings | None = None,
    *,
    content: Sequence[ContentScan] | None = None,
    telemetry: PipelineTelemetry | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    record_config: Mapping[str, Any] | None = None,
    collect_findings: bool = False,
    fingerprinter: Fingerprinter | None = None,
) -> RunSummary:
    """Run the pipeline over files into the DuckDB store at ``db_path``.

    Args:
        inputs: JSON-lines files (plain or gzip) and at most one ``-`` (stdin), in order.
        db_path: The store; created when missing.
        config: Batching, detectors, alerts, limits (``PipelineSettings``); defaults.
        content: The content detectors; the ones shipped in ``detectors`` by default.
        telemetry: Where traces and metrics go; built from ``config.telemetry`` when
            ``None`` (and closed at the end).
        stop: Set it (e.g. from a signal handler) to finish the current batch, commit,
            checkpoint and return with status ``interrupted``.
        progress: Progress lines while the run goes.
        record_config: The configuration recorded with the run (secret-looking values
            removed by the store); the settings by default.
        collect_findings: Return the latest revision of every finding in the summary
            (kept in memory: for tests and demos, not for large archives).
        fingerprinter: The key of the run's fingerprints (content findings, redaction
            markers, the run's recorded key id); the process's key by default.

    Raises:
        InputError: An input is missing or unreadable.
        ConfigurationError: The configuration is invalid.
        StoreError: The store cannot be opened or written.
    """
    settings = config or PipelineSettings()
    files = check_inputs([str(name) for name in inputs])
    owned_telemetry = telemetry is None
    telemetry = telemetry or PipelineTelemetry.from_settings(settings.telemetry)
    try:
        fingerprinter = fingerprinter or default_fingerprinter()
        stage = build_detect_stage(
            settings, telemetry, content=content, fingerprinter=fingerprinter
        )
        dispatcher = AlertDispatcher(settings.alerts, telemetry)
        try:
            with paced_collector():
                return _Run(
                    files,
                    Path(db_path),
                    settings,
                    stage,
                    dispatcher,
                    telemetry,
                    stop or threading.Event(),
                    progress or Progress(None),
                    record_config,
                    fingerprinter.key_id,
                    collect_findings=collect_findings,
                ).execute()
        finally:
            dispatcher.close()
    finally:
        if owned_telemetry:
            telemetry.close()


class _Run:
    """One embedded run: the reader and detect stage here, the store on its thread."""

    def __init__(  # noqa: PLR0917 - private; the one caller names every argument
        self,
        files: list[InputFile],
        db: Path,
        settings: PipelineSettings,
        stage: DetectStage,
        dispatcher: AlertDispatcher,
        telemetry: PipelineTelemetry,
        stop: threading.Event,
        progress: Progress,
        record_config: Mapping[str, Any] | None,
        key_id: str,
        *,
        collect_findings: bool,
    ) -> None:
        self.files = files
        self.db = db
        self.settings = settings
        self.stage = stage
        self.dispatcher = dispatcher
        self.telemetry = telemetry
        self.stop = stop
        self.progress = progress
        self.record_config = record_config
        self.key_id = key_id
        self.resumable = not any(item.is_stdin for item in files)
        self.summary = RunSummary(run_id=None, mode=RunMode.EMBEDDED.value)
        self.collected: list[Finding] | None = [] if collect_findings else None
        self.positions: dict[str, int] = {}
        self.opened = True  # whether the store was opened before the run went on

    def execute(self) -> RunSummary:
        started = time.monotonic()
        with self._open_store() as writer:
            run_id = self._begin(writer)
            self.summary.run_id = run_id
            # A store process opening a new file: nothing to resume, and the run does not
            # wait for the process to start (see StoreProcess.open).
            start, stored = self._resume(writer) if self.opened else ({}, {})
            status = RunStatus.FAILED
            try:
                store = self._start_store(writer, run_id)
                status = self._feed(store, start, stored)
                store.close()
            except BaseException:
                _log.exception("pipeline.failed", run_id=run_id)
                _end_failed(writer, run_id)
                raise
            finally:
                self.summary.seconds = time.monotonic() - started
            writer.end_run(run_id, status)
        self.summary.status = status.value
        if self.collected is not None:
            self.summary.findings = latest_revisions(self.collected)
        _log.info(
            "pipeline.finished",
            run_id=run_id,
            status=status.value,
            records=self.summary.records,
            seconds=round(self.summary.seconds, 3),
        )
        return self.summary

    def _begin(self, writer: StoreWriter | StoreProcess) -> str:
        """Record the run's start; its id."""
        fields: dict[str, Any] = {
            "mode": RunMode.EMBEDDED,
            "inputs": [item.source for item in self.files],
            "config": self.record_config
            if self.record_config is not None
            else self.settings.model_dump(mode="json"),
            "fingerprint_key_id": self.key_id,
            "run_id": str(uuid.uuid4()),
        }
        if isinstance(writer, StoreProcess):
            return writer.begin_run(wait=self.opened, **fields)
        return writer.begin_run(**fields)

    def _open_store(self) -> StoreWriter | StoreProcess:
        """The store's writer: here, or in a process of its own (``store_process``)."""
        mode = self.settings.store_process
        if mode == "auto":
            files = [item for item in self.files if not item.is_stdin]
            large = sum(Path(item.name).stat().st_size for item in files)
            cores = len(os.sched_getaffinity(0))
            mode = (
                "always"
                if len(files) == len(self.files)
                and large >= STORE_PROCESS_FROM_BYTES
                and cores >= STORE_PROCESS_FROM_CORES
                else "never"
            )
        checkpoint_mib = self.settings.store_checkpoint_mib
        if mode == "always":
            # A new file in a folder we may write to: the open is sent, not waited for.
            # Anything else (a file to resume from, a folder missing) waits, so that its
            # errors come before any work.
            folder = self.db.parent
            self.opened = self.db.exists() or not os.access(folder, os.W_OK | os.X_OK)
            return StoreProcess.open(
                self.db, self.telemetry, checkpoint_mib=checkpoint_mib, wait=self.opened
            )
        return StoreWriter.open(self.db, checkpoint_mib=checkpoint_mib)

    def _start_store(self, writer: StoreWriter | StoreProcess, run_id: str) -> _Stage:
        max_rows = self.settings.store_batch_records
        max_wait_s = self.settings.store_wait_ms / 1000
        if isinstance(writer, StoreProcess):
            return writer.start(run_id, max_rows=max_rows, max_wait_s=max_wait_s, wait=self.opened)
        return StoreThread(writer, run_id, self.telemetry, max_rows=max_rows, max_wait_s=max_wait_s)

    def _resume(self, writer: StoreWriter | StoreProcess) -> tuple[dict[str, int], dict[str, int]]:
        """Where each input starts, and up to where it only rebuilds state."""
        if not self.resumable:
            return {}, {}
        stored = {source: offset for (source, _), offset in writer.resume_offsets().items()}
        checkpoint = writer.load_checkpoint(STREAM)
        if checkpoint is None:
            return {}, stored
        try:
            self.stage.runtime.restore(_PARTITION, checkpoint.state)
        except SnapshotError as exc:
            _log.warning("pipeline.checkpoint_unusable", reason=str(exc))
            return {}, stored
        self.positions = dict(checkpoint.positions)
        _log.info("pipeline.resumed", inputs=len(checkpoint.positions))
        return dict(checkpoint.positions), stored

    def _feed(self, store: _Stage, start: dict[str, int], stored: dict[str, int]) -> RunStatus:
        reader = FileReader(
            self.files,
            chunk_lines=self.settings.batch_records,
            max_bytes=self.settings.limits.max_bytes,
        )
        interval = self.settings.checkpoint_interval_s
        next_checkpoint = time.monotonic() + interval
        for chunk, replay in reader.chunks(start, stored):
            out = self.stage.process(chunk, _PARTITION, replay=replay)
            if chunk.records or not replay:
                self.positions[f"file:{chunk.source}"] = chunk.next_position
            if replay:
                self.summary.replayed += len(chunk.records)
                continue
            checkpoint = None
            if self.resumable and time.monotonic() >= next_checkpoint:
                checkpoint = self._checkpoint()
                next_checkpoint = time.monotonic() + interval
            self._hand_over(store, out, checkpoint)
            if self.stop.is_set():
                self._hand_over(store, DetectOutput(), self._checkpoint())
                return RunStatus.INTERRUPTED
        closing = self.stage.flush()
        self._hand_over(store, closing, self._checkpoint())
        return RunStatus.COMPLETED

    def _checkpoint(self) -> tuple[str, Checkpoint] | None:
        if not self.resumable:
            return None
        return STREAM, Checkpoint(dict(self.positions), self.stage.runtime.snapshot(_PARTITION))

    def _hand_over(
        self,
        store: _Stage,
        out: DetectOutput,
        checkpoint: tuple[str, Checkpoint] | None,
    ) -> None:
        alerts = self.dispatcher.dispatch(out.alerts)
        if not self.resumable:
            out.offset = None  # stdin has no position to resume from
        store.put(
            StoreItem(
                events=out.events,
                findings=out.findings,
                dead_letters=out.dead_letters,
                alerts=alerts,
                counters=out.counters,
                offset=out.offset,
                checkpoint=checkpoint,
            )
        )
        summary = self.summary
        summary.counters = summary.counters + out.counters
        summary.alerts += len(alerts)
        for finding in out.findings:
            summary.findings_by_severity[finding.severity.value] += 1
        for dead in out.dead_letters:
            summary.dead_letter_reasons[dead.reason.value] += 1
        if self.collected is not None:
            self.collected += out.findings
        self.progress.update(summary)


class _Stage(Protocol):
    """The store stage as the run feeds it: ``StoreThread``, or ``StoreProcess``'s."""

    def put(self, item: StoreItem) -> None: ...

    def close(self) -> None: ...


def _end_failed(writer: StoreWriter | StoreProcess, run_id: str) -> None:
    """Record a failed run, if the store still can (the failure may be the store's)."""
    try:
        writer.end_run(run_id, RunStatus.FAILED)
    except AuditorError as exc:  # a StoreError, or a store process's failed open
        _log.warning("pipeline.end_not_recorded", run_id=run_id, error=type(exc).__name__)


__all__ = ["STORE_PROCESS_FROM_BYTES", "STORE_PROCESS_FROM_CORES", "STREAM", "run_embedded"]

"""``auditor run``: the pipeline, embedded over files or through Kafka.

::

    auditor run --input app.jsonl archive/*.jsonl.gz --db audit.duckdb
    zcat old.log.gz | auditor run --input - --db audit.duckdb
    auditor run --kafka 127.0.0.1:19092 --db audit.duckdb           # detect + store
    auditor run --kafka 127.0.0.1:19092 --stage detect               # one more detect process

SIGTERM or SIGINT finishes the batch in hand, commits it (with a checkpoint), closes and
exits; a second signal stops at once (the next start resumes from the last commit).
Progress goes to stderr every few seconds, the summary to stdout at the end.

Exit status: 0 when the input was read to its end (or a Kafka run was stopped), 130 when an
embedded run was interrupted before the end of its input, 2 when the usage, configuration
or input is wrong or the store or broker failed (the message says which).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from auditor.redaction import Redactor, RedactorConfig
from auditor.vocabulary import RunStatus, Severity
from pipelines.settings import AuditorSettings, load_settings
from pipelines.topology.embedded import run_embedded
from pipelines.topology.kafka_topology import run_kafka
from pipelines.topology.logs import configure_logging
from pipelines.topology.progress import Progress, RunSummary

EXIT_INTERRUPTED = 130


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor run``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="JSON-lines files (gzip too) or - for stdin, read in order as one stream",
    )
    source.add_argument(
        "--kafka",
        nargs="?",
        const="",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="run through Kafka; bootstrap servers (default: from the configuration)",
    )
    parser.add_argument("--db", metavar="PATH", help="the DuckDB store (not with --stage detect)")
    parser.add_argument(
        "--stage",
        choices=("all", "detect", "store"),
        default="all",
        help="with --kafka: which stages this process runs (default: all)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration (default: $AUDITOR_CONFIG)"
    )
    parser.add_argument(
        "--min-severity",
        choices=[s.value for s in Severity],
        help="alert on findings at or above this severity (default: high)",
    )
    parser.add_argument(
        "--telemetry",
        choices=("none", "console", "otlp"),
        help="export the pipeline's traces and metrics (default: none)",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="with --kafka: stop once caught up and idle this long",
    )
    parser.add_argument(
        "--log-format", choices=("json", "console"), default="json", help="of stderr logs"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _settings(args: argparse.Namespace) -> AuditorSettings:
    overrides: dict[str, Any] = {}
    if args.kafka:
        overrides["kafka"] = {"bootstrap_servers": args.kafka}
    pipeline: dict[str, Any] = {}
    if args.min_severity:
        pipeline["alerts"] = {"min_severity": args.min_severity}
    if args.telemetry:
        pipeline["telemetry"] = {"exporter": args.telemetry}
    settings = load_settings(args.config, overrides=overrides)
    if pipeline:
        # Flags win over the file and the environment, section by section.
        merged = settings.pipeline.model_dump()
        for section, values in pipeline.items():
            merged[section] = {**merged[section], **values}
        settings = settings.model_copy(
            update={"pipeline": type(settings.pipeline).model_validate(merged)}
        )
    return settings


@contextmanager
def _graceful(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: finish the batch and stop; the second: stop now."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        sys.stderr.write(
            f"auditor run: {signal.Signals(signum).name}: finishing the batch, then stopping\n"
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    """Carry out ``auditor run``."""
    settings = _settings(args)
    configure_logging(Redactor(RedactorConfig()), log_format=args.log_format)
    stop = threading.Event()
    progress = Progress(None if args.quiet else sys.stderr, settings.pipeline.progress_interval_s)
    with _graceful(stop):
        if args.input is not None:
            if args.db is None:
                sys.stderr.write("auditor run: error: --input needs --db PATH\n")
                return 2
            summary = run_embedded(
                args.input, args.db, settings.pipeline, stop=stop, progress=progress
            )
        else:
            summary = run_kafka(
                settings,
                args.db,
                stage=args.stage,
                stop=stop,
                progress=progress,
                idle_exit_s=args.exit_when_idle,
            )
    _print_summary(summary)
    if summary.status == RunStatus.INTERRUPTED.value:
        return EXIT_INTERRUPTED
    return 0


def _print_summary(summary: RunSummary) -> None:
    sys.stdout.write("\n".join(summary.lines()) + "\n")
    sys.stdout.flush()


__all__ = ["configure", "run"]

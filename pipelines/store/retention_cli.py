"""``auditor retention``: prune the store by policy, archive what goes, or say what would.

Works whether or not ``auditor run`` is writing: through the writer's endpoint when it
runs (retention then happens between two batches), on the file otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from auditor.errors import ConfigurationError
from pipelines.store.access import open_store
from pipelines.store.retention import (
    DEFAULT_EVENTS,
    DEFAULT_EVIDENCE,
    DEFAULT_FINDINGS,
    STEPS,
    Horizon,
    RetentionPolicy,
    RetentionReport,
)

HIPAA_YEARS = 6


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor retention``."""
    parser.description = (
        "Prune the store by its retention policy. Events and dead letters older than "
        "--events are deleted; findings observed before --evidence keep everything but "
        "their evidence excerpt; findings, their reviews and alerts are kept for "
        "--findings (HIPAA keeps documentation 6 years, 45 CFR 164.316(b)(2)(i)), counted "
        "from the last time the finding was stored or reviewed. Horizons are <n>d, <n>w "
        "or <n>y. Works while `auditor run` writes."
    )
    parser.add_argument("--db", required=True, type=Path, help="the DuckDB store")
    parser.add_argument(
        "--events",
        default=DEFAULT_EVENTS,
        metavar="HORIZON",
        help=f"keep events this long (default {DEFAULT_EVENTS})",
    )
    parser.add_argument(
        "--evidence",
        default=DEFAULT_EVIDENCE,
        metavar="HORIZON",
        help=f"keep findings' evidence excerpts this long (default {DEFAULT_EVIDENCE})",
    )
    parser.add_argument(
        "--findings",
        default=DEFAULT_FINDINGS,
        metavar="HORIZON",
        help=f"keep findings and their review history this long (default {DEFAULT_FINDINGS})",
    )
    parser.add_argument(
        "--dead-letters",
        default=None,
        metavar="HORIZON",
        help="keep dead-letter metadata this long (default: as --events)",
    )
    parser.add_argument(
        "--archive",
        type=Path,
        metavar="DIR",
        help="first write every deleted row to Parquet under DIR/<table>/day=YYYY-MM-DD/",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="change nothing; say what would be done"
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="report format on stdout"
    )


def run(args: argparse.Namespace) -> int:
    """Apply (or count) the policy and print the report."""
    policy = _policy(args)
    if policy.findings.approx_days < HIPAA_YEARS * 365:
        sys.stderr.write(
            f"auditor retention: warning: --findings {policy.findings} is shorter than the "
            f"{HIPAA_YEARS} years HIPAA asks documentation to be kept\n"
        )
    with open_store(args.db, write=not args.dry_run) as store:
        route = store.status()
        report = store.apply_retention(
            policy, now=datetime.now(UTC), archive=args.archive, dry_run=args.dry_run
        )
    if args.format == "json":
        doc = report.to_json() | {"db": str(route.path), "route": route.route}
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    how = f"through the running writer (pid {route.writer_pid})" if route.writer_pid else ""
    sys.stdout.write(render(report, db=route.path, how=how))
    return 0


def render(report: RetentionReport, *, db: Path, how: str = "") -> str:
    """The report as a few lines of text."""
    head = f"retention of {db}" + (f" {how}" if how else "")
    lines = [head, "dry run: nothing was changed" if report.dry_run else "applied:"]
    verb = "would " if report.dry_run else ""
    for step in STEPS:
        cutoff = getattr(report.cutoffs, step.cutoff).isoformat(timespec="seconds")
        lines.append(
            f"  {step.table:<13} {verb}{step.action:<15} {report.rows[step.key]:>10,} rows"
            f"   {step.time_column} before {cutoff}"
        )
    if report.archive_dir:
        if report.dry_run:
            lines.append(f"archive: {report.archive_dir} (nothing written in a dry run)")
        else:
            lines.append(f"archive: {report.archive_dir} ({report.archived_files} files)")
    if report.retention_id:
        lines.append(f"recorded in retention_runs as {report.retention_id}")
    return "\n".join(lines) + "\n"


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    try:
        return RetentionPolicy(
            events=Horizon.parse(args.events),
            evidence=Horizon.parse(args.evidence),
            findings=Horizon.parse(args.findings),
            dead_letters=Horizon.parse(args.dead_letters) if args.dead_letters else None,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


__all__ = ["configure", "render", "run"]

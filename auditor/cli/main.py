"""Entry point of the ``auditor`` command.

The kernel imports nothing of the other packages at import time (DESIGN.md). Commands
that live in ``pipelines`` or ``dashboards`` are therefore named here as module paths and
imported only when chosen; a missing optional dependency then fails with the extra to
install instead of a traceback.

A command module provides ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from auditor.errors import AuditorError, ConfigurationError, InputError, MissingExtraError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Command:
    """One ``auditor`` subcommand: where it lives and which extra it needs."""

    name: str
    module: str
    summary: str
    extra: str | None = None


COMMANDS: tuple[Command, ...] = (
    Command("schema", "auditor.cli.schema", "Print the JSON Schema of the data contracts."),
    Command("query", "dashboards.cli.query", "Run a named compliance query.", extra="pipeline"),
    Command(
        "review",
        "dashboards.cli.review",
        "Review findings: ack, assign, resolve ...",
        extra="pipeline",
    ),
    Command(
        "export", "dashboards.cli.export", "Export as FHIR AuditEvents or OCSF.", extra="pipeline"
    ),
    Command(
        "run",
        "pipelines.topology.command",
        "Run the pipeline: over files (--input) or through Kafka (--kafka), into DuckDB.",
        extra="pipeline",
    ),
    Command(
        "topics",
        "pipelines.kafka.command",
        "Create the pipeline's Kafka topics (idempotent) or list them.",
        extra="pipeline",
    ),
    Command(
        "dashboard",
        "dashboards.cli.dashboard",
        "Serve the compliance dashboard.",
        extra="dashboard",
    ),
    Command(
        "report", "dashboards.cli.report", "Write an HTML/PDF compliance report.", extra="dashboard"
    ),
    Command(
        "retention",
        "pipelines.store.retention_cli",
        "Prune the store by retention policy, archiving to Parquet; --dry-run says what.",
        extra="pipeline",
    ),
    Command("redact", "auditor.cli.redact", "Redact tokens and PHI from log files or stdin."),
    Command(
        "simulate",
        "pipelines.simulate.command",
        "Simulate CDS Hooks traffic with real tokens and labelled incidents.",
        extra="pipeline",
    ),
    Command(
        "demo",
        "pipelines.demo.command",
        "Simulate traffic with every incident, detect, store, report: the product in one go.",
        extra="pipeline",
    ),
    Command(
        "scan",
        "pipelines.scan.command",
        "Find leaked tokens and PHI in log files (text, JSON Lines or SARIF).",
        extra="pipeline",
    ),
)


def _load(command: Command) -> ModuleType:
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if command.extra is None or (exc.name or "").startswith(("auditor", "detectors")):
            raise
        raise MissingExtraError(f"'auditor {command.name}'", command.extra) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command's options."""
    parser = argparse.ArgumentParser(
        prog="auditor",
        description="CDS Hooks Auditor: redact, detect and report on tokens and PHI in logs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        cmd_parser = sub.add_parser(command.name, help=command.summary, description=command.summary)
        cmd_parser.set_defaults(_command=command)
        try:
            module = _load(command)
        except MissingExtraError as exc:
            cmd_parser.set_defaults(_missing=str(exc))
            continue
        module.configure(cmd_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``auditor`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = getattr(args, "_missing", None)
    if missing:
        sys.stderr.write(f"auditor: {missing}\n")
        return EXIT_USAGE
    module = _load(args._command)  # noqa: SLF001 - set by argparse defaults above
    try:
        return int(module.run(args))
    except (InputError, ConfigurationError, MissingExtraError) as exc:
        sys.stderr.write(f"auditor {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except AuditorError as exc:
        sys.stderr.write(f"auditor {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("auditor: interrupted\n")
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error of ours.
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

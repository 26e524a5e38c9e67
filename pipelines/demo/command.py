"""``auditor demo``: the whole product in one command, on its embedded default.

auditor demo [--db audit.duckdb] [--report audit-report.html] [--kafka HOST:PORT]
             [--seed N] [--rate R] [--traffic FILE]

Simulates 40 minutes of CDS Hooks traffic with every incident type, runs the production
pipeline over it into a DuckDB file (embedded, as ``auditor run --input`` does), writes the
HTML compliance report, and prints how each injected incident was detected (or not) and
what to try next. With ``--kafka`` the traffic goes through a real broker and the detect
and store stages of ``auditor run --kafka`` read it back from there.

Each run starts a fresh demo database: an existing file made by an earlier demo is
replaced; a file holding anything else is refused (pass another ``--db``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_DB = "audit.duckdb"
DEFAULT_REPORT = "audit-report.html"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor demo``."""
    parser.description = (
        "Simulate 40 minutes of CDS Hooks traffic with every incident type, run the embedded "
        "pipeline into DuckDB, write the HTML report, and score what was detected."
    )
    parser.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"the demo database (default {DEFAULT_DB})"
    )
    parser.add_argument(
        "--report",
        default=DEFAULT_REPORT,
        metavar="PATH",
        help=f"the HTML report (default {DEFAULT_REPORT})",
    )
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help="send the traffic through this Kafka broker (topics created if missing)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings (Kafka, topics)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument(
        "--rate",
        type=float,
        default=2.0,
        metavar="R",
        help="peak hook calls per second of the simulated traffic (default 2: ~18,000 records)",
    )
    parser.add_argument(
        "--traffic",
        metavar="FILE",
        help="keep the simulated traffic (JSON lines, with its fake leaked secrets) here",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 1 when an incident was missed or clean traffic raised a finding."""
    import structlog

    from pipelines.demo.session import Demo

    demo = Demo(
        db=Path(args.db),
        report=Path(args.report),
        seed=args.seed,
        rate=args.rate,
        traffic=Path(args.traffic) if args.traffic else None,
        kafka=args.kafka,
        config=args.config,
        out=sys.stdout,
    )
    # The demo talks to a person: the components' own info logs would bury the summary.
    # Restored afterwards, for callers that run the command in their own process.
    configured, previous = structlog.is_configured(), structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        return demo.run()
    finally:
        if configured:
            structlog.configure(**previous)
        else:
            structlog.reset_defaults()

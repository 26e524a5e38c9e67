"""``auditor report``: write the compliance report for a period as HTML (and PDF).

auditor report --db PATH [--since T] [--until T] --out report.html [--pdf report.pdf]
               [--sla-days N] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from dashboards.cli import add_db_option, parse_time_option


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor report``."""
    add_db_option(parser)
    parser.add_argument(
        "--since", metavar="T", help="start of the period (default: the first record)"
    )
    parser.add_argument("--until", metavar="T", help="end of the period, exclusive (default: now)")
    parser.add_argument("--out", metavar="FILE", required=True, help="the HTML report to write")
    parser.add_argument("--pdf", metavar="FILE", help="also print it to this PDF (needs Chromium)")
    parser.add_argument(
        "--sla-days", type=int, default=7, metavar="N", help="review deadline (default 7)"
    )
    parser.add_argument("--chromium", metavar="PATH", help="the Chromium to print with")


def run(args: argparse.Namespace) -> int:
    """Write the report."""
    from dashboards.report import find_chromium, write_report

    now = datetime.now(UTC)
    since = parse_time_option("--since", args.since, now=now)
    until = parse_time_option("--until", args.until, now=now)
    if args.pdf:
        find_chromium(args.chromium)  # fail before the work, not after it
    html = write_report(
        args.db, args.out, since=since, until=until, now=now, sla_days=args.sla_days,
        pdf_path=None,
    )  # fmt: skip
    sys.stdout.write(f"auditor report: wrote {html}\n")
    if args.pdf:
        from pathlib import Path

        from dashboards.report import write_pdf

        pdf = write_pdf(html, Path(args.pdf), chromium=args.chromium)
        sys.stdout.write(f"auditor report: wrote {pdf}\n")
    return 0

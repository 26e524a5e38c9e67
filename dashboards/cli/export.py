"""``auditor export``: findings and authz events as FHIR AuditEvents or OCSF events.

    auditor export --format fhir|ocsf --db PATH [--since T] [--until T] [--out FILE]
                   [--events none|failures|all] [--no-findings] [--batch-size N]
                   [--observer NAME] [--site SITE]

The FHIR form is one R4 Bundle (type collection) of AuditEvents; the OCSF form is JSON
lines, one event per line. Both stream: rows are read and written in batches.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from auditor.errors import InputError
from dashboards.cli import add_db_option, output_stream, parse_time_option

SCOPES = ("none", "failures", "all")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor export``."""
    parser.add_argument("--format", choices=("fhir", "ocsf"), required=True)
    add_db_option(parser)
    parser.add_argument("--since", metavar="T", help="ISO 8601, 'now' or an age like 7d")
    parser.add_argument("--until", metavar="T", help="end of the range, exclusive")
    parser.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    parser.add_argument(
        "--events",
        choices=SCOPES,
        default="failures",
        help="authz events to include: none, failures (every refused request; default), "
        "or all (failures and successful token validations)",
    )
    parser.add_argument("--no-findings", action="store_true", help="export events only")
    parser.add_argument("--batch-size", type=int, default=5000, metavar="N")
    parser.add_argument(
        "--observer",
        default="cds-hooks-auditor",
        help="FHIR: the name of this auditor installation (AuditEvent.source.observer)",
    )
    parser.add_argument("--site", help="FHIR: the site recorded in AuditEvent.source.site")


def run(args: argparse.Namespace) -> int:
    """Write the export and report the counts on stderr."""
    from dashboards.fhir import Observer, authz_audit_event, finding_audit_event, write_bundle
    from dashboards.ocsf import Product, authentication, detection_finding, write_jsonl
    from dashboards.records import EventScope, iter_authz, iter_findings
    from dashboards.storage import open_store

    now = datetime.now(UTC)
    since = parse_time_option("--since", args.since, now=now)
    until = parse_time_option("--until", args.until, now=now)
    if since and until and since >= until:
        raise InputError("--since must be before --until")
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    scope = EventScope(args.events)
    counts = {"findings": 0, "events": 0}

    with open_store(args.db) as store:

        def findings() -> Iterator[Any]:
            if args.no_findings:
                return
            for finding in iter_findings(
                store, since=since, until=until, batch_size=args.batch_size
            ):
                counts["findings"] += 1
                yield finding

        def events() -> Iterator[Any]:
            for event in iter_authz(
                store, scope, since=since, until=until, batch_size=args.batch_size
            ):
                counts["events"] += 1
                yield event

        with output_stream(args.out) as out:
            if args.format == "fhir":
                observer = Observer(name=args.observer, site=args.site)
                resources = itertools.chain(
                    (finding_audit_event(f, observer) for f in findings()),
                    (authz_audit_event(e) for e in events()),
                )
                write_bundle(out, resources, generated_at=now)
            else:
                product = Product.installed()
                records = itertools.chain(
                    (detection_finding(f, product) for f in findings()),
                    (authentication(e, product) for e in events()),
                )
                write_jsonl(out, records)
    where = args.out or "stdout"
    sys.stderr.write(
        f"auditor export: {counts['findings']} findings and {counts['events']} authz events "
        f"to {where} ({args.format})\n"
    )
    return 0

"""``auditor query``: run a named compliance query against an audit database.

auditor query --list
auditor query NAME --describe
auditor query NAME [--param K=V ...] [--since T] [--until T] --db PATH
              [--format table|csv|json|parquet] [--out FILE]
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime

from auditor.errors import InputError
from dashboards.catalog import QueryError, QuerySpec, catalog, get_query
from dashboards.cli import add_db_option, output_stream

_PARAM = re.compile(r"^([a-z][a-z0-9_]{0,63})=(.*)$", re.DOTALL)
FORMATS = ("table", "csv", "json", "parquet")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor query``."""
    parser.add_argument("name", nargs="?", metavar="NAME", help="the query to run")
    parser.add_argument("--list", action="store_true", help="list the queries and exit")
    parser.add_argument(
        "--describe", action="store_true", help="show the query's parameters and notes"
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a parameter value (repeatable); see --describe",
    )
    parser.add_argument("--since", metavar="T", help="shorthand for --param since=T")
    parser.add_argument("--until", metavar="T", help="shorthand for --param until=T")
    add_db_option(parser, required=False)
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    parser.add_argument("--out", metavar="FILE", help="write here instead of stdout")


def parse_params(pairs: list[str], since: str | None, until: str | None) -> dict[str, str]:
    """Collect ``K=V`` pairs and the ``--since``/``--until`` shorthands.

    Raises:
        QueryError: A pair is malformed or a name is given twice.
    """
    values: dict[str, str] = {}
    for pair in pairs:
        match = _PARAM.match(pair)
        if match is None:
            raise QueryError("a parameter is written NAME=VALUE, NAME in lowercase letters")
        name, value = match.groups()
        if name in values:
            raise QueryError(f"parameter '{name}' is given twice")
        values[name] = value
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            if name in values:
                raise QueryError(f"parameter '{name}' is given twice")
            values[name] = value
    return values


def _describe(spec: QuerySpec) -> str:
    lines = [f"{spec.name}: {spec.description}", ""]
    if spec.parameters:
        lines.append("parameters:")
        width = max(len(p.name) for p in spec.parameters)
        for p in spec.parameters:
            default = (
                "required"
                if p.required
                else f"default {p.default!r}"
                if p.default is not None
                else "default null"
            )
            lines.append(f"  {p.name.ljust(width)}  {p.type_label}, {default}: {p.description}")
    if spec.notes:
        lines += ["", spec.notes]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """List, describe or run a query."""
    if args.list:
        specs = catalog()
        width = max(len(n) for n in specs)
        for name, spec in specs.items():
            sys.stdout.write(f"{name.ljust(width)}  {spec.description}\n")
        return 0
    if not args.name:
        raise QueryError("name a query to run, or use --list")
    spec = get_query(args.name)
    if args.describe:
        sys.stdout.write(_describe(spec))
        return 0
    if not args.db:
        raise InputError("--db PATH is required (or set $AUDITOR_DB)")
    now = datetime.now(UTC)
    given = parse_params(args.param, args.since, args.until)

    from dashboards.catalog import run_query
    from dashboards.output import write_csv, write_json, write_parquet, write_table
    from dashboards.storage import open_store

    if args.format == "parquet" and args.out is None and sys.stdout.isatty():
        raise InputError("Parquet is binary: use --out FILE or redirect stdout")
    with open_store(args.db) as store:
        table = run_query(store, spec.name, given, now=now)
    if args.format == "parquet":
        with output_stream(args.out, binary=True) as out:
            write_parquet(table, out)
        return 0
    writer = {"table": write_table, "csv": write_csv, "json": write_json}[args.format]
    with output_stream(args.out) as out:
        writer(table, out)
    return 0

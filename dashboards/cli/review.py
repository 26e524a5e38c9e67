"""``auditor review``: record review acts on findings and show their history.

auditor review ack|assign|resolve|false-positive|reopen|comment FINDING_ID
               --actor NAME [--note TEXT] [--assignee NAME] --db PATH
auditor review history FINDING_ID --db PATH [--format table|json]
auditor review coverage --db PATH [--since T] [--until T] [--period day|week|month]
               [--sla-days N] [--format table|csv|json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from auditor.vocabulary import ReviewAction
from dashboards.cli import add_db_option, output_stream

ACTOR_ENV = "AUDITOR_ACTOR"
ACTS: dict[str, tuple[ReviewAction, str]] = {
    "ack": (ReviewAction.ACKNOWLEDGE, "acknowledge a finding: someone is looking at it"),
    "assign": (ReviewAction.ASSIGN, "assign a finding to a person (--assignee)"),
    "resolve": (ReviewAction.RESOLVE, "mark a finding resolved (remediated)"),
    "false-positive": (ReviewAction.FALSE_POSITIVE, "mark a finding a false positive (--note why)"),
    "reopen": (ReviewAction.REOPEN, "reopen a resolved or false-positive finding (--note why)"),
    "comment": (ReviewAction.COMMENT, "add a note without changing the status"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the sub-commands of ``auditor review``."""
    sub = parser.add_subparsers(dest="act", metavar="ACT", required=True)
    for name, (_, summary) in ACTS.items():
        act = sub.add_parser(name, help=summary, description=summary)
        act.add_argument("finding_id", metavar="FINDING_ID")
        actor_default = os.environ.get(ACTOR_ENV)
        act.add_argument(
            "--actor",
            default=actor_default,
            required=actor_default is None,
            help=f"who is acting (default ${ACTOR_ENV})",
        )
        act.add_argument("--note", help="why; required for false-positive, reopen, comment")
        if name == "assign":
            act.add_argument("--assignee", required=True, help="who the finding goes to")
        add_db_option(act)
    history = sub.add_parser("history", help="show a finding's review history and status")
    history.add_argument("finding_id", metavar="FINDING_ID")
    history.add_argument("--format", choices=("table", "json"), default="table")
    add_db_option(history)
    coverage = sub.add_parser(
        "coverage", help="review coverage per period (the review_coverage query)"
    )
    coverage.add_argument("--since", metavar="T")
    coverage.add_argument("--until", metavar="T")
    coverage.add_argument("--period", choices=("day", "week", "month"), default="week")
    coverage.add_argument("--sla-days", type=int, default=7, metavar="N")
    coverage.add_argument("--format", choices=("table", "csv", "json"), default="table")
    coverage.add_argument("--out", metavar="FILE")
    add_db_option(coverage)


def _history(args: argparse.Namespace) -> int:
    from dashboards.review import derive_state, load_history
    from dashboards.storage import open_store

    with open_store(args.db) as store:
        history = load_history(store, args.finding_id)
    state = derive_state(args.finding_id, history)
    if args.format == "json":
        doc = {
            "finding_id": state.finding_id,
            "status": state.status.value,
            "assignee": state.assignee,
            "history": [
                {
                    "reviewed_at": r.reviewed_at.isoformat().replace("+00:00", "Z"),
                    "action": r.action.value,
                    "actor": r.actor,
                    "assignee": r.assignee,
                    "note": r.note,
                    "review_id": r.review_id,
                }
                for r in history
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    assigned = f", assigned to {state.assignee}" if state.assignee else ""
    sys.stdout.write(f"finding {state.finding_id}: {state.status.value}{assigned}\n")
    for r in history:
        when = r.reviewed_at.strftime("%Y-%m-%d %H:%M:%SZ")
        extra = f" -> {r.assignee}" if r.assignee else ""
        note = f": {r.note}" if r.note else ""
        sys.stdout.write(f"  {when}  {r.action.value:<14} {r.actor}{extra}{note}\n")
    if not history:
        sys.stdout.write("  (no review yet)\n")
    return 0


def _coverage(args: argparse.Namespace) -> int:
    from dashboards.catalog import run_query
    from dashboards.output import write_csv, write_json, write_table
    from dashboards.storage import open_store

    params: dict[str, object] = {"period": args.period, "sla_days": args.sla_days}
    for name in ("since", "until"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    with open_store(args.db) as store:
        table = run_query(store, "review_coverage", params)
    writer = {"table": write_table, "csv": write_csv, "json": write_json}[args.format]
    with output_stream(args.out) as out:
        writer(table, out)
    return 0


def run(args: argparse.Namespace) -> int:
    """Record one review act, or show history or coverage."""
    if args.act == "history":
        return _history(args)
    if args.act == "coverage":
        return _coverage(args)

    from dashboards.review import current_state, record_review
    from dashboards.storage import open_store

    action = ACTS[args.act][0]
    with open_store(args.db, write=True) as store:
        before = current_state(store, args.finding_id)
        review = record_review(
            store,
            args.finding_id,
            action,
            actor=args.actor,
            at=datetime.now(UTC),
            note=args.note,
            assignee=getattr(args, "assignee", None),
        )
        after = current_state(store, args.finding_id)
    when = review.reviewed_at.strftime("%Y-%m-%d %H:%M:%SZ")
    sys.stdout.write(
        f"finding {review.finding_id}: {action.value} by {review.actor} at {when}; "
        f"status {before.status.value} -> {after.status.value}\n"
    )
    return 0

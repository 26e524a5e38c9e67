"""Retention: prune what is past its horizon, keep the compliance record, archive to Parquet.

Horizons (``auditor retention`` defaults; a horizon is ``<n>d``, ``<n>w`` or ``<n>y``):

- events and dead letters older than ``events`` (400 days) are deleted;
- findings observed before ``evidence`` (90 days) lose their evidence excerpt (set to
  NULL), keeping everything else: data minimisation without losing the record;
- findings are kept for ``findings`` (6 years: HIPAA keeps documentation six years from
  creation or from when it was last in effect, §164.316(b)(2)(i)). A finding goes when it
  was observed, last stored *and* last reviewed before the horizon; its reviews and alerts
  go with it, as do runs that started before it.

With an archive folder, every deleted row is first written to Parquet, partitioned by UTC
day in hive layout (``<archive>/<table>/day=YYYY-MM-DD/<retention id>-<n>.parquet``),
which DuckDB reads back with ``read_parquet('<archive>/events/*/*.parquet',
hive_partitioning = true, union_by_name = true)``. The files are written to
``<archive>/.staging/<retention id>/`` inside the deleting transaction and moved into place
after it commits; a crash in between is repaired by the next run (the ledger row in
``retention_runs`` says whether the deletion committed), so the archive holds every
pruned row exactly once.

A dry run counts the same predicates and changes nothing.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Self

import duckdb

from pipelines.store import schema
from pipelines.store.errors import StoreWriteError
from pipelines.store.statements import transaction

_HORIZON = re.compile(r"^(?P<amount>[1-9][0-9]{0,4})(?P<unit>[dwy])$")
STAGING: Final = ".staging"

DEFAULT_EVENTS: Final = "400d"
DEFAULT_EVIDENCE: Final = "90d"
DEFAULT_FINDINGS: Final = "6y"


@dataclass(frozen=True, slots=True)
class Horizon:
    """How long something is kept: ``<n>d`` days, ``<n>w`` weeks or ``<n>y`` calendar years."""

    amount: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse ``400d``, ``13w`` or ``6y``.

        Raises:
            ValueError: Not a positive amount followed by d, w or y.
        """
        match = _HORIZON.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a horizon like 400d, 13w or 6y")
        return cls(int(match["amount"]), match["unit"])

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def before(self, now: datetime) -> datetime:
        """The cutoff: what is older than this is past the horizon.

        Years are calendar years; 29 February falls back to the 28th, the earlier cutoff,
        so that a year of retention is never a day short.
        """
        if self.unit == "d":
            return now - timedelta(days=self.amount)
        if self.unit == "w":
            return now - timedelta(weeks=self.amount)
        year = now.year - self.amount
        day = 28 if (now.month, now.day) == (2, 29) else now.day
        return now.replace(year=year, day=day)

    @property
    def approx_days(self) -> float:
        """Length in days (a year counts 365.25), for comparing horizons."""
        per_unit = {"d": 1.0, "w": 7.0, "y": 365.25}
        return self.amount * per_unit[self.unit]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The horizons of each kind of row. ``dead_letters`` defaults to ``events``."""

    events: Horizon = field(default_factory=lambda: Horizon.parse(DEFAULT_EVENTS))
    evidence: Horizon = field(default_factory=lambda: Horizon.parse(DEFAULT_EVIDENCE))
    findings: Horizon = field(default_factory=lambda: Horizon.parse(DEFAULT_FINDINGS))
    dead_letters: Horizon | None = None

    def cutoffs(self, now: datetime) -> RetentionCutoffs:
        """The cutoff times of this policy at ``now`` (an aware datetime)."""
        if now.tzinfo is None:
            raise ValueError("now must carry a time zone")
        now = now.astimezone(UTC)
        return RetentionCutoffs(
            events_before=self.events.before(now),
            dead_letters_before=(self.dead_letters or self.events).before(now),
            evidence_before=self.evidence.before(now),
            findings_before=self.findings.before(now),
        )


@dataclass(frozen=True, slots=True)
class RetentionCutoffs:
    """Rows older than these times are past their horizon."""

    events_before: datetime
    dead_letters_before: datetime
    evidence_before: datetime
    findings_before: datetime

    def to_json(self) -> dict[str, str]:
        """ISO 8601 strings, to send to the writer's endpoint."""
        return {
            "events_before": self.events_before.isoformat(),
            "dead_letters_before": self.dead_letters_before.isoformat(),
            "evidence_before": self.evidence_before.isoformat(),
            "findings_before": self.findings_before.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The inverse of ``to_json``.

        Raises:
            ValueError: A cutoff is missing, not ISO 8601, or has no time zone.
        """
        values = {name: datetime.fromisoformat(str(data[name])) for name in _CUTOFF_NAMES}
        if any(v.tzinfo is None for v in values.values()):
            raise ValueError("retention cutoffs must carry a time zone")
        return cls(**values)


_CUTOFF_NAMES: Final = (
    "events_before",
    "dead_letters_before",
    "evidence_before",
    "findings_before",
)


@dataclass(frozen=True, slots=True)
class Step:
    """One retention action over one table."""

    key: str
    table: str
    action: str  # "delete" or "blank evidence"
    time_column: str
    cutoff: str  # the RetentionCutoffs attribute it uses
    predicate: str  # SQL over the table, with named parameters


_EXPIRED = (
    "findings.observed_at < $findings_before AND findings.last_stored_at < $findings_before "
    "AND NOT EXISTS (SELECT 1 FROM reviews AS r WHERE r.finding_id = findings.finding_id "
    "AND r.reviewed_at >= $findings_before)"
)
_OF_EXPIRED = (
    "finding_id IN (SELECT finding_id FROM findings WHERE {expired}) "
    "OR ({column} < $findings_before AND finding_id NOT IN (SELECT finding_id FROM findings))"
)

STEPS: Final = (
    # Reviews and alerts go before their findings, while the findings can still be matched.
    Step(
        "reviews",
        "reviews",
        "delete",
        "reviewed_at",
        "findings_before",
        _OF_EXPIRED.format(expired=_EXPIRED, column="reviewed_at"),
    ),
    Step(
        "alerts",
        "alerts",
        "delete",
        "sent_at",
        "findings_before",
        _OF_EXPIRED.format(expired=_EXPIRED, column="sent_at"),
    ),
    Step("findings", "findings", "delete", "observed_at", "findings_before", _EXPIRED),
    Step(
        "evidence",
        "findings",
        "blank evidence",
        "observed_at",
        "evidence_before",
        "observed_at < $evidence_before AND evidence IS NOT NULL AND evidence <> '' "
        f"AND NOT ({_EXPIRED})",
    ),
    Step("events", "events", "delete", "time", "events_before", "time < $events_before"),
    Step(
        "dead_letters",
        "dead_letters",
        "delete",
        "received_at",
        "dead_letters_before",
        "received_at < $dead_letters_before",
    ),
    Step(
        "runs",
        "runs",
        "delete",
        "started_at",
        "findings_before",
        "started_at < $findings_before AND status <> 'running'",
    ),
)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What a retention run did, or would do when ``dry_run``.

    Attributes:
        retention_id: The ledger id (``retention_runs``); ``None`` for a dry run.
        dry_run: Whether nothing was changed.
        ran_at: When it ran.
        cutoffs: The cutoff times used.
        rows: Rows per step key (``events``, ``evidence`` ... see ``STEPS``).
        archive_dir: Where pruned rows were archived, if anywhere.
        archived_files: Parquet files written to the archive.
    """

    retention_id: str | None
    dry_run: bool
    ran_at: datetime
    cutoffs: RetentionCutoffs
    rows: dict[str, int]
    archive_dir: str | None = None
    archived_files: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the endpoint's wire format and ``--format json``)."""
        return {
            "retention_id": self.retention_id,
            "dry_run": self.dry_run,
            "ran_at": self.ran_at.isoformat(),
            "cutoffs": self.cutoffs.to_json(),
            "rows": dict(self.rows),
            "archive_dir": self.archive_dir,
            "archived_files": self.archived_files,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The inverse of ``to_json``."""
        return cls(
            retention_id=data["retention_id"],
            dry_run=bool(data["dry_run"]),
            ran_at=datetime.fromisoformat(data["ran_at"]),
            cutoffs=RetentionCutoffs.from_json(data["cutoffs"]),
            rows={str(k): int(v) for k, v in data["rows"].items()},
            archive_dir=data["archive_dir"],
            archived_files=int(data["archived_files"]),
        )


def apply_retention(
    conn: duckdb.DuckDBPyConnection,
    cutoffs: RetentionCutoffs,
    *,
    now: datetime,
    archive: Path | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """Apply retention on a connection no other transaction writes through meanwhile.

    Args:
        conn: Read-write for a real run; a read-only connection is enough for a dry run.
        cutoffs: What is past its horizon.
        now: Recorded as the ledger's ``ran_at``.
        archive: Folder for the Parquet archive of deleted rows (created when missing).
        dry_run: Count what would change and change nothing.

    Raises:
        StoreWriteError: A step failed; nothing was deleted and no archive file published.
    """
    bound = {name: getattr(cutoffs, name) for name in _CUTOFF_NAMES}
    if dry_run:
        rows = {step.key: _count(conn, step, bound) for step in STEPS}
        return RetentionReport(
            retention_id=None,
            dry_run=True,
            ran_at=now,
            cutoffs=cutoffs,
            rows=rows,
            archive_dir=_str(archive),
        )
    retention_id = uuid.uuid4().hex
    staging = None
    if archive is not None:
        archive = archive.absolute()
        _repair_archive(conn, archive)
        staging = archive / STAGING / retention_id
    rows = {}
    with transaction(conn, "retention") as steps:
        for step in STEPS:
            steps.append(f"{step.key} ({step.action})")
            if staging is not None and step.action == "delete":
                _archive(conn, step, bound, staging / step.table)
            rows[step.key] = _change(conn, step, bound)
        steps.append("retention_runs")
        conn.execute(
            "INSERT INTO retention_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                retention_id,
                now,
                cutoffs.events_before,
                cutoffs.dead_letters_before,
                cutoffs.evidence_before,
                cutoffs.findings_before,
                rows["events"],
                rows["dead_letters"],
                rows["evidence"],
                rows["findings"],
                rows["reviews"],
                rows["alerts"],
                rows["runs"],
                _str(archive),
                schema.auditor_version(),
            ],
        )
    files = _publish(staging, archive) if staging is not None and archive is not None else 0
    return RetentionReport(
        retention_id=retention_id,
        dry_run=False,
        ran_at=now,
        cutoffs=cutoffs,
        rows=rows,
        archive_dir=_str(archive),
        archived_files=files,
    )


def _params(step: Step, bound: dict[str, datetime]) -> dict[str, datetime]:
    names = set(re.findall(r"\$([a-z_]+)", step.predicate))
    return {name: bound[name] for name in names}


def _count(conn: duckdb.DuckDBPyConnection, step: Step, bound: dict[str, datetime]) -> int:
    sql = f"SELECT count(*) FROM {step.table} WHERE {step.predicate}"  # noqa: S608 - our own STEPS; values bound
    row = conn.execute(sql, _params(step, bound)).fetchone()
    return int(row[0]) if row else 0


def _change(conn: duckdb.DuckDBPyConnection, step: Step, bound: dict[str, datetime]) -> int:
    if step.action == "delete":
        sql = f"DELETE FROM {step.table} WHERE {step.predicate}"  # noqa: S608 - as above
    else:
        sql = f"UPDATE {step.table} SET evidence = NULL WHERE {step.predicate}"  # noqa: S608 - as above
    row = conn.execute(sql, _params(step, bound)).fetchone()
    return int(row[0]) if row else 0


def _archive(
    conn: duckdb.DuckDBPyConnection, step: Step, bound: dict[str, datetime], folder: Path
) -> None:
    day = f'CAST("{step.time_column}" AS DATE) AS day'
    sql = f"SELECT *, {day} FROM {step.table} WHERE {step.predicate}"  # noqa: S608 - our STEPS
    reader = conn.sql(sql, params=_params(step, bound)).to_arrow_reader(65_536)
    folder.mkdir(parents=True, exist_ok=True)
    # Imported here: pyarrow.dataset takes ~65 ms to import, which every process that opens
    # the store (a run's store process among them) would pay for an archive it never writes.
    import pyarrow.dataset as pads

    try:
        pads.write_dataset(
            reader,
            folder,
            format="parquet",
            partitioning=["day"],
            partitioning_flavor="hive",
            basename_template=f"{folder.parent.name}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
        )
    except OSError as exc:
        raise StoreWriteError(
            f"cannot write the archive of {step.table} to {folder}: {exc.strerror}"
        ) from None


def _publish(staging: Path, archive: Path) -> int:
    """Move a committed run's files from staging into the archive; returns how many."""
    moved = 0
    if staging.is_dir():
        for source in sorted(staging.rglob("*.parquet")):
            target = archive / source.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
            moved += 1
        shutil.rmtree(staging)
    root = archive / STAGING
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    return moved


def _repair_archive(conn: duckdb.DuckDBPyConnection, archive: Path) -> None:
    """Finish or discard what a crashed run left in staging.

    A staging folder whose retention id is in the ledger committed its deletions: its
    files are the only copy of those rows and are published. Any other was rolled back:
    the rows are still in the database and will be archived again, so it is removed.
    """
    root = archive / STAGING
    if not root.is_dir():
        return
    committed = {
        str(row[0]) for row in conn.execute("SELECT retention_id FROM retention_runs").fetchall()
    }
    for leftover in list(root.iterdir()):
        if leftover.name in committed:
            _publish(leftover, archive)
        elif leftover.is_dir():
            shutil.rmtree(leftover)


def _str(path: Path | None) -> str | None:
    return str(path.absolute()) if path is not None else None


__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_EVIDENCE",
    "DEFAULT_FINDINGS",
    "STEPS",
    "Horizon",
    "RetentionCutoffs",
    "RetentionPolicy",
    "RetentionReport",
    "apply_retention",
]

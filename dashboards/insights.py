"""What the dashboard's pages and the report show, read through the named queries.

Each function here takes an open store and a :class:`Period`, runs named queries from
the catalog (never SQL of its own: a question worth a page is worth a named query that
``auditor query`` can answer too) and shapes the rows for a template: series for the
charts, totals for the headline numbers, rows for the tables.

Every function reads the store and nothing else; none writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from auditor.vocabulary import (
    DetectorName,
    FailureReason,
    ReviewAction,
    ReviewStatus,
    Severity,
)
from dashboards.catalog import run_query
from dashboards.charts import (
    DETECTOR_COLORS,
    SEVERITY_COLORS,
    STATUS_COLORS,
    Bar,
    BaselineRow,
    Series,
)
from dashboards.evidence import Evidence, read_evidence
from dashboards.review import (
    TRANSITIONS,
    Review,
    ReviewState,
    UnknownFinding,
    derive_state,
    load_history,
)

if TYPE_CHECKING:
    from dashboards.storage import StoreHandle

__all__ = [
    "DEFAULT_SLA_DAYS",
    "OVERDUE_SHOWN",
    "PAGE_SIZE",
    "FindingFilters",
    "FindingsPage",
    "Incident",
    "Overview",
    "PartyPage",
    "Period",
    "TimeAxis",
    "findings_page",
    "group_timeline",
    "incident",
    "overview",
    "party_names",
    "party_page",
    "reason_color",
    "rows",
]

DEFAULT_SLA_DAYS: Final = 7
PAGE_SIZE: Final = 50
OVERDUE_SHOWN: Final = 60
"""How many late findings the overview and the report list (all are counted)."""
_MAX_DAILY: Final = 92
_MAX_WEEKLY: Final = 120

_REASON_PALETTE: Final = (
    "#cc79a7",
    "#56b4e9",
    "#b7791f",
    "#2c7a7b",
    "#e69f00",
    "#805ad5",
    "#d55e00",
    "#c53030",
    "#0072b2",
    "#718096",
    "#009e73",
    "#6b46c1",
)
_REASON_ORDER: Final = {r.value: i for i, r in enumerate(FailureReason)}

Row = dict[str, object]


def rows(store: StoreHandle, name: str, now: datetime, **params: object) -> list[Row]:
    """Run a named query and return its rows as dictionaries."""
    return list(run_query(store, name, params, now=now).to_pylist())


def _int(value: object) -> int:
    return int(str(value)) if value is not None else 0


def reason_color(reason: str) -> str:
    """A stable colour for a failure reason (the same on every page and in the report)."""
    # The common reasons come first in the vocabulary, so they get distinct colours.
    index = _REASON_ORDER.get(reason, sum(reason.encode()))
    return _REASON_PALETTE[index % len(_REASON_PALETTE)]


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval ``[since, until)`` in UTC; ``None`` leaves a side open."""

    since: datetime | None
    until: datetime | None

    def params(self) -> dict[str, object]:
        """The ``since`` / ``until`` parameters of the named queries."""
        return {"since": self.since, "until": self.until}

    @property
    def label(self) -> str:
        """The period as a person reads it, in UTC."""
        start = self.since.strftime("%d %b %Y %H:%M") if self.since else "the beginning"
        end = self.until.strftime("%d %b %Y %H:%M") if self.until else "now"
        return f"{start.replace(' 00:00', '')} \N{EN DASH} {end.replace(' 00:00', '')} UTC"


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """The columns of a chart over time: days, or weeks or months for long periods."""

    unit: str
    keys: tuple[date, ...]
    labels: tuple[str, ...]

    def key(self, day: date) -> date:
        """The column a day falls in."""
        if self.unit == "week":
            return day - timedelta(days=day.weekday())
        if self.unit == "month":
            return day.replace(day=1)
        return day

    @classmethod
    def spanning(cls, first: date, last: date) -> TimeAxis:
        """An axis from ``first`` to ``last`` inclusive, in the finest unit that fits."""
        last = max(last, first)
        span = (last - first).days + 1
        if span <= _MAX_DAILY:
            days = tuple(first + timedelta(days=i) for i in range(span))
            return cls("day", days, tuple(d.strftime("%d %b") for d in days))
        if span <= _MAX_WEEKLY * 7:
            start = first - timedelta(days=first.weekday())
            weeks = tuple(start + timedelta(weeks=i) for i in range((last - start).days // 7 + 1))
            return cls("week", weeks, tuple(w.strftime("%d %b") for w in weeks))
        months: list[date] = []
        cursor = first.replace(day=1)
        while cursor <= last:
            months.append(cursor)
            cursor = (cursor + timedelta(days=32)).replace(day=1)
        return cls("month", tuple(months), tuple(m.strftime("%b %Y") for m in months))


def _axis(period: Period, days: Iterable[date], now: datetime) -> TimeAxis:
    seen = sorted(days)
    if period.until is not None:
        last = (period.until - timedelta(microseconds=1)).date()
    elif period.since is not None or not seen:
        last = now.date()
    else:
        last = seen[-1]
    first = period.since.date() if period.since is not None else seen[0] if seen else last
    return TimeAxis.spanning(first, last)


def _series_over_time(
    axis: TimeAxis,
    cells: Iterable[tuple[date, str, int]],
    order: Sequence[tuple[str, str, str]],
) -> tuple[Series, ...]:
    """Sum ``(day, series name, value)`` cells into one value per axis column and series."""
    index = {k: i for i, k in enumerate(axis.keys)}
    sums: dict[str, list[int]] = {name: [0] * len(axis.keys) for name, _, _ in order}
    for day, name, value in cells:
        column = index.get(axis.key(day))
        if column is not None and name in sums:
            sums[name][column] += value
    return tuple(Series(name, label, color, tuple(sums[name])) for name, label, color in order)


def _label(name: str) -> str:
    return name.replace("_", " ")


SEVERITY_ORDER: Final = tuple(
    (s.value, s.value, SEVERITY_COLORS[s]) for s in sorted(Severity, reverse=True)
)
DETECTOR_ORDER: Final = tuple((d.value, _label(d.value), DETECTOR_COLORS[d]) for d in DetectorName)
STATUS_ORDER: Final = tuple((s.value, _label(s.value), STATUS_COLORS[s]) for s in ReviewStatus)


@dataclass(frozen=True, slots=True)
class Totals:
    """The headline numbers of a period."""

    findings: int
    open: int
    reviewed: int
    high_critical_open: int
    overdue: int
    failures: int
    events: int
    gaps: int


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything on the overview page (and the report's summary)."""

    period: Period
    axis: TimeAxis
    by_severity: tuple[Series, ...]
    by_detector: tuple[Series, ...]
    by_status: tuple[Series, ...]
    matrix: list[Row]
    totals: Totals
    failure_bars: tuple[Bar, ...]
    coverage: list[Row]
    gaps: list[Row]
    overdue: list[Row]
    clients: list[Row]
    runs: list[Row]
    extent: Row


def overview(
    store: StoreHandle, period: Period, *, now: datetime, sla_days: int = DEFAULT_SLA_DAYS
) -> Overview:
    """Findings over time by detector and severity, review status, failures, gaps."""
    p = period.params()
    by_day = rows(store, "findings_by_day", now, **p)
    axis = _axis(period, (r["day"] for r in by_day if isinstance(r["day"], date)), now)
    cells = [(r["day"], r["severity"], r["detector"], _int(r["findings"])) for r in by_day]
    by_severity = _series_over_time(
        axis, ((d, str(s), n) for d, s, _, n in cells if isinstance(d, date)), SEVERITY_ORDER
    )
    by_detector = _series_over_time(
        axis, ((d, str(det), n) for d, _, det, n in cells if isinstance(d, date)), DETECTOR_ORDER
    )
    status_rows = rows(store, "review_status", now, **p)
    status_totals: dict[str, int] = defaultdict(int)
    matrix: dict[str, Row] = {}
    high_critical_open = 0
    for r in status_rows:
        n = _int(r["findings"])
        status_totals[str(r["status"])] += n
        entry = matrix.setdefault(
            str(r["detector"]), {"detector": r["detector"], "total": 0, "open": 0}
        )
        entry[str(r["severity"])] = _int(entry.get(str(r["severity"]))) + n
        entry["total"] = _int(entry["total"]) + n
        if r["status"] == ReviewStatus.OPEN:
            entry["open"] = _int(entry["open"]) + n
            if r["severity"] in (Severity.HIGH, Severity.CRITICAL):
                high_critical_open += n
    by_status = tuple(
        Series(name, label, color, (status_totals.get(name, 0),))
        for name, label, color in STATUS_ORDER
    )
    failures = rows(store, "validation_failures", now, **p)
    by_reason: dict[str, int] = defaultdict(int)
    for r in failures:
        by_reason[str(r["reason"])] += _int(r["failures"])
    failure_bars = tuple(
        Bar(reason, _label(reason), count, reason_color(reason))
        for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    # Only the first rows are shown: converting thousands of late findings to Python
    # would cost more than finding them.
    late = run_query(store, "unreviewed_findings", {"days": sla_days, "as_of": now, **p}, now=now)
    overdue = late.slice(0, OVERDUE_SHOWN).to_pylist()
    # Silence is judged over the period's last week, whatever the period's length: a party
    # that stopped ten days ago is a gap now, though it was busy earlier in the month.
    gaps = rows(store, "coverage_gaps", now, until=period.until or now)
    clients = rows(store, "parties", now, party="client", **p)
    totals = Totals(
        findings=sum(_int(r["findings"]) for r in by_day),
        open=sum(_int(r["open"]) for r in by_day),
        reviewed=sum(_int(r["reviewed"]) for r in by_day),
        high_critical_open=high_critical_open,
        overdue=late.num_rows,
        failures=sum(by_reason.values()),
        events=sum(_int(r["events"]) for r in clients),
        gaps=len(gaps),
    )
    return Overview(
        period=period,
        axis=axis,
        by_severity=by_severity,
        by_detector=by_detector,
        by_status=by_status,
        matrix=[matrix[d.value] for d in DetectorName if d.value in matrix],
        totals=totals,
        failure_bars=failure_bars,
        coverage=rows(store, "review_coverage", now, period="week", sla_days=sla_days, **p),
        gaps=gaps,
        overdue=overdue,
        clients=clients,
        runs=rows(store, "pipeline_runs", now),
        extent=rows(store, "store_extent", now)[0],
    )


@dataclass(frozen=True, slots=True)
class FindingFilters:
    """The filters of the findings table, as text from a query string (``None`` = any)."""

    detector: str | None = None
    severity: str | None = None
    status: str | None = None
    client: str | None = None
    service: str | None = None

    def params(self) -> dict[str, object]:
        """The matching parameters of the ``findings`` query."""
        return {k: v for k, v in self.as_dict().items() if v is not None}

    def as_dict(self) -> dict[str, str | None]:
        """The filters by name."""
        return {
            "detector": self.detector,
            "severity": self.severity,
            "status": self.status,
            "client": self.client,
            "service": self.service,
        }


@dataclass(frozen=True, slots=True)
class FindingsPage:
    """One page of the findings table."""

    rows: list[Row]
    total: int
    page: int
    pages: int
    page_size: int


def findings_page(
    store: StoreHandle,
    filters: FindingFilters,
    period: Period,
    *,
    page: int,
    now: datetime,
    page_size: int = PAGE_SIZE,
) -> FindingsPage:
    """The findings matching ``filters`` in ``period``, newest first, one page of them.

    Raises:
        QueryError: A filter has a value the ``findings`` query does not accept.
    """
    page = max(1, page)
    params = {**filters.params(), **period.params(), "limit": page_size}
    found = rows(store, "findings", now, **params, offset=(page - 1) * page_size)
    if not found and page > 1:
        # Past the end (the filters narrowed): show the last page instead of nothing.
        first = rows(store, "findings", now, **{**params, "limit": 1}, offset=0)
        total = _int(first[0]["total"]) if first else 0
        page = max(1, -(-total // page_size))
        found = rows(store, "findings", now, **params, offset=(page - 1) * page_size)
    total = _int(found[0]["total"]) if found else 0
    return FindingsPage(
        rows=found,
        total=total,
        page=page,
        pages=max(1, -(-total // page_size)),
        page_size=page_size,
    )


def party_names(store: StoreHandle, party: str, *, now: datetime) -> list[str]:
    """Every client iss (or service id) the store knows, for filter menus."""
    return sorted(
        str(r["name"]) for r in rows(store, "parties", now, party=party) if r["name"] != "(unknown)"
    )


@dataclass(frozen=True, slots=True)
class PartyPage:
    """One client's or one service's page."""

    party: str
    name: str
    period: Period
    summary: Row | None
    axis: TimeAxis
    failures_over_time: tuple[Series, ...]
    failure_bars: tuple[Bar, ...]
    counterparts: list[tuple[str, int]]
    replay: list[Row]
    replay_findings: list[Row]
    anomalies: list[Row]
    anomaly_rows: tuple[BaselineRow, ...]
    findings: FindingsPage


def party_page(
    store: StoreHandle, party: str, name: str, period: Period, *, now: datetime
) -> PartyPage:
    """Validation failures by reason, replay incidents, anomalies with their baseline.

    ``party`` is ``client`` (``name`` is an iss) or ``service`` (a service id).
    """
    p = period.params()
    key = "client" if party == "client" else "service"
    other = "service_id" if party == "client" else "client_iss"
    summary = next(
        (r for r in rows(store, "parties", now, party=party, **p) if r["name"] == name), None
    )
    failures = rows(store, "validation_failures", now, **{key: name}, **p)
    by_reason: dict[str, int] = defaultdict(int)
    by_other: dict[str, int] = defaultdict(int)
    for r in failures:
        by_reason[str(r["reason"])] += _int(r["failures"])
        by_other[str(r[other])] += _int(r["failures"])
    reasons = sorted(by_reason, key=lambda k: (-by_reason[k], k))
    axis = _axis(period, (r["day"] for r in failures if isinstance(r["day"], date)), now)
    over_time = _series_over_time(
        axis,
        (
            (r["day"], str(r["reason"]), _int(r["failures"]))
            for r in failures
            if isinstance(r["day"], date)
        ),
        [(reason, _label(reason), reason_color(reason)) for reason in reasons],
    )
    anomalies = rows(store, "anomalies", now, **{key: name}, **p)
    anomaly_rows = tuple(
        BaselineRow(
            name=str(a["finding_id"]),
            label=f"{_label(str(a['kind']))} · {_when(a['observed_at'])}",
            observed=float(_int(a["count"])),
            baseline=float(str(a["baseline"])) if a["baseline"] is not None else None,
            note=f", score {a['score']}" if a["score"] is not None else "",
        )
        for a in anomalies[:12]
    )
    return PartyPage(
        party=party,
        name=name,
        period=period,
        summary=summary,
        axis=axis,
        failures_over_time=over_time,
        failure_bars=tuple(Bar(r, _label(r), by_reason[r], reason_color(r)) for r in reasons),
        counterparts=sorted(by_other.items(), key=lambda kv: (-kv[1], kv[0])),
        replay=rows(store, "replay_incidents", now, **{key: name}, **p),
        replay_findings=rows(
            store,
            "findings",
            now,
            detector=DetectorName.REPLAY_BURST.value,
            **{key: name},
            **p,
            limit=20,
        ),
        anomalies=anomalies,
        anomaly_rows=anomaly_rows,
        findings=findings_page(
            store, FindingFilters(**{key: name}), period, page=1, now=now, page_size=25
        ),
    )


def _when(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%d %b %H:%M")
    return str(value)


ACTION_LABELS: Final = {
    ReviewAction.ACKNOWLEDGE: "Acknowledge",
    ReviewAction.ASSIGN: "Assign",
    ReviewAction.RESOLVE: "Resolve",
    ReviewAction.FALSE_POSITIVE: "False positive",
    ReviewAction.REOPEN: "Reopen",
    ReviewAction.COMMENT: "Comment",
}


@dataclass(frozen=True, slots=True)
class Incident:
    """One finding in full: what, evidence, timeline, related findings and its review."""

    finding: Row
    evidence: Evidence
    state: ReviewState
    history: list[Review]
    timeline: list[Row]
    related: list[Row]
    actions: tuple[ReviewAction, ...] = field(default=())

    @property
    def action_labels(self) -> Mapping[ReviewAction, str]:
        """Button labels of the review actions."""
        return ACTION_LABELS


TIMELINE_LIMIT: Final = 500
_SAME_EVENT: Final = ("what", "result", "reason", "client_iss", "service_id", "peer_ip", "link")


def group_timeline(entries: Sequence[Row]) -> list[Row]:
    """Fold runs of alike authz events into one entry, so a burst reads as one line.

    Consecutive events with the same action, outcome, reason, parties, peer and link
    become one entry with ``count`` (how many), ``until`` (the last one's time) and
    ``jtis`` (how many distinct jtis). Other entries pass through with a count of 1.
    """
    grouped: list[Row] = []
    jtis: list[set[object]] = []
    for entry in entries:
        last = grouped[-1] if grouped else None
        if (
            last is not None
            and entry["record"] == "event"
            and last["record"] == "event"
            and all(entry[k] == last[k] for k in _SAME_EVENT)
        ):
            last["count"] = _int(last["count"]) + 1
            last["until"] = entry["occurred_at"]
            jtis[-1].add(entry["jti"])
            last["jtis"] = len(jtis[-1])
            continue
        grouped.append({**entry, "count": 1, "until": entry["occurred_at"], "jtis": 1})
        jtis.append({entry.get("jti")})
    return grouped


def incident(store: StoreHandle, finding_id: str, *, now: datetime) -> Incident | None:
    """Everything about one finding, or ``None`` when the store holds no such finding.

    A malformed id is a finding the store does not hold, too.
    """
    history = load_history_or_none(store, finding_id)
    if history is None:
        return None
    detail = rows(store, "finding_detail", now, finding_id=finding_id)
    evidence = read_evidence(store, finding_id)
    if not detail or evidence is None:
        return None
    state = derive_state(finding_id, history)
    actions = (*TRANSITIONS[state.status], ReviewAction.COMMENT)
    return Incident(
        finding=detail[0],
        evidence=evidence,
        state=state,
        history=history,
        timeline=group_timeline(
            rows(store, "incident_timeline", now, finding_id=finding_id, limit=TIMELINE_LIMIT)
        ),
        related=rows(store, "related_findings", now, finding_id=finding_id),
        actions=actions,
    )


def load_history_or_none(store: StoreHandle, finding_id: str) -> list[Review] | None:
    """The review history of a finding, or ``None`` when the store does not hold it."""
    try:
        return load_history(store, finding_id)
    except UnknownFinding:
        return None

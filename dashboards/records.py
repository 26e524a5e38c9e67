"""Findings and authz events read from the store in batches, for the exporters.

The exporters never see a whole period at once: rows come in pages of ``batch_size``
ordered by time and id, each page asked for with keyset pagination ("after this time
and id"), so memory stays flat however long the range and every page is one bound,
read-only query (which also works through the pipeline's writer).

Only the columns the exports need are read. Free text that came from inspected content
(a finding's ``evidence``, an event's ``attributes_json`` and ``detail``) is never
selected: an exporter cannot leak what it never reads, even if something upstream failed
to redact it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from auditor.vocabulary import AuthzAction, Outcome, ReviewStatus, Severity

if TYPE_CHECKING:
    from dashboards.storage import StoreHandle

__all__ = [
    "DEFAULT_BATCH",
    "AuthzRecord",
    "EventScope",
    "FindingRecord",
    "exportable_facts",
    "iter_authz",
    "iter_findings",
]

DEFAULT_BATCH: Final = 5000

SAFE_TEXT_FACTS: Final = frozenset(
    {"alg", "typ", "kid", "iss", "aud", "jti", "jku", "tenant", "reason", "rule", "hook"}
    | {"services", "peers", "reasons", "scopes", "kinds"}
)
"""Facts whose text may be exported: claims that are safe to log (CDS Hooks security
best practices: iss, tenant, jti) and names from our own vocabulary. Numbers and booleans
(live, exp, baseline, score, counts) are always exported; other text facts are not."""

try:
    from orjson import loads as _loads
except ModuleNotFoundError:  # pragma: no cover - orjson comes with the pipeline extra
    _loads = json.loads  # type: ignore[assignment]

_FACT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MAX_FACT_TEXT: Final = 256


class EventScope(StrEnum):
    """Which authz events an export carries besides the findings."""

    NONE = "none"
    FAILURES = "failures"
    """Every refused request: events with outcome ``failure``, whatever the action."""
    ALL = "all"
    """Failures, and successful token validations (system-to-system authentications)."""


@dataclass(frozen=True, slots=True)
class FindingRecord:
    """One finding as the exporters see it (no evidence text)."""

    finding_id: str
    detector: str
    rule: str
    kind: str
    severity: Severity
    observed_at: datetime
    title: str
    client_iss: str | None
    service_id: str | None
    fingerprint: str | None
    location: str | None
    origin: str | None
    event_ids: tuple[str, ...]
    safeguard: str | None
    reference: str | None
    window_start: datetime | None
    window_end: datetime | None
    count: int
    revision: int
    facts: Mapping[str, object]
    first_stored_at: datetime
    last_stored_at: datetime
    status: ReviewStatus


@dataclass(frozen=True, slots=True)
class AuthzRecord:
    """One authz event as the exporters see it (no attributes, no detail text)."""

    event_id: str
    time: datetime
    source_role: str
    source_name: str
    source_instance: str | None
    action: str
    outcome: Outcome
    reason: str | None
    http_status: int | None
    client_iss: str | None
    client_tenant: str | None
    service_id: str | None
    service_url: str | None
    token_jti: str | None
    token_kid: str | None
    token_alg: str | None
    token_typ: str | None
    token_fingerprint: str | None
    hook: str | None
    peer_ip: str | None
    trace_id: str | None


def exportable_facts(facts_json: str | None) -> dict[str, object]:
    """The facts of a finding that exports may carry (see ``SAFE_TEXT_FACTS``).

    Malformed JSON yields no facts rather than an error: an export must not stop on
    one bad row.
    """
    if not facts_json:
        return {}
    try:
        raw = _loads(facts_json)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    kept: dict[str, object] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _FACT_NAME.match(name):
            continue
        if isinstance(value, bool | int | float):
            kept[name] = value
        elif name in SAFE_TEXT_FACTS and isinstance(value, str):
            kept[name] = value[:_MAX_FACT_TEXT]
        elif name in SAFE_TEXT_FACTS and isinstance(value, list):
            kept[name] = [v[:_MAX_FACT_TEXT] for v in value if isinstance(v, str)][:64]
    return kept


_FINDINGS_PAGE = """
WITH decisions AS (
    SELECT finding_id,
           arg_max(action, struct_pack(t := reviewed_at, id := review_id)) AS last_decision
    FROM reviews
    WHERE action <> 'comment'
    GROUP BY finding_id
)
SELECT
    f.finding_id, f.detector, f.rule, f.kind, f.severity, epoch_us(f.observed_at) AS observed_at,
    f.title, f.client_iss, f.service_id, f.fingerprint, f.location, f.origin, f.event_ids,
    f.safeguard, f.reference, epoch_us(f.window_start) AS window_start,
    epoch_us(f.window_end) AS window_end, f.count, f.revision, f.facts_json,
    epoch_us(f.first_stored_at) AS first_stored_at,
    epoch_us(f.last_stored_at) AS last_stored_at, d.last_decision
FROM findings AS f
LEFT JOIN decisions AS d USING (finding_id)
WHERE ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
  AND ($after_t IS NULL
       OR epoch_us(f.observed_at) > $after_t
       OR (epoch_us(f.observed_at) = $after_t AND f.finding_id > $after_id))
ORDER BY f.observed_at, f.finding_id
LIMIT $batch
"""

_AUTHZ_PAGE = """
SELECT
    CAST(event_id AS VARCHAR) AS event_id, epoch_us(time) AS time,
    source_role, source_name, source_instance,
    action, outcome, reason, http_status, client_iss, client_tenant, service_id,
    service_url, token_jti, token_kid, token_alg, token_typ, token_fingerprint, hook,
    peer_ip, trace_id
FROM events
WHERE (outcome = 'failure' OR ($all AND action = $validated))
  AND ($since IS NULL OR time >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR time < $until::TIMESTAMPTZ)
  AND ($after_t IS NULL
       OR epoch_us(time) > $after_t
       OR (epoch_us(time) = $after_t AND CAST(event_id AS VARCHAR) > $after_id))
ORDER BY time, CAST(event_id AS VARCHAR)
LIMIT $batch
"""

_STATUS_AFTER: Final = {
    None: ReviewStatus.OPEN,
    "reopen": ReviewStatus.OPEN,
    "acknowledge": ReviewStatus.ACKNOWLEDGED,
    "assign": ReviewStatus.ASSIGNED,
    "resolve": ReviewStatus.RESOLVED,
    "false_positive": ReviewStatus.FALSE_POSITIVE,
}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: object) -> datetime:
    # Times are selected as epoch microseconds: Arrow's conversion of zoned timestamps
    # to Python is the slowest step of an export otherwise.
    if not isinstance(value, int):
        raise TypeError("expected epoch microseconds")
    return _EPOCH + timedelta(microseconds=value)


def _utc_or_none(value: object) -> datetime | None:
    return None if value is None else _utc(value)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _pages(
    store: StoreHandle,
    sql: str,
    params: dict[str, object],
    *,
    time_column: str,
    id_column: str,
    batch_size: int,
) -> Iterator[dict[str, object]]:
    after_t: int | None = None
    after_id: str | None = None
    while True:
        table = store.query(
            sql, {**params, "after_t": after_t, "after_id": after_id, "batch": batch_size}
        )
        columns = table.to_pydict()
        names = list(columns)
        page = [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
        yield from page
        if len(page) < batch_size:
            return
        last = page[-1]
        after_t = int(str(last[time_column]))
        after_id = str(last[id_column])


def iter_findings(
    store: StoreHandle,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> Iterator[FindingRecord]:
    """Findings observed in ``[since, until)``, oldest first, read page by page."""
    params: dict[str, object] = {"since": _iso(since), "until": _iso(until)}
    for row in _pages(
        store,
        _FINDINGS_PAGE,
        params,
        time_column="observed_at",
        id_column="finding_id",
        batch_size=batch_size,
    ):
        event_ids = row["event_ids"]
        yield FindingRecord(
            finding_id=str(row["finding_id"]),
            detector=str(row["detector"]),
            rule=str(row["rule"]),
            kind=str(row["kind"]),
            severity=Severity(str(row["severity"])),
            observed_at=_utc(row["observed_at"]),
            title=str(row["title"]),
            client_iss=_text(row["client_iss"]),
            service_id=_text(row["service_id"]),
            fingerprint=_text(row["fingerprint"]),
            location=_text(row["location"]),
            origin=_text(row["origin"]),
            event_ids=tuple(str(e) for e in event_ids) if isinstance(event_ids, list) else (),
            safeguard=_text(row["safeguard"]),
            reference=_text(row["reference"]),
            window_start=_utc_or_none(row["window_start"]),
            window_end=_utc_or_none(row["window_end"]),
            count=int(str(row["count"])),
            revision=int(str(row["revision"])),
            facts=exportable_facts(_text(row["facts_json"])),
            first_stored_at=_utc(row["first_stored_at"]),
            last_stored_at=_utc(row["last_stored_at"]),
            status=_STATUS_AFTER.get(_text(row["last_decision"]), ReviewStatus.OPEN),
        )


def iter_authz(
    store: StoreHandle,
    scope: EventScope,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> Iterator[AuthzRecord]:
    """Authz events in ``[since, until)`` within ``scope``, oldest first, page by page."""
    if scope is EventScope.NONE:
        return
    params: dict[str, object] = {
        "since": _iso(since),
        "until": _iso(until),
        "all": scope is EventScope.ALL,
        "validated": AuthzAction.TOKEN_VALIDATED.value,
    }
    for row in _pages(
        store, _AUTHZ_PAGE, params, time_column="time", id_column="event_id", batch_size=batch_size
    ):
        status = row["http_status"]
        yield AuthzRecord(
            event_id=str(row["event_id"]),
            time=_utc(row["time"]),
            source_role=str(row["source_role"]),
            source_name=str(row["source_name"]),
            source_instance=_text(row["source_instance"]),
            action=str(row["action"]),
            outcome=Outcome(str(row["outcome"])),
            reason=_text(row["reason"]),
            http_status=int(str(status)) if status is not None else None,
            client_iss=_text(row["client_iss"]),
            client_tenant=_text(row["client_tenant"]),
            service_id=_text(row["service_id"]),
            service_url=_text(row["service_url"]),
            token_jti=_text(row["token_jti"]),
            token_kid=_text(row["token_kid"]),
            token_alg=_text(row["token_alg"]),
            token_typ=_text(row["token_typ"]),
            token_fingerprint=_text(row["token_fingerprint"]),
            hook=_text(row["hook"]),
            peer_ip=_text(row["peer_ip"]),
            trace_id=_text(row["trace_id"]),
        )

"""What the pages show, checked against counts taken straight from the database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pytest
from dashboard_scenario import (
    CANARY_JWT,
    END,
    GREETER,
    LAKEVIEW,
    NORTHSIDE,
    NOW,
    START,
    STMARYS,
    Scenario,
)

from dashboards.insights import (
    FindingFilters,
    Period,
    TimeAxis,
    findings_page,
    group_timeline,
    incident,
    overview,
    party_names,
    party_page,
    reason_color,
)
from dashboards.storage import open_store

MONTH = Period(START, END)


def sql(scenario: Scenario, text: str, *params: object) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(scenario.path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(text, list(params)).fetchall()
    finally:
        con.close()


def test_overview_totals_match_sql(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        data = overview(store, MONTH, now=NOW)
    between = "observed_at >= ? AND observed_at < ?"
    [(findings,)] = sql(
        shared_scenario,
        f"SELECT count(*) FROM findings WHERE {between}",  # noqa: S608 - fixed text
        START,
        END,
    )
    [(reviewed,)] = sql(
        shared_scenario,
        f"SELECT count(*) FROM findings WHERE {between} "  # noqa: S608
        "AND finding_id IN (SELECT finding_id FROM reviews)",
        START, END,
    )  # fmt: skip
    [(failures,)] = sql(
        shared_scenario,
        "SELECT count(*) FROM events WHERE outcome = 'failure' AND time >= ? AND time < ?",
        START, END,
    )  # fmt: skip
    assert (data.totals.findings, data.totals.reviewed, data.totals.failures) == (
        findings,
        reviewed,
        failures,
    )
    assert sum(s.total for s in data.by_severity) == findings
    assert sum(s.total for s in data.by_detector) == findings
    assert sum(s.total for s in data.by_status) == findings
    assert sum(b.value for b in data.failure_bars) == failures


def test_overview_series_follow_the_days_of_the_period(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        data = overview(store, MONTH, now=NOW)
    assert data.axis.unit == "day"
    assert len(data.axis.keys) == 30
    expected = dict(
        sql(
            shared_scenario,
            "SELECT CAST(observed_at AS DATE), count(*) FROM findings "
            "WHERE severity = 'critical' GROUP BY 1",
        )
    )
    critical = next(s for s in data.by_severity if s.name == "critical")
    drawn = {day: n for day, n in zip(data.axis.keys, critical.values, strict=True) if n}
    assert drawn == expected


def test_open_status_agrees_between_queries(shared_scenario: Scenario) -> None:
    # findings_by_day counts open findings; review_status derives statuses: same answer.
    with open_store(shared_scenario.path) as store:
        data = overview(store, MONTH, now=NOW)
    open_series = next(s for s in data.by_status if s.name == "open")
    assert open_series.total == data.totals.open


@pytest.mark.parametrize(
    ("first", "last", "unit", "columns"),
    [
        # A month: one column a day.
        (date(2026, 11, 1), date(2026, 11, 30), "day", 30),
        # A single day is still a chart.
        (date(2026, 11, 5), date(2026, 11, 5), "day", 1),
        # A year: weeks starting on Monday.
        (date(2026, 1, 1), date(2026, 12, 31), "week", 53),
        # Six years (the HIPAA retention period): months.
        (date(2021, 1, 1), date(2026, 12, 31), "month", 72),
    ],
)
def test_time_axis_picks_the_finest_unit_that_fits(
    first: date, last: date, unit: str, columns: int
) -> None:
    axis = TimeAxis.spanning(first, last)
    assert (axis.unit, len(axis.keys)) == (unit, columns)
    assert axis.key(last) in axis.keys


def test_findings_page_pages_through_the_filtered_rows(shared_scenario: Scenario) -> None:
    filters = FindingFilters(detector="phi_in_logs")
    with open_store(shared_scenario.path) as store:
        first = findings_page(store, filters, Period(None, None), page=1, now=NOW, page_size=20)
        last = findings_page(store, filters, Period(None, None), page=2, now=NOW, page_size=20)
        beyond = findings_page(store, filters, Period(None, None), page=9, now=NOW, page_size=20)
    assert (first.total, first.pages, len(first.rows), len(last.rows)) == (34, 2, 20, 14)
    assert beyond.page == 2  # past the end shows the last page
    assert {r["detector"] for r in first.rows + last.rows} == {"phi_in_logs"}


def test_party_page_of_a_client(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        page = party_page(store, "client", LAKEVIEW, Period(None, None), now=NOW)
    [(events, failures)] = sql(
        shared_scenario,
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'failure') FROM events "
        "WHERE client_iss = ?",
        LAKEVIEW,
    )
    assert page.summary is not None
    assert (page.summary["events"], page.summary["failures"]) == (events, failures)
    assert sum(s.total for s in page.failures_over_time) == failures
    assert sum(b.value for b in page.failure_bars) == failures
    attack = next(r for r in page.anomaly_rows if r.name == shared_scenario.fid("attack"))
    assert (attack.observed, attack.baseline) == (42.0, 0.4)


def test_party_page_of_a_service_shows_its_replays(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        page = party_page(store, "service", GREETER, Period(None, None), now=NOW)
    assert [(r["client_iss"], r["presentations"]) for r in page.replay] == [(NORTHSIDE, 5)]
    assert [r["finding_id"] for r in page.replay_findings] == [shared_scenario.fid("replay")]


def test_party_names_for_filter_menus(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        names = party_names(store, "client", now=NOW)
    assert names == sorted({e.client_iss for e in shared_scenario.events if e.client_iss})


def test_incident_gathers_finding_timeline_history_and_related(
    shared_scenario: Scenario,
) -> None:
    with open_store(shared_scenario.path) as store:
        found = incident(store, shared_scenario.fid("leak"), now=NOW)
    assert found is not None
    assert found.state.status.value == "assigned"
    assert found.state.assignee == "sam.platform"
    linked = [(t["what"], t["count"]) for t in found.timeline if t["record"] == "event"]
    # First use, then five replays folded into one entry, all linked by fingerprint.
    assert linked == [("token.validated", 1), ("token.rejected", 5)]
    assert [r["finding_id"] for r in found.related] == [shared_scenario.fid("replay")]
    assert [a.value for a in found.actions] == ["assign", "resolve", "false_positive", "comment"]


def test_incident_masks_leftover_secrets(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        found = incident(store, shared_scenario.fid("secret"), now=NOW)
    assert found is not None
    assert CANARY_JWT not in found.evidence.excerpt
    assert found.evidence.masked == 1


@pytest.mark.parametrize("finding_id", ["0" * 32, "not-an-id", ""])
def test_incident_of_an_unknown_or_malformed_id_is_none(
    shared_scenario: Scenario, finding_id: str
) -> None:
    with open_store(shared_scenario.path) as store:
        assert incident(store, finding_id, now=NOW) is None


def test_period_label_reads_as_utc_dates() -> None:
    label = Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)).label
    assert label == "01 Nov 2026 \N{EN DASH} 01 Dec 2026 UTC"
    assert Period(None, None).label == "the beginning \N{EN DASH} now UTC"


def test_common_failure_reasons_get_distinct_colours() -> None:
    common = ["expired", "bad_signature", "aud_mismatch", "unknown_kid", "alg_not_allowed",
              "replayed_jti", "missing_claim", "unknown_issuer", "not_yet_valid"]  # fmt: skip
    assert len({reason_color(r) for r in common}) == len(common)


def test_group_timeline_folds_only_consecutive_alike_events() -> None:
    def event(minute: int, reason: str, jti: str) -> dict[str, object]:
        return {
            "occurred_at": datetime(2026, 11, 1, 0, minute, tzinfo=UTC), "record": "event",
            "what": "token.rejected", "result": "failure", "reason": reason,
            "client_iss": "c", "service_id": "s", "peer_ip": "p", "link": "jti", "jti": jti,
        }  # fmt: skip

    review = {"occurred_at": datetime(2026, 11, 1, 0, 3, tzinfo=UTC), "record": "review"}
    entries = [event(0, "expired", "a"), event(1, "expired", "b"), event(2, "expired", "b"),
               review, event(4, "expired", "c"), event(5, "bad_signature", "c")]  # fmt: skip
    grouped = group_timeline(entries)
    assert [(g["record"], g.get("reason"), g["count"], g["jtis"]) for g in grouped] == [
        ("event", "expired", 3, 2),
        ("review", None, 1, 1),
        ("event", "expired", 1, 1),  # a review in between starts a new run
        ("event", "bad_signature", 1, 1),
    ]
    assert grouped[0]["until"] == datetime(2026, 11, 1, 0, 2, tzinfo=UTC)


def test_a_party_silent_at_the_end_of_the_period_is_a_coverage_gap(
    shared_scenario: Scenario,
) -> None:
    # st-marys sent events until 16 Nov: busy for most of the month, silent for its last week.
    with open_store(shared_scenario.path) as store:
        data = overview(store, MONTH, now=NOW)
    assert [(g["party"], g["name"]) for g in data.gaps] == [("client", STMARYS)]
    assert data.totals.gaps == 1

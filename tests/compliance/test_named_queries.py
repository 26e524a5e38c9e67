"""Every named query, run against the fixture database (see conftest.py for the scenario)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from audit_scenario import GREETER, MEDCHECK, NOW, ORDERSIGN, A, AuditFixture, B, C

from dashboards.catalog import catalog, run_query
from dashboards.storage import open_store


def rows(fixture: AuditFixture, name: str, **params: object) -> list[dict[str, object]]:
    with open_store(fixture.path) as store:
        return run_query(store, name, params, now=NOW).to_pylist()


def test_leaked_tokens_put_live_tokens_first_and_count_a_token_once(
    shared_audit_db: AuditFixture,
) -> None:
    result = rows(shared_audit_db, "leaked_tokens")
    assert [
        (r["day"], r["service_id"], r["kind"], r["live"], r["tokens"], r["findings"])
        for r in result
    ] == [
        (date(2026, 11, 21), MEDCHECK, "jwt", True, 1, 1),  # live computed from exp
        (date(2026, 11, 20), GREETER, "jwt", True, 1, 2),  # one token, logged twice
        (date(2026, 11, 20), GREETER, "jwt", False, 1, 1),
        (date(2026, 11, 21), MEDCHECK, "bearer_token", None, 1, 1),  # no expiry: unknown
    ]


def test_leaked_tokens_filter_by_service(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "leaked_tokens", service=MEDCHECK)
    assert sum(int(str(r["findings"])) for r in result) == 2


def test_phi_exposures_group_by_service_kind_and_safe_harbor(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "phi_exposures")
    got = {
        (r["service_id"], r["kind"], r["safe_harbor"]): (
            r["identifiers"],
            r["findings"],
            r["occurrences"],
        )
        for r in result
    }
    assert got == {
        (GREETER, "ssn", "G-social-security-numbers"): (1, 2, 3),
        (GREETER, "mrn", "H-medical-record-numbers"): (1, 1, 1),
        (MEDCHECK, "email", "F-email-addresses"): (1, 1, 1),
    }


def test_replay_incidents_by_client(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "replay_incidents")
    got = {
        r["client_iss"]: (r["incidents"], r["presentations"], r["tokens"], r["open"])
        for r in result
    }
    # R1 was only commented on: a comment is no decision, so it is still open.
    assert got == {B: (2, 7, 2, 2), A: (1, 2, 1, 1)}


def test_validation_failures_by_day_client_service_and_reason(
    shared_audit_db: AuditFixture,
) -> None:
    result = rows(shared_audit_db, "validation_failures")
    assert len(result) == 7
    assert sum(int(str(r["failures"])) for r in result) == 17
    alg = next(r for r in result if r["reason"] == "alg_not_allowed")
    assert (alg["day"], alg["client_iss"], alg["failures"], alg["tokens"], alg["peers"]) == (
        date(2026, 11, 22),
        B,
        5,
        5,
        1,
    )
    replay = next(r for r in result if r["reason"] == "replayed_jti" and r["client_iss"] == B)
    assert (replay["failures"], replay["tokens"]) == (3, 1)


def test_validation_failures_filter_by_period_and_reason(shared_audit_db: AuditFixture) -> None:
    result = rows(
        shared_audit_db,
        "validation_failures",
        since="2026-11-20",
        until="2026-11-21",
        reason="expired",
    )
    assert [(r["client_iss"], r["failures"]) for r in result] == [(A, 4)]


def test_anomalies_carry_baseline_and_score_highest_first(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "anomalies")
    assert [(r["kind"], r["baseline"], r["score"], r["status"]) for r in result] == [
        ("alg_not_allowed", 0.4, 9.5, "acknowledged"),
        ("expired", 1.0, 3.2, "open"),
        ("bad_signature", None, None, "open"),  # a rule without a baseline
    ]


def test_anomalies_filter_by_minimum_score(shared_audit_db: AuditFixture) -> None:
    assert [r["client_iss"] for r in rows(shared_audit_db, "anomalies", min_score=5)] == [B]


def test_policy_violations_by_rule_most_severe_first(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "policy_violations")
    assert [(r["rule"], r["findings"], r["occurrences"], r["open"]) for r in result] == [
        ("alg_none", 1, 1, 1),
        ("tls_below_1_2", 2, 3, 2),  # Q2 was resolved, then reopened: open again
        ("jwt_lifetime_over_5_min", 1, 1, 1),
    ]
    assert result[0]["reference"] == "https://cds-hooks.hl7.org/2.0/#trusting-cds-clients"


def test_coverage_gaps_name_parties_that_went_silent(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "coverage_gaps", since="2026-11-23", until="2026-11-30")
    assert [(r["party"], r["name"], r["events_before"], r["days_silent"]) for r in result] == [
        ("client", C, 14, 16),
        ("service", ORDERSIGN, 9, 11),
    ]


def test_coverage_gaps_default_to_the_last_seven_days_before_until(
    shared_audit_db: AuditFixture,
) -> None:
    result = rows(shared_audit_db, "coverage_gaps", until="2026-11-30")
    assert {r["name"] for r in result} == {C, ORDERSIGN}


def test_coverage_gaps_ignore_parties_silent_since_before_the_lookback(
    shared_audit_db: AuditFixture,
) -> None:
    # Looking back 3 days from Nov 23: ehr-c (last seen Nov 14) is out of sight.
    result = rows(
        shared_audit_db, "coverage_gaps", since="2026-11-23", until="2026-11-30", lookback_days=5
    )
    assert [r["name"] for r in result] == [ORDERSIGN]


def test_unreviewed_findings_are_late_or_never_reviewed(shared_audit_db: AuditFixture) -> None:
    fx = shared_audit_db
    result = rows(fx, "unreviewed_findings", as_of="2026-11-30")
    assert {r["finding_id"] for r in result} == {
        fx.fid(label) for label in ("L2", "L3", "L4", "L5", "P2", "P3", "R2", "V2", "Q1", "Q3")
    }
    late = next(r for r in result if r["finding_id"] == fx.fid("L2"))
    assert late["status"] == "acknowledged"  # reviewed, but nine days after it was stored


@pytest.mark.parametrize(
    ("params", "count"),
    [
        # V3 is informational: shown only when asked for.
        ({"min_severity": "info"}, 11),
        ({"min_severity": "critical"}, 3),
        # Nine days forgive L2 (first reviewed 8.9 days after it was stored) and leave
        # only findings stored by Nov 21: L5, R2, V2, Q3.
        ({"days": 9}, 4),
        # Judged on Nov 25 with the default 7 days, only findings stored by Nov 18 count.
        ({"as_of": "2026-11-25"}, 1),
    ],
)
def test_unreviewed_findings_parameters(
    shared_audit_db: AuditFixture, params: dict[str, object], count: int
) -> None:
    params.setdefault("as_of", "2026-11-30")
    assert len(rows(shared_audit_db, "unreviewed_findings", **params)) == count


def test_client_activity_is_one_timeline_of_events_and_findings(
    shared_audit_db: AuditFixture,
) -> None:
    result = rows(shared_audit_db, "client_activity", iss=A)
    records = [r["record"] for r in result]
    assert records.count("event") == 100
    assert records.count("finding") == 7
    times = [r["occurred_at"] for r in result]
    assert times == sorted(times)  # type: ignore[type-var]


def test_client_activity_honours_its_limit(shared_audit_db: AuditFixture) -> None:
    assert len(rows(shared_audit_db, "client_activity", iss=A, limit=10)) == 10


def test_fingerprint_trail_follows_one_token_through_events_findings_and_reviews(
    shared_audit_db: AuditFixture,
) -> None:
    fx = shared_audit_db
    result = rows(fx, "fingerprint_trail", fingerprint=fx.fp_leak)
    assert [(r["record"], r["what"]) for r in result] == [
        ("event", "token.validated"),
        ("finding", "leaked_token/jwt"),
        ("event", "token.rejected"),
        ("finding", "replay_burst/jti_replayed"),
        ("finding", "leaked_token/jwt"),
        ("review", "acknowledge"),
        ("review", "assign"),
        ("review", "resolve"),
    ]


def test_review_coverage_per_week(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "review_coverage")
    got = [
        (
            r["period_start"],
            r["findings"],
            r["reviewed"],
            r["within_sla"],
            r["still_open"],
            r["reviews"],
            r["reviewers"],
        )
        for r in result
    ]
    assert got == [
        (date(2026, 11, 9), 2, 1, 1, 2, 2, 1),
        (date(2026, 11, 16), 14, 5, 4, 10, 5, 3),
        (date(2026, 11, 23), 3, 0, 0, 3, 2, 2),
    ]
    assert result[1]["coverage_pct"] == pytest.approx(35.7)


def test_review_coverage_per_month(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "review_coverage", period="month")
    assert [(r["period_start"], r["findings"], r["reviewed"]) for r in result] == [
        (date(2026, 11, 1), 19, 6)
    ]


def test_findings_by_day_adds_up_to_every_finding(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "findings_by_day")
    assert sum(int(str(r["findings"])) for r in result) == 19
    assert sum(int(str(r["open"])) for r in result) == 15  # 4 decided: L1, L2, P1, V1


def test_pipeline_runs_show_when_monitoring_ran(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "pipeline_runs", since="2026-11-10")
    assert [(r["run_id"], r["status"]) for r in result] == [("run-2", "running")]


def test_every_shipped_query_is_tested_here() -> None:
    # A new .sql file needs a test in this module that runs it by name.
    source = Path(__file__).read_text(encoding="utf-8")
    untested = [
        name
        for name in catalog()
        if f'rows(shared_audit_db, "{name}"' not in source and f'rows(fx, "{name}"' not in source
    ]
    assert untested == []


# The questions the dashboard and the report ask (issue 7, dashboard and report).


def test_findings_list_newest_first_with_status_and_total(shared_audit_db: AuditFixture) -> None:
    fx = shared_audit_db
    result = rows(fx, "findings", limit=5)
    assert len(result) == 5
    assert {r["total"] for r in result} == {19}  # before the limit
    times = [r["observed_at"] for r in result]
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]
    decided = {r["finding_id"]: r["status"] for r in rows(fx, "findings", limit=100)}
    assert decided[fx.fid("L1")] == "resolved"
    assert decided[fx.fid("P1")] == "false_positive"
    assert decided[fx.fid("R1")] == "open"  # commented on only
    assert decided[fx.fid("Q2")] == "open"  # resolved, then reopened


@pytest.mark.parametrize(
    ("params", "labels"),
    [
        ({"status": "open", "detector": "leaked_token"}, {"L3", "L4", "L5"}),
        ({"min_severity": "critical"}, {"L1", "L4", "L5", "Q1"}),
        ({"severity": "info"}, {"V3"}),
        ({"client": C}, {"Q2", "Q3"}),
        ({"service": ORDERSIGN}, set()),
        ({"rule": "ssn", "since": "2026-11-22"}, {"P2"}),
        ({"status": "acknowledged"}, {"L2", "V1"}),
    ],
)
def test_findings_list_filters(
    shared_audit_db: AuditFixture, params: dict[str, object], labels: set[str]
) -> None:
    fx = shared_audit_db
    result = rows(fx, "findings", **params)
    assert {r["finding_id"] for r in result} == {fx.fid(label) for label in labels}


def test_findings_list_pages_with_offset(shared_audit_db: AuditFixture) -> None:
    first = rows(shared_audit_db, "findings", limit=10)
    second = rows(shared_audit_db, "findings", limit=10, offset=10)
    assert len(second) == 9
    assert not {r["finding_id"] for r in first} & {r["finding_id"] for r in second}


def test_finding_detail_carries_no_evidence_but_the_key_id(shared_audit_db: AuditFixture) -> None:
    fx = shared_audit_db
    (row,) = rows(fx, "finding_detail", finding_id=fx.fid("L1"))
    assert "evidence" not in row
    assert "facts_json" not in row
    assert row["fingerprint"] == fx.fp_leak
    assert row["fingerprint_key_id"] == fx.fingerprinter.key_id
    assert row["alerts"] == 0
    assert rows(fx, "finding_detail", finding_id="0" * 32) == []


def test_incident_timeline_links_events_by_fingerprint_and_adds_reviews(
    shared_audit_db: AuditFixture,
) -> None:
    fx = shared_audit_db
    result = rows(fx, "incident_timeline", finding_id=fx.fid("L1"))
    assert [(r["record"], r["what"], r["link"]) for r in result] == [
        ("event", "token.validated", "fingerprint"),
        ("finding", "observed", None),
        ("finding", "stored", None),
        ("event", "token.rejected", "fingerprint"),
        ("review", "acknowledge", None),
        ("review", "assign", None),
        ("review", "resolve", None),
    ]
    assert [r["actor"] for r in result if r["record"] == "review"] == ["alice", "alice", "bob"]


def test_incident_timeline_shows_the_window_and_revisions_of_an_incident(
    shared_audit_db: AuditFixture,
) -> None:
    fx = shared_audit_db
    result = rows(fx, "incident_timeline", finding_id=fx.fid("R1"))
    moments = [r["what"] for r in result if r["record"] == "finding"]
    assert moments == ["window started", "observed", "stored", "revision 2 stored"]
    assert sum(1 for r in result if r["record"] == "event") == 3  # the replayed presentations


def test_incident_timeline_honours_its_limit(shared_audit_db: AuditFixture) -> None:
    fx = shared_audit_db
    assert len(rows(fx, "incident_timeline", finding_id=fx.fid("L1"), limit=2)) == 2


def test_related_findings_share_a_fingerprint_or_a_jti(shared_audit_db: AuditFixture) -> None:
    fx = shared_audit_db
    result = rows(fx, "related_findings", finding_id=fx.fid("L1"))
    assert {(r["finding_id"], r["link"]) for r in result} == {
        (fx.fid("L5"), "fingerprint"),
        (fx.fid("R2"), "fingerprint"),
    }
    assert rows(fx, "related_findings", finding_id=fx.fid("Q4")) == []


def test_parties_sum_events_failures_and_findings_per_client(
    shared_audit_db: AuditFixture,
) -> None:
    fx = shared_audit_db
    result = {r["name"]: r for r in rows(fx, "parties")}
    for iss in (A, B, C):
        events = [e for e in fx.events if e.client_iss == iss]
        assert result[iss]["events"] == len(events)
        assert result[iss]["failures"] == sum(1 for e in events if e.outcome == "failure")
        assert result[iss]["findings"] == sum(
            1 for f in fx.findings.values() if f.client_iss == iss
        )
    assert result["(unknown)"]["findings"] == 4  # PHI findings name no client
    assert list(result)[-1] == "(unknown)"


def test_parties_per_service_in_a_period(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "parties", party="service", since="2026-11-20")
    assert {r["name"] for r in result} == {GREETER, MEDCHECK, "(unknown)"}  # order-sign silent


def test_review_status_adds_up_to_every_finding(shared_audit_db: AuditFixture) -> None:
    result = rows(shared_audit_db, "review_status")
    by_status: dict[str, int] = {}
    for r in result:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + int(str(r["findings"]))
    assert by_status == {"open": 15, "acknowledged": 2, "resolved": 1, "false_positive": 1}
    assert sum(int(str(r["commented"])) for r in result) == 1  # R1


def test_store_extent_counts_what_the_store_holds(shared_audit_db: AuditFixture) -> None:
    fx = shared_audit_db
    (extent,) = rows(fx, "store_extent")
    assert extent["events"] == len(fx.events)
    assert (extent["findings"], extent["reviews"], extent["runs"]) == (19, 9, 2)
    assert extent["first_event"] == min(e.time for e in fx.events)


def test_anomalies_and_replay_incidents_filter_by_service(shared_audit_db: AuditFixture) -> None:
    assert [r["kind"] for r in rows(shared_audit_db, "anomalies", service=MEDCHECK)] == [
        "alg_not_allowed"
    ]
    replay = rows(shared_audit_db, "replay_incidents", service=GREETER)
    assert [(r["client_iss"], r["incidents"]) for r in replay] == [(A, 1)]

"""The review workflow: the state machine, the append-only history, and agreement with SQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from audit_scenario import CANARY_MRN, REVIEWS, AuditFixture, at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.vocabulary import ReviewAction, ReviewStatus
from dashboards.review import (
    Review,
    ReviewState,
    TransitionRejected,
    UnknownFinding,
    check_transition,
    current_state,
    derive_state,
    load_history,
    record_review,
    states_of,
)
from dashboards.storage import open_store
from pipelines.store import schema

Act = ReviewAction
St = ReviewStatus
FID = "0" * 32


def state(status: ReviewStatus, assignee: str | None = None) -> ReviewState:
    return ReviewState(FID, status, assignee=assignee)


@pytest.mark.parametrize(
    ("status", "action", "extra", "expected"),
    [
        # The usual path: someone looks, hands it on, fixes it.
        (St.OPEN, Act.ACKNOWLEDGE, {}, St.ACKNOWLEDGED),
        (St.ACKNOWLEDGED, Act.ASSIGN, {"assignee": "bob"}, St.ASSIGNED),
        (St.ASSIGNED, Act.RESOLVE, {}, St.RESOLVED),
        # Triage may skip steps: assign or close straight from open.
        (St.OPEN, Act.ASSIGN, {"assignee": "bob"}, St.ASSIGNED),
        (St.OPEN, Act.RESOLVE, {}, St.RESOLVED),
        (St.OPEN, Act.FALSE_POSITIVE, {"note": "test data"}, St.FALSE_POSITIVE),
        # Handing over to someone else is a reassignment.
        (St.ASSIGNED, Act.ASSIGN, {"assignee": "carol"}, St.ASSIGNED),
        # Closed findings come back only by reopening, with a reason.
        (St.RESOLVED, Act.REOPEN, {"note": "seen again"}, St.OPEN),
        (St.FALSE_POSITIVE, Act.REOPEN, {"note": "it was real"}, St.OPEN),
        # A comment is allowed anywhere and changes nothing.
        (St.RESOLVED, Act.COMMENT, {"note": "ticket SEC-12"}, St.RESOLVED),
        (St.OPEN, Act.COMMENT, {"note": "looking"}, St.OPEN),
    ],
)
def test_allowed_transitions(
    status: ReviewStatus, action: ReviewAction, extra: dict[str, str], expected: ReviewStatus
) -> None:
    assignee = "bob" if status is St.ASSIGNED else None
    assert check_transition(state(status, assignee), action, **extra) is expected


@pytest.mark.parametrize(
    ("status", "action", "extra", "error"),
    [
        # Closing twice would hide who really closed it.
        (St.RESOLVED, Act.RESOLVE, {}, "is resolved: 'resolve' is not allowed"),
        (St.FALSE_POSITIVE, Act.RESOLVE, {}, "is false_positive"),
        # Only closed findings can be reopened.
        (St.OPEN, Act.REOPEN, {"note": "x"}, "is open: 'reopen' is not allowed"),
        # Acknowledging twice, or after assignment, says nothing new.
        (St.ACKNOWLEDGED, Act.ACKNOWLEDGE, {}, "is acknowledged"),
        (St.ASSIGNED, Act.ACKNOWLEDGE, {}, "is assigned"),
        # A closed finding is not worked on until reopened.
        (St.RESOLVED, Act.ASSIGN, {"assignee": "bob"}, "is resolved"),
        # Assigning needs someone to assign to, and only assigning takes one.
        (St.OPEN, Act.ASSIGN, {}, "needs an assignee"),
        (St.OPEN, Act.RESOLVE, {"assignee": "bob"}, "only 'assign' takes an assignee"),
        # Decisions an auditor will question need the reason written down.
        (St.OPEN, Act.FALSE_POSITIVE, {}, "'false_positive' needs a note"),
        (St.RESOLVED, Act.REOPEN, {}, "'reopen' needs a note"),
        (St.OPEN, Act.COMMENT, {}, "'comment' needs a note"),
    ],
)
def test_refused_transitions(
    status: ReviewStatus, action: ReviewAction, extra: dict[str, str], error: str
) -> None:
    with pytest.raises(TransitionRejected, match=error):
        check_transition(state(status), action, **extra)


def test_reassigning_to_the_same_person_is_refused() -> None:
    with pytest.raises(TransitionRejected, match="already assigned"):
        check_transition(state(St.ASSIGNED, "bob"), Act.ASSIGN, assignee="bob")


def test_status_is_derived_from_the_history_in_time_order() -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    history = [
        Review("3", FID, Act.REOPEN, "carol", t + timedelta(hours=3), note="again"),
        Review("1", FID, Act.ASSIGN, "alice", t + timedelta(hours=1), assignee="bob"),
        Review("2", FID, Act.RESOLVE, "bob", t + timedelta(hours=2)),
        Review("4", FID, Act.COMMENT, "dave", t + timedelta(hours=4), note="noted"),
    ]
    derived = derive_state(FID, history)
    assert derived.status is St.OPEN
    assert derived.assignee is None  # reopening clears the assignment
    assert (derived.updated_by, derived.entries) == ("dave", 4)


def test_a_finding_without_history_is_open() -> None:
    assert derive_state(FID, []) == ReviewState(FID, St.OPEN)


def test_recording_a_review_appends_one_row_and_changes_the_status(audit_db: AuditFixture) -> None:
    fid = audit_db.fid("L3")
    with open_store(audit_db.path, write=True) as store:
        review = record_review(store, fid, Act.ACKNOWLEDGE, actor="alice", at=at(30, 8))
        after = current_state(store, fid)
    assert after.status is St.ACKNOWLEDGED
    assert (after.updated_by, after.updated_at) == ("alice", at(30, 8))
    with open_store(audit_db.path) as store:
        assert load_history(store, fid) == [review]


def test_history_is_append_only(audit_db: AuditFixture) -> None:
    fid = audit_db.fid("L1")
    with open_store(audit_db.path, write=True) as store:
        before = load_history(store, fid)
        record_review(store, fid, Act.REOPEN, actor="erin", at=at(30, 9), note="token seen again")
        record_review(store, fid, Act.RESOLVE, actor="erin", at=at(30, 10))
        after = load_history(store, fid)
    assert after[: len(before)] == before  # earlier entries untouched
    assert [r.action for r in after[len(before) :]] == [Act.REOPEN, Act.RESOLVE]


def test_reviewing_an_unknown_finding_is_an_error(audit_db: AuditFixture) -> None:
    with (
        open_store(audit_db.path, write=True) as store,
        pytest.raises(UnknownFinding, match=r"no finding 0{32}"),
    ):
        record_review(store, "0" * 32, Act.RESOLVE, actor="alice", at=at(30))


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-finding",
        "' OR 1=1 --",
        "A" * 32,  # ids are lowercase hex
    ],
)
def test_a_malformed_finding_id_is_refused_before_any_query(
    audit_db: AuditFixture, bad_id: str
) -> None:
    with (
        open_store(audit_db.path) as store,
        pytest.raises(UnknownFinding, match="32 lowercase hex"),
    ):
        load_history(store, bad_id)


def test_an_invalid_transition_writes_nothing(audit_db: AuditFixture) -> None:
    fid = audit_db.fid("L1")  # resolved
    with open_store(audit_db.path, write=True) as store:
        with pytest.raises(TransitionRejected):
            record_review(store, fid, Act.RESOLVE, actor="alice", at=at(30))
        assert len(load_history(store, fid)) == 3


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"actor": "  "}, "needs an actor"),
        ({"actor": "x" * 200}, "actor is longer than 128"),
        ({"actor": "eve\x1b[31m"}, "actor holds control characters"),
        ({"actor": "alice", "note": "n" * 3000}, "note is longer than 2000"),
        ({"actor": "alice", "at": datetime(2026, 11, 30)}, "must carry a time zone"),  # noqa: DTZ001
        ({"actor": "alice", "at": at(1)}, "before the finding's last review"),
    ],
)
def test_review_fields_are_validated(
    audit_db: AuditFixture, fields: dict[str, object], error: str
) -> None:
    arguments: dict[str, object] = {"at": at(30), **fields}
    with (
        open_store(audit_db.path, write=True) as store,
        pytest.raises(TransitionRejected, match=error),
    ):
        record_review(store, audit_db.fid("L2"), Act.RESOLVE, **arguments)  # type: ignore[arg-type]


def test_a_multiline_note_is_kept(audit_db: AuditFixture) -> None:
    with open_store(audit_db.path, write=True) as store:
        review = record_review(
            store,
            audit_db.fid("L3"),
            Act.COMMENT,
            actor="alice",
            at=at(30),
            note="line one\nline two",
        )
    assert review.note == "line one\nline two"


def test_states_of_many_findings_at_once(shared_audit_db: AuditFixture) -> None:
    fx = shared_audit_db
    with open_store(fx.path) as store:
        states = states_of(store, [fx.fid(x) for x in ("L1", "L2", "P1", "Q2", "R1", "L3")])
    assert {
        label: states[fx.fid(label)].status for label in ("L1", "L2", "P1", "Q2", "R1", "L3")
    } == {
        "L1": St.RESOLVED,
        "L2": St.ACKNOWLEDGED,
        "P1": St.FALSE_POSITIVE,
        "Q2": St.OPEN,
        "R1": St.OPEN,
        "L3": St.OPEN,
    }
    assert states[fx.fid("L1")].entries == 3


def test_the_fixture_history_holds_a_note_with_a_canary() -> None:
    # The export canary test relies on this: review notes are free text typed by people.
    assert any(note and CANARY_MRN in note for *_, note in REVIEWS)


SQL_STATUS = """
SELECT CASE arg_max(action, struct_pack(t := reviewed_at, id := review_id))
              FILTER (WHERE action <> 'comment')
    WHEN 'acknowledge' THEN 'acknowledged' WHEN 'assign' THEN 'assigned'
    WHEN 'resolve' THEN 'resolved' WHEN 'false_positive' THEN 'false_positive'
    ELSE 'open' END AS status
FROM reviews WHERE finding_id = $id
"""

_actions = st.sampled_from(list(ReviewAction))
_history = st.lists(st.tuples(_actions, st.integers(0, 5), st.integers(0, 99)), max_size=8)


@pytest.fixture(scope="module")
def reviews_con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    schema.migrate(con, where="memory")
    yield con
    con.close()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=_history)
def test_python_and_sql_derive_the_same_status(
    reviews_con: duckdb.DuckDBPyConnection, history: list[tuple[ReviewAction, int, int]]
) -> None:
    # The CLI and the dashboard derive status in Python; the named queries in SQL. Any
    # history, even one a race let through, must give the same answer in both.
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    reviews = [
        Review(f"{i:02d}{tie:02d}", FID, action, "x", t0 + timedelta(minutes=minute), note="n")
        for i, (action, minute, tie) in enumerate(history)
    ]
    con = reviews_con
    con.execute("DELETE FROM reviews")
    for r in reviews:
        row = r.as_row()
        con.execute(
            "INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                row[c]
                for c in (
                    "review_id",
                    "finding_id",
                    "action",
                    "actor",
                    "assignee",
                    "note",
                    "reviewed_at",
                )
            ],
        )
    sql_status = con.sql(SQL_STATUS, params={"id": FID}).fetchall()
    assert derive_state(FID, reviews).status.value == sql_status[0][0]

"""Review of findings: an append-only history, and the status derived from it.

A reviewer acknowledges, assigns, resolves, marks false-positive, reopens or comments on
a finding; each act is one row of the ``reviews`` table (who, when, what, a note) and no
row is ever changed. The current status of a finding is *derived* by replaying its
history, so the record of who decided what, and when, is the evidence itself.

The state machine (``TRANSITIONS``), status by act::

    status, act     acknowledge   assign      resolve   false_positive  reopen
    open            acknowledged  assigned    resolved  false_positive  -
    acknowledged    -             assigned    resolved  false_positive  -
    assigned        -             assigned*   resolved  false_positive  -
    resolved        -             -           -         -               open
    false_positive  -             -           -         -               open
    (* only to a different assignee)

``comment`` is allowed in every status and changes none. Every other act not in the
table is refused with :class:`TransitionRejected` (resolving a resolved finding,
reopening an open one), as is any act on a finding the store does not hold
(:class:`UnknownFinding`). A false-positive decision, a reopening and a comment need a
note: the reason is what an auditor reads.

Deriving is lenient where checking is strict: two reviewers acting at the same moment
can both pass the check, and the history then holds, say, two resolutions. The status is
the target of the last deciding act (by time, then review id), which is exactly what
the SQL of the named queries computes, so the CLI, the dashboard and the queries agree.

Called by ``auditor review`` and by the dashboard's review actions. Functions that take
a store do I/O through it; :func:`derive_state` and :func:`check_transition` are pure.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from auditor.errors import AuditorError
from auditor.vocabulary import ReviewAction, ReviewStatus

if TYPE_CHECKING:
    from dashboards.storage import StoreHandle

__all__ = [
    "MAX_ACTOR",
    "MAX_NOTE",
    "TRANSITIONS",
    "Review",
    "ReviewError",
    "ReviewState",
    "TransitionRejected",
    "UnknownFinding",
    "check_transition",
    "current_state",
    "derive_state",
    "load_history",
    "record_review",
    "states_of",
]

MAX_ACTOR: Final = 128
MAX_NOTE: Final = 2000

_S = ReviewStatus
_A = ReviewAction
TRANSITIONS: Final[Mapping[ReviewStatus, Mapping[ReviewAction, ReviewStatus]]] = {
    _S.OPEN: {
        _A.ACKNOWLEDGE: _S.ACKNOWLEDGED,
        _A.ASSIGN: _S.ASSIGNED,
        _A.RESOLVE: _S.RESOLVED,
        _A.FALSE_POSITIVE: _S.FALSE_POSITIVE,
    },
    _S.ACKNOWLEDGED: {
        _A.ASSIGN: _S.ASSIGNED,
        _A.RESOLVE: _S.RESOLVED,
        _A.FALSE_POSITIVE: _S.FALSE_POSITIVE,
    },
    _S.ASSIGNED: {
        _A.ASSIGN: _S.ASSIGNED,
        _A.RESOLVE: _S.RESOLVED,
        _A.FALSE_POSITIVE: _S.FALSE_POSITIVE,
    },
    _S.RESOLVED: {_A.REOPEN: _S.OPEN},
    _S.FALSE_POSITIVE: {_A.REOPEN: _S.OPEN},
}
"""Allowed acts per status and the status each leads to (``comment`` is always allowed)."""

_NEEDS_NOTE: Final = frozenset({_A.FALSE_POSITIVE, _A.REOPEN, _A.COMMENT})
_FINDING_ID = re.compile(r"^[0-9a-f]{32}$")
_REVIEW_COLUMNS = "review_id, finding_id, action, actor, assignee, note, reviewed_at"


class ReviewError(AuditorError):
    """A review act that cannot be recorded; the message says why."""


class UnknownFinding(ReviewError):
    """The finding id is malformed or names no finding in the store."""


class TransitionRejected(ReviewError):
    """The act is not allowed in the finding's current status, or lacks a required field."""


@dataclass(frozen=True, slots=True)
class Review:
    """One entry of a finding's review history."""

    review_id: str
    finding_id: str
    action: ReviewAction
    actor: str
    reviewed_at: datetime
    assignee: str | None = None
    note: str | None = None

    def as_row(self) -> dict[str, object]:
        """The row for the ``reviews`` table."""
        return {
            "review_id": self.review_id,
            "finding_id": self.finding_id,
            "action": self.action.value,
            "actor": self.actor,
            "assignee": self.assignee,
            "note": self.note,
            "reviewed_at": self.reviewed_at,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Review:
        """Read a row of the ``reviews`` table."""
        reviewed_at = row["reviewed_at"]
        if not isinstance(reviewed_at, datetime):
            raise TypeError("reviewed_at must be a datetime")
        return cls(
            review_id=str(row["review_id"]),
            finding_id=str(row["finding_id"]),
            action=ReviewAction(str(row["action"])),
            actor=str(row["actor"]),
            reviewed_at=reviewed_at.astimezone(UTC),
            assignee=None if row.get("assignee") is None else str(row["assignee"]),
            note=None if row.get("note") is None else str(row["note"]),
        )


@dataclass(frozen=True, slots=True)
class ReviewState:
    """Where a finding stands, derived from its history.

    Attributes:
        finding_id: The finding.
        status: The current status.
        assignee: Who it is assigned to (the last assignment since the last reopening).
        updated_at: When the last entry was recorded; ``None`` without history.
        updated_by: Who recorded the last entry.
        entries: How many entries the history holds, comments included.
    """

    finding_id: str
    status: ReviewStatus
    assignee: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    entries: int = 0


def _order(review: Review) -> tuple[datetime, str]:
    return (review.reviewed_at, review.review_id)


def derive_state(finding_id: str, history: Iterable[Review]) -> ReviewState:
    """Replay a history (in any order) into the finding's current state.

    Lenient by design: the status is the target of the last deciding act, even if a
    race let an act through that the state machine would refuse now.
    """
    status = ReviewStatus.OPEN
    assignee: str | None = None
    last: Review | None = None
    entries = 0
    for review in sorted(history, key=_order):
        entries += 1
        last = review
        if review.action is ReviewAction.COMMENT:
            continue
        if review.action is ReviewAction.REOPEN:
            status, assignee = ReviewStatus.OPEN, None
        elif review.action is ReviewAction.ASSIGN:
            status, assignee = ReviewStatus.ASSIGNED, review.assignee
        else:
            status = TRANSITIONS[ReviewStatus.OPEN][review.action]
    return ReviewState(
        finding_id=finding_id,
        status=status,
        assignee=assignee,
        updated_at=last.reviewed_at if last else None,
        updated_by=last.actor if last else None,
        entries=entries,
    )


def _clean_text(value: str | None, *, field: str, limit: int, multiline: bool) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > limit:
        raise TransitionRejected(f"the {field} is longer than {limit} characters")
    allowed_controls = "\n\t" if multiline else ""
    if any(not ch.isprintable() and ch not in allowed_controls for ch in text):
        raise TransitionRejected(f"the {field} holds control characters")
    return text


def check_transition(
    state: ReviewState,
    action: ReviewAction,
    *,
    assignee: str | None = None,
    note: str | None = None,
) -> ReviewStatus:
    """The status ``action`` leads to from ``state``.

    Raises:
        TransitionRejected: The act is not allowed now, or lacks a required field.
    """
    if action is ReviewAction.ASSIGN and assignee is None:
        raise TransitionRejected("assigning needs an assignee")
    if action is not ReviewAction.ASSIGN and assignee is not None:
        raise TransitionRejected(f"only 'assign' takes an assignee, not '{action.value}'")
    if action in _NEEDS_NOTE and note is None:
        raise TransitionRejected(f"'{action.value}' needs a note saying why")
    if action is ReviewAction.COMMENT:
        return state.status
    target = TRANSITIONS[state.status].get(action)
    if target is None:
        allowed = [*sorted(a.value for a in TRANSITIONS[state.status]), "comment"]
        raise TransitionRejected(
            f"finding {state.finding_id} is {state.status.value}: '{action.value}' is not "
            f"allowed (allowed: {', '.join(allowed)})"
        )
    if action is ReviewAction.ASSIGN and state.assignee == assignee:
        raise TransitionRejected(f"finding {state.finding_id} is already assigned to them")
    return target


def _check_finding_id(finding_id: str) -> str:
    if not _FINDING_ID.match(finding_id):
        raise UnknownFinding("a finding id is 32 lowercase hex digits")
    return finding_id


def load_history(store: StoreHandle, finding_id: str) -> list[Review]:
    """The review history of one finding, oldest first (reads the store).

    Raises:
        UnknownFinding: The store holds no such finding.
    """
    _check_finding_id(finding_id)
    known = store.query(
        "SELECT count(*) AS n FROM findings WHERE finding_id = $id", {"id": finding_id}
    )
    if known.column("n")[0].as_py() == 0:
        raise UnknownFinding(f"no finding {finding_id} in this database")
    rows = store.query(
        f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE finding_id = $id "  # noqa: S608 - fixed column list
        "ORDER BY reviewed_at, review_id",
        {"id": finding_id},
    ).to_pylist()
    return [Review.from_row(row) for row in rows]


def current_state(store: StoreHandle, finding_id: str) -> ReviewState:
    """The derived review state of one finding (reads the store).

    Raises:
        UnknownFinding: The store holds no such finding.
    """
    return derive_state(finding_id, load_history(store, finding_id))


def states_of(store: StoreHandle, finding_ids: Sequence[str]) -> dict[str, ReviewState]:
    """Derived states of many findings at once, for tables (reads the store).

    Ids without history (or unknown to the store) come back ``open`` with no entries.
    """
    ids = [_check_finding_id(f) for f in finding_ids]
    if not ids:
        return {}
    rows = store.query(
        f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE list_contains($ids, finding_id) "  # noqa: S608 - fixed column list
        "ORDER BY finding_id, reviewed_at, review_id",
        {"ids": ids},
    ).to_pylist()
    by_finding: dict[str, list[Review]] = {f: [] for f in ids}
    for row in rows:
        review = Review.from_row(row)
        by_finding[review.finding_id].append(review)
    return {f: derive_state(f, history) for f, history in by_finding.items()}


def _new_review_id(at: datetime) -> str:
    # Sortable by time, unique without coordination: microseconds since the epoch, then
    # 64 random bits.
    micros = int(at.timestamp() * 1_000_000)
    return f"{micros:014x}{secrets.token_hex(8)}"


def record_review(
    store: StoreHandle,
    finding_id: str,
    action: ReviewAction,
    *,
    actor: str,
    at: datetime,
    note: str | None = None,
    assignee: str | None = None,
) -> Review:
    """Check one review act against the finding's history and append it (writes the store).

    Args:
        store: A store opened with ``write=True``.
        finding_id: The finding reviewed.
        action: What the reviewer does.
        actor: Who does it (a user name; required).
        at: When, with a time zone (the caller reads the clock, so tests can set it).
        note: Why; required for false_positive, reopen and comment.
        assignee: Who it is assigned to; required for assign and only for it.

    Returns:
        The review as recorded.

    Raises:
        UnknownFinding: The store holds no such finding.
        TransitionRejected: The act is not allowed now or is incomplete.
    """
    if at.tzinfo is None:
        raise TransitionRejected("the review time must carry a time zone")
    who = _clean_text(actor, field="actor", limit=MAX_ACTOR, multiline=False)
    if who is None:
        raise TransitionRejected("a review needs an actor (who is acting)")
    to = _clean_text(assignee, field="assignee", limit=MAX_ACTOR, multiline=False)
    why = _clean_text(note, field="note", limit=MAX_NOTE, multiline=True)
    state = current_state(store, finding_id)
    check_transition(state, action, assignee=to, note=why)
    when = at.astimezone(UTC)
    if state.updated_at is not None and when < state.updated_at:
        raise TransitionRejected("a review cannot be dated before the finding's last review")
    review = Review(
        review_id=_new_review_id(when),
        finding_id=finding_id,
        action=action,
        actor=who,
        reviewed_at=when,
        assignee=to,
        note=why,
    )
    store.append_reviews([review.as_row()])
    return review

"""Compliance queries, review workflow, exports, the HTML report and the web dashboard.

The public API is what ``__all__`` lists. Importing this package stays light: DuckDB
and Arrow are loaded by :mod:`dashboards.storage` and the writers when they are used.
"""

from dashboards.catalog import QueryError, QuerySpec, catalog, get_query, run_query
from dashboards.records import EventScope
from dashboards.review import (
    Review,
    ReviewError,
    ReviewState,
    TransitionRejected,
    UnknownFinding,
    current_state,
    load_history,
    record_review,
    states_of,
)

__all__ = [
    "EventScope",
    "QueryError",
    "QuerySpec",
    "Review",
    "ReviewError",
    "ReviewState",
    "TransitionRejected",
    "UnknownFinding",
    "catalog",
    "current_state",
    "get_query",
    "load_history",
    "record_review",
    "run_query",
    "states_of",
]

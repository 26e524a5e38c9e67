"""The one seam between the compliance tools and the DuckDB store.

Every query, review append and export in ``dashboards`` goes through :func:`open_store`,
which is the store's own client API (``pipelines.store.access``): it talks to a running
pipeline's writer over its local socket when one holds the file, and opens the file for
just one call otherwise. So ``auditor query``, ``auditor review``, ``auditor export``, the
report and the dashboard work the same while ``auditor run`` writes and after it stopped.

Parameters are always bound, never pasted into SQL; sessions run in UTC.
"""

from __future__ import annotations

from auditor.errors import MissingExtraError

try:
    from pipelines.store.access import StoreHandle, open_store
    from pipelines.store.connection import Params
except ModuleNotFoundError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("the compliance tools", "pipeline") from None

__all__ = ["REVIEW_COLUMNS", "Params", "StoreHandle", "open_store"]

REVIEW_COLUMNS = (
    "review_id",
    "finding_id",
    "action",
    "actor",
    "assignee",
    "note",
    "reviewed_at",
)
"""The columns of one row of the ``reviews`` table, in table order."""

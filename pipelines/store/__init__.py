"""The DuckDB store: versioned schema, the single exactly-once writer, access while it writes.

- ``StoreWriter.open(path)`` — the pipeline's store stage: one process holds the file
  read-write, commits each ``Batch`` with its input offsets in one transaction, resumes
  from ``resume_offsets()``, and serves a local endpoint for everyone else.
- ``open_store(path)`` — queries (``query(sql, params) -> pyarrow.Table``), review appends
  and retention, through the live writer when there is one, on the file otherwise.
- ``RetentionPolicy`` and ``auditor retention`` — prune, blank evidence, archive to Parquet.
- ``assert_no_canaries`` — prove that planted secrets never reached the store.
"""

from __future__ import annotations

from auditor.errors import MissingExtraError

try:
    import duckdb  # noqa: F401 - checked here so every entry point names the extra
    import pyarrow as pa  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - the test environment has every extra
    raise MissingExtraError("the DuckDB store", "pipeline") from None

from pipelines.store.access import StoreHandle, StoreStatus, open_store
from pipelines.store.canaries import CanaryHit, assert_no_canaries, find_canaries
from pipelines.store.errors import (
    QueryError,
    SchemaError,
    StoreBusyError,
    StoreError,
    StoreWriteError,
)
from pipelines.store.records import (
    AlertRecord,
    Batch,
    BatchReport,
    Checkpoint,
    DeadLetter,
    EventJson,
    IngestedEvent,
    OffsetKey,
    RunCounters,
)
from pipelines.store.retention import (
    Horizon,
    RetentionCutoffs,
    RetentionPolicy,
    RetentionReport,
)
from pipelines.store.schema import code_version
from pipelines.store.writer import StoreWriter

__all__ = [
    "AlertRecord",
    "Batch",
    "BatchReport",
    "CanaryHit",
    "Checkpoint",
    "DeadLetter",
    "EventJson",
    "Horizon",
    "IngestedEvent",
    "OffsetKey",
    "QueryError",
    "RetentionCutoffs",
    "RetentionPolicy",
    "RetentionReport",
    "RunCounters",
    "SchemaError",
    "StoreBusyError",
    "StoreError",
    "StoreHandle",
    "StoreStatus",
    "StoreWriteError",
    "StoreWriter",
    "assert_no_canaries",
    "code_version",
    "find_canaries",
    "open_store",
]

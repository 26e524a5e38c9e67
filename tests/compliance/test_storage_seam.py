"""The storage seam: read-only queries, short write transactions, clear errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from audit_scenario import AuditFixture, at

from auditor.errors import InputError
from auditor.vocabulary import ReviewAction
from dashboards.review import Review
from dashboards.storage import open_store
from pipelines.store.errors import QueryError, StoreBusyError, StoreError


def test_queries_cannot_write(shared_audit_db: AuditFixture) -> None:
    with open_store(shared_audit_db.path) as store, pytest.raises(QueryError):
        store.query("DELETE FROM findings")


def test_parameters_are_bound_not_pasted(shared_audit_db: AuditFixture) -> None:
    hostile = "x' OR '1'='1"
    with open_store(shared_audit_db.path) as store:
        table = store.query(
            "SELECT count(*) AS n FROM findings WHERE finding_id = $id", {"id": hostile}
        )
    assert table.column("n")[0].as_py() == 0


def test_a_missing_database_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no audit database at"):
        open_store(tmp_path / "absent.duckdb")


def test_appending_reviews_needs_a_writable_store(audit_db: AuditFixture) -> None:
    with open_store(audit_db.path) as store, pytest.raises(StoreError, match="write=True"):
        store.append_reviews([])


def test_appended_reviews_are_visible_to_the_next_query(audit_db: AuditFixture) -> None:
    review = Review(
        "00000000000000aa", audit_db.fid("L3"), ReviewAction.ACKNOWLEDGE, "alice", at(30)
    )
    with open_store(audit_db.path, write=True) as store:
        before = store.query("SELECT count(*) AS n FROM reviews").column("n")[0].as_py()
        store.append_reviews([review.as_row()])
        after = store.query("SELECT count(*) AS n FROM reviews").column("n")[0].as_py()
    assert after == before + 1


HOLDER = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
    "print('held', flush=True); time.sleep(30)"
)


def test_a_database_held_by_another_process_is_reported_as_busy(
    audit_db: AuditFixture,
) -> None:
    holder = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [
            sys.executable,
            "-c",
            HOLDER,
            str(audit_db.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with (
            open_store(audit_db.path, lock_timeout=0.3) as store,
            pytest.raises(StoreBusyError),
        ):
            store.query("SELECT 1")
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()

"""Schema migrations: applied in order in one transaction, recorded, and never trusted blindly."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.store import SchemaError, StoreWriter, open_store, schema, tables
from pipelines.store.connection import open_database


def _connect(path):
    return open_database(path, read_only=False, lock_timeout=1.0)


def test_a_new_database_gets_every_migration_recorded_with_its_checksum(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    with open_store(db) as store:
        rows = store.query(
            "SELECT version, name, checksum, auditor_version FROM schema_migrations ORDER BY 1"
        ).to_pylist()
    shipped = schema.migrations()
    assert [r["version"] for r in rows] == [m.version for m in shipped]
    assert [r["name"] for r in rows] == [m.name for m in shipped]
    assert [r["checksum"] for r in rows] == [m.checksum for m in shipped]
    assert all(r["auditor_version"] for r in rows)


def test_opening_an_up_to_date_database_applies_nothing(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    conn = _connect(db)
    try:
        assert schema.migrate(conn, where=str(db)) == []
    finally:
        conn.close()


def test_a_v1_database_is_upgraded_keeping_its_rows(tmp_path):
    db = tmp_path / "audit.duckdb"
    conn = duckdb.connect(str(db))
    first = schema.migrations()[0]
    conn.execute(first.sql)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "checksum VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL, "
        "auditor_version VARCHAR NOT NULL)"
    )
    conn.execute(
        "INSERT INTO schema_migrations VALUES (1, ?, ?, now(), 'old')",
        [first.name, first.checksum],
    )
    conn.execute(
        "INSERT INTO ingest_offsets VALUES ('cds.authz', 0, 42, TIMESTAMPTZ '2026-01-01 00:00Z')"
    )
    conn.close()

    with StoreWriter.open(db, serve=False) as writer:
        assert writer.schema_version == schema.code_version()
        assert writer.resume_offsets() == {("cds.authz", 0): 42}


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    conn = duckdb.connect(str(db))
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'from_the_future', 'x', now(), '9')")
    conn.close()
    # The writer must not write into a schema it does not know, nor a reader guess at it.
    with pytest.raises(SchemaError, match=r"schema version 99, newer than this auditor knows"):
        StoreWriter.open(db, serve=False)
    with pytest.raises(SchemaError, match="upgrade the auditor"):
        open_store(db).query("SELECT 1")


def test_a_database_migrated_from_an_edited_file_is_refused(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    conn = duckdb.connect(str(db))
    conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    conn.close()
    with pytest.raises(SchemaError, match="must never be edited"):
        StoreWriter.open(db, serve=False)


def test_a_file_with_tables_but_no_ledger_is_not_taken_for_a_store(tmp_path):
    db = tmp_path / "other.duckdb"
    conn = duckdb.connect(str(db))
    conn.execute("CREATE TABLE events (id INTEGER)")
    conn.close()
    with pytest.raises(SchemaError, match="not an auditor store"):
        StoreWriter.open(db, serve=False)


def test_a_reader_refuses_a_database_that_still_needs_migrating(tmp_path):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    conn = duckdb.connect(str(db))
    conn.execute(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)"
    )
    conn.close()
    # A reader cannot migrate (read-only); it says how to get there.
    with pytest.raises(SchemaError, match="open it once with a writer"):
        open_store(db).query("SELECT 1")


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    broken = schema.Migration(
        schema.code_version() + 1,
        "broken",
        "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;",
    )
    shipped = schema.migrations()
    schema.migrations.cache_clear()
    monkeypatch.setattr(schema, "migrations", lambda: (*shipped, broken))
    conn = _connect(db)
    try:
        with pytest.raises(SchemaError, match=r"failed at version .* \(broken\)"):
            schema.migrate(conn, where=str(db))
        tables_now = {
            r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        versions = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    finally:
        conn.close()
    assert "half_done" not in tables_now
    assert versions == (len(shipped),)


@pytest.mark.parametrize(
    ("table", "schema_"),
    [
        ("events", tables.EVENTS),
        ("findings", tables.FINDINGS),
        ("dead_letters", tables.DEAD_LETTERS),
        ("alerts", tables.ALERTS),
        ("ingest_offsets", tables.OFFSETS),
        ("reviews", tables.REVIEWS),
    ],
)
def test_the_arrow_schemas_match_the_sql_tables(tmp_path, table, schema_):
    # The writer inserts by column name; a column added to SQL but not to Arrow (or the
    # reverse) would silently store NULLs, so both must list the same columns and types.
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db, serve=False).close()
    with open_store(db) as store:
        stored = store.query(f"SELECT * FROM {table} LIMIT 0").schema  # noqa: S608
    assert stored.names == schema_.names
    for field in schema_:
        want = stored.field(field.name).type
        if table == "events" and field.name == "event_id":
            continue  # a UUID column, sent as text and cast on insert
        assert field.type == want, field.name

"""Versioned schema migrations of the DuckDB store.

Migrations are numbered SQL files shipped as package data in
``pipelines/store/migrations/`` (``0001_initial.sql``, ``0002_retention.sql`` ...). The
table ``schema_migrations`` records which were applied, when, by which auditor version and
with which SHA-256 of the file. ``migrate`` applies the pending ones in order, all in one
transaction: either the database reaches the code's version or it stays as it was.

A shipped migration is never edited: a later change is a new file. A database whose
recorded checksum differs from the file, or whose version is newer than the code, is
refused with a message that says what to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import metadata, resources

import duckdb

from pipelines.store.errors import SchemaError

_MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version          INTEGER PRIMARY KEY,
    name             VARCHAR NOT NULL,
    checksum         VARCHAR NOT NULL,
    applied_at       TIMESTAMPTZ NOT NULL,
    auditor_version  VARCHAR NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file of the schema."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, recorded when applied and compared afterwards."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with this code, in order.

    Raises:
        SchemaError: The files are not numbered 1, 2, 3 ... without gaps (a packaging bug).
    """
    found: list[Migration] = []
    for entry in resources.files("pipelines.store").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError("the store's migration files are not numbered 1, 2, 3 ... in order")
    return tuple(found)


def code_version() -> int:
    """The schema version this code writes and reads: the number of the last migration."""
    return migrations()[-1].version


def auditor_version() -> str:
    """The installed version of the auditor, recorded with migrations and runs."""
    try:
        return metadata.version("cds-hooks-auditor")
    except metadata.PackageNotFoundError:
        return "unknown"


def applied(conn: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """The applied migrations of a database, as ``{version: checksum}``; empty when none."""
    if not _has_table(conn, "schema_migrations"):
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(version): str(checksum) for version, checksum in rows}


def check(conn: duckdb.DuckDBPyConnection, *, where: str) -> int:
    """Verify that a database opened read-only has exactly the code's schema.

    Args:
        conn: A connection to the database.
        where: How to name the database in messages (its path).

    Returns:
        The schema version.

    Raises:
        SchemaError: Not an auditor store, newer than the code, or not yet migrated.
    """
    done = _verified(conn, where=where)
    if not done:
        raise SchemaError(f"{where} is not an auditor store (no schema_migrations table)")
    version = max(done)
    if version < code_version():
        raise SchemaError(
            f"{where} has schema version {version}, older than this auditor's "
            f"{code_version()}: open it once with a writer (`auditor run` or "
            "`auditor retention`) to migrate it"
        )
    return version


def migrate(
    conn: duckdb.DuckDBPyConnection, *, where: str, now: datetime | None = None
) -> list[Migration]:
    """Apply the pending migrations in order, in one transaction.

    Args:
        conn: A read-write connection that no other transaction uses meanwhile.
        where: How to name the database in messages (its path).
        now: The time recorded as ``applied_at`` (default: the wall clock).

    Returns:
        The migrations applied now (empty when the database was up to date).

    Raises:
        SchemaError: The database is newer than the code, a recorded checksum differs
            from the shipped file, or the file holds tables but no migration ledger.
    """
    done = _verified(conn, where=where)
    if not done and _has_user_tables(conn):
        raise SchemaError(
            f"{where} holds tables but no schema_migrations table: not an auditor store"
        )
    pending = [m for m in migrations() if m.version not in done]
    if not pending:
        return []
    applied_at = now or datetime.now(UTC)
    step = "schema_migrations"
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(_CREATE_LEDGER)
        for migration in pending:
            step = f"version {migration.version} ({migration.name})"
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?, ?, ?)",
                [
                    migration.version,
                    migration.name,
                    migration.checksum,
                    applied_at,
                    auditor_version(),
                ],
            )
        conn.execute("COMMIT")
    except duckdb.Error as exc:
        conn.execute("ROLLBACK")
        raise SchemaError(
            f"migrating {where} failed at {step}: "
            f"{type(exc).__name__}; the database was left unchanged"
        ) from exc
    return pending


def _verified(conn: duckdb.DuckDBPyConnection, *, where: str) -> dict[int, str]:
    done = applied(conn)
    if not done:
        return done
    newest = max(done)
    if newest > code_version():
        raise SchemaError(
            f"{where} has schema version {newest}, newer than this auditor knows "
            f"({code_version()}): upgrade the auditor (installed: {auditor_version()})"
        )
    shipped = {m.version: m for m in migrations()}
    if sorted(done) != list(range(1, newest + 1)):
        raise SchemaError(f"{where} records migrations {sorted(done)}: a gap, not a sequence")
    for version, checksum in done.items():
        if shipped[version].checksum != checksum:
            raise SchemaError(
                f"{where} applied migration {version} ({shipped[version].name}) from a file "
                "that differs from the one shipped with this auditor; shipped migrations "
                "must never be edited"
            )
    return done


def _has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(row and row[0])


def _has_user_tables(conn: duckdb.DuckDBPyConnection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary"
    ).fetchone()
    return bool(row and row[0])


__all__ = ["Migration", "applied", "auditor_version", "check", "code_version", "migrate"]

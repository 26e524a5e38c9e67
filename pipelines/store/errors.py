"""Errors of the DuckDB store, part of the one hierarchy rooted at ``auditor.errors``.

Messages name the database, the table, the statement kind or a PID; never a row value.
DuckDB's own messages can quote the value that failed to convert or the duplicate key,
so errors raised while writing rows drop them (the type name is kept).
"""

from __future__ import annotations

from auditor.errors import AuditorError, ConfigurationError, InputError


class StoreError(AuditorError):
    """Something went wrong reading or writing the store."""


class SchemaError(StoreError, ConfigurationError):
    """The database's schema cannot be used by this version of the auditor.

    Raised when the database is newer than the code, when a migration that was applied
    differs from the file that ships with the code, or when the file is not an auditor
    store at all.
    """


class StoreBusyError(StoreError):
    """Another process holds the database file and does not serve the access endpoint."""


class QueryError(StoreError, InputError):
    """A query could not run: bad SQL, a bad parameter, or not a read-only statement."""


class StoreWriteError(StoreError):
    """A batch, a review or a retention step could not be written; nothing was committed."""


STORE_ERRORS: dict[str, type[StoreError]] = {
    kind.__name__: kind
    for kind in (StoreError, SchemaError, StoreBusyError, QueryError, StoreWriteError)
}
"""The store's errors by class name: how they cross to another process (the access
endpoint's client, an embedded run's store process) with their message, which never holds a
row value."""

__all__ = [
    "STORE_ERRORS",
    "QueryError",
    "SchemaError",
    "StoreBusyError",
    "StoreError",
    "StoreWriteError",
]

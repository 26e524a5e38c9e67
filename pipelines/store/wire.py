"""The wire format of the writer's access endpoint: HTTP/1.0 over a Unix socket.

- ``GET /v1/status`` → JSON: pid, database, schema version.
- ``POST /v1/query`` ← an Arrow IPC stream of one row holding the parameters, with the SQL
  and the parameter style (positional, named, none) in the schema's metadata;
  → an Arrow IPC stream of the result, then ``TRAILER``. Arrow carries parameter types
  exactly (an aware datetime stays a ``TIMESTAMPTZ``, a date a ``DATE``, a list a list), so
  a query binds the same values through the endpoint as on a file opened directly.
- ``POST /v1/reviews`` ← an Arrow IPC stream of review rows → JSON ``{"appended": n}``.
- ``POST /v1/retention`` ← JSON cutoffs, archive folder, dry-run flag → JSON report.
- Errors → JSON ``{"error": <class>, "message": ...}`` with status 400 (the request is
  wrong) or 500; the client raises the same class.

Nothing here logs or echoes a body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, NoReturn, cast

import pyarrow as pa

from pipelines.store.connection import Params, bind
from pipelines.store.errors import STORE_ERRORS, QueryError, StoreError

STATUS: Final = "/v1/status"
QUERY: Final = "/v1/query"
REVIEWS: Final = "/v1/reviews"
RETENTION: Final = "/v1/retention"

ARROW_STREAM: Final = "application/vnd.apache.arrow.stream"
JSON: Final = "application/json"
MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
TRAILER: Final = b"\nauditor-store:end-of-result\n"
"""Follows a complete query result. An Arrow stream cut short between two batches reads
as a shorter valid stream, so the client checks for this instead."""

_SQL_KEY: Final = b"auditor.sql"
_STYLE_KEY: Final = b"auditor.params"
_TIMEOUT_KEY: Final = b"auditor.timeout"


def encode_query(sql: str, params: Params | None, *, timeout: float) -> bytes:
    """The body of a query request.

    Raises:
        QueryError: A parameter has a type Arrow cannot carry (the message names its
            position or name and its type, never its value).
    """
    bound = bind(params)
    if bound is None:
        style, names, values = "none", [], []
    elif isinstance(bound, dict):
        style, names, values = "named", list(bound), list(bound.values())
    else:
        style, names, values = "positional", [str(i) for i in range(len(bound))], bound
    arrays = []
    for name, value in zip(names, values, strict=True):
        try:
            arrays.append(pa.array([cast("Any", value)]))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            raise QueryError(
                f"parameter {name} of type {type(value).__name__} cannot be bound"
            ) from None
    metadata = {
        _SQL_KEY: sql.encode("utf-8"),
        _STYLE_KEY: style.encode(),
        _TIMEOUT_KEY: repr(float(timeout)).encode(),
    }
    table = pa.Table.from_arrays(arrays, names=names, metadata=metadata)
    return encode_table(table)


def decode_query(
    body: bytes,
) -> tuple[str, list[object] | dict[str, object] | None, float | None]:
    """The SQL, parameters and the client's timeout of a query request.

    Raises:
        QueryError: The body is not a query request.
    """
    table = decode_table(body)
    metadata = table.schema.metadata or {}
    if _SQL_KEY not in metadata or _STYLE_KEY not in metadata:
        raise QueryError("the request carries no query")
    sql = metadata[_SQL_KEY].decode("utf-8")
    style = metadata[_STYLE_KEY].decode()
    timeout = float(metadata[_TIMEOUT_KEY]) if _TIMEOUT_KEY in metadata else None
    if style == "none":
        return sql, None, timeout
    row: dict[str, object] = table.to_pylist()[0] if table.num_rows else {}
    if style == "named":
        return sql, row, timeout
    return sql, [row[str(i)] for i in range(len(row))], timeout


def encode_table(table: pa.Table) -> bytes:
    """An Arrow IPC stream of ``table``."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_table(body: bytes) -> pa.Table:
    """The table of an Arrow IPC stream.

    Raises:
        QueryError: The body is not an Arrow IPC stream.
    """
    try:
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except pa.ArrowException:
        raise QueryError("the request body is not an Arrow IPC stream") from None


def error_body(exc: BaseException) -> bytes:
    """The JSON body that carries an error to the client."""
    name = type(exc).__name__
    if name not in STORE_ERRORS:
        return json.dumps({"error": "StoreError", "message": "internal error"}).encode()
    return json.dumps({"error": name, "message": str(exc)}).encode()


def raise_error(status: int, body: bytes) -> NoReturn:
    """Raise the error that an error response carries.

    Raises:
        StoreError: Or the subclass named in the body.
    """
    try:
        data: Mapping[str, Any] = json.loads(body)
        cls = STORE_ERRORS.get(str(data.get("error")), StoreError)
        message = str(data.get("message", ""))
    except (ValueError, AttributeError):
        cls, message = StoreError, f"the writer answered {status} without an error body"
    raise cls(message)


__all__ = [
    "ARROW_STREAM",
    "JSON",
    "MAX_REQUEST_BYTES",
    "QUERY",
    "RETENTION",
    "REVIEWS",
    "STATUS",
    "TRAILER",
    "decode_query",
    "decode_table",
    "encode_query",
    "encode_table",
    "error_body",
    "raise_error",
]

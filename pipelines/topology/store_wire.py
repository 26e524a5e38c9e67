"""The messages between an embedded run and its store process (``store_process``).

One duplex socket, one pickled tuple per message, the tag first:

- to the store: ``("call", method, args, kwargs)`` (a ``StoreWriter`` method, answered by
  ``("ok", result)`` or ``("error", ...)``), ``("stage", run_id, max_rows, max_wait_s)``
  (start committing), ``("item", ...)`` (one detect output, not answered) and
  ``("close",)`` (commit what waits, answered), ``("shutdown",)`` (close the store and
  exit, answered);
- from the store: ``("committed", ...)`` after each transaction, ``("log", level, event,
  fields)`` for each line the store process logs, and the answers.

An item carries its events in two forms. An event the fast path decoded and whose free
text needed no redaction (``Mirrored``) crosses as the line it was read from, and the store
process decodes it again and writes the same JSON (``AuthzMirror.stored_again``): that work,
3-4 µs an event, is then done on the store's core instead of the detect stage's. Every
other event crosses as the JSON the store writes (``EventJson``), made on this side from
the redacted event. Either way the store process never sees a token or a PHI value that the
detect stage did not already redact: a line crosses only when its free text is clean.
Errors cross as the error's class name and message; the messages of the store's errors
never hold a row value (``pipelines.store.errors``).
"""

from __future__ import annotations

import os
import pickle
import struct
from multiprocessing.connection import Connection
from typing import Final

from auditor.errors import AuditorError, ConfigurationError, InputError
from pipelines.store import EventJson, StoreError, StoreWriteError
from pipelines.store.errors import STORE_ERRORS
from pipelines.topology.authz_mirror import AuthzMirror, Mirrored
from pipelines.topology.storing import StoreItem, event_row

CALL: Final = "call"
STAGE: Final = "stage"
ITEM: Final = "item"
CLOSE: Final = "close"
SHUTDOWN: Final = "shutdown"
OK: Final = "ok"
ERROR: Final = "error"
COMMITTED: Final = "committed"
LOG: Final = "log"

_ERRORS: Final[dict[str, type[AuditorError]]] = {
    **{kind.__name__: kind for kind in (InputError, ConfigurationError)},  # StoreWriter.open's
    **STORE_ERRORS,
}


def encode(message: tuple[object, ...]) -> bytes:
    """One message as bytes."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def receive(conn: Connection) -> bytearray:
    """The next message's bytes from ``conn``, read straight into one buffer.

    ``Connection.recv_bytes`` reads an item of a few megabytes in socket-sized pieces, each
    into a fresh buffer of the whole remaining size, and copies them into a growing
    ``BytesIO``: ~4x the CPU of reading into the final buffer, measured. The framing is
    ``Connection.send_bytes``'s: a signed 4-byte big-endian length, or -1 and an 8-byte one.

    Raises:
        EOFError: The other end closed (before or within a message).
    """
    fd = conn.fileno()
    (size,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    if size == -1:
        (size,) = _LONG_LENGTH.unpack(_read_exactly(fd, _LONG_LENGTH.size))
    return _read_exactly(fd, size)


_LENGTH: Final = struct.Struct("!i")
_LONG_LENGTH: Final = struct.Struct("!Q")


def _read_exactly(fd: int, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError("the run closed its end of the socket")
        got += n
    return buffer


def decode(data: bytes | bytearray) -> tuple[object, ...]:
    """One message from bytes (only ever from the other end of our own socket)."""
    message = pickle.loads(data)  # noqa: S301 - our own child process, over a socketpair
    if not isinstance(message, tuple) or not message:
        raise StoreError("the store process sent a malformed message")
    return message


def pack_item(item: StoreItem) -> tuple[object, ...]:
    """An ``item`` message: clean fast-path events as their lines, others as stored JSON.

    The lines travel joined by newlines (a line read from a JSON-lines input holds none):
    one bytes object pickles far faster than thousands.
    """
    rows: list[tuple[bytes, bytes, str | None]] = []
    lines: list[bytes] = []
    line_origins: list[str | None] = []
    for event, origin in item.events:
        raw = event.raw if isinstance(event, Mirrored) else None
        if raw is not None and b"\n" not in raw:
            lines.append(raw)
            line_origins.append(origin)
        else:
            rows.append((*event_row(event), origin))
    rows += [(e.event_key, e.json, e.origin) for e in item.event_json]
    return (
        ITEM,
        rows,
        b"\n".join(lines),
        line_origins,
        item.findings,
        item.dead_letters,
        item.alerts,
        item.counters,
        item.offset,
        item.checkpoint,
    )


def unpack_item(message: tuple[object, ...]) -> StoreItem:
    """The ``StoreItem`` of an ``item`` message, its lines decoded into stored JSON.

    Raises:
        StoreWriteError: A line does not decode as it did in the detect stage (a bug).
    """
    _, events, joined, line_origins, findings, dead, alerts, counters, offset, checkpoint = message
    stored = [EventJson(k, j, o) for k, j, o in events]  # type: ignore[attr-defined]
    origins: list[str | None] = line_origins  # type: ignore[assignment]
    if origins:
        lines = joined.split(b"\n")  # type: ignore[attr-defined]
        if len(lines) != len(origins):
            raise StoreWriteError("an item's event lines do not match their origins")
        stored += _stored_from_lines(lines, origins)
    return StoreItem(
        events=[],
        event_json=stored,
        findings=findings,  # type: ignore[arg-type]
        dead_letters=dead,  # type: ignore[arg-type]
        alerts=alerts,  # type: ignore[arg-type]
        counters=counters,  # type: ignore[arg-type]
        offset=offset,  # type: ignore[arg-type]
        checkpoint=checkpoint,  # type: ignore[arg-type]
    )


_MIRROR = AuthzMirror()


def _stored_from_lines(lines: list[bytes], origins: list[str | None]) -> list[EventJson]:
    out: list[EventJson] = []
    stored_again = _MIRROR.stored_again
    for line, origin in zip(lines, origins, strict=True):
        stored = stored_again(line)
        if stored is None:
            raise StoreWriteError("an event line the detect stage took did not decode again")
        out.append(EventJson(stored[0], stored[1], origin))
    return out


def error_message(exc: BaseException) -> tuple[object, ...]:
    """An ``error`` message for ``exc``: its class name and, for our own errors, its text.

    Other exceptions (DuckDB's, pyarrow's, a bug) keep only their class name: their text
    can quote a value.
    """
    if isinstance(exc, AuditorError):
        return ERROR, type(exc).__name__, str(exc)
    return ERROR, type(exc).__name__, None


def raised(message: tuple[object, ...]) -> AuditorError:
    """The error an ``error`` message stands for, to raise on this side."""
    _, name, text = message
    kind = _ERRORS.get(str(name))
    if kind is not None and text is not None:
        return kind(str(text))
    if text is not None:
        return StoreError(f"the store process failed ({name}): {text}")
    return StoreError(f"the store process failed ({name})")


__all__ = [
    "CALL",
    "CLOSE",
    "COMMITTED",
    "ERROR",
    "ITEM",
    "LOG",
    "OK",
    "SHUTDOWN",
    "STAGE",
    "decode",
    "encode",
    "error_message",
    "pack_item",
    "raised",
    "receive",
    "unpack_item",
]

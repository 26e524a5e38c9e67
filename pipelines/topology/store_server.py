"""The store process of an embedded run: ``python -m pipelines.topology.store_server FD DB``.

It holds the run's ``StoreWriter`` and a ``StoreThread``, and serves the socket ``FD``
(``store_wire``): calls on the writer, then detect outputs to commit. Started by
``StoreProcess`` in a session of its own, it ignores SIGINT and SIGTERM: the run stops it
(finish, commit, close) when the run is stopped. When the run's end of the socket closes
without a ``close`` — the run died — it stops at once, committing nothing more: what it
had not committed is read again by the next run.

Its log lines go to the run (``("log", ...)``), which writes them through its own
Redactor like its own.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, MutableMapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import structlog

from pipelines.store import BatchReport, StoreWriter
from pipelines.topology import store_wire as wire
from pipelines.topology.collector import paced_collector
from pipelines.topology.storing import Pending, StoreThread
from pipelines.topology.telemetry import PipelineTelemetry

_CALLS = frozenset({"begin_run", "resume_offsets", "load_checkpoint", "end_run"})
_PLAIN = (str, int, float, bool, type(None))


def _plain(value: object) -> bool:
    """Whether ``value`` is JSON-like: plain values, and lists and dicts of them."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


class _ForwardLogs:
    """A structlog processor that sends each log line to the run and drops it here."""

    def __init__(self, send: Callable[[tuple[object, ...]], None]) -> None:
        self._send = send

    def __call__(self, _logger: object, method: str, event: MutableMapping[str, Any]) -> Any:
        text = str(event.pop("event", ""))
        fields = {
            str(k): v if _plain(v) else str(v)
            for k, v in event.items()
            if k not in {"level", "timestamp"}
        }
        self._send((wire.LOG, method, text, fields))
        raise structlog.DropEvent


class _Server:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()  # the store thread reports commits too
        self._writer: StoreWriter | None = None
        self._stage: StoreThread | None = None

    def send(self, message: tuple[object, ...]) -> None:
        with self._send_lock:
            if self._conn.closed:
                return
            try:
                self._conn.send_bytes(wire.encode(message))
            except OSError:
                self._conn.close()  # the run is gone; what it would have read goes with it

    def serve(self) -> None:
        try:
            while self._step():
                pass
        finally:
            self._shut_down()

    def _step(self) -> bool:
        """Serve one message; False when done."""
        try:
            message = wire.decode(wire.receive(self._conn))
        except (EOFError, OSError):
            return False  # the run is gone (closed, or reset): commit nothing more
        tag = message[0]
        try:
            if tag == wire.SHUTDOWN:
                self._shut_down()
                self.send((wire.OK, None))
                return False
            if tag == wire.ITEM:
                self._require_stage().put(wire.unpack_item(message))
                return True
            self.send((wire.OK, self._answer(tag, message)))
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the run
            self.send(wire.error_message(exc))
            return tag != wire.ITEM  # a failed commit ends the stage; a failed call does not
        return True

    def _answer(self, tag: object, message: tuple[object, ...]) -> object:
        if tag == wire.CALL:
            _, method, args, kwargs = message
            if method == "open":
                self._writer = StoreWriter.open(*args, **kwargs)  # type: ignore[misc, arg-type]
                return None
            if method not in _CALLS or self._writer is None:
                raise ValueError(f"not a store call: {method}")
            return getattr(self._writer, str(method))(*args, **kwargs)  # type: ignore[misc, arg-type]
        if tag == wire.STAGE:
            _, run_id, max_rows, max_wait_s = message
            if self._writer is None:
                raise ValueError("no store is open")
            self._stage = StoreThread(
                self._writer,
                str(run_id),
                PipelineTelemetry(),
                max_rows=int(max_rows),  # type: ignore[call-overload]
                max_wait_s=float(max_wait_s),  # type: ignore[arg-type]
                on_commit=self._committed,
            )
            return None
        if tag == wire.CLOSE:
            stage = self._require_stage()
            self._stage = None
            stage.close()
            return None
        raise ValueError(f"not a store message: {tag}")

    def _shut_down(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _require_stage(self) -> StoreThread:
        if self._stage is None:
            raise ValueError("the store stage has not started")
        return self._stage

    def _committed(self, report: BatchReport, pending: Pending, span: tuple[int, int]) -> None:
        rows = (len(pending.events), len(pending.findings), len(pending.dead_letters))
        self.send((wire.COMMITTED, report, rows, span))


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the socket whose descriptor is the first argument.

    The second argument names the store, for ``ps``. Once the store is closed, the process
    exits at once (``os._exit``).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    args = list(sys.argv[1:] if argv is None else argv)
    server = _Server(Connection(int(args[0])))
    structlog.configure(
        processors=[
            structlog.processors.format_exc_info,
            _ForwardLogs(server.send),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=True,
    )
    with paced_collector():  # as in the run that started it: see collector.py
        server.serve()
    # The store is closed and the run has its answer: leave without tearing the interpreter
    # down (~0.1 s of freeing modules that the run would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

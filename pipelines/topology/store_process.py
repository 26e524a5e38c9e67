"""An embedded run's store stage in a process of its own, on the machine's other core.

In one process, the detect stage and the store stage share the GIL: the store thread's
Python work (and DuckDB's calls back into Python while it scans Arrow) holds the detect
stage up. ``StoreProcess`` moves the ``StoreWriter`` and its ``StoreThread`` to a child
(``store_server``) and talks to it over a socket pair (``store_wire``): the writer's calls
answered in order, detect outputs streamed, commit reports coming back for telemetry and
the run's counters. The socket's buffer and the child's short queue are the back-pressure.
The run reads the child's reports before each item it sends; between two reads the child
commits at most a few batches (its queue is four items deep), a few hundred bytes each, far
below what the socket buffers: the child never blocks on a report the run is not reading.
Items are sent from a thread (``Outbox``, three items deep), so that the detect stage goes
on with the next chunk while the child reads the last one.

Nothing changes in what is stored: the same transactions (rows with the input positions
they came from, checkpoints), the same exactly-once. An event whose free text needed no
redaction crosses as the line it was read from and is encoded on the store's side; any
other as the JSON the store writes, made on this side from the redacted event
(``store_wire``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from os import PathLike
from pathlib import Path
from typing import Any, Final, Self, cast

import structlog

from auditor.errors import AuditorError
from auditor.vocabulary import RunStatus
from pipelines.store import (
    BatchReport,
    Checkpoint,
    OffsetKey,
    RunCounters,
    StoreBusyError,
    StoreError,
)
from pipelines.store.writer import DEFAULT_CHECKPOINT_MIB, live_writer
from pipelines.topology import store_wire as wire
from pipelines.topology.outbox import Outbox
from pipelines.topology.storing import StoreItem, committed
from pipelines.topology.telemetry import PipelineTelemetry

_STOP_WAIT_S: Final = 60.0
"""How long ``close`` waits for the child to close the database before killing it."""

_log = structlog.get_logger("auditor.store")


class StoreProcess:
    """The store's single writer in a child process: the writer's calls and the stage.

    Use ``StoreProcess.open`` as a context manager; ``begin_run``, ``resume_offsets``,
    ``load_checkpoint`` and ``end_run`` are ``StoreWriter``'s; ``start``, ``put`` and
    ``finish`` are ``StoreThread``'s ``__init__``, ``put`` and ``close``.
    """

    def __init__(
        self, child: subprocess.Popen[bytes], conn: Connection, telemetry: PipelineTelemetry
    ) -> None:
        self._child = child
        self._conn = conn
        self._telemetry = telemetry
        self._error: BaseException | None = None
        self._outbox: Outbox | None = None
        self._posted = 0  # answers owed to messages nobody waits for (``wait=False``)
        self.stored = RunCounters()

    @classmethod
    def open(
        cls,
        path: str | PathLike[str],
        telemetry: PipelineTelemetry,
        *,
        checkpoint_mib: int = DEFAULT_CHECKPOINT_MIB,
        wait: bool = True,
    ) -> StoreProcess:
        """Start the child and open the store at ``path`` there (``StoreWriter.open``).

        With ``wait=False`` the open is only sent: the child takes ~0.6 s to start (its
        imports), which the run spends detecting instead. A failure to open then surfaces
        at the next call or item (see ``_post``).

        Raises:
            StoreError: The child could not start, or the store could not be opened
                (``StoreBusyError``, ``SchemaError``... as ``StoreWriter.open`` raises).
        """
        db = Path(path).resolve()
        if live_writer(db) is not None:
            # The child would wait for DuckDB's file lock; the answer is known here.
            raise StoreBusyError(f"{db} already has a writer in this process")
        ours, theirs = socket.socketpair()
        try:
            child = _spawn(theirs.fileno(), db)
        except OSError as exc:
            ours.close()
            raise StoreError(f"the store process could not start: {exc.strerror}") from None
        finally:
            theirs.close()
        store = cls(child, Connection(ours.detach()), telemetry)
        try:
            if wait:
                store._call("open", str(db), checkpoint_mib=checkpoint_mib)
            else:
                store._post((wire.CALL, "open", (str(db),), {"checkpoint_mib": checkpoint_mib}))
        except BaseException:
            store.close()
            raise
        return store

    # -- StoreWriter's calls ---------------------------------------------------------

    def begin_run(self, *, wait: bool = True, **kwargs: Any) -> str:
        """``StoreWriter.begin_run``; with ``wait=False``, only sent (``run_id`` is required)."""
        if not wait:
            run_id = str(kwargs["run_id"])
            self._post((wire.CALL, "begin_run", (), kwargs))
            return run_id
        return str(self._call("begin_run", **kwargs))

    def resume_offsets(self) -> dict[OffsetKey, int]:
        """``StoreWriter.resume_offsets``."""
        offsets: dict[OffsetKey, int] = self._call("resume_offsets")  # type: ignore[assignment]
        return offsets

    def load_checkpoint(self, stream: str) -> Checkpoint | None:
        """``StoreWriter.load_checkpoint``."""
        checkpoint: Checkpoint | None = self._call("load_checkpoint", stream)  # type: ignore[assignment]
        return checkpoint

    def end_run(
        self, run_id: str, status: RunStatus | str, counters: RunCounters | None = None
    ) -> None:
        """``StoreWriter.end_run``."""
        self._call("end_run", run_id, RunStatus(status).value, counters)

    # -- the stage -------------------------------------------------------------------

    def start(
        self, run_id: str, *, max_rows: int, max_wait_s: float, wait: bool = True
    ) -> RemoteStage:
        """Start committing (a ``StoreThread`` in the child); the stage to feed.

        With ``wait=False`` the start is only sent, and items may follow at once.
        """
        message = (wire.STAGE, run_id, max_rows, max_wait_s)
        if wait:
            self._request(message)
        else:
            self._post(message)
        if self._outbox is None:
            self._outbox = Outbox(self._conn, name="auditor-store-send")
        return RemoteStage(self)

    def put(self, item: StoreItem) -> None:
        """Hand one detect output over (blocks while the store is behind).

        Raises:
            StoreError: (or the subclass the child raised) a commit failed.
        """
        self._take_reports(block=False)
        self._raise_failure()
        data = wire.encode(wire.pack_item(item))
        try:
            if self._outbox is None:
                self._conn.send_bytes(data)
            else:
                self._outbox.send(data)
        except OSError:
            # The child stopped reading: it failed (its error is waiting) or it died.
            self._take_reports(block=True)
            self._raise_failure()
            raise self._died() from None

    def finish(self) -> None:
        """Commit what waits and stop the stage; raises what stopped it, if anything."""
        self._raise_failure()
        self._request((wire.CLOSE,))

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Have the child close the database and exit; wait for it (kill it if it hangs)."""
        if self._conn.closed:
            return
        if self._child.poll() is None:
            try:
                self._request((wire.SHUTDOWN,))
            except AuditorError as exc:  # a StoreError, or the open's own error
                _log.warning("store.process_not_closed", error=str(exc))
        if self._outbox is not None:
            self._outbox.close()
        self._conn.close()
        try:
            self._child.wait(_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            _log.error("store.process_killed", pid=self._child.pid, waited_s=_STOP_WAIT_S)
            self._child.kill()
            self._child.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the socket ------------------------------------------------------------------

    def _call(self, method: str, *args: object, **kwargs: object) -> object:
        return self._request((wire.CALL, method, args, kwargs))

    def _request(self, message: tuple[object, ...]) -> object:
        """Send ``message`` (after the items queued) and wait for its answer, taking reports.

        The answers owed to posted messages come first; a failure among them is raised
        before this message's own answer (it is the cause). A failure kept from before is
        not raised again here: ``put`` raises it (and ``close`` must still get through).
        """
        known = self._error
        self._send(message)
        while True:
            answer = self._receive()
            if answer is None:
                raise self._died()
            if self._posted or answer[0] not in {wire.OK, wire.ERROR}:
                self._report(answer)
                continue
            if self._error is not None and self._error is not known:
                raise self._error
            if answer[0] == wire.ERROR:
                raise wire.raised(answer)
            return answer[1]

    def _post(self, message: tuple[object, ...]) -> None:
        """Send a call without waiting for its answer: ``_report`` takes it when it comes.

        A failed answer is kept as the store's failure, raised by the next ``put`` or call.
        """
        self._send(message)
        self._posted += 1

    def _send(self, message: tuple[object, ...]) -> None:
        try:
            if self._outbox is not None:
                self._outbox.drain()
            self._conn.send_bytes(wire.encode(message))
        except OSError:
            self._take_reports(block=True)
            self._raise_failure()
            raise self._died() from None

    def _receive(self) -> tuple[object, ...] | None:
        try:
            return wire.decode(self._conn.recv_bytes())
        except (EOFError, OSError):
            return None

    def _take_reports(self, *, block: bool) -> None:
        """Take what the child sent: commit reports, log lines, an error."""
        while block or self._conn.poll():
            message = self._receive()
            if message is None:
                return
            self._report(message)

    def _report(self, message: tuple[object, ...]) -> None:
        tag = message[0]
        if tag in {wire.OK, wire.ERROR} and self._posted:
            self._posted -= 1  # the answer to a posted message: only a failure matters
            if tag == wire.ERROR:
                self._error = self._error or wire.raised(message)
        elif tag == wire.COMMITTED:
            self._committed(message)
        elif tag == wire.LOG:
            _, method, text, fields = message
            getattr(_log, str(method), _log.info)(text, **fields)  # type: ignore[arg-type]
        elif tag == wire.ERROR:
            self._error = self._error or wire.raised(message)
        else:
            self._error = self._error or StoreError(f"the store process sent {tag!r}")

    def _committed(self, message: tuple[object, ...]) -> None:
        report = cast("BatchReport", message[1])
        events, findings, dead = cast("tuple[int, int, int]", message[2])
        started, ended = cast("tuple[int, int]", message[3])
        self._telemetry.past_span(
            "store batch",
            {"auditor.events": events, "auditor.findings": findings, "auditor.dead_letters": dead},
            started,
            ended,
        )
        self.stored += committed(self._telemetry, report, (ended - started) / 1e9)

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _died(self) -> StoreError:
        code = self._child.poll()
        if code is None:
            return StoreError("the store process stopped answering")
        return StoreError(f"the store process stopped (exit status {code})")


class RemoteStage:
    """``StoreProcess``'s stage with ``StoreThread``'s ``put`` and ``close``."""

    def __init__(self, process: StoreProcess) -> None:
        self._process = process

    def put(self, item: StoreItem) -> None:
        """``StoreProcess.put``."""
        self._process.put(item)

    def close(self) -> None:
        """``StoreProcess.finish``."""
        self._process.finish()


def _spawn(fd: int, db: Path) -> subprocess.Popen[bytes]:
    """``python -P -m pipelines.topology.store_server FD DB`` with this process's import path.

    ``-P``: the working directory is not put first on the child's path, so a folder holding
    another version of the package (a checkout) cannot stand in for the run's own.

    ``DB`` names the store in ``ps``; the child opens what the run's ``open`` names.

    In a session of its own, so that a Ctrl-C on the terminal reaches only the run, which
    stops it in order; SIGINT and SIGTERM are ignored from the start (ignored signals
    survive ``exec``) until the child ignores them itself.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    main = threading.current_thread() is threading.main_thread()
    saved: Mapping[int, Any] = {}
    if main:
        saved = {sig: signal.getsignal(sig) for sig in _SIGNALS}
        saved = {sig: handler for sig, handler in saved.items() if handler is not None}
        for sig in saved:
            signal.signal(sig, signal.SIG_IGN)
    try:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-P", "-m", "pipelines.topology.store_server", str(fd), str(db)],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


_SIGNALS: Final[Sequence[int]] = (signal.SIGINT, signal.SIGTERM)

__all__ = ["RemoteStage", "StoreProcess"]

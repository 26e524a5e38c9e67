"""Messages sent on a connection from a thread of their own, so that the sender goes on.

An embedded run hands each detect output to its store process as one message of a few
megabytes (``store_wire``). A socket buffers far less, so a plain send waits until the
store process has read most of it, and that process reads only between two items it
unpacks: the detect stage and the store took turns instead of working at once (measured:
the run blocked ~1 s in sends over a million records, 5-12 % of its time). ``Outbox``
queues a few messages and sends them from a thread, which waits in the kernel without the
GIL; the detect stage blocks only when that many wait already.
"""

from __future__ import annotations

import queue
import threading
from multiprocessing.connection import Connection
from typing import Final

DEPTH: Final = 3
"""Messages that may wait to be sent; ``send`` blocks past that (the back-pressure)."""

_POLL_S: Final = 0.5
"""How often a blocked ``send`` looks whether the thread has failed."""


class OutboxError(OSError):
    """A send failed (the other end closed or died); nothing more is sent."""


class Outbox:
    """Sends byte messages on ``conn`` from a thread, in the order they were given.

    Only the outbox sends on ``conn`` while it is open: whoever sends otherwise calls
    ``drain`` first. After a failed send the thread drops what is queued and what comes,
    and every ``send`` and ``drain`` raises ``OutboxError``.
    """

    def __init__(self, conn: Connection, *, depth: int = DEPTH, name: str = "outbox") -> None:
        self._conn = conn
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def send(self, data: bytes) -> None:
        """Queue ``data``; blocks while ``depth`` messages wait.

        Raises:
            OutboxError: A send failed.
        """
        while not self._failed.is_set():
            try:
                self._queue.put(data, timeout=_POLL_S)
            except queue.Full:
                continue
            return
        raise OutboxError("the connection's other end stopped reading")

    def drain(self) -> None:
        """Wait until everything queued has been sent.

        Raises:
            OutboxError: A send failed.
        """
        self._queue.join()
        if self._failed.is_set():
            raise OutboxError("the connection's other end stopped reading")

    def close(self) -> None:
        """Send what is queued (or drop it, after a failure), then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            try:
                if data is None:
                    return
                if not self._failed.is_set():
                    self._conn.send_bytes(data)
            except OSError:
                self._failed.set()
            finally:
                self._queue.task_done()


__all__ = ["DEPTH", "Outbox", "OutboxError"]

"""``Outbox``: messages sent from a thread, in order, with back-pressure and failures kept.

Over a real socket pair, with messages larger than the socket buffers (as an embedded
run's items are), so that a send really waits for the reader.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from pipelines.topology.outbox import DEPTH, Outbox, OutboxError

_BIG = 8 << 20  # past any default socket buffer: a send returns only once it is read


@pytest.fixture
def pair() -> Iterator[tuple[Connection, Connection]]:
    ours, theirs = socket.socketpair()
    a, b = Connection(ours.detach()), Connection(theirs.detach())
    yield a, b
    for conn in (a, b):
        if not conn.closed:
            conn.close()


def _message(index: int, size: int = _BIG) -> bytes:
    return index.to_bytes(4, "big") * (size // 4)


def _reader(conn: Connection, count: int) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        got.extend(conn.recv_bytes() for _ in range(count))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


def test_messages_arrive_whole_and_in_order(pair) -> None:
    ours, theirs = pair
    sizes = [_BIG, 10, 0, 1 << 20, 3, _BIG + 1, 70_000, 5]
    sent = [_message(i, size) for i, size in enumerate(sizes)]
    thread, got = _reader(theirs, len(sent))
    outbox = Outbox(ours)
    for data in sent:
        outbox.send(data)
    outbox.drain()
    thread.join(30)
    outbox.close()
    assert got == sent


def test_the_sender_goes_on_while_the_reader_is_busy_until_depth_messages_wait(pair) -> None:
    ours, theirs = pair
    outbox = Outbox(ours)
    # One message in the thread's send (waiting for the reader), DEPTH queued behind it:
    # none of these sends waits, though nothing is read.
    early = threading.Thread(
        target=lambda: [outbox.send(_message(index)) for index in range(DEPTH + 1)], daemon=True
    )
    early.start()
    early.join(30)
    assert not early.is_alive()
    late = threading.Thread(target=outbox.send, args=(_message(DEPTH + 1),), daemon=True)
    late.start()
    late.join(0.3)
    assert late.is_alive()  # the back-pressure: one more waits for room
    thread, got = _reader(theirs, DEPTH + 2)
    late.join(30)
    assert not late.is_alive()
    outbox.drain()
    thread.join(30)
    outbox.close()
    assert got == [_message(index) for index in range(DEPTH + 2)]


def test_close_sends_what_is_queued_first(pair) -> None:
    ours, theirs = pair
    outbox = Outbox(ours)
    thread, got = _reader(theirs, 3)
    for index in range(3):
        outbox.send(_message(index, 1000))
    outbox.close()
    thread.join(30)
    assert got == [_message(index, 1000) for index in range(3)]


def test_a_reader_gone_fails_every_send_and_drain_and_close_still_returns(pair) -> None:
    ours, theirs = pair
    outbox = Outbox(ours)
    theirs.close()

    def send_until_it_fails() -> None:
        for index in range(100):  # the first sends may be queued before one fails
            outbox.send(_message(index))

    with pytest.raises(OutboxError):
        send_until_it_fails()
    with pytest.raises(OutboxError):
        outbox.send(b"more")
    with pytest.raises(OutboxError):
        outbox.drain()
    assert isinstance(OutboxError("x"), OSError)  # what the store process's callers catch
    outbox.close()

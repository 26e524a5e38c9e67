"""Events the detect stage decoded, handed to the store stage of the same process.

With ``--stage all`` both stages read the authz topic: the detect stage to detect, the
store stage to store the events exactly once with its own offsets. Both validated and
redacted every event, the same way (the same ``RecordDecoder`` limits and the same
fingerprint key): the most expensive step of each, done twice under one GIL. The detect
stage now offers what it decoded, keyed by partition and offset, and the store takes it
instead of decoding the record again. The same record decodes to the same event, so a
taken event is exactly what the store would have built; when the store reads a record
before the detect stage has offered it (either may be first), it decodes it itself.

Bounded: entries the store has read past are dropped as it goes, and beyond ``capacity``
nothing more is offered (the store then decodes, as without a handoff).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

from auditor.models import AuthzEvent
from pipelines.topology.authz_mirror import Mirrored

DEFAULT_CAPACITY: Final = 50_000
"""Events held at most (about ten seconds of a busy partition set)."""

Part = tuple[str, int]
"""A topic and a partition."""


class EventHandoff:
    """Redacted, validated authz events by ``(topic, partition)`` and offset.

    Thread-safe: the detect thread offers, the store thread takes.

    Args:
        capacity: The most events held; offers past it are dropped.
    """

    __slots__ = ("_capacity", "_count", "_lock", "_parts")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._parts: dict[Part, dict[int, AuthzEvent | Mirrored]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def offer(self, part: Part, events: Iterable[tuple[int, AuthzEvent | Mirrored]]) -> None:
        """Events of one partition, in offset order, as the store would store them."""
        with self._lock:
            held = self._parts.setdefault(part, {})
            for offset, event in events:
                if self._count >= self._capacity:
                    return
                if offset not in held:
                    self._count += 1
                held[offset] = event

    def take(self, part: Part, offset: int) -> AuthzEvent | Mirrored | None:
        """The event at ``offset``, once; ``None`` when it was not offered (yet)."""
        with self._lock:
            held = self._parts.get(part)
            event = held.pop(offset, None) if held else None
            if event is not None:
                self._count -= 1
            return event

    def passed(self, part: Part, position: int) -> None:
        """The store has read ``part`` up to ``position``: drop what lies before it."""
        with self._lock:
            held = self._parts.get(part)
            if not held:
                return
            stale = [offset for offset in held if offset < position]
            for offset in stale:
                del held[offset]
            self._count -= len(stale)


__all__ = ["DEFAULT_CAPACITY", "EventHandoff", "Part"]

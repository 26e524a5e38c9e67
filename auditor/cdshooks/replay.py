"""Single use of ``jti``: the replay cache a verifier consults after a signature checks out.

CDS Hooks best practices (non-normative) ask services to keep each seen ``jti`` for the
longest token lifetime — "no more than an hour"; SMART Backend Services, often applied by
local policy, says a ``jti`` must not be reused for the same ``iss`` while its token is
valid. We key entries by ``(iss, jti)`` and keep each until its token's ``exp`` plus the
verifier's clock skew: after that the token is refused as expired anyway.

Only tokens whose signature verified reach the cache, so filling it takes a trusted
client's key. When it is full of unexpired entries the in-memory cache **fails closed**:
the token is refused with ``replay_cache_full`` rather than accepted unchecked, because an
entry dropped to make room would let exactly that token be replayed. Size it for the
peak rate times the longest lifetime (e.g. 500 tokens/s x 300 s = 150,000 entries,
~40 MB).
"""

from __future__ import annotations

import heapq
import threading
from enum import Enum
from typing import Protocol, runtime_checkable

from auditor.errors import ConfigurationError


class ReplayVerdict(Enum):
    """The answer of a replay cache for one ``(iss, jti)``."""

    FRESH = "fresh"
    """Not seen before; now recorded."""
    REPLAYED = "replayed"
    """Seen before and not yet expired."""
    FULL = "full"
    """Not recorded: the cache is at capacity with live entries."""


@runtime_checkable
class ReplayCache(Protocol):
    """Remembers ``(iss, jti)`` pairs until their tokens expire.

    Called by :class:`~auditor.cdshooks.verification.Verifier` once per token that passed
    every other check, on the request path, possibly from several threads at once. The
    check and the insert must be one atomic step (a Redis implementation uses
    ``SET key 1 NX EXAT expires_at``). It may block briefly (a network round trip to a
    shared cache); it should not raise — return ``FULL`` when it cannot record.
    """

    def check_and_remember(
        self, issuer: str, jti: str, *, expires_at: float, now: float
    ) -> ReplayVerdict:
        """Record ``(issuer, jti)`` until ``expires_at`` unless it is already recorded.

        Both times are seconds since the epoch, on the verifier's clock.
        """
        ...


class InMemoryReplayCache:
    """A bounded, thread-safe, process-local replay cache with expiry.

    Entries leave when their expiry passes (swept lazily on insert, oldest first). A
    multi-process service needs a shared implementation of :class:`ReplayCache` instead:
    with one cache per process, a replay sent to another process goes unseen.

    Args:
        max_entries: Capacity. At capacity with no expired entry to drop, new tokens are
            refused (fail closed; see the module docstring).
    """

    __slots__ = ("_expiry_heap", "_lock", "_seen", "max_entries")

    def __init__(self, *, max_entries: int = 200_000) -> None:
        if max_entries < 1:
            raise ConfigurationError("the replay cache needs room for at least one entry")
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._expiry_heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def __repr__(self) -> str:
        return f"InMemoryReplayCache(entries={len(self._seen)}, max_entries={self.max_entries})"

    def check_and_remember(
        self, issuer: str, jti: str, *, expires_at: float, now: float
    ) -> ReplayVerdict:
        """See :meth:`ReplayCache.check_and_remember`."""
        key = (issuer, jti)
        with self._lock:
            seen_until = self._seen.get(key)
            if seen_until is not None and seen_until > now:
                return ReplayVerdict.REPLAYED
            self._sweep(now)
            if len(self._seen) >= self.max_entries:
                return ReplayVerdict.FULL
            self._seen[key] = expires_at
            heapq.heappush(self._expiry_heap, (expires_at, key))
            return ReplayVerdict.FRESH

    def _sweep(self, now: float) -> None:
        heap = self._expiry_heap
        seen = self._seen
        while heap and heap[0][0] <= now:
            expiry, key = heapq.heappop(heap)
            # A key re-recorded after expiring has a newer expiry: keep that entry.
            if seen.get(key) == expiry:
                del seen[key]

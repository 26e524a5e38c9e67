"""The compact table of one client's live jtis, expired in 10-second buckets.

One entry per jti: a 60-bit key (the jti read as hex when it is a lower-case UUID, else
BLAKE2b) mapping to one packed integer that records the first presentation. From the
least significant bit: 32 bits of the event id (to recognise a redelivered event), a
24-bit hookInstance hash, one bit for "accepted", 16 bits each for the interned service
and peer, then the time in milliseconds. About 115-140 bytes per jti in all, depending on
the table size (``bench/stream_detectors.py`` measures it). Keys are stable across
processes, so the table survives a snapshot and restore.
"""

from __future__ import annotations

import hashlib
import heapq
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

BUCKET_SECONDS = 10.0
"""Expiry granularity: a jti is forgotten up to this long after its horizon."""

_UUID_TEXT_LENGTH = 36
_MASK60 = (1 << 60) - 1
_MAX_INTERNED = 0xFFFF

_EVH_BITS, _HOOK_BITS, _IDX_BITS = 32, 24, 16
_HOOK_SHIFT = _EVH_BITS
_ACCEPTED_SHIFT = _HOOK_SHIFT + _HOOK_BITS
_SERVICE_SHIFT = _ACCEPTED_SHIFT + 1
_PEER_SHIFT = _SERVICE_SHIFT + _IDX_BITS
_TIME_SHIFT = _PEER_SHIFT + _IDX_BITS
_EVH_MASK = (1 << _EVH_BITS) - 1
_HOOK_MASK = (1 << _HOOK_BITS) - 1
_IDX_MASK = (1 << _IDX_BITS) - 1
ACCEPTED_BIT = 1 << _ACCEPTED_SHIFT


def jti_key(jti: str) -> int:
    """A stable 60-bit key for a jti.

    Lower-case UUIDs, the usual jti, are read as hexadecimal; anything else is hashed with
    BLAKE2b. Collisions only matter between one client's own live jtis: at a million of
    them the chance of any is below one in a million.
    """
    # islower() is false for a UUID without letters: that rare jti is hashed instead,
    # which is just as stable (the same jti always takes the same path).
    if len(jti) == _UUID_TEXT_LENGTH and jti.islower() and "_" not in jti:
        try:
            return int(jti.replace("-", ""), 16) & _MASK60
        except ValueError:
            pass
    digest = hashlib.blake2b(jti.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK60


def small_hash(text: str | None) -> int:
    """A 24-bit hash for equality checks (hookInstance); 0 means absent."""
    if text is None:
        return 0
    return (zlib.crc32(text.encode("utf-8", "surrogatepass")) & _HOOK_MASK) or 1


def event_hash(event_id_int: int) -> int:
    """The 32 bits of an event id kept to recognise a redelivered event."""
    return event_id_int & _EVH_MASK


class FirstPresentation(NamedTuple):
    """The unpacked record of a jti's first presentation."""

    event_hash: int
    hook_hash: int
    accepted: bool
    service: int
    peer: int
    time: float


def unpack(record: int) -> FirstPresentation:
    """The fields of a packed record."""
    return FirstPresentation(
        record & _EVH_MASK,
        (record >> _HOOK_SHIFT) & _HOOK_MASK,
        bool(record & ACCEPTED_BIT),
        (record >> _SERVICE_SHIFT) & _IDX_MASK,
        (record >> _PEER_SHIFT) & _IDX_MASK,
        (record >> _TIME_SHIFT) / 1000,
    )


def _intern(table: list[str | None], index: dict[str, int], value: str | None) -> int:
    if value is None:
        return 0
    found = index.get(value)
    if found is not None:
        return found
    if len(table) > _MAX_INTERNED:
        return 0  # table full: recorded as unknown, compared as equal (no false replay)
    index[value] = len(table)
    table.append(value)
    return len(table) - 1


@dataclass(slots=True)
class JtiTable:
    """Live jtis of one client, with their expiry buckets and interned names."""

    seen: dict[int, int] = field(default_factory=dict)
    buckets: dict[int, list[int]] = field(default_factory=dict)
    bucket_heap: list[int] = field(default_factory=list)
    services: list[str | None] = field(default_factory=lambda: [None])
    service_index: dict[str, int] = field(default_factory=dict)
    peers: list[str | None] = field(default_factory=lambda: [None])
    peer_index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.seen)

    def service_id(self, name: str | None) -> int:
        """The interned index of a service name (0 when absent or the table is full)."""
        return _intern(self.services, self.service_index, name)

    def peer_id(self, ip: str | None) -> int:
        """The interned index of a peer address (0 when absent or the table is full)."""
        return _intern(self.peers, self.peer_index, ip)

    def add(  # noqa: PLR0917 - one positional call on the hot path, no keyword packing
        self,
        key: int,
        event_id: int,
        hook_instance: str | None,
        accepted: bool,
        service: str | None,
        peer: str | None,
        time: float,
        horizon: float,
    ) -> None:
        """Record a first presentation, remembered until event time ``horizon``.

        The hot path of the replay detector: hashing, interning, packing (the layout
        ``unpack`` reads) and bucketing are inlined into this one call.
        """
        s_idx = self.service_index.get(service, 0) if service is not None else 0
        if s_idx == 0 and service is not None:
            s_idx = _intern(self.services, self.service_index, service)
        p_idx = self.peer_index.get(peer, 0) if peer is not None else 0
        if p_idx == 0 and peer is not None:
            p_idx = _intern(self.peers, self.peer_index, peer)
        hook = 0
        if hook_instance is not None:
            hook = (zlib.crc32(hook_instance.encode("utf-8", "surrogatepass")) & _HOOK_MASK) or 1
        self.seen[key] = (
            (event_id & _EVH_MASK)
            | (hook << _HOOK_SHIFT)
            | (ACCEPTED_BIT if accepted else 0)
            | (s_idx << _SERVICE_SHIFT)
            | (p_idx << _PEER_SHIFT)
            | (round(time * 1000) << _TIME_SHIFT)
        )
        bucket = int(horizon // BUCKET_SECONDS) + 1
        members = self.buckets.get(bucket)
        if members is None:
            self.buckets[bucket] = [key]
            heapq.heappush(self.bucket_heap, bucket)
        else:
            members.append(key)

    def insert(self, key: int, record: int, horizon: float) -> None:
        """Remember ``key`` until event time ``horizon`` (rounded up to a bucket)."""
        self.seen[key] = record
        bucket = int(horizon // BUCKET_SECONDS) + 1
        members = self.buckets.get(bucket)
        if members is None:
            self.buckets[bucket] = [key]
            heapq.heappush(self.bucket_heap, bucket)
        else:
            members.append(key)

    @property
    def next_expiry(self) -> float | None:
        """When the earliest bucket expires, if any."""
        return self.bucket_heap[0] * BUCKET_SECONDS if self.bucket_heap else None

    def expire(self, now: float) -> list[int]:
        """Forget every jti whose bucket ``now`` has reached; return their keys."""
        gone: list[int] = []
        heap = self.bucket_heap
        seen = self.seen
        while heap and heap[0] * BUCKET_SECONDS <= now:
            members = self.buckets.pop(heapq.heappop(heap), [])
            gone.extend(key for key in members if seen.pop(key, None) is not None)
        return gone

    def forget_earliest(self) -> int | None:
        """Forget one jti of the earliest bucket (the table is full); return its key."""
        heap = self.bucket_heap
        while heap and not self.buckets.get(heap[0]):
            self.buckets.pop(heapq.heappop(heap), None)
        if not heap:
            return None
        members = self.buckets[heap[0]]
        key = members.pop()
        if not members:
            del self.buckets[heapq.heappop(heap)]
        self.seen.pop(key, None)
        return key

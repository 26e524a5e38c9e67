"""A local, append-only disk spool: where records wait while Kafka is unreachable.

Layout of the spool directory (mode 0700, files 0600):

``LOCK``
    ``flock``-ed by the one process that owns the spool; a second one is refused.
``<seq>.seg``
    Segments of framed records, appended to and read in order. The last is the active
    segment; it rolls over at ``segment_bytes``.
``cursor``
    ``<seq> <offset>``: how far the drain has got; replaced atomically.

A frame is ``length:u32 crc32:u32 payload``; the payload is ``topic, key, headers,
value``. Reopening a spool after a crash truncates a torn last frame and resumes at the
cursor, so a drained record is not sent again unless the crash came between the broker's
acknowledgement and the cursor update (at-least-once).

Durability (``FsyncPolicy``): every append is one ``write(2)``, so a record survives
the process crashing as soon as ``append`` returns. Surviving the machine crashing needs
``fsync``: ``always`` after each append (slowest), ``interval`` at most every
``fsync_interval_s`` and on every segment roll and close (default: at most that long of
records is lost to a power cut), ``never`` leaves it to the OS.

Size cap (``OverflowPolicy``): the spool holds at most ``max_bytes`` of pending records.
``drop_newest`` refuses what does not fit; ``drop_oldest`` deletes whole segments from
the front (the oldest records) to make room. Either way every dropped record is counted.

Not thread-safe: one thread (the emitter's worker) owns it.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Final, Self

from auditor.errors import ConfigurationError

_FRAME: Final = struct.Struct(">II")
_U16: Final = struct.Struct(">H")
_I32: Final = struct.Struct(">i")
_U32: Final = struct.Struct(">I")
_SEGMENT_NAME: Final = re.compile(r"^(\d{16})\.seg$")
MAX_RECORD_BYTES: Final = 64 << 20


class FsyncPolicy(StrEnum):
    """When appended records are forced to stable storage."""

    NEVER = "never"
    INTERVAL = "interval"
    ALWAYS = "always"


class OverflowPolicy(StrEnum):
    """What happens when the spool is full."""

    DROP_NEWEST = "drop_newest"
    DROP_OLDEST = "drop_oldest"


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record, ready to send: topic, key, value and headers as bytes."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SpoolPosition:
    """Where a ``read`` ended; ``commit`` it once the records are acknowledged."""

    seq: int
    offset: int
    taken: tuple[tuple[int, int], ...]
    """How many records the read took from each segment, by segment number."""


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int
    records: int


def encode_record(record: Record) -> bytes:
    """The frame of one record."""
    topic = record.topic.encode()
    parts = [_U16.pack(len(topic)), topic]
    if record.key is None:
        parts.append(_I32.pack(-1))
    else:
        parts += [_I32.pack(len(record.key)), record.key]
    parts.append(_U16.pack(len(record.headers)))
    for name, value in record.headers:
        raw = name.encode()
        parts += [_U16.pack(len(raw)), raw, _U32.pack(len(value)), value]
    parts.append(record.value)
    payload = b"".join(parts)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes) -> Record:
    """The record in a frame's payload (the inverse of ``encode_record``)."""
    view = memoryview(payload)
    (n,) = _U16.unpack_from(view, 0)
    pos = 2
    topic = bytes(view[pos : pos + n]).decode()
    pos += n
    (klen,) = _I32.unpack_from(view, pos)
    pos += 4
    key = None
    if klen >= 0:
        key = bytes(view[pos : pos + klen])
        pos += klen
    (count,) = _U16.unpack_from(view, pos)
    pos += 2
    headers = []
    for _ in range(count):
        (n,) = _U16.unpack_from(view, pos)
        name = bytes(view[pos + 2 : pos + 2 + n]).decode()
        pos += 2 + n
        (vlen,) = _U32.unpack_from(view, pos)
        headers.append((name, bytes(view[pos + 4 : pos + 4 + vlen])))
        pos += 4 + vlen
    return Record(topic, key, bytes(view[pos:]), tuple(headers))


class DiskSpool:
    """Append-only segment files with a drain cursor; see the module docstring.

    Args:
        directory: Created if missing; owned by this object until ``close``.
        max_bytes: Cap on pending (not yet drained) bytes.
        segment_bytes: Roll the active segment past this size.
        fsync: When to force data to stable storage.
        fsync_interval_s: The interval of ``FsyncPolicy.INTERVAL``.
        overflow: What to drop when full.
        clock: Monotonic seconds; tests pass their own.

    Raises:
        ConfigurationError: The directory cannot be created or is owned by another
            process.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync: FsyncPolicy = FsyncPolicy.INTERVAL,
        fsync_interval_s: float = 1.0,
        overflow: OverflowPolicy = OverflowPolicy.DROP_NEWEST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if segment_bytes > max_bytes:
            raise ConfigurationError("the spool's segment size must not exceed its size cap")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = FsyncPolicy(fsync)
        self.fsync_interval_s = fsync_interval_s
        self.overflow = OverflowPolicy(overflow)
        self._clock = clock
        self.dropped = 0
        """Records refused or deleted because the spool was full."""
        self.corrupt = 0
        """Damaged frames found (a torn write, a flipped bit); what follows one in its
        segment cannot be framed and is skipped."""
        self.lost_bytes = 0
        """Bytes skipped after damaged frames."""
        self._lock_fd = self._acquire(directory)
        self._segments: list[_Segment] = []
        self._cursor_offset = 0
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._reader_seq = -1
        self._dirty = False
        self._last_sync = clock()
        self._recover()

    # -- state -----------------------------------------------------------------------

    def __len__(self) -> int:
        """Records waiting to be drained."""
        return sum(s.records for s in self._segments)

    @property
    def pending_bytes(self) -> int:
        """Bytes waiting to be drained."""
        return sum(s.size for s in self._segments) - self._cursor_offset

    # -- writing ---------------------------------------------------------------------

    def append(self, records: Iterable[Record]) -> int:
        """Append records in order with one write per segment; return how many were kept."""
        frames = [encode_record(r) for r in records]
        kept = 0
        batch: list[bytes] = []
        batch_bytes = 0
        for frame in frames:
            if len(frame) > min(self.max_bytes, MAX_RECORD_BYTES) or not self._make_room(
                batch_bytes + len(frame)
            ):
                self.dropped += 1
                continue
            if batch and self._active().size + batch_bytes + len(frame) > self.segment_bytes:
                self._write(batch, batch_bytes)
                batch, batch_bytes = [], 0
                self._roll()
            batch.append(frame)
            batch_bytes += len(frame)
            kept += 1
        if batch:
            self._write(batch, batch_bytes)
            if self._active().size >= self.segment_bytes:
                self._roll()
        return kept

    def sync_if_due(self) -> None:
        """Under ``FsyncPolicy.INTERVAL``, fsync what was appended if the interval passed."""
        due = self._clock() - self._last_sync >= self.fsync_interval_s
        if self._dirty and self.fsync is FsyncPolicy.INTERVAL and due:
            self._sync()

    def _write(self, frames: list[bytes], size: int) -> None:
        segment = self._active()
        if self._writer is None:
            self._writer = _open_append(segment.path)
        self._writer.write(b"".join(frames))
        segment.size += size
        segment.records += len(frames)
        self._dirty = True
        if self.fsync is FsyncPolicy.ALWAYS:
            self._sync()
        else:
            self.sync_if_due()

    def _make_room(self, incoming: int) -> bool:
        while self.pending_bytes + incoming > self.max_bytes:
            if self.overflow is OverflowPolicy.DROP_NEWEST or not self._segments:
                return False
            if len(self._segments) == 1:
                if self._segments[0].records == 0:
                    return False
                self._roll()
            oldest = self._segments.pop(0)
            self.dropped += oldest.records
            self._delete(oldest)
            self._cursor_offset = 0
            self._save_cursor(self._segments[0].seq, 0)
        return True

    def _active(self) -> _Segment:
        if not self._segments:
            self._segments.append(self._new_segment(self._next_seq))
        return self._segments[-1]

    def _roll(self) -> None:
        if self._writer is not None:
            if self.fsync is not FsyncPolicy.NEVER:
                self._sync()
            self._writer.close()
            self._writer = None
        self._segments.append(self._new_segment(self._segments[-1].seq + 1))

    def _new_segment(self, seq: int) -> _Segment:
        self._next_seq = seq + 1
        path = self.directory / f"{seq:016d}.seg"
        path.touch(mode=0o600)
        return _Segment(seq, path, 0, 0)

    def _sync(self) -> None:
        if self._writer is not None:
            os.fsync(self._writer.fileno())
        self._dirty = False
        self._last_sync = self._clock()

    # -- draining --------------------------------------------------------------------

    def read(
        self, max_records: int = 1_000, max_bytes: int = 4 << 20
    ) -> tuple[list[Record], SpoolPosition | None]:
        """The oldest pending records, without consuming them.

        Returns:
            The records (at most ``max_records``, about ``max_bytes``) and the position
            to ``commit`` once they are safely delivered; ``None`` when empty.
        """
        records: list[Record] = []
        taken: dict[int, int] = {}
        size = 0
        index = 0
        offset = self._cursor_offset
        while index < len(self._segments) and len(records) < max_records and size < max_bytes:
            segment = self._segments[index]
            if offset >= segment.size:
                if index == len(self._segments) - 1:
                    break
                index, offset = index + 1, 0
                continue
            frame = self._read_frame(segment, offset)
            if frame is None:
                self._cut_damaged(segment, offset, taken.get(segment.seq, 0))
                continue
            payload, offset = frame
            records.append(decode_payload(payload))
            taken[segment.seq] = taken.get(segment.seq, 0) + 1
            size += len(payload)
        if not records:
            return [], None
        last = self._segments[index]
        return records, SpoolPosition(last.seq, offset, tuple(taken.items()))

    def commit(self, position: SpoolPosition) -> None:
        """Consume everything up to ``position`` (the records of the matching ``read``)."""
        taken = dict(position.taken)
        for segment in self._segments:
            segment.records -= taken.get(segment.seq, 0)
        while len(self._segments) > 1 and self._segments[0].seq < position.seq:
            self._delete(self._segments.pop(0))
        head = self._segments[0]
        self._cursor_offset = position.offset
        if head.size == position.offset:
            if len(self._segments) > 1:
                self._delete(self._segments.pop(0))
                self._cursor_offset = 0
            else:
                # Fully drained: start afresh so the active file does not grow forever.
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                self._delete(self._segments.pop())
                self._cursor_offset = 0
        head_seq = self._segments[0].seq if self._segments else self._next_seq
        self._save_cursor(head_seq, self._cursor_offset)

    def _cut_damaged(self, segment: _Segment, offset: int, intact: int) -> None:
        # A damaged frame: what follows it in this segment cannot be framed reliably.
        self.corrupt += 1
        self.lost_bytes += segment.size - offset
        self.dropped += max(segment.records - intact, 0)
        segment.records = intact
        segment.size = offset
        if segment is self._segments[-1]:
            # New appends must not land behind the damage, where reads stop.
            self._roll()

    def _delete(self, segment: _Segment) -> None:
        if self._reader_seq == segment.seq:
            self._close_reader()
        segment.path.unlink(missing_ok=True)

    def _read_frame(self, segment: _Segment, offset: int) -> tuple[bytes, int] | None:
        if self._reader is None or self._reader_seq != segment.seq:
            self._close_reader()
            self._reader = segment.path.open("rb")
            self._reader_seq = segment.seq
        if self._writer is not None:
            self._writer.flush()
        self._reader.seek(offset)
        header = self._reader.read(_FRAME.size)
        if len(header) < _FRAME.size:
            return None
        length, crc = _FRAME.unpack(header)
        if length > MAX_RECORD_BYTES:
            return None
        payload = self._reader.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return None
        return payload, offset + _FRAME.size + length

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._reader_seq = -1

    # -- files -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush, fsync (unless ``never``) and release the directory."""
        if self._writer is not None:
            if self.fsync is not FsyncPolicy.NEVER:
                self._sync()
            self._writer.close()
            self._writer = None
        self._close_reader()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    @staticmethod
    def _acquire(directory: Path) -> int:
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot use spool directory {directory}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigurationError(
                f"spool directory {directory} is in use by another process; "
                "give each emitter its own (emitter.spool_dir)"
            ) from None
        return fd

    def _recover(self) -> None:
        seqs = sorted(
            int(m.group(1)) for p in self.directory.iterdir() if (m := _SEGMENT_NAME.match(p.name))
        )
        head_seq, head_offset = self._load_cursor()
        self._next_seq = (seqs[-1] + 1) if seqs else max(head_seq, 0)
        for seq in seqs:
            path = self.directory / f"{seq:016d}.seg"
            if seq < head_seq:
                path.unlink(missing_ok=True)  # drained before the last stop
                continue
            start = head_offset if seq == head_seq else 0
            records, good_end, damaged = _scan(path, start)
            if damaged:
                self.corrupt += 1
                self.lost_bytes += path.stat().st_size - good_end
                if seq == seqs[-1]:
                    # A torn tail from a crash mid-write: cut it so appends stay aligned.
                    with path.open("r+b") as handle:
                        handle.truncate(good_end)
            self._segments.append(_Segment(seq, path, good_end, records))
        if self._segments and self._segments[0].seq == head_seq:
            self._cursor_offset = min(head_offset, self._segments[0].size)

    def _load_cursor(self) -> tuple[int, int]:
        try:
            seq, offset = (self.directory / "cursor").read_text("ascii").split()
            return int(seq), int(offset)
        except (OSError, ValueError):
            return -1, 0

    def _save_cursor(self, seq: int, offset: int) -> None:
        tmp = self.directory / "cursor.tmp"
        with _open_truncate(tmp) as handle:
            handle.write(f"{seq} {offset}\n".encode("ascii"))
            if self.fsync is not FsyncPolicy.NEVER:
                handle.flush()
                os.fsync(handle.fileno())
        tmp.replace(self.directory / "cursor")


def _scan(path: Path, start: int) -> tuple[int, int, bool]:
    """Count the intact frames from ``start``: (records, end of the last good one, damaged)."""
    records = 0
    end = start
    with path.open("rb") as handle:
        handle.seek(start)
        while True:
            header = handle.read(_FRAME.size)
            if not header:
                return records, end, False
            if len(header) < _FRAME.size:
                return records, end, True
            length, crc = _FRAME.unpack(header)
            payload = handle.read(length) if length <= MAX_RECORD_BYTES else b""
            if len(payload) < length or length > MAX_RECORD_BYTES or zlib.crc32(payload) != crc:
                return records, end, True
            records += 1
            end += _FRAME.size + length


def _open_append(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "ab", buffering=0)


def _open_truncate(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
    return os.fdopen(fd, "wb")

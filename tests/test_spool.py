"""The disk spool: records survive restarts in order, damage is contained, the cap holds."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.errors import ConfigurationError
from pipelines.emit.spool import (
    DiskSpool,
    FsyncPolicy,
    OverflowPolicy,
    Record,
    decode_payload,
    encode_record,
)


def _records(n: int, start: int = 0, size: int = 100) -> list[Record]:
    return [
        Record(
            "cds.authz",
            f"iss-{i % 3}".encode(),
            f"{i:08d}".encode().ljust(size, b"."),
            (("traceparent", b"00-abc-def-01"),),
        )
        for i in range(start, start + n)
    ]


def _drain(spool: DiskSpool, chunk: int = 7) -> list[Record]:
    out: list[Record] = []
    while True:
        batch, position = spool.read(chunk)
        if position is None:
            return out
        out += batch
        spool.commit(position)


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


records = st.builds(
    Record,
    topic=st.text(alphabet="abcdefghijklmnopqrstuvwxyz._-", min_size=1, max_size=40),
    key=st.none() | st.binary(max_size=64),
    value=st.binary(max_size=2_000),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=60)), max_size=4).map(
        tuple
    ),
)


@pytest.fixture
def open_spool():
    """Open spools that are closed at the end of the test."""
    opened: list[DiskSpool] = []

    def factory(*args, **kwargs):
        spool = DiskSpool(*args, **kwargs)
        opened.append(spool)
        return spool

    yield factory
    for spool in opened:
        spool.close()


@given(records)
def test_a_frame_decodes_to_the_record_it_encodes(record):
    frame = encode_record(record)
    assert decode_payload(frame[8:]) == record


def test_records_come_out_in_the_order_they_went_in_across_segments(tmp_path, open_spool):
    spool = open_spool(tmp_path, segment_bytes=1_000, max_bytes=1 << 20)
    spool.append(_records(30))
    spool.append(_records(30, start=30))
    assert len(_segments(tmp_path)) > 3  # the point: reads cross segment boundaries
    assert _drain(spool) == _records(60)
    assert len(spool) == 0


def test_drained_segments_are_deleted(tmp_path, open_spool):
    spool = open_spool(tmp_path, segment_bytes=1_000, max_bytes=1 << 20)
    spool.append(_records(40))
    _drain(spool)
    assert _segments(tmp_path) == []
    assert spool.pending_bytes == 0


def test_pending_records_survive_closing_and_reopening(tmp_path, open_spool):
    spool = open_spool(tmp_path, segment_bytes=2_000)
    spool.append(_records(50))
    _batch, position = spool.read(20)
    assert position is not None
    spool.commit(position)
    spool.close()

    reopened = open_spool(tmp_path, segment_bytes=2_000)
    assert len(reopened) == 30
    assert _drain(reopened) == _records(30, start=20)


def test_a_read_that_is_not_committed_is_read_again(tmp_path, open_spool):
    # At-least-once: records handed to Kafka but not acknowledged stay in the spool.
    spool = open_spool(tmp_path)
    spool.append(_records(10))
    first, _ = spool.read(5)
    again, _ = spool.read(5)
    assert first == again == _records(5)


def test_appending_while_draining_keeps_the_order(tmp_path, open_spool):
    spool = open_spool(tmp_path, segment_bytes=1_500)
    spool.append(_records(10))
    batch, position = spool.read(4)
    assert position is not None
    spool.commit(position)
    spool.append(_records(10, start=10))
    assert batch + _drain(spool) == _records(20)


def test_a_torn_last_frame_is_cut_on_reopen_and_the_rest_kept(tmp_path, open_spool):
    spool = open_spool(tmp_path)
    spool.append(_records(5))
    spool.close()
    segment = _segments(tmp_path)[-1]
    # A crash in the middle of write(2): half of a sixth frame.
    segment.write_bytes(segment.read_bytes() + encode_record(_records(1, start=5)[0])[:30])

    reopened = open_spool(tmp_path)
    assert reopened.corrupt == 1
    reopened.append(_records(1, start=6))
    assert _drain(reopened) == [*_records(5), *_records(1, start=6)]


def test_a_damaged_frame_skips_the_rest_of_its_segment_and_counts_the_loss(tmp_path, open_spool):
    spool = open_spool(tmp_path, segment_bytes=1_000, max_bytes=1 << 20)
    spool.append(_records(20))
    spool.close()
    first = _segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    frame = len(encode_record(_records(1)[0]))
    data[frame + 20] ^= 0xFF  # flip a bit in the second record's payload
    first.write_bytes(bytes(data))

    reopened = open_spool(tmp_path, segment_bytes=1_000, max_bytes=1 << 20)
    out = _drain(reopened)
    per_segment = 1_000 // frame
    assert out[0] == _records(1)[0]
    assert out[1:] == _records(20 - per_segment, start=per_segment)
    assert reopened.corrupt == 1
    assert reopened.lost_bytes == (per_segment - 1) * frame


def test_drop_newest_refuses_what_does_not_fit_and_counts_it(tmp_path, open_spool):
    spool = open_spool(
        tmp_path, segment_bytes=1_024, max_bytes=2_048, overflow=OverflowPolicy.DROP_NEWEST
    )
    kept = spool.append(_records(40))
    assert kept < 40
    assert spool.dropped == 40 - kept
    assert spool.pending_bytes <= 2_048
    assert _drain(spool) == _records(kept)  # the oldest are kept


def test_drop_oldest_deletes_the_oldest_segments_to_make_room(tmp_path, open_spool):
    spool = open_spool(
        tmp_path, segment_bytes=1_024, max_bytes=2_048, overflow=OverflowPolicy.DROP_OLDEST
    )
    kept = spool.append(_records(40))
    assert kept == 40
    assert spool.pending_bytes <= 2_048
    out = _drain(spool)
    assert out == _records(len(out), start=40 - len(out))  # the newest are kept
    assert spool.dropped == 40 - len(out)


def test_a_second_owner_of_the_directory_is_refused(tmp_path, open_spool):
    open_spool(tmp_path)
    with pytest.raises(ConfigurationError, match="in use by another process"):
        open_spool(tmp_path)


def test_a_closed_spool_can_be_opened_again(tmp_path, open_spool):
    open_spool(tmp_path).close()
    DiskSpool(tmp_path).close()


def test_spool_files_are_readable_by_their_owner_only(tmp_path, open_spool):
    spool = open_spool(tmp_path / "spool", fsync=FsyncPolicy.ALWAYS)
    spool.append(_records(3))
    spool.close()
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    for path in (tmp_path / "spool").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_interval_fsync_waits_for_its_interval(tmp_path, open_spool):
    now = [0.0]
    spool = open_spool(
        tmp_path, fsync=FsyncPolicy.INTERVAL, fsync_interval_s=1.0, clock=lambda: now[0]
    )
    spool.append(_records(1))
    assert spool._dirty  # appended within the interval: not yet forced to disk
    now[0] = 1.5
    spool.sync_if_due()
    assert not spool._dirty


def test_a_segment_larger_than_the_cap_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError):
        DiskSpool(tmp_path, segment_bytes=2 << 20, max_bytes=1 << 20)

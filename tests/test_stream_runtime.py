"""The stream runtime: event-time order, watermarks, late events, timers, snapshots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from authz_events import ISS, OTHER_ISS, event

from auditor.errors import ConfigurationError
from auditor.models import AuthzEvent, AuthzView, Finding
from auditor.vocabulary import DetectorName
from detectors import ReplayBurstDetector, ValidationAnomalyDetector
from pipelines.runtime import RuntimeConfig, SnapshotError, StreamRuntime

JTI = "0f8d1c7e-5a7e-4d3e-9c51-0d6bb2b7a001"
KEY = b"snapshot-key-0123456789"


@dataclass
class Trace:
    """What the probe saw: (kind, key, time) in the order the runtime called it."""

    calls: list[tuple[str, str, float]] = field(default_factory=list)


class OrderProbe:
    """A minimal real StreamDetector: records its calls; asks for a deadline 10 s after
    each event and lets its key go at the deadline. Its state is the trace itself."""

    name = DetectorName.REPLAY_BURST
    state_version = 1

    def key(self, event: AuthzView) -> str | None:
        return event.iss

    def initial_state(self) -> list[tuple[str, float]]:
        return []

    def step(
        self,
        state: list[tuple[str, float]],
        event: AuthzView,  # noqa: ARG002 - the protocol's signature; time is what we record
        now: float,
    ) -> tuple[list[tuple[str, float]], list[Finding]]:
        state.append(("step", now))
        return state, []

    def deadline(self, state: list[tuple[str, float]]) -> float | None:
        last = max(t for kind, t in state if kind == "step")
        return last + 10

    def advance(
        self, state: list[tuple[str, float]], now: float
    ) -> tuple[list[tuple[str, float]] | None, list[Finding]]:
        state.append(("advance", now))
        self.evicted.append(list(state))
        return None, []

    def size(self, state: list[tuple[str, float]]) -> int:
        return len(state)

    def __init__(self) -> None:
        self.evicted: list[list[tuple[str, float]]] = []


def _times(events: list[AuthzEvent]) -> list[float]:
    return [e.time.timestamp() for e in events]


def test_events_reach_detectors_in_event_time_order_whatever_the_arrival_order() -> None:
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=5))
    arrivals = [event(t) for t in (2, 0, 4, 1, 3)]
    runtime.process(0, arrivals)
    runtime.flush()
    steps = [t for kind, t in probe.evicted[0] if kind == "step"]
    assert steps == sorted(_times(arrivals))


def test_nothing_is_released_until_the_watermark_passes_it() -> None:
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=5))
    runtime.process(0, [event(0), event(4)])
    assert runtime.stats(0).released == 0
    assert runtime.stats(0).buffered == 2
    runtime.process(0, [event(5.5)])  # watermark 0.5: only the event at 0 is older
    assert runtime.stats(0).released == 1


def test_a_late_event_is_processed_and_counted_not_dropped() -> None:
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=5))
    runtime.process(0, [event(100)])
    runtime.process(0, [event(10)])  # 90 s older than the newest: beyond the lateness
    stats = runtime.stats(0)
    assert stats.late_events == 1
    runtime.flush()
    steps = [t for trace in probe.evicted for kind, t in trace if kind == "step"]
    assert len(steps) == 2


def test_a_duplicate_delivery_inside_the_reorder_window_is_released_once() -> None:
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=5))
    first = event(1)
    runtime.process(0, [first, event(2), first])
    runtime.flush()
    assert runtime.stats(0).duplicates == 1
    assert sum(kind == "step" for kind, _ in probe.evicted[0]) == 2


def test_a_deadline_is_served_before_any_later_event_and_evicts_the_key() -> None:
    # Deadline at 10 s; the next event at 30 s must find the key evicted and start afresh.
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=0))
    runtime.process(0, [event(0), event(30)])
    runtime.flush()
    assert probe.evicted[0] == [("step", event(0).time.timestamp()), ("advance", _base(10))]
    assert runtime.stats(0).evictions == 2


def _base(seconds: float) -> float:
    return event(seconds).time.timestamp()


def test_events_no_detector_wants_skip_the_buffer_but_move_event_time() -> None:
    runtime = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(allowed_lateness=5))
    issued = event(0, action="request.sent")  # client side: replay_burst ignores it
    runtime.process(0, [issued, event(100, action="request.sent")])
    stats = runtime.stats(0)
    assert stats.buffered == 0
    assert stats.watermark is None or stats.watermark <= _base(95)
    late = event(50)  # older than 100 - 5: late even though nothing was buffered
    runtime.process(0, [late])
    assert runtime.stats(0).late_events == 1


def test_a_full_buffer_releases_its_oldest_events_early_and_counts_them() -> None:
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=3600, max_buffered=3))
    runtime.process(0, [event(t) for t in range(5)])
    stats = runtime.stats(0)
    assert stats.buffered == 3
    assert stats.forced_releases == 2


def test_an_event_from_the_future_does_not_move_the_watermark() -> None:
    # A producer whose clock says next year must not close every window of the partition.
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=5, future_tolerance=60))
    now = _base(0)
    runtime.process(0, [event(0), event(86_400 * 365)], processing_time=now)
    assert runtime.stats(0).future_events == 1
    runtime.process(0, [event(1)], processing_time=now)
    assert runtime.stats(0).late_events == 0


def test_advancing_an_idle_partition_closes_what_the_watermark_passed() -> None:
    replay = ReplayBurstDetector()
    runtime = StreamRuntime([replay], RuntimeConfig(allowed_lateness=5))
    runtime.process(0, [event(0, jti=JTI), event(20, jti=JTI, peer="203.0.113.9")])
    assert runtime.process(0, []) == []
    opened = runtime.advance_watermark(0, _base(25))
    assert [f.revision for f in opened] == [0]
    closed = runtime.advance_watermark(0, _base(3600))
    assert [(f.revision, f.facts["status"]) for f in closed] == [(1, "closed")]


def test_partitions_keep_separate_watermarks_and_state() -> None:
    probe = OrderProbe()
    runtime = StreamRuntime([probe], RuntimeConfig(allowed_lateness=5))
    runtime.process(0, [event(1000)])
    runtime.process(1, [event(10)])  # old for partition 0, not for partition 1
    assert runtime.stats(1).late_events == 0
    assert runtime.partitions() == (0, 1)


def test_stats_count_the_jtis_the_replay_detector_tracks() -> None:
    runtime = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(allowed_lateness=0))
    runtime.process(0, [event(t) for t in range(10)] + [event(11, iss=OTHER_ISS)])
    stats = runtime.stats(0, state_items=True)
    assert stats.state_items == 10
    assert stats.keys == 1  # the other client's event at 11 s still waits in the buffer
    assert stats.buffered == 1


def test_flush_returns_the_final_revision_and_leaves_no_state() -> None:
    runtime = StreamRuntime([ReplayBurstDetector()])
    found = runtime.process(0, [event(0, jti=JTI), event(5, jti=JTI, peer="203.0.113.9")])
    found += runtime.flush()
    assert [f.facts["status"] for f in found] == ["open", "closed"]
    assert runtime.stats(0).keys == 0


# -- snapshots ------------------------------------------------------------------------------


def test_a_replay_spanning_a_restart_is_still_detected() -> None:
    before = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(snapshot_key=KEY))
    assert before.process(3, [event(0, jti=JTI), event(30)], next_offset=42) == []
    saved = before.snapshot(3)
    del before  # the process dies

    after = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(snapshot_key=KEY))
    after.restore(3, saved)
    assert after.position(3) == 42
    found = after.process(3, [event(60, jti=JTI, peer="203.0.113.9")]) + after.flush()
    assert {f.rule for f in found} == {"jti_replay"}
    assert found[-1].count == 2


def test_a_snapshot_keeps_events_still_waiting_in_the_reorder_buffer() -> None:
    before = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(allowed_lateness=60))
    before.process(0, [event(0, jti=JTI)])
    assert before.stats(0).buffered == 1
    after = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(allowed_lateness=60))
    after.restore(0, before.snapshot(0))
    found = after.process(0, [event(10, jti=JTI, peer="203.0.113.9")]) + after.flush()
    assert {f.rule for f in found} == {"jti_replay"}


def test_a_snapshot_of_other_detectors_is_refused() -> None:
    source = StreamRuntime([ReplayBurstDetector()])
    source.process(0, [event(0)])
    target = StreamRuntime([ReplayBurstDetector(), ValidationAnomalyDetector()])
    with pytest.raises(SnapshotError, match="other detectors"):
        target.restore(0, source.snapshot(0))


def test_an_altered_snapshot_is_refused_before_it_is_unpickled() -> None:
    runtime = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(snapshot_key=KEY))
    runtime.process(0, [event(0)])
    data = bytearray(runtime.snapshot(0))
    data[-1] ^= 0x01
    with pytest.raises(SnapshotError, match="integrity"):
        runtime.restore(0, bytes(data))


@pytest.mark.parametrize(
    ("writer_key", "reader_key", "message"),
    [
        (KEY, b"another-key-0123456789", "integrity"),  # forged or wrong key
        (KEY, None, "has none"),  # a keyed snapshot needs the key to be checked
        (None, KEY, "requires one"),  # a reader with a key refuses unauthenticated bytes
    ],
)
def test_snapshot_keys_must_match(
    writer_key: bytes | None, reader_key: bytes | None, message: str
) -> None:
    writer = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(snapshot_key=writer_key))
    writer.process(0, [event(0)])
    reader = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(snapshot_key=reader_key))
    with pytest.raises(SnapshotError, match=message):
        reader.restore(0, writer.snapshot(0))


def test_bytes_that_are_not_a_snapshot_are_refused() -> None:
    runtime = StreamRuntime([ReplayBurstDetector()])
    with pytest.raises(SnapshotError, match="bad header"):
        runtime.restore(0, b"not a snapshot at all, just bytes")


def test_revoking_a_partition_forgets_it() -> None:
    runtime = StreamRuntime([ReplayBurstDetector()])
    runtime.process(5, [event(0)])
    runtime.revoke(5)
    assert runtime.partitions() == ()


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allowed_lateness": -1},  # lateness cannot be negative
        {"allowed_lateness": math.nan},  # nor undefined
        {"max_buffered": 0},  # a buffer that holds nothing cannot reorder
        {"future_tolerance": 0},  # zero would call every event "from the future"
        {"snapshot_key": b"short"},  # an HMAC key must not be guessable
    ],
)
def test_bad_runtime_configuration_stops_start_up(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RuntimeConfig(**kwargs)  # type: ignore[arg-type]


def test_the_snapshot_key_is_not_shown_in_the_configuration_repr() -> None:
    assert "snapshot-key" not in repr(RuntimeConfig(snapshot_key=KEY))


def test_two_detectors_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="distinct"):
        StreamRuntime([ReplayBurstDetector(), ReplayBurstDetector()])


def test_a_runtime_without_detectors_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        StreamRuntime([])


def test_the_partition_key_of_the_pipeline_is_the_issuer() -> None:
    assert event(0).client_iss == ISS

"""The handoff of decoded events from the detect stage to the store stage of one process."""

from __future__ import annotations

from authz_events import event

from pipelines.topology.handoff import EventHandoff

PART = ("authz", 0)


def test_an_offered_event_is_taken_once_at_its_partition_and_offset():
    handoff = EventHandoff()
    first = event(0)
    handoff.offer(PART, [(7, first)])
    assert handoff.take(("authz", 1), 7) is None  # another partition's offset 7
    assert handoff.take(PART, 7) is first
    assert handoff.take(PART, 7) is None  # taken: the store would decode it itself


def test_what_the_store_has_read_past_is_dropped():
    # The store may read a record before the detect stage offers it: the late offer
    # would never be taken, so it goes when the store's position passes it.
    handoff = EventHandoff()
    handoff.offer(PART, [(offset, event(offset)) for offset in range(10)])
    handoff.passed(PART, 8)
    assert len(handoff) == 2
    assert handoff.take(PART, 7) is None
    assert handoff.take(PART, 8) is not None


def test_offers_past_the_capacity_are_dropped_so_memory_stays_bounded():
    handoff = EventHandoff(capacity=3)
    handoff.offer(PART, [(offset, event(offset)) for offset in range(5)])
    assert len(handoff) == 3
    assert handoff.take(PART, 2) is not None
    assert handoff.take(PART, 3) is None  # never held: the store decodes it


def test_an_offset_offered_again_is_held_once():
    # A partition handed back after a rebalance is read again from where it stood.
    handoff = EventHandoff()
    handoff.offer(PART, [(1, event(1))])
    handoff.offer(PART, [(1, event(1))])
    assert len(handoff) == 1

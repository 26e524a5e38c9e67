"""``MemberWatch`` against the real broker: a join that ended between polls is restarted.

The race it works around (kafka-python 3.0, see ``pipelines/kafka/membership.py``) is
made to happen on purpose here: partitions are added to the subscribed topic, the next
poll starts the rejoin with no time to finish it, and the consumer is left alone while
the join ends in the background. Without the watch, that member never becomes stable
again; with it, the next polls rejoin and take the new partition. If a kafka-python
release fixes the race, the first test fails on ``rejoins == 1``: the workaround can go.
"""

from __future__ import annotations

import time

from kafka.admin import NewPartitions
from kafka.structs import MemberState

from pipelines.kafka import REBALANCE_POLL_MS, MemberWatch, open_admin, open_consumer

FAST_GROUP = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000}


def _state(consumer) -> str:
    return consumer.group_metadata().state


def _stable_member(settings, topic):
    consumer = open_consumer(
        settings,
        [topic],
        settings.groups.detect,
        metadata_max_age_ms=300,  # notice the added partition quickly
        **FAST_GROUP,
    )
    # Joining is exposed to the same race (a first join whose metadata came late): watch.
    joining = MemberWatch(consumer, poll_ms=200)
    deadline = time.monotonic() + 30
    while _state(consumer) != MemberState.STABLE or not consumer.assignment():
        consumer.poll(timeout_ms=joining.poll_timeout())
        joining.check()
        assert time.monotonic() < deadline, "the member never joined"
    return consumer


def _strand(consumer, settings, topic, partitions):
    """Add a partition, let one poll start the rejoin, and stop polling until it ends."""
    admin = open_admin(settings)
    try:
        admin.create_partitions({topic: NewPartitions(total_count=partitions + 1)})
    finally:
        admin.close()
    # kafka-python's own metadata refresh (its network thread) notices the new partition;
    # asked without polling, so that no poll drives the rejoin before the one below.
    coordinator = consumer._coordinator
    deadline = time.monotonic() + 30
    while not coordinator.need_rejoin():
        time.sleep(0.05)
        assert time.monotonic() < deadline, "the added partition caused no rejoin"
    consumer.poll(timeout_ms=0)  # starts the rejoin and returns at once
    time.sleep(1.0)  # the join ends in the background, awaited by no poll
    assert _state(consumer) == MemberState.REBALANCING
    assert not coordinator.need_rejoin()  # stranded: no later poll would complete it


def test_the_watch_restarts_a_join_that_ended_between_polls(kafka_settings):
    topic = kafka_settings.topics.authz
    consumer = _stable_member(kafka_settings, topic.name)
    watch = MemberWatch(consumer, poll_ms=50)
    try:
        _strand(consumer, kafka_settings, topic.name, topic.partitions)
        deadline = time.monotonic() + 30
        while _state(consumer) != MemberState.STABLE:
            consumer.poll(timeout_ms=watch.poll_timeout())
            watch.check()
            assert time.monotonic() < deadline, "the member stayed stranded"
        assert watch.rejoins == 1
        assert {tp.partition for tp in consumer.assignment()} == set(range(topic.partitions + 1))
    finally:
        consumer.close()


def test_the_watch_leaves_a_stable_member_alone(kafka_settings):
    consumer = _stable_member(kafka_settings, kafka_settings.topics.authz.name)
    watch = MemberWatch(consumer, poll_ms=50)
    try:
        for _ in range(5):
            consumer.poll(timeout_ms=watch.poll_timeout())
            assert not watch.check()
        assert watch.poll_timeout() == 50
        assert watch.rejoins == 0
    finally:
        consumer.close()


def test_a_joining_member_polls_long_enough_for_the_join_to_finish(kafka_settings):
    consumer = open_consumer(
        kafka_settings, [kafka_settings.topics.authz.name], kafka_settings.groups.detect
    )
    try:
        # Not joined yet: the first poll waits long enough for the join to complete in it.
        assert MemberWatch(consumer, poll_ms=50).poll_timeout() == REBALANCE_POLL_MS
    finally:
        consumer.close()

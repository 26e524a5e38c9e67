"""Group membership that survives a kafka-python 3.0 race: a join finished between polls.

kafka-python 3.0 runs a group's JoinGroup and SyncGroup as a background task. The join is
completed — heartbeats enabled again, the assignment applied, the member ``STABLE`` — only
by a later ``poll()`` that awaits that task, and a poll awaits it only while the
coordinator's ``need_rejoin()`` holds. When the rejoin was caused by a metadata change
(the leader's assignment snapshot differs from the metadata, as right after a first join
whose metadata arrived late, or after a broker restart), ``need_rejoin()`` stops holding
the moment the leader computes its new assignment inside the task. If the task then ends
between two polls, no poll ever completes it: the member stays ``REBALANCING`` with its
heartbeats off until the broker expels it, and it never joins again — its partitions go to
the other members and it consumes nothing, without an error. Seen here about once in five
runs of the two-process detect test (kafka-python 3.0.12, Kafka 4.1.1).

``MemberWatch`` notices that state after a poll and asks the coordinator for a rejoin, which
the next poll carries out. Polling longer while the member is not stable (``poll_timeout``)
also makes the race rare. Both only read the consumer's documented ``group_metadata()``
state, plus two attributes of its coordinator that are checked before use: when a
kafka-python release changes them, the watch does nothing rather than fail.
"""

from __future__ import annotations

from typing import Any, Final

import structlog
from kafka import KafkaConsumer
from kafka.structs import MemberState

_log = structlog.get_logger("auditor.pipeline.kafka")

REBALANCE_POLL_MS: Final = 500
"""How long a poll waits while the member is (re)joining: the join completes inside it."""


class MemberWatch:
    """Keeps one group consumer from being stranded by a join that finished between polls.

    Args:
        consumer: A consumer in a group (``subscribe``); one without a group is left alone.
        poll_ms: The poll timeout of the caller's loop while the member is stable.
    """

    __slots__ = ("_consumer", "_poll_ms", "rejoins")

    def __init__(self, consumer: KafkaConsumer, poll_ms: int) -> None:
        self._consumer = consumer
        self._poll_ms = poll_ms
        self.rejoins = 0
        """How many stranded joins were restarted (for tests and logs)."""

    def poll_timeout(self) -> int:
        """The timeout for the next poll: longer while the member is joining."""
        if self._consumer.group_metadata().state == MemberState.STABLE:
            return self._poll_ms
        return max(self._poll_ms, REBALANCE_POLL_MS)

    def check(self) -> bool:
        """After a poll: restart a join that ended without being completed.

        Returns:
            Whether a rejoin was requested (the next poll performs it).
        """
        if self._consumer.group_metadata().state != MemberState.REBALANCING:
            return False
        coordinator: Any = getattr(self._consumer, "_coordinator", None)
        task = getattr(coordinator, "_join_task", None)
        done = getattr(task, "is_done", False)
        if not done or not hasattr(coordinator, "request_rejoin"):
            return False  # no join, or one still in flight: a poll awaits it
        if coordinator.need_rejoin():
            return False  # the next poll completes it
        coordinator.request_rejoin()
        self.rejoins += 1
        _log.warning("kafka.stranded_join", group=self._consumer.config.get("group_id"))
        return True


__all__ = ["REBALANCE_POLL_MS", "MemberWatch"]

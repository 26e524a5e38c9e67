"""Kafka: client factories, topic administration and the development broker.

``broker`` (``scripts/kafka``) uses the standard library only and is not imported here.
"""

from pipelines.kafka.admin import TopicInfo, TopicsReport, ensure_topics, list_topics
from pipelines.kafka.clients import (
    CONSUMER_DEFAULTS,
    PRODUCER_DEFAULTS,
    open_admin,
    open_consumer,
    open_producer,
)
from pipelines.kafka.membership import REBALANCE_POLL_MS, MemberWatch

__all__ = [
    "CONSUMER_DEFAULTS",
    "PRODUCER_DEFAULTS",
    "REBALANCE_POLL_MS",
    "MemberWatch",
    "TopicInfo",
    "TopicsReport",
    "ensure_topics",
    "list_topics",
    "open_admin",
    "open_consumer",
    "open_producer",
]

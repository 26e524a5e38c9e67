"""The stream detector runtime: event-time order per partition, keyed state, snapshots.

Testable without Kafka: the pipeline feeds it batches of ``AuthzEvent`` per partition and
stores the findings it returns.
"""

from pipelines.runtime.runtime import RuntimeConfig, StreamRuntime, latest_revisions, run_stream
from pipelines.runtime.snapshots import SnapshotError
from pipelines.runtime.stats import PartitionStats

__all__ = [
    "PartitionStats",
    "RuntimeConfig",
    "SnapshotError",
    "StreamRuntime",
    "latest_revisions",
    "run_stream",
]

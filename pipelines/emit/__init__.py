"""The producer library for services: publish authz events and redacted logs to Kafka.

``KafkaEmitter`` never blocks the caller: a bounded buffer drained by a worker thread,
a disk spool while Kafka is unreachable, drained in order when it is back.
``LogShipper`` is the structlog processor that ships each (already redacted) log event.
"""

from pipelines.emit.emitter import EmitterState, EmitterStats, KafkaEmitter, instrument
from pipelines.emit.shipper import LogShipper
from pipelines.emit.spool import DiskSpool, FsyncPolicy, OverflowPolicy, Record, SpoolPosition

__all__ = [
    "DiskSpool",
    "EmitterState",
    "EmitterStats",
    "FsyncPolicy",
    "KafkaEmitter",
    "LogShipper",
    "OverflowPolicy",
    "Record",
    "SpoolPosition",
    "instrument",
]

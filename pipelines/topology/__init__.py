"""The pipeline's topology: authz events and logs in; detection; exactly-once into DuckDB.

- ``run_embedded(inputs, db_path, config)`` — the whole topology in one process over files
  (``auditor run --input``), and what ``auditor demo`` runs.
- ``run_kafka(settings, ...)`` — the stages through Kafka (``auditor run --kafka``): the
  detect stage as a consumer group scalable to many processes, the store stage as the
  single DuckDB writer.

The names below are imported when first used: an embedded run's store process imports
only the modules it needs (``store_server``), not the Kafka client and the rest, and starts
~0.1 s sooner.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pipelines.topology.alerting import Alert, AlertPolicy
    from pipelines.topology.embedded import run_embedded
    from pipelines.topology.kafka_topology import Stage, run_kafka
    from pipelines.topology.progress import Progress, RunSummary
    from pipelines.topology.telemetry import PipelineTelemetry

_WHERE: Final = {
    "Alert": "alerting",
    "AlertPolicy": "alerting",
    "PipelineTelemetry": "telemetry",
    "Progress": "progress",
    "RunSummary": "progress",
    "Stage": "kafka_topology",
    "run_embedded": "embedded",
    "run_kafka": "kafka_topology",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Alert",
    "AlertPolicy",
    "PipelineTelemetry",
    "Progress",
    "RunSummary",
    "Stage",
    "run_embedded",
    "run_kafka",
]

"""The pipeline's topology: authz events and logs in; detection; exactly-once into DuckDB.

- ``run_embedded(inputs, db_path, config)`` — the whole topology in one process over files
  (``auditor run --input``), and what ``auditor demo`` runs.
- ``run_kafka(settings, ...)`` — the stages through Kafka (``auditor run --kafka``): the
  detect stage as a consumer group scalable to many processes, the store stage as the
  single DuckDB writer.
"""

from pipelines.topology.alerting import Alert, AlertPolicy
from pipelines.topology.embedded import run_embedded
from pipelines.topology.kafka_topology import Stage, run_kafka
from pipelines.topology.progress import Progress, RunSummary
from pipelines.topology.telemetry import PipelineTelemetry

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

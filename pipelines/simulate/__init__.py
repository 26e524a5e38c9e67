"""``auditor simulate``: realistic CDS Hooks traffic with real tokens and labelled incidents.

Several EHRs (each with its own keys and JWK Set) call several CDS service vendors through
the real ``auditor.cdshooks`` client, middleware and verifier, in process; the events they
emit and the log lines the services write (through the ``Redactor``) are the output, as
JSON lines or to Kafka. Incidents are injected on demand and described by labels that hold
fingerprints, never values. The same seed writes the same bytes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.simulate.engine import (
        DEFAULT_START,
        Simulation,
        SimulationConfig,
        SimulationResult,
        seed_fingerprinter,
    )
    from pipelines.simulate.labels import (
        Expected,
        IncidentSpec,
        IncidentType,
        Label,
        all_incidents,
        parse_incidents,
        read_labels,
        write_labels,
    )
    from pipelines.simulate.output import JsonLinesOutput, KafkaOutput, MemoryOutput, Output
    from pipelines.simulate.policy import detector_config

_EXPORTS = {
    "DEFAULT_START": "engine",
    "Simulation": "engine",
    "SimulationConfig": "engine",
    "SimulationResult": "engine",
    "seed_fingerprinter": "engine",
    "Expected": "labels",
    "IncidentSpec": "labels",
    "IncidentType": "labels",
    "Label": "labels",
    "all_incidents": "labels",
    "parse_incidents": "labels",
    "read_labels": "labels",
    "write_labels": "labels",
    "JsonLinesOutput": "output",
    "KafkaOutput": "output",
    "MemoryOutput": "output",
    "Output": "output",
    "detector_config": "policy",
}

__all__ = [
    "DEFAULT_START",
    "Expected",
    "IncidentSpec",
    "IncidentType",
    "JsonLinesOutput",
    "KafkaOutput",
    "Label",
    "MemoryOutput",
    "Output",
    "Simulation",
    "SimulationConfig",
    "SimulationResult",
    "all_incidents",
    "detector_config",
    "parse_incidents",
    "read_labels",
    "seed_fingerprinter",
    "write_labels",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the `auditor` command imports `simulate`'s CLI module to build
    # its help, and must not pay for Starlette, httpx and the crypto stack every time.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines.simulate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pipelines.simulate.{module}"), name)

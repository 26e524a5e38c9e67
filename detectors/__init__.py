"""Detector implementations: pure functions of events and state, no I/O.

The stream detectors (``replay_burst``, ``validation_anomaly``, ``policy``) implement
``auditor.protocols.StreamDetector``; ``pipelines.runtime.StreamRuntime`` runs them.
``stream_detectors(config)`` builds all three from one validated configuration.
"""

from typing import Any

from auditor.protocols import StreamDetector
from detectors.anomaly import ValidationAnomalyDetector
from detectors.config import (
    BurstThreshold,
    ClientPolicy,
    PolicyConfig,
    ReplayBurstConfig,
    ServicePolicy,
    StreamDetectorsConfig,
    SustainedThreshold,
    ValidationAnomalyConfig,
)
from detectors.policy import PolicyDetector
from detectors.replay import ReplayBurstDetector
from detectors.rules import RULES, RuleSpec, rule_spec

__all__ = [
    "RULES",
    "BurstThreshold",
    "ClientPolicy",
    "PolicyConfig",
    "PolicyDetector",
    "ReplayBurstConfig",
    "ReplayBurstDetector",
    "RuleSpec",
    "ServicePolicy",
    "StreamDetectorsConfig",
    "SustainedThreshold",
    "ValidationAnomalyConfig",
    "ValidationAnomalyDetector",
    "rule_spec",
    "stream_detectors",
]


def stream_detectors(config: StreamDetectorsConfig | None = None) -> list[StreamDetector[Any]]:
    """The three stream detectors, configured: replay_burst, validation_anomaly, policy."""
    config = config or StreamDetectorsConfig()
    return [
        ReplayBurstDetector(config.replay_burst),
        ValidationAnomalyDetector(config.validation_anomaly),
        PolicyDetector(config.policy),
    ]

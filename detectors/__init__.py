"""Detector implementations: pure functions of events and state, no I/O.

The stream detectors (``replay_burst``, ``validation_anomaly``, ``policy``) implement
``auditor.protocols.StreamDetector``; ``pipelines.runtime`` runs them.
"""

from detectors.anomaly import ValidationAnomalyConfig, ValidationAnomalyDetector
from detectors.policy import ClientPolicy, PolicyConfig, PolicyDetector, ServicePolicy
from detectors.replay import ReplayBurstConfig, ReplayBurstDetector
from detectors.rules import RULES, RuleSpec, rule_spec
from detectors.thresholds import BurstThreshold, SustainedThreshold

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
    "SustainedThreshold",
    "ValidationAnomalyConfig",
    "ValidationAnomalyDetector",
    "rule_spec",
]

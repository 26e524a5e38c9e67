"""Detector implementations: pure functions of events and state, no I/O.

The stream detectors (``replay_burst``, ``validation_anomaly``, ``policy``) implement
``auditor.protocols.StreamDetector``; ``pipelines.runtime.StreamRuntime`` runs them.
``stream_detectors(config)`` builds all three from one validated configuration.

The content detectors ``leaked_token`` and ``phi_in_logs`` implement
``auditor.protocols.ContentDetector``; `ContentScanner` runs both in one pass over a
record (what ``auditor scan`` uses).
"""

from typing import Any

# First: whether compiled modules are used is decided before any of them loads.
import auditor._native  # noqa: F401 - imported for that decision
from auditor.protocols import StreamDetector
from detectors.anomaly import ValidationAnomalyDetector
from detectors.baseline import Baseline, BaselineBuilder, BaselineEntry, parse_allowlist
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
from detectors.content import (
    ContentConfig,
    ContentScanner,
    PartlyExamined,
    ScanOutcome,
    detector_of,
)
from detectors.leaked_token import LeakedTokenDetector
from detectors.phi_in_logs import PhiInLogsDetector
from detectors.policy import PolicyDetector
from detectors.replay import ReplayBurstDetector
from detectors.rules import RULES, RuleSpec, rule_spec
from detectors.triage import JkuAllowlist, alg_class, phi_severity, token_severity

__all__ = [
    "RULES",
    "Baseline",
    "BaselineBuilder",
    "BaselineEntry",
    "BurstThreshold",
    "ClientPolicy",
    "ContentConfig",
    "ContentScanner",
    "JkuAllowlist",
    "LeakedTokenDetector",
    "PartlyExamined",
    "PhiInLogsDetector",
    "PolicyConfig",
    "PolicyDetector",
    "ReplayBurstConfig",
    "ReplayBurstDetector",
    "RuleSpec",
    "ScanOutcome",
    "ServicePolicy",
    "StreamDetectorsConfig",
    "SustainedThreshold",
    "ValidationAnomalyConfig",
    "ValidationAnomalyDetector",
    "alg_class",
    "detector_of",
    "parse_allowlist",
    "phi_severity",
    "rule_spec",
    "stream_detectors",
    "token_severity",
]


def stream_detectors(config: StreamDetectorsConfig | None = None) -> list[StreamDetector[Any]]:
    """The three stream detectors, configured: replay_burst, validation_anomaly, policy."""
    config = config or StreamDetectorsConfig()
    return [
        ReplayBurstDetector(config.replay_burst),
        ValidationAnomalyDetector(config.validation_anomaly),
        PolicyDetector(config.policy),
    ]

"""Golden authz event streams: one folder per incident type under tests/golden/.

Each folder holds ``events.jsonl`` (hand-specified AuthzEvents, one per line), an optional
``config.json`` (detector settings, e.g. a shorter warm-up so the stream stays short) and
``expected_findings.json``: the final revision of every finding, as the store would keep
it. ``authz_normal_traffic`` must produce none. After an intended change of behaviour,
regenerate with ``UPDATE_GOLDEN=1 pytest tests/test_stream_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from auditor.models import AuthzEvent, Finding
from detectors import (
    PolicyConfig,
    PolicyDetector,
    ReplayBurstConfig,
    ReplayBurstDetector,
    ValidationAnomalyConfig,
    ValidationAnomalyDetector,
)
from pipelines.runtime import RuntimeConfig, latest_revisions, run_stream

GOLDEN = Path(__file__).parent / "golden"
LATENESS = 5.0

# What each stream must produce, stated by hand; the golden files hold the full findings.
INCIDENTS: dict[str, set[str]] = {
    "authz_normal_traffic": set(),
    "jti_replay_burst": {"jti_replay"},
    "token_wrong_audience": {"token_wrong_audience"},
    "long_lived_tokens": {"lifetime_over_best_practice"},
    "failure_rate_spike": {"failure_rate_spike"},
    "new_failure_reason": {"new_failure_reason"},
    "attack_alg_none": {"attack_signature"},
    "unknown_kid_storm": {"attack_signature"},
    "clock_skew_drift": {"clock_skew_drift"},
    "sustained_expired_tokens": {"sustained_expired_tokens"},
    "policy_hmac_without_kid": {"alg_none_or_hmac", "required_jwt_field_missing"},
    "policy_fhir_server": {"fhir_server_not_allowlisted", "fhir_server_not_https"},
    "policy_overbroad_scopes": {"scope_too_broad"},
    "policy_tls_1_0": {"tls_below_minimum"},
    "rate_limit_burst": {"rate_limit_burst"},
}


def _events(folder: Path) -> list[AuthzEvent]:
    lines = (folder / "events.jsonl").read_text().splitlines()
    return [AuthzEvent.model_validate_json(line) for line in lines if line.strip()]


def _detectors(folder: Path) -> list[Any]:
    path = folder / "config.json"
    config: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return [
        ReplayBurstDetector(ReplayBurstConfig.model_validate(config.get("replay_burst", {}))),
        ValidationAnomalyDetector(
            ValidationAnomalyConfig.model_validate(config.get("validation_anomaly", {}))
        ),
        PolicyDetector(PolicyConfig.model_validate(config.get("policy", {}))),
    ]


def _final(folder: Path, events: list[AuthzEvent]) -> list[Finding]:
    findings = run_stream(
        _detectors(folder), events, config=RuntimeConfig(allowed_lateness=LATENESS)
    )
    return latest_revisions(findings)


def _as_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [f.model_dump(mode="json") for f in findings]


def test_every_golden_folder_is_listed() -> None:
    on_disk = {p.parent.name for p in GOLDEN.glob("*/events.jsonl")}
    assert set(INCIDENTS) <= on_disk


@pytest.mark.parametrize("incident", sorted(INCIDENTS))
def test_golden_stream(incident: str) -> None:
    folder = GOLDEN / incident
    found = _final(folder, _events(folder))
    expected_path = folder / "expected_findings.json"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(json.dumps(_as_json(found), indent=2, sort_keys=True) + "\n")
    assert {f.rule for f in found} == INCIDENTS[incident]
    assert _as_json(found) == json.loads(expected_path.read_text())


@pytest.mark.parametrize("incident", sorted(INCIDENTS))
def test_golden_stream_shuffled_within_the_lateness_gives_the_same_findings(incident: str) -> None:
    folder = GOLDEN / incident
    events = _events(folder)
    rng = random.Random(incident)
    shuffled = sorted(events, key=lambda e: e.time.timestamp() + rng.uniform(0, LATENESS * 0.99))
    assert _as_json(_final(folder, shuffled)) == _as_json(_final(folder, events))


@pytest.mark.parametrize("incident", sorted(INCIDENTS))
def test_expected_findings_hold_no_raw_values(incident: str) -> None:
    folder = GOLDEN / incident
    expected = (folder / "expected_findings.json").read_text()
    raw: set[str] = set()
    for event in _events(folder):
        if event.token is not None and event.token.jti:
            raw.add(event.token.jti)
        if event.hook_instance:
            raw.add(event.hook_instance)
    assert [value for value in raw if value in expected] == []

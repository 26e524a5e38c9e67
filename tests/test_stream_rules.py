"""The rule catalogue of the stream detectors: complete, labelled, documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import detectors
from auditor.protocols import StreamDetector
from auditor.vocabulary import AnomalyRule, PolicyRule, ReplayRule, RuleBasis
from detectors import RULES, StreamDetectorsConfig, stream_detectors
from pipelines import runtime

README = (Path(__file__).parent.parent / "README.md").read_text()
ROWS = {
    m["rule"]: (m["detector"], m["severity"], m["basis"])
    for m in re.finditer(
        r"^\| `(?P<rule>[a-z0-9_]+)` \| (?P<detector>[a-z_]+) \| (?P<severity>[a-z]+)[^|]* \| "
        r"(?P<basis>[a-z_]+) \|$",
        README,
        re.MULTILINE,
    )
}
OWNERS = [
    (ReplayRule, "replay_burst"),
    (AnomalyRule, "validation_anomaly"),
    (PolicyRule, "policy"),
]


@pytest.mark.parametrize(("rules", "detector"), OWNERS)
def test_every_rule_id_has_a_spec_of_its_detector(rules: type, detector: str) -> None:
    for rule in rules:
        assert RULES[rule.value].detector.value == detector


def test_the_catalogue_holds_nothing_else() -> None:
    ids = {rule.value for rules, _ in OWNERS for rule in rules}
    assert set(RULES) == ids


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_is_in_the_readme_table_as_catalogued(rule: str) -> None:
    spec = RULES[rule]
    assert ROWS.get(rule) == (spec.detector.value, spec.severity.value, spec.basis.value)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_has_a_reference_url_and_a_safeguard(rule: str) -> None:
    spec = RULES[rule]
    assert spec.reference.startswith("https://")
    assert spec.safeguard.startswith(f"{spec.basis.value}:")


@pytest.mark.parametrize(
    ("rule", "basis"),
    [
        # The spec's SHALL NOT: none and HMAC.
        ("alg_none_or_hmac", RuleBasis.NORMATIVE),
        # SMART Backend Services' 5 minutes is not a CDS Hooks rule: local policy.
        ("lifetime_over_smart_cap", RuleBasis.LOCAL_POLICY),
        # "No more than an hour" is the non-normative best-practice page.
        ("lifetime_over_best_practice", RuleBasis.BEST_PRACTICE),
        # A stricter algorithm list than the spec's is the site's choice.
        ("alg_not_allowed", RuleBasis.LOCAL_POLICY),
    ],
)
def test_normative_rules_are_told_apart_from_local_policy(rule: str, basis: RuleBasis) -> None:
    assert RULES[rule].basis is basis


def test_stream_detectors_builds_all_three_from_one_configuration() -> None:
    config = StreamDetectorsConfig.model_validate(
        {"replay_burst": {"clock_skew": 30}, "policy": {"min_tls_version": "1.3"}}
    )
    built = stream_detectors(config)
    assert [d.name.value for d in built] == ["replay_burst", "validation_anomaly", "policy"]
    assert all(isinstance(d, StreamDetector) for d in built)


@pytest.mark.parametrize("module", [detectors, runtime], ids=["detectors", "pipelines.runtime"])
def test_every_public_name_exists(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        getattr(module, name)

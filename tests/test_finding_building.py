"""``checked_finding`` builds exactly what ``Finding(...)`` builds, or fails as it fails.

The stream detectors build their findings through it, skipping pydantic's validation
when every value is plainly valid. Each case below breaks one field in a way the model
refuses (or coerces); the fast path must notice and give the model's own outcome — the
same instance, or a ``ValidationError`` on the same field. A Hypothesis property mixes
valid and invalid values of every field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from content_support import mint
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from auditor.models import Finding
from auditor.vocabulary import DetectorName, Severity
from detectors.building import checked_finding

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
JWT = mint("ES256")
BEARER = "Bearer mF_9.B5f-4.1JqMxR2vT8kLp3Zq"


def values(**changes: Any) -> dict[str, Any]:
    """Every field of a valid stream finding, with ``changes`` applied."""
    base: dict[str, Any] = {
        "finding_id": "0123456789abcdef0123456789abcdef",
        "detector": DetectorName.POLICY,
        "rule": "scope_too_broad",
        "kind": "policy_violation",
        "severity": Severity.MEDIUM,
        "observed_at": T0,
        "title": "scope_too_broad: scopes=patient/*.read (client side, 1 event(s))",
        "client_iss": "https://ehr-1.example.org",
        "service_id": "svc-1",
        "fingerprint": "k1:" + "ab" * 16,
        "location": "$.scopes",
        "origin": None,
        "event_ids": ("e1", "e2"),
        "evidence": "",
        "safeguard": "best_practice:security-guide",
        "reference": "https://cds-hooks.hl7.org/2.0/#security-and-safety",
        "window_start": T0,
        "window_end": T0 + timedelta(seconds=5),
        "count": 2,
        "revision": 0,
        "facts": {"status": "open", "scopes": ("patient/*.read",), "events": 2, "z": 1.5},
    }
    base.update(changes)
    return base


def outcome(build: Any, fields: dict[str, Any]) -> Any:
    """The finding built, or the locations and types of the validation errors."""
    try:
        return build(dict(fields)).model_dump()
    except ValidationError as error:
        return sorted((e["loc"], e["type"]) for e in error.errors())


def model(fields: dict[str, Any]) -> Finding:
    return Finding(**fields)


CASES = [
    # The plain case: every value valid, built without validation.
    pytest.param({}, id="valid"),
    # A credential in a text the model's validators check: refused, naming the field.
    pytest.param({"title": f"token rejected: {BEARER}"}, id="bearer-in-title"),
    pytest.param({"location": f"$.headers['{BEARER}']"}, id="bearer-in-location"),
    pytest.param({"facts": {"kid": BEARER}}, id="bearer-in-fact"),
    pytest.param({"facts": {"peers": ("10.0.0.1", JWT)}}, id="jwt-in-fact-tuple"),
    pytest.param({"evidence": f"Authorization: {BEARER}"}, id="bearer-in-evidence"),
    # Limits of the model's constraints.
    pytest.param({"title": "x" * 301}, id="title-too-long"),
    pytest.param({"client_iss": "https://" + "e" * 520}, id="iss-too-long"),
    pytest.param({"facts": {"note": "n" * 513}}, id="fact-text-too-long"),
    pytest.param({"facts": {f"f{i}": i for i in range(65)}}, id="too-many-facts"),
    pytest.param({"facts": {"n" * 65: 1}}, id="fact-name-too-long"),
    pytest.param({"finding_id": "0123"}, id="short-finding-id"),
    pytest.param({"fingerprint": "not a fingerprint"}, id="bad-fingerprint"),
    pytest.param({"rule": "Bad Rule"}, id="bad-rule-id"),
    pytest.param({"count": 0}, id="count-below-one"),
    pytest.param({"revision": -1}, id="negative-revision"),
    # Values the model coerces or converts: the model's result, not the raw value.
    pytest.param({"count": True}, id="bool-count"),
    pytest.param({"facts": {"services": ["a", "b"]}}, id="list-fact"),
    pytest.param({"event_ids": ["e1"]}, id="list-event-ids"),
    pytest.param({"observed_at": T0.astimezone(timezone(timedelta(hours=2)))}, id="non-utc"),
    pytest.param({"window_end": datetime(2026, 11, 28, 8, 0)}, id="naive-time"),  # noqa: DTZ001
    pytest.param({"severity": "high"}, id="severity-as-text"),
    pytest.param({"detector": "policy"}, id="detector-as-text"),
    pytest.param({"unknown": 1}, id="unknown-field"),
]


@pytest.mark.parametrize("changes", CASES)
def test_the_fast_path_gives_the_models_outcome(changes: dict[str, Any]) -> None:
    fields = values(**changes)
    assert outcome(checked_finding, fields) == outcome(model, fields)


@pytest.mark.parametrize("changes", CASES[1:6])
def test_a_credential_is_refused_every_time(changes: dict[str, Any]) -> None:
    # Texts found clean are remembered; a text that held a credential must not be.
    for _ in range(2):
        with pytest.raises(ValidationError, match="credential"):
            checked_finding(values(**changes))


def test_a_clean_finding_equals_the_validated_one() -> None:
    built = checked_finding(values())
    assert built == Finding(**values())
    assert Finding.model_validate(built.model_dump()) == built


texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from([JWT, BEARER, "x" * 301, "svc-1", "https://ehr.example.org"]),
)
facts = st.dictionaries(
    st.text(min_size=1, max_size=70),
    st.one_of(st.none(), st.integers(), st.booleans(), texts, st.tuples(texts, texts)),
    max_size=4,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "title": texts,
        "client_iss": st.one_of(st.none(), texts),
        "location": st.one_of(st.none(), texts),
        "fingerprint": st.one_of(st.none(), texts, st.just("k2:" + "cd" * 16)),
        "count": st.one_of(st.integers(-1, 3), st.booleans()),
        "facts": facts,
        "event_ids": st.one_of(st.tuples(texts), st.lists(texts, max_size=2)),
    },
)


@settings(max_examples=200, deadline=None)
@given(changes=fields)
def test_any_values_give_the_models_outcome(changes: dict[str, Any]) -> None:
    assert outcome(checked_finding, values(**changes)) == outcome(model, values(**changes))

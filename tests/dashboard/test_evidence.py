"""The incident page's last line of defence: residue of secrets in evidence is masked."""

from __future__ import annotations

import pytest
from dashboard_scenario import CANARY_JWT, Scenario

from dashboards.evidence import MASK, mask_residue, read_evidence
from dashboards.storage import open_store


@pytest.mark.parametrize(
    ("text", "expected", "masks"),
    [
        # A compact JWT left in a log line.
        (f"token={CANARY_JWT} ok", f"token={MASK} ok", 1),
        # An Authorization header: the scheme stays, the credential goes.
        ("Authorization: Bearer abc123def456ghi", f"Authorization: Bearer {MASK}", 1),
        ("Basic dXNlcjpwYXNzd29yZA==", f"Basic {MASK}", 1),
        # JSON and query-string forms of well-known secret names.
        ('{"access_token": "opaque-xyz-123"}', f'{{"access_token": "{MASK}"}}', 1),
        ("client_secret=s3cr3t-value&x=1", f"client_secret={MASK}&x=1", 1),
        # An SSN.
        ("patient 078-05-1120 seen", f"patient {MASK} seen", 1),
        # A PEM private key cut off by the excerpt.
        ("-----BEGIN PRIVATE KEY-----\nMIIE", f"{MASK}\nMIIE", 1),
        # A long opaque run (an API key).
        ("key " + "A1b2" * 12 + " end", f"key {MASK} end", 1),
    ],
)
def test_residue_is_masked(text: str, expected: str, masks: int) -> None:
    assert mask_residue(text) == (expected, masks)


@pytest.mark.parametrize(
    "text",
    [
        # What redaction leaves behind must survive as it is.
        '"authorization": "Bearer [REDACTED:jwt]"',
        "client_secret=[REDACTED]",
        # A keyed fingerprint is 32 hex digits after its key id: not a secret.
        "fp k8b432fcc:cbae0dd637dfcce6ed5a0d07b157b48a",
        # Ordinary log text, dates and ids.
        "2026-11-20T10:04:02Z GET /cds-services/patient-greeter 200 request_id=7f3e",
    ],
)
def test_redacted_and_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_residue(text) == (text, 0)


def test_read_evidence_masks_and_keeps_only_safe_facts(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        evidence = read_evidence(store, shared_scenario.fid("secret"))
        leak = read_evidence(store, shared_scenario.fid("leak"))
    assert evidence is not None
    assert leak is not None
    assert CANARY_JWT not in evidence.excerpt
    assert evidence.masked == 1
    assert leak.masked == 0
    assert leak.facts["jti"] == "jti-northside-0042"
    assert leak.facts["live"] is True


def test_read_evidence_of_an_unknown_finding_is_none(shared_scenario: Scenario) -> None:
    with open_store(shared_scenario.path) as store:
        assert read_evidence(store, "f" * 32) is None

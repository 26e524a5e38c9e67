"""A Finding refuses free text that holds a credential, and never echoes it back."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from auditor import Finding, finding_id
from auditor.patterns.rules import EXAMPLE_JWS

SHORT_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLWZha2U"
BASE = {
    "finding_id": finding_id("leaked_token", "jwt.jws", "app.log:3", 10),
    "detector": "leaked_token",
    "rule": "jwt.jws",
    "kind": "jwt",
    "severity": "critical",
    "observed_at": "2026-11-28T10:00:00Z",
    "title": "Live JWT in a log line",
}


@pytest.mark.parametrize(
    "evidence",
    [
        "Authorization: Bearer [REDACTED:jwt] (greeter)",  # a header whose credential is a marker
        '{"headers": {"authorization": "Bearer [REDACTED:jwt]"}}',  # the same in JSON text
        '"fhirAuthorization": {"access_token": "[REDACTED:bearer_token]"}',  # a keyed marker
        "loaded config client_secret=[REDACTED] note=ok",  # another tool's marker
    ],
)
def test_redacted_evidence_is_accepted(evidence) -> None:
    assert Finding.model_validate({**BASE, "evidence": evidence}).evidence == evidence


def test_markers_and_safe_facts_are_accepted() -> None:
    finding = Finding.model_validate(
        {
            **BASE,
            "evidence": (
                "rejected [REDACTED:jwt fp=3fa9c1d2 iss=https://ehr.example.org jti=j-1 kid=k1]"
            ),
            "location": "$.event chars 9-412",
            "facts": {
                "iss": "https://ehr.example.org",
                "jti": "3f1c6a52-0001",
                "kid": "ehr-2026-01",
                "aud": ("https://cds.example.com/cds-services/patient-greeter",),
                "exp": 1764324300,
            },
        }
    )
    assert finding.facts["iss"] == "https://ehr.example.org"


@pytest.mark.parametrize(
    "fields",
    [
        {"title": f"JWT {SHORT_JWT} leaked"},  # a JWT in the title
        {"evidence": "Authorization: Bearer 8f3kQ9zLr2VxA7mN1pTq"},  # an opaque bearer token
        {
            "evidence": "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0w\n"
        },  # a PEM
        {"evidence": '{"kty":"oct","k":"GawgguFyGrWKav7AX4VKUg"}'},  # a private JWK
        {"facts": {"note": f"token={EXAMPLE_JWS}"}},  # a string fact
        {"facts": {"aud": ("ok", f"Bearer {EXAMPLE_JWS}")}},  # inside a tuple fact
        {"location": "$.headers?access_token=opaque-8f3kQ9zLr2"},  # a URL token in a location
    ],
)
def test_credentials_in_free_text_are_refused(fields) -> None:
    with pytest.raises(ValidationError) as caught:
        Finding.model_validate({**BASE, **fields})
    message = str(caught.value)
    assert "holds a credential" in message
    for secret in (
        EXAMPLE_JWS,
        SHORT_JWT,
        "8f3kQ9zLr2VxA7mN1pTq",
        "GawgguFyGrWKav7AX4VKUg",
        "opaque-8f3kQ9zLr2",
    ):
        assert secret not in message


def test_validation_errors_of_contracts_do_not_echo_the_input() -> None:
    with pytest.raises(ValidationError) as caught:
        Finding.model_validate({**BASE, "severity": f"Bearer {EXAMPLE_JWS}"})
    assert EXAMPLE_JWS not in str(caught.value)

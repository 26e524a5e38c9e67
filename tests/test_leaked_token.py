"""``leaked_token``: which credentials it reports, how it judges them, what it never says."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from content_support import (
    EPOCH_NOW,
    KEY,
    basic,
    context,
    dumped,
    kinds,
    mint,
    pem,
    private_jwk,
    scanner,
)

from auditor.protocols import ContentDetector
from auditor.vocabulary import DetectorName, Severity
from detectors import ContentConfig, LeakedTokenDetector

JWT = mint()
OPAQUE = "mF_9.B5f-4.1JqMxR2vT8kLp3Zq"
SECRET = "Xk29sEcr3tVa1ue-88aa"
PEM = pem()
JWK = private_jwk()

POSITIVES = [
    # A JWT in an Authorization header dict: named jwt, not bearer_token.
    ({"headers": {"Authorization": f"Bearer {JWT}"}}, "jwt", JWT),
    # The same in a text line, as a library logs a header.
    (f"outgoing Authorization: Bearer {JWT}", "jwt", JWT),
    # A JWT in free text, ending a sentence with a dot.
    (f"token validation failed for {JWT}.", "jwt", JWT),
    # A JWT wrapped in base64 (a forwarded header, a serialized blob).
    ({"x_forwarded_token": base64.b64encode(JWT.encode()).decode()}, "jwt", JWT),
    # A JWT inside URL-encoded JSON in a query string.
    (f"GET /launch?state={quote(json.dumps({'t': JWT}), safe='')}", "jwt", JWT),
    # Opaque bearer credentials, in any casing and form.
    ({"headers": {"Authorization": f"Bearer {OPAQUE}"}}, "bearer_token", OPAQUE),
    (
        f"curl -H 'authorization: bearer {OPAQUE}' https://fhir.example.org/r4",
        "bearer_token",
        OPAQUE,
    ),
    ({"headers": [["host", "x"], ["authorization", f"BEARER {OPAQUE}"]]}, "bearer_token", OPAQUE),
    # Basic credentials and a password in a URL.
    (f"Authorization: Basic {basic('svc', 'hunter2-pass')}", "basic_auth", "hunter2-pass"),
    ({"url": "https://svc:S3cr3t-pw@fhir.example.org/r4"}, "basic_auth", "S3cr3t-pw"),
    # OAuth tokens in URLs, form bodies and JSON keys.
    (f"GET /fhir/Observation?_count=1&access_token={OPAQUE}", "url_token", OPAQUE),
    (f"POST /token grant_type=refresh_token&refresh_token={OPAQUE}", "url_token", OPAQUE),
    ({"access_token": OPAQUE, "token_type": "Bearer"}, "url_token", OPAQUE),
    (
        "GET /callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj",
        "url_token",
        "SplxlOBeZQQYbYS6WxSbIA",
    ),
    # A client assertion is a JWT: named by what it is.
    (f"client_assertion_type=jwt-bearer&client_assertion={JWT}", "jwt", JWT),
    # PEM private keys, in an exception and JSON-escaped.
    ({"exception": f"ValueError: bad key\n{PEM}"}, "private_key", PEM.split("\n")[1]),
    (json.dumps({"key": PEM}), "private_key", PEM.split("\n")[1]),
    # A private JWK, alone, in a JWK Set, and as JSON text in a message.
    ({"jwk": JWK}, "private_jwk", JWK["d"]),
    ({"jwks": {"keys": [JWK]}}, "private_jwk", JWK["d"]),
    (f"loaded {json.dumps(JWK)}", "private_jwk", JWK["d"]),
    # Client secrets and passwords.
    (f"grant_type=client_credentials&client_secret={SECRET}", "client_secret", SECRET),
    ({"client_secret": SECRET}, "client_secret", SECRET),
    (f"db connect failed password={SECRET}", "client_secret", SECRET),
]


@pytest.mark.parametrize(("content", "kind", "raw"), POSITIVES)
def test_a_leaked_credential_is_reported_by_kind_without_its_value(content, kind, raw) -> None:
    findings = scanner().scan(content, context())
    assert kind in kinds(findings)
    assert all(f.detector is DetectorName.LEAKED_TOKEN for f in findings if f.kind == kind)
    assert raw not in dumped(findings)


NEGATIVES = [
    # A CDS Hooks hookInstance and other UUIDs.
    {"hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "jti": "3f1c6a52-0001"},
    # Hex digests and git shas.
    "artifact sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    # Base64 that is no token: an etag, a nonce.
    {"etag": 'W/"c2VydmljZS1yZXNwb25zZS0xMjM0"', "nonce": "q8W3t9vYbZ1x2c4V6n8M0a2S4d6F8g0H"},
    # Already redacted by the Redactor.
    {"authorization": "Bearer [REDACTED:jwt fp=3fa9c1d2 iss=https://ehr.example.org]"},
    # Placeholders and templates where a secret would go.
    "config: Authorization: Bearer <token> (set CDS_TOKEN)",
    "client_secret=${CLIENT_SECRET} not set, using mTLS",
    {"password": "********", "access_token": None},
    # The word after Bearer in prose, and a challenge.
    'use Bearer authentication; WWW-Authenticate: Bearer realm="cds"',
    # A FHIR search with a LOINC code is not an OAuth code.
    "GET /fhir/Observation?code=http://loinc.org|8867-4&_count=10",
    # The jwt.io documentation token.
    (
        "example eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    ),
    # Versions and timestamps.
    {"version": "10.2.4", "build": "2026.11.28-3", "at": "2026-11-28T10:00:00Z"},
]


@pytest.mark.parametrize("content", NEGATIVES)
def test_a_look_alike_is_not_a_leaked_token(content) -> None:
    findings = scanner().scan(content, context())
    assert not [f for f in findings if f.detector is DetectorName.LEAKED_TOKEN]


def _jwt_finding(token: str, **ctx):
    (finding,) = [
        f
        for f in scanner(**ctx.pop("config", {})).scan(f"t={token}", context(**ctx))
        if f.kind == "jwt"
    ]
    return finding


def test_a_jwt_live_when_logged_is_critical() -> None:
    finding = _jwt_finding(mint(exp=EPOCH_NOW + 60))
    assert finding.severity is Severity.CRITICAL
    assert finding.facts["live"] is True
    assert finding.facts["expires_in_s"] == 60


def test_liveness_is_judged_at_the_record_time_not_the_wall_clock() -> None:
    from datetime import timedelta

    from content_support import NOW

    token = mint(exp=EPOCH_NOW + 60)
    later = _jwt_finding(token, observed_at=NOW + timedelta(hours=1))
    assert later.facts["live"] is False
    assert later.facts["expired_for_s"] == 3540
    assert later.severity is Severity.MEDIUM


def test_a_jwt_without_exp_never_expires_so_it_is_live() -> None:
    assert _jwt_finding(mint(exp=None)).facts["live"] is True


def test_the_compliance_facts_are_recorded_under_their_names() -> None:
    facts = _jwt_finding(mint("ES384", tenant="t-07")).facts
    # The leaked_tokens query reads live, alg, iss and exp.
    assert facts["alg"] == "ES384"
    assert facts["iss"] == "https://ehr.example.org"
    assert facts["exp"] == EPOCH_NOW + 300
    assert facts["kid"] == "ehr-2026-01"
    assert facts["typ"] == "JWT"
    assert facts["jti"] == "7c3e0d1a-5b2f-4e41-9c55-0e0f1d2a3b4c"
    assert facts["aud"] == "https://cds.example.com/cds-services/patient-greeter"
    assert facts["tenant"] == "t-07"
    assert facts["alg_class"] == "asymmetric"
    assert facts["form"] == "jws"


@pytest.mark.parametrize(
    ("alg", "expected"),
    [
        ("ES384", "asymmetric"),  # RECOMMENDED by CDS Hooks
        ("RS256", "asymmetric"),
        ("HS256", "symmetric"),  # SHALL NOT be used
        ("none", "none"),  # SHALL NOT be used
    ],
)
def test_the_algorithm_class_is_recorded(alg, expected) -> None:
    assert _jwt_finding(mint(alg)).facts["alg_class"] == expected


def test_an_expired_symmetric_jwt_stays_high() -> None:
    finding = _jwt_finding(mint("HS256", exp=EPOCH_NOW - 600))
    assert finding.facts["live"] is False
    assert finding.severity is Severity.HIGH


def test_a_jku_outside_the_allowlist_is_flagged() -> None:
    token = mint(headers={"jku": "https://attacker.example/jwks.json"})
    config = {"jku_allowlist": frozenset({"https://ehr.example.org/"})}
    assert _jwt_finding(token, config=config).facts["jku_allowed"] is False


def test_a_jku_under_an_allowlisted_prefix_is_allowed() -> None:
    token = mint(headers={"jku": "https://ehr.example.org/.well-known/jwks.json"})
    config = {"jku_allowlist": frozenset({"https://ehr.example.org/"})}
    assert _jwt_finding(token, config=config).facts["jku_allowed"] is True


def test_a_jwe_has_no_liveness_and_is_high() -> None:
    from auditor.patterns.rules import EXAMPLE_JWE

    finding = _jwt_finding(EXAMPLE_JWE)
    assert finding.facts["form"] == "jwe"
    assert "live" not in finding.facts
    assert finding.severity is Severity.HIGH


@pytest.mark.parametrize(
    ("content", "severity"),
    [
        ({"jwk": JWK}, Severity.CRITICAL),  # can mint tokens until rotated
        (PEM, Severity.CRITICAL),
        (f"Authorization: Bearer {OPAQUE}", Severity.HIGH),  # no expiry to read
        ("GET /cb?code=SplxlOBeZQQYbYS6WxSbIA", Severity.MEDIUM),  # single use, minutes
    ],
)
def test_severity_follows_what_the_credential_allows(content, severity) -> None:
    (finding,) = scanner().scan(content, context())
    assert finding.severity is severity


def test_fhir_authorization_access_token_is_recognised_by_where_it_sits() -> None:
    body = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://fhir.example.org/r4",
        # Short and word-like: only its place says it is a token.
        "fhirAuthorization": {
            "access_token": "abcdefgh",
            "token_type": "Bearer",
            "expires_in": 300,
        },
        "context": {"userId": "Practitioner/example", "patientId": "1288992"},
    }
    findings = scanner().scan({"body": body}, context())
    (token,) = [f for f in findings if f.detector is DetectorName.LEAKED_TOKEN]
    assert token.kind == "url_token"
    assert token.location == "$.body.fhirAuthorization.access_token"
    assert token.facts["cds_hooks"] == "fhirAuthorization.access_token"
    assert "abcdefgh" not in dumped(findings)


def test_the_same_token_gets_the_same_keyed_fingerprint_wherever_it_is_logged() -> None:
    a = _jwt_finding(JWT)
    (b,) = scanner().scan({"headers": {"authorization": f"Bearer {JWT}"}}, context())
    assert a.fingerprint == b.fingerprint == KEY(JWT)


def test_finding_ids_are_deterministic_and_depend_on_origin_and_location() -> None:
    one = scanner().scan(f"t={JWT}", context("a.log:1"))
    again = scanner().scan(f"t={JWT}", context("a.log:1"))
    elsewhere = scanner().scan(f"t={JWT}", context("a.log:2"))
    assert [f.finding_id for f in one] == [f.finding_id for f in again]
    assert one[0].finding_id != elsewhere[0].finding_id


def test_the_jwt_issuer_stands_for_the_client_when_the_context_has_none() -> None:
    assert _jwt_finding(JWT).client_iss == "https://ehr.example.org"


def test_the_detector_reports_only_token_kinds() -> None:
    detector = LeakedTokenDetector(ContentConfig(fingerprinter=KEY))
    assert isinstance(detector, ContentDetector)
    assert detector.name is DetectorName.LEAKED_TOKEN
    findings = detector.scan(f"ssn 536-22-8714 token={JWT}", context())
    assert kinds(findings) == {"jwt"}


def test_an_allowlisted_fingerprint_is_not_reported() -> None:
    findings = scanner(allow_fingerprints=frozenset({KEY(OPAQUE)})).scan(
        f"Authorization: Bearer {OPAQUE}", context()
    )
    assert findings == []

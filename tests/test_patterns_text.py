"""Text rules: what each finds, and the look-alikes none of them may find."""

from __future__ import annotations

import base64

import pytest

from auditor.patterns import default_library, find_in_text
from auditor.patterns.rules import EXAMPLE_JWE, EXAMPLE_JWS
from auditor.vocabulary import PhiKind, SafeHarbor, TokenKind

JWS = EXAMPLE_JWS
B64_JWS = base64.b64encode(JWS.encode()).decode()
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIOr5bXk0c2VjcmV0LWtleQ==\n-----END EC PRIVATE KEY-----"
)
BASIC = base64.b64encode(b"cds-client:s3cr3t-Passw0rd").decode()

POSITIVES = [
    # (text, secret that must be covered, kind, rule) — why each case exists:
    (f"rejected {JWS}", JWS, TokenKind.JWT, "jwt.jws"),  # a JWS in prose
    (f"Authorization: Bearer {JWS}", JWS, TokenKind.JWT, "jwt.jws"),  # the JWT names the finding
    (f"token={JWS}.", JWS, TokenKind.JWT, "jwt.jws"),  # a sentence ends right after it
    (f"q=%22{JWS}%22", JWS, TokenKind.JWT, "jwt.jws"),  # URL-encoded JSON around it
    (f"jwe {EXAMPLE_JWE} x", EXAMPLE_JWE, TokenKind.JWT, "jwt.jwe"),  # five segments
    (f"fwd: {B64_JWS}", B64_JWS, TokenKind.JWT, "jwt.base64"),  # base64-wrapped
    (
        "Authorization: Bearer 8f3kQ9zLr2VxA7mN1pTq",
        "8f3kQ9zLr2VxA7mN1pTq",
        TokenKind.BEARER_TOKEN,
        "bearer.credential",
    ),
    (
        "curl -H 'authorization: bearer ya29.a0AfH6SMBx'",
        "ya29.a0AfH6SMBx",
        TokenKind.BEARER_TOKEN,
        "bearer.credential",
    ),
    (f"Authorization: Basic {BASIC}", BASIC, TokenKind.BASIC_AUTH, "basic.credential"),
    (
        "https://svc:Xk29-pass@fhir.example.org/r4",
        "Xk29-pass",
        TokenKind.BASIC_AUTH,
        "url.userinfo",
    ),
    (
        "GET /cb?code=SplxlOBeZQQYbYS6WxSbIA&state=x",
        "SplxlOBeZQQYbYS6WxSbIA",
        TokenKind.URL_TOKEN,
        "param.code",
    ),
    (
        "GET /r4/Patient?access_token=opaque-8f3kQ9zL",
        "opaque-8f3kQ9zL",
        TokenKind.URL_TOKEN,
        "key.access_token",
    ),
    (
        "{'client_secret': 'Xk29-sEcr3t'}",
        "Xk29-sEcr3t",
        TokenKind.CLIENT_SECRET,
        "key.client_secret",
    ),  # repr
    (
        'body="{\\"password\\": \\"hunter2\\"}"',
        "hunter2",
        TokenKind.CLIENT_SECRET,
        "key.password",
    ),  # escaped JSON
    ("login password=hunter2 user=svc", "hunter2", TokenKind.CLIENT_SECRET, "key.password"),
    ("retry with secret=Xk29-sEcr3t", "Xk29-sEcr3t", TokenKind.CLIENT_SECRET, "key.secret"),
    (
        "Cookie: sid=8f3kQ9zLr2; theme=dark",
        "sid=8f3kQ9zLr2; theme=dark",
        TokenKind.BEARER_TOKEN,
        "key.cookie",
    ),
    (
        PEM,
        "MHcCAQEEIOr5bXk0c2VjcmV0LWtleQ==",
        TokenKind.PRIVATE_KEY,
        "pem.private_key",
    ),
    (
        '{"kty":"EC","d":"Vb4y7Jx0c2VjcmV0"}',
        "Vb4y7Jx0c2VjcmV0",
        TokenKind.PRIVATE_JWK,
        "jwk.private_member",
    ),
    ("member 536-22-8714 enrolled", "536-22-8714", PhiKind.SSN, "ssn.dashed"),
    ("SSN: 536228714", "536228714", PhiKind.SSN, "ssn.keyword"),  # undashed, by keyword
    ("call (617) 555-2368 now", "(617) 555-2368", PhiKind.PHONE, "phone.nanp"),
    ("sms +16175552368 sent", "+16175552368", PhiKind.PHONE, "phone.nanp"),  # E.164
    ("phone 6175552368", "6175552368", PhiKind.PHONE, "phone.keyword"),  # bare digits by keyword
    (
        "notify jane.doe+cds@mercy-health.org",
        "jane.doe+cds@mercy-health.org",
        PhiKind.EMAIL,
        "email.address",
    ),
    ("MRN: 00482913 admitted", "00482913", PhiKind.MRN, "mrn.keyword"),
    (
        '{"value": "A12345", "type": {"coding": [{"code": "MR"}]}}',
        "A12345",
        PhiKind.MRN,
        "mrn.fhir_text",
    ),
    ("DOB: 03/07/1954", "03/07/1954", PhiKind.DOB, "dob.keyword"),
    ("born March 7, 1954", "March 7, 1954", PhiKind.DOB, "dob.keyword"),
    ("patient name: Maria Lopez", "Maria Lopez", PhiKind.PERSON_NAME, "person_name.keyword"),
    (
        '{"family":"Lopez","given":["Maria"]}',
        "Lopez",
        PhiKind.PERSON_NAME,
        "key.family",
    ),  # FHIR JSON text
    (
        "ship to 1428 Elm Avenue, Springfield",
        "1428 Elm Avenue",
        PhiKind.STREET_ADDRESS,
        "street_address.pattern",
    ),
    (
        "GET /r4/Patient/smart-1288992/$everything",
        "smart-1288992",
        PhiKind.PATIENT_ID,
        "patient_id.reference",
    ),
    ('"patientId":"smart-1288992"', "smart-1288992", PhiKind.PATIENT_ID, "key.patient_id"),
]


@pytest.mark.parametrize(("text", "secret", "kind", "rule"), POSITIVES)
def test_each_positive_is_found_with_its_kind_and_rule(text, secret, kind, rule) -> None:
    found = find_in_text(text)
    start = text.index(secret)
    covering = [m for m in found if m.start <= start and start + len(secret) <= m.end]
    assert covering, f"{rule} not found"
    assert covering[0].kind is kind
    assert covering[0].rule == rule


NEGATIVES = [
    "hookInstance d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",  # a UUID is no token or SSN
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",  # hex digest
    "window 2026-11-28T10:00:00.123456Z .. 2026-11-28T11:00:00Z",  # ISO timestamps are no DOB
    "version 2.14.3 build 2026.11.28-4",  # versions and build numbers
    'etag W/"ZGVhZGJlZWYtY2FmZQ=="',  # base64 that decodes to no token
    "eyJmb28iOiJiYXIifQ",  # base64url JSON without a JWT header
    "eyJmb28iOiJiYXIifQ.eyJhIjoxfQ.c2ln",  # three segments, but the header names no alg
    "token_type: Bearer",  # the scheme name alone
    'WWW-Authenticate: Bearer realm="cds", error="invalid_token"',  # a challenge
    "Bearer authentication failed",  # a word after Bearer
    "basic auth disabled",  # a word after basic
    "ssn 000-12-3456 and 666-12-3456 and 912-12-3456",  # SSN areas that are never issued
    "ssn 123-00-4567 and 123-45-0000",  # group 00, serial 0000
    "call 123-456-7890",  # area code starting with 1
    "order ORD-2026-000123 line 212-555-12345",  # digit groups of other shapes
    "asset icon@2x.png and npm @scope/pkg",  # an @ that is no address
    "MRN lookup failed",  # the keyword without a number
    "DOB unknown; birthDate year 1954",  # a year alone is kept by Safe Harbor
    "GET /fhir/Observation?code=http://loinc.org|8867-4",  # a FHIR search code, not OAuth
    "patient-view hook for patient-greeter",  # the CDS Hooks vocabulary
    "password: null, secret: ***, token: <token>",  # placeholders
    "access_token=[REDACTED:url_token fp=3fa9c1d2]",  # our own marker
    "GET /fhir/Patient/$everything and Patient?_id=",  # operations, not ids
    "10.0.0.1 served 200 in 12.5 ms",  # IPs and numbers
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_not_found(text) -> None:
    assert find_in_text(text) == []


def test_a_jwt_match_carries_its_safe_facts_only() -> None:
    (match,) = find_in_text(f"x {JWS} y")
    assert match.facts["iss"] == "https://ehr.example.org"
    assert match.facts["alg"] == "ES384"
    assert match.facts["jti"] == "3f1c6a52-0001"
    assert set(match.facts) <= {"alg", "typ", "kid", "jku", "enc", "cty", "x5u"} | {
        "iss",
        "aud",
        "jti",
        "exp",
        "nbf",
        "iat",
        "tenant",
    }
    assert match.value == JWS


def test_the_secret_is_kept_out_of_a_matchs_repr() -> None:
    (match,) = find_in_text("ssn 536-22-8714")
    assert "536" not in repr(match)


def test_ssn_and_phone_values_are_normalized_so_forms_correlate() -> None:
    (dashed,) = find_in_text("ssn 536-22-8714")
    (plain,) = find_in_text("SSN: 536228714")
    assert dashed.value == plain.value == "536228714"


def test_a_well_known_example_ssn_has_lower_confidence() -> None:
    (match,) = find_in_text("ssn 078-05-1120")
    assert match.confidence < 1


def test_fax_by_keyword_falls_under_the_fax_safeguard() -> None:
    (match,) = find_in_text("fax: 617 555 2368")
    assert match.safeguard is SafeHarbor.FAX


def test_overlapping_findings_in_one_header_line_are_each_reported() -> None:
    text = "Authorization: Bearer 8f3kQ9zLr2VxA7mN1pTq for ssn 536-22-8714"
    kinds = [m.kind for m in find_in_text(text)]
    assert kinds == [TokenKind.BEARER_TOKEN, PhiKind.SSN]


def test_redaction_groups_cover_every_character_any_rule_claimed() -> None:
    text = "Authorization: Bearer 8f3kQ9zLr2VxA7mN1pTq"
    (group,) = default_library().groups(text)
    # The keyed header covers "Bearer …"; the group spans it, named by the bearer rule.
    assert text[group.start : group.end] == "Bearer 8f3kQ9zLr2VxA7mN1pTq"
    assert group.best.rule == "bearer.credential"

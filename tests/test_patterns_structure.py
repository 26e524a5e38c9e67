"""Structures: keys nested anywhere, FHIR resources, CDS Hooks requests, JWKs, limits."""

from __future__ import annotations

from auditor.patterns import scan
from auditor.vocabulary import PhiKind, SafeHarbor, TokenKind

PATIENT = {
    "resourceType": "Patient",
    "id": "smart-1288992",
    "identifier": [
        {"type": {"coding": [{"code": "MR"}]}, "system": "urn:oid:1.2.3", "value": "A00482913"},
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "536228714"},
        {"system": "urn:example:member", "value": "M-77"},
    ],
    "name": [{"family": "Lopez", "given": ["Maria"]}],
    "telecom": [
        {"system": "phone", "value": "(617) 555-2368"},
        {"system": "email", "value": "m@x.org"},
    ],
    "gender": "female",
    "birthDate": "1954-03-07",
    "address": [{"line": ["1428 Elm Street"], "city": "Springfield", "state": "MA"}],
}


def _found(value: object) -> dict[str, tuple[str, str]]:
    return {m.location: (str(m.kind), m.rule) for m in scan(value).matches}


def test_sensitive_keys_count_in_any_spelling_and_depth() -> None:
    found = _found({"a": {"b": [{"Access-Token": "opaque-123456", "x_api_key": "k-9f8e7d6c"}]}})
    assert found["$.a.b[0]['Access-Token']"] == ("url_token", "key.access_token")
    assert found["$.a.b[0].x_api_key"] == ("bearer_token", "key.x_api_key")


def test_a_jwt_under_a_sensitive_key_is_named_and_fingerprinted_as_the_jwt() -> None:
    from auditor.patterns.rules import EXAMPLE_JWS

    (match,) = scan({"headers": {"authorization": f"Bearer {EXAMPLE_JWS}"}}).matches
    assert match.kind is TokenKind.JWT
    assert match.rule == "key.authorization"
    assert match.value == EXAMPLE_JWS
    assert match.facts["iss"] == "https://ehr.example.org"


def test_a_patient_resource_is_reported_and_its_identifying_members_found() -> None:
    found = _found({"resource": PATIENT})
    assert found["$.resource"] == ("fhir_resource", "fhir.person_resource")
    assert found["$.resource.id"] == ("patient_id", "fhir.resource_id")
    assert found["$.resource.name"] == ("person_name", "fhir.name")
    assert found["$.resource.address"] == ("street_address", "fhir.address")
    assert found["$.resource.birthDate"] == ("dob", "fhir.birth_date")
    assert found["$.resource.identifier[0].value"] == ("mrn", "fhir.identifier")
    assert found["$.resource.identifier[1].value"] == ("ssn", "fhir.identifier")
    # In a person resource every identifier identifies the person.
    assert found["$.resource.identifier[2].value"] == ("fhir_resource", "fhir.identifier")
    assert found["$.resource.telecom[0].value"] == ("phone", "fhir.telecom")
    assert found["$.resource.telecom[1].value"] == ("email", "fhir.telecom")
    assert "$.resource.gender" not in found


def test_findings_say_which_safe_harbor_category_they_fall_under() -> None:
    by_rule = {m.rule: m.safeguard for m in scan(PATIENT).matches}
    assert by_rule["fhir.name"] is SafeHarbor.NAMES
    assert by_rule["fhir.birth_date"] is SafeHarbor.DATES
    assert by_rule["fhir.address"] is SafeHarbor.GEOGRAPHIC


def test_a_birth_year_alone_is_no_date_of_birth() -> None:
    assert "$.birthDate" not in _found({**PATIENT, "birthDate": "1954"})


def test_an_encounter_identifier_without_mr_type_is_not_phi() -> None:
    encounter = {"resourceType": "Encounter", "identifier": [{"system": "urn:x", "value": "E-1"}]}
    assert scan(encounter).matches == []


def test_human_name_and_address_are_recognised_outside_a_resource() -> None:
    found = _found(
        {"n": {"family": "Lopez", "given": ["Maria"]}, "a": {"city": "Springfield", "state": "MA"}}
    )
    assert found["$.n"] == ("person_name", "fhir.name")
    assert found["$.a"] == ("street_address", "fhir.address")


def test_an_ordinary_dict_with_type_and_text_is_no_address() -> None:
    assert scan({"type": "note", "text": "cards returned"}).matches == []


def test_a_cds_hooks_request_is_redacted_where_its_secrets_sit() -> None:
    request = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://fhir.example.org/r4",
        "fhirAuthorization": {"access_token": "opaque", "token_type": "Bearer", "patient": "123"},
        "context": {"userId": "Practitioner/example", "patientId": "123"},
        "prefetch": {"patient": PATIENT},
    }
    found = _found(request)
    assert found["$.fhirAuthorization.access_token"] == ("url_token", "key.access_token")
    assert found["$.fhirAuthorization.patient"] == ("patient_id", "key.patient")
    assert found["$.context.patientId"] == ("patient_id", "key.patient_id")
    assert found["$.prefetch"] == ("fhir_resource", "key.prefetch")
    for safe in (
        "$.hook",
        "$.hookInstance",
        "$.fhirServer",
        "$.context.userId",
        "$.fhirAuthorization.token_type",
    ):
        assert safe not in found


def test_private_jwk_members_are_found_and_public_ones_kept() -> None:
    jwks = {
        "keys": [
            {"kty": "RSA", "kid": "k1", "n": "pub", "e": "AQAB", "d": "priv", "p": "p1", "q": "q1"}
        ]
    }
    found = _found(jwks)
    assert {path for path, (kind, _) in found.items() if kind == "private_jwk"} == {
        "$.keys[0].d",
        "$.keys[0].p",
        "$.keys[0].q",
    }
    public = {"keys": [{"kty": "EC", "kid": "k1", "x": "x", "y": "y", "crv": "P-384"}]}
    assert scan(public).matches == []


def test_header_pairs_as_asgi_sends_them_are_understood() -> None:
    found = _found(
        {"headers": [(b"authorization", b"Bearer 8f3kQ9zLr2VxA7mN1pTq"), (b"accept", b"*/*")]}
    )
    assert found["$.headers[0][1]"][1] == "key.authorization"


def test_strings_inside_structures_are_scanned_with_spans() -> None:
    (match,) = scan({"event": "member ssn 536-22-8714"}).matches
    assert match.location == "$.event chars 11-22"
    assert match.kind is PhiKind.SSN


def test_limits_are_reported_instead_of_walked() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    looped: dict[str, object] = {}
    looped["self"] = looped
    result = scan({"deep": deep, "loop": looped, "long": "x" * 100}, max_depth=10, max_string=50)
    reasons = {limit.reason for limit in result.limits}
    assert reasons == {"too_deep", "cycle", "oversized"}

"""``phi_in_logs``: which PHI it reports, under which Safe Harbor category, and what not."""

from __future__ import annotations

import pytest
from content_support import KEY, context, dumped, kinds, scanner

from auditor.vocabulary import DetectorName, SafeHarbor, Severity
from detectors import ContentConfig, PhiInLogsDetector

PATIENT = {
    "resourceType": "Patient",
    "id": "smart-1288992",
    "identifier": [
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
            "value": "A0042913",
        }
    ],
    "name": [{"use": "official", "family": "Lopez", "given": ["Maria"]}],
    "birthDate": "1954-03-07",
    "address": [{"line": ["1428 Elm Avenue"], "city": "Springfield", "state": "MA"}],
    "telecom": [{"system": "phone", "value": "(617) 555-2368"}],
}

POSITIVES = [
    # SSN: dashed in text (SSA rules hold), under a key without dashes, after a keyword.
    ("member lookup failed for ssn 536-22-8714", "ssn", SafeHarbor.SSN, "536-22-8714"),
    ({"member": {"ssn": "536228714"}}, "ssn", SafeHarbor.SSN, "536228714"),
    ("social security number is 536 22 8714", "ssn", SafeHarbor.SSN, "536 22 8714"),
    # MRN: keyword context, FHIR identifier of type MR, FHIR search by identifier.
    ("MRN: 00482913 admitted", "mrn", SafeHarbor.MRN, "00482913"),
    ({"identifier": PATIENT["identifier"][0]}, "mrn", SafeHarbor.MRN, "A0042913"),
    (
        "GET /fhir/Patient?identifier=urn:oid:1.2.36|A12345&_count=1",
        "mrn",
        SafeHarbor.MRN,
        "A12345",
    ),
    # DOB: by key, by keyword, written out, and FHIR birthDate.
    ({"dob": "1954-03-07"}, "dob", SafeHarbor.DATES, "1954-03-07"),
    ("eligibility check DOB: 03/07/1954", "dob", SafeHarbor.DATES, "03/07/1954"),
    ("patient born March 7, 1954", "dob", SafeHarbor.DATES, "March 7, 1954"),
    # Phone: NANP forms, under a key, FHIR telecom; fax is its own category.
    ("callback requested at (617) 555-2368", "phone", SafeHarbor.PHONE, "555-2368"),
    ({"phone": "+16175552368"}, "phone", SafeHarbor.PHONE, "6175552368"),
    (
        {"telecom": [{"system": "fax", "value": "617.555.2368"}]},
        "phone",
        SafeHarbor.FAX,
        "555.2368",
    ),
    # E-mail.
    ({"to": "jane.doe+cds@mercy-health.org"}, "email", SafeHarbor.EMAIL, "jane.doe"),
    # Names: FHIR HumanName, after a keyword, under a name key.
    ({"name": [{"family": "Lopez", "given": ["Maria"]}]}, "person_name", SafeHarbor.NAMES, "Lopez"),
    ("order signed for patient: Maria Lopez", "person_name", SafeHarbor.NAMES, "Lopez"),
    ({"patient_name": "Maria Lopez"}, "person_name", SafeHarbor.NAMES, "Lopez"),
    # Street addresses: FHIR Address and a street pattern.
    ({"address": PATIENT["address"][0]}, "street_address", SafeHarbor.GEOGRAPHIC, "1428 Elm"),
    ("ship to 1428 Elm Avenue, Springfield", "street_address", SafeHarbor.GEOGRAPHIC, "1428 Elm"),
    # A logged person resource.
    ({"resource": PATIENT}, "fhir_resource", SafeHarbor.OTHER_ID, "Lopez"),
    # Patient ids: CDS Hooks context, FHIR references.
    ({"context": {"patientId": "1288992"}}, "patient_id", SafeHarbor.OTHER_ID, "1288992"),
    (
        "GET https://fhir.example.org/r4/Patient/smart-1288992/$everything",
        "patient_id",
        SafeHarbor.OTHER_ID,
        "smart-1288992",
    ),
]


@pytest.mark.parametrize(("content", "kind", "safeguard", "raw"), POSITIVES)
def test_phi_is_reported_with_its_safe_harbor_category_and_never_its_value(
    content, kind, safeguard, raw
) -> None:
    findings = scanner().scan(content, context())
    found = [f for f in findings if f.kind == kind]
    assert found, kinds(findings)
    assert found[0].detector is DetectorName.PHI_IN_LOGS
    assert found[0].safeguard == safeguard
    assert raw not in dumped(findings)


NEGATIVES = [
    # An ordinary timestamp is not a date of birth; nor is a birth year alone.
    {"timestamp": "2026-11-28T10:00:00Z", "created_at": "1954-03-07T10:00:00Z", "birth_year": 1954},
    "rate window 2026-11-28T10:00:00Z .. 2026-11-28T11:00:00Z closed",
    # Numbers shaped like SSNs that SSA never issues (area 000, 666, 9xx; group 00).
    "ids 000-12-3456 666-12-3456 912-34-5678 123-00-4567",
    # The SSN printed on a wallet insert in 1938, and the fiction exchange 555-01xx.
    "self-test ssn 078-05-1120 rejected; demo phone 617-555-0123",
    # NANP rules: area codes do not start with 0 or 1; N11 are service codes.
    "ref 123-456-7890 code 211-555-1234",
    # Asset names and version strings are not e-mail addresses or phones.
    {"asset": "icon@2x.png", "version": "10.2.4", "oid": "urn:oid:2.16.840.1.113883.3.1"},
    # The patient-view hook, resource type names, a practitioner reference.
    {
        "hook": "patient-view",
        "resource_types": ["Patient", "Condition"],
        "user": "Practitioner/example",
    },
    # Placeholders under PHI keys.
    "ssn: null, mrn: n/a, dob: unknown",
    # A HumanName-like key in a non-FHIR dict with no name in it.
    {"name": "drug-interaction-rules"},
]


@pytest.mark.parametrize("content", NEGATIVES)
def test_a_look_alike_is_not_phi(content) -> None:
    findings = scanner().scan(content, context())
    assert not [f for f in findings if f.detector is DetectorName.PHI_IN_LOGS], [
        (f.kind, f.rule) for f in findings
    ]


def test_a_patient_resource_reports_the_resource_and_each_identifier() -> None:
    findings = scanner().scan({"resource": PATIENT}, context())
    by_location = {f.location: f.kind for f in findings}
    assert by_location == {
        "$.resource": "fhir_resource",
        "$.resource.id": "patient_id",
        "$.resource.identifier[0].value": "mrn",
        "$.resource.name": "person_name",
        "$.resource.birthDate": "dob",
        "$.resource.address": "street_address",
        "$.resource.telecom[0].value": "phone",
    }
    (resource,) = [f for f in findings if f.kind == "fhir_resource"]
    assert resource.severity is Severity.HIGH
    assert resource.facts["resource_type"] == "Patient"


def test_a_logged_prefetch_is_reported_whole_and_inside() -> None:
    request = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "smart-1288992"},
        "prefetch": {"patient": PATIENT, "conditions": {"resourceType": "Bundle", "entry": []}},
    }
    findings = scanner().scan(request, context())
    (prefetch,) = [f for f in findings if f.rule == "key.prefetch"]
    assert prefetch.kind == "fhir_resource"
    assert prefetch.facts["prefetch_keys"] == ("conditions", "patient")
    assert prefetch.facts["resource_types"] == ("Bundle", "Patient")
    assert prefetch.facts["cds_hooks"] == "prefetch"
    inside = [f for f in findings if f.location and f.location.startswith("$.prefetch.patient.")]
    assert {"person_name", "dob", "street_address", "phone", "mrn"} <= kinds(inside)
    assert all(f.facts.get("cds_hooks") == "prefetch.patient" for f in inside)
    assert "Lopez" not in dumped(findings)


def test_weaker_evidence_lowers_the_severity() -> None:
    # A FHIR search by identifier is probably an MRN (confidence 0.8).
    (finding,) = scanner().scan("GET /fhir/Patient?identifier=urn:oid:1.2|A12345", context())
    assert finding.facts["confidence"] == 0.8
    assert finding.severity is Severity.LOW


def test_the_detector_reports_only_phi_kinds() -> None:
    detector = PhiInLogsDetector(ContentConfig(fingerprinter=KEY))
    assert detector.name is DetectorName.PHI_IN_LOGS
    findings = detector.scan("ssn 536-22-8714 token=opaque-8f3kQ9zLr2x", context())
    assert kinds(findings) == {"ssn"}


def test_an_ssn_correlates_across_spellings() -> None:
    (dashed,) = scanner().scan("ssn 536-22-8714", context())
    (keyed,) = scanner().scan({"ssn": "536228714"}, context())
    assert dashed.fingerprint == keyed.fingerprint


def test_evidence_shows_the_context_with_every_value_redacted() -> None:
    (finding,) = [
        f
        for f in scanner(context_chars=64).scan(
            "lookup for ssn 536-22-8714 from jane@mercy-health.org failed", context()
        )
        if f.kind == "ssn"
    ]
    assert finding.evidence == "lookup for ssn [REDACTED:ssn] from [REDACTED:email] failed"
    assert finding.location == "chars 15-26"


def test_evidence_is_cut_around_the_match_and_says_so() -> None:
    text = "x" * 100 + " ssn 536-22-8714 " + "y" * 100
    (finding,) = scanner(context_chars=8).scan(text, context())
    assert finding.evidence == "…xxx ssn [REDACTED:ssn] yyyyyyy…"


def test_mrn_inside_a_base64_word_is_not_a_keyword() -> None:
    # "mRN" at the start of a base64 etag once read as the keyword "MRN" plus a value.
    assert scanner().scan({"etag": 'W/"mRNITsFtRVO8MQN1"'}, context()) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("MRN00482913 admitted", True),  # glued digits: an MRN
        ("mr#A0042913", True),  # the keyword ends with its own separator
        ('etag W/"mrn9s1QPS5inNz22"', False),  # glued letters and digits: base64
        ('etag W/"MRN2IqG+GOS1nFvJ"', False),
    ],
)
def test_an_mrn_glued_to_its_keyword_must_be_digits(text, found) -> None:
    assert bool(scanner().scan(text, context())) is found

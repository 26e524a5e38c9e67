"""Structures that hold PHI or key material by their shape, not their key names.

FHIR resources that identify a person (Patient, RelatedPerson, Person, Practitioner), the
FHIR datatypes that carry identifiers (HumanName, Address, ContactPoint, Identifier), and
JSON Web Keys with private members. A CDS Hooks request needs no shape of its own: its
sensitive parts sit under sensitive keys (``fhirAuthorization.access_token``,
``context.patientId``, ``prefetch``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from auditor.patterns.matches import NO_FACTS, SAFEGUARD_OF_KIND, Fact, Kind
from auditor.patterns.validators import parse_birth_date
from auditor.vocabulary import PhiKind, SafeHarbor, TokenKind

PERSON_RESOURCES: Final = frozenset({"Patient", "RelatedPerson", "Person", "Practitioner"})
"""FHIR resources about one person; their names, contacts and identifiers are PHI."""

_PATIENT_LIKE: Final = frozenset({"Patient", "RelatedPerson", "Person"})
_HUMAN_NAME_KEYS: Final = frozenset(
    {"use", "text", "family", "given", "prefix", "suffix", "period", "id", "extension"}
)
_ADDRESS_KEYS: Final = frozenset(
    {"use", "type", "text", "line", "city", "district", "state", "postalCode", "country"}
    | {"period", "id", "extension"}
)
_ADDRESS_STRONG: Final = ("line", "city", "district", "postalCode")
_CONTACT_SYSTEMS: Final = {
    "phone": (PhiKind.PHONE, SafeHarbor.PHONE),
    "sms": (PhiKind.PHONE, SafeHarbor.PHONE),
    "pager": (PhiKind.PHONE, SafeHarbor.PHONE),
    "fax": (PhiKind.PHONE, SafeHarbor.FAX),
    "email": (PhiKind.EMAIL, SafeHarbor.EMAIL),
}
_JWK_PRIVATE: Final = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")
_JWK_FACTS: Final = ("kty", "kid", "crv", "alg", "use")
_SSN_SYSTEM: Final = "http://hl7.org/fhir/sid/us-ssn"
# HL7 v2 table 0203 identifier type codes and the Safe Harbor category they fall under.
_IDENTIFIER_TYPES: Final = {
    "MR": (PhiKind.MRN, SafeHarbor.MRN),
    "SS": (PhiKind.SSN, SafeHarbor.SSN),
    "SB": (PhiKind.SSN, SafeHarbor.SSN),
    "DL": (PhiKind.FHIR_RESOURCE, SafeHarbor.LICENSE),
    "MB": (PhiKind.FHIR_RESOURCE, SafeHarbor.HEALTH_PLAN),
    "SN": (PhiKind.FHIR_RESOURCE, SafeHarbor.HEALTH_PLAN),
    "AN": (PhiKind.FHIR_RESOURCE, SafeHarbor.ACCOUNT),
}
MAX_CANONICAL_CHARS: Final = 65536


_CANONICAL: Final = json.JSONEncoder(sort_keys=True, default=repr, separators=(",", ":"))
"""What ``json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))`` builds
on every call (keywords other than the defaults), built once; it holds no state."""


def canonical(value: object) -> str:
    """A stable text form of a value, for fingerprinting a whole member or container."""
    if isinstance(value, str):
        return value
    try:
        text = _CANONICAL.encode(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text[:MAX_CANONICAL_CHARS]


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a structure to treat as one sensitive value."""

    kind: Kind
    rule: str
    safeguard: SafeHarbor | None
    value: str = field(repr=False)
    facts: Mapping[str, Fact] = field(default_factory=lambda: NO_FACTS)


@dataclass(frozen=True, slots=True)
class Shape:
    """What a dict is, for redaction and detection.

    Attributes:
        members: Members whose whole value is sensitive, by key.
        report: A report-only description of the dict itself (a person resource).
        whole: Set when the whole dict is one sensitive value (a HumanName, an Address).
        person: Whether the dict is a person resource, so its identifiers are PHI
            whatever their type.
    """

    members: Mapping[str, Member] = field(default_factory=dict)
    report: Member | None = None
    whole: Member | None = None
    person: bool = False


def _member(kind: Kind, rule: str, value: object, safeguard: SafeHarbor | None = None) -> Member:
    return Member(kind, rule, safeguard or SAFEGUARD_OF_KIND.get(kind), canonical(value))


def _codes(type_: object) -> set[str]:
    codes: set[str] = set()
    if isinstance(type_, Mapping):
        for coding in type_.get("coding") or ():
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                codes.add(coding["code"])
    return codes


def _identifier(d: Mapping[str, object], *, in_person: bool) -> Member | None:
    value = d.get("value")
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        return None
    codes = _codes(d.get("type"))
    if d.get("system") == _SSN_SYSTEM:
        codes.add("SS")
    for code, (kind, safeguard) in _IDENTIFIER_TYPES.items():
        if code in codes:
            return _member(kind, "fhir.identifier", value, safeguard)
    if in_person:
        return _member(PhiKind.FHIR_RESOURCE, "fhir.identifier", value, SafeHarbor.OTHER_ID)
    return None


def _person(d: Mapping[str, object], resource_type: str) -> Shape:
    members: dict[str, Member] = {}
    for key, kind, rule in (
        ("name", PhiKind.PERSON_NAME, "fhir.name"),
        ("address", PhiKind.STREET_ADDRESS, "fhir.address"),
        ("photo", PhiKind.FHIR_RESOURCE, "fhir.photo"),
        ("contact", PhiKind.PERSON_NAME, "fhir.contact"),
        ("text", PhiKind.FHIR_RESOURCE, "fhir.narrative"),
    ):
        if d.get(key):
            safeguard = SafeHarbor.PHOTO if key == "photo" else None
            members[key] = _member(kind, rule, d[key], safeguard)
    for key, rule in (("birthDate", "fhir.birth_date"), ("deceasedDateTime", "fhir.deceased")):
        value = d.get(key)
        if isinstance(value, str) and parse_birth_date(value):
            members[key] = _member(PhiKind.DOB, rule, value)
    resource_id = d.get("id")
    if resource_type in _PATIENT_LIKE and isinstance(resource_id, str) and resource_id:
        members["id"] = _member(PhiKind.PATIENT_ID, "fhir.resource_id", resource_id)
    report = None
    if members or d.get("identifier") or d.get("telecom"):
        report = Member(
            PhiKind.FHIR_RESOURCE,
            "fhir.person_resource",
            SafeHarbor.OTHER_ID,
            canonical(resource_id if isinstance(resource_id, str) else members.get("name", "")),
            {"resource_type": resource_type},
        )
    return Shape(members=members, report=report, person=True)


def shape_of(d: Mapping[str, object], *, in_person: bool = False) -> Shape | None:  # noqa: C901, PLR0911 - one exit per shape
    """Recognise a dict by its members; ``None`` for an ordinary dict.

    Args:
        d: The dict.
        in_person: Whether ``d`` sits inside a person resource (its identifiers are then
            PHI whatever their type).
    """
    resource_type = d.get("resourceType")
    if isinstance(resource_type, str):
        return _person(d, resource_type) if resource_type in PERSON_RESOURCES else None
    if "kty" in d:
        private = {k: d[k] for k in _JWK_PRIVATE if isinstance(d.get(k), str | list) and d[k]}
        if not private:
            return None
        facts = {k: d[k] for k in _JWK_FACTS if isinstance(d.get(k), str) and len(str(d[k])) <= 128}  # noqa: PLR2004
        return Shape(
            members={
                k: Member(TokenKind.PRIVATE_JWK, "jwk.private", None, canonical(v), facts)  # type: ignore[arg-type]
                for k, v in private.items()
            }
        )
    keys = d.keys()
    if ("family" in d or "given" in d) and keys <= _HUMAN_NAME_KEYS:
        return Shape(whole=_member(PhiKind.PERSON_NAME, "fhir.name", d))
    if keys <= _ADDRESS_KEYS and any(k in d for k in _ADDRESS_STRONG):
        return Shape(whole=_member(PhiKind.STREET_ADDRESS, "fhir.address", d))
    if "value" in d:
        system = d.get("system")
        if isinstance(system, str) and system in _CONTACT_SYSTEMS:
            kind, safeguard = _CONTACT_SYSTEMS[system]
            if isinstance(d["value"], str) and d["value"]:
                return Shape(
                    members={"value": _member(kind, "fhir.telecom", d["value"], safeguard)}
                )
            return None
        if "type" in d or "system" in d:
            ident = _identifier(d, in_person=in_person)
            if ident is not None:
                return Shape(members={"value": ident})
    return None


SHAPE_KEYS: Final = frozenset(
    {
        "resourcetype",
        "kty",
        "family",
        "given",
        "line",
        "city",
        "district",
        "postalcode",
        "system",
        "coding",
    }
)
"""Normalized keys whose presence means a dict may have a shape (for fast pre-checks)."""

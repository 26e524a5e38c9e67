"""Sensitive keys: names under which a value is a secret or PHI whatever it looks like.

A key is compared in normal form: lower case, only the part after the last dot (so the
OpenTelemetry attribute ``http.request.header.authorization`` is ``authorization``), and
without ``_`` and ``-`` (so ``access_token``, ``access-token`` and ``accessToken`` are one
key). The same table drives structural matching (a dict key) and text matching
(``password=…``, ``"ssn": "…"`` inside a log message).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

from auditor.patterns.matches import SAFEGUARD_OF_KIND, Kind
from auditor.vocabulary import PhiKind, SafeHarbor, TokenKind


class Scope(Enum):
    """Where a key rule applies."""

    ANY = "any"
    """Under this key in a structure, and as ``key=value`` / ``"key": "value"`` in text."""
    SCALAR = "scalar"
    """As `ANY`, but a container under the key is walked rather than redacted whole."""
    TEXT = "text"
    """Only in text: FHIR member names (``family``, ``given``) that are PHI in JSON text
    but in a structure are recognised by the shape of the object around them."""


class ValueShape(Enum):
    """What a value under a sensitive key must look like to count.

    Keeps placeholders and wrong-typed values out; containers in a structure always count.
    """

    SECRET = "secret"  # noqa: S105 - a shape name: any non-placeholder value
    CREDENTIAL = "credential"  # opaque credential shape (generic key names such as "token")
    HEADER = "header"  # a whole header value: runs to the end of the line in text
    SSN = "ssn"
    PHONE = "phone"
    EMAIL = "email"
    DATE = "date"
    ID = "id"  # an identifier: has a digit, or is an opaque id
    NAME = "name"
    ADDRESS = "address"
    LIST = "list"  # a JSON array in text (FHIR HumanName.given, Address.line)
    CONTAINER = "container"  # a JSON object or array (CDS Hooks prefetch)


@dataclass(frozen=True, slots=True)
class KeyRule:
    """A sensitive key and what finding its value is.

    Attributes:
        name: Canonical snake_case name; the rule id is ``key.<name>``.
        kind: The kind of secret or PHI its value is.
        shape: What the value must look like to count.
        scope: Where the rule applies.
        strong: Whether the bare name is distinctive enough to trigger the text
            prefilter on its own. Generic words (``token``, ``patient``) trigger only
            when followed by ``=``, ``:`` or a quote.
        safeguard: The Safe Harbor category, for PHI.
    """

    name: str
    kind: Kind
    shape: ValueShape = ValueShape.SECRET
    scope: Scope = Scope.ANY
    strong: bool = True
    safeguard: SafeHarbor | None = None

    @property
    def rule(self) -> str:
        """The stable rule id, ``key.<name>``."""
        return f"key.{self.name}"

    @property
    def normal(self) -> str:
        """The key in normal form."""
        return normalize_key(self.name)


def normalize_key(key: str) -> str:
    """Lower case, the part after the last dot, without ``_`` and ``-``."""
    return key.rpartition(".")[2].lower().replace("_", "").replace("-", "")


def _rules(*rules: KeyRule) -> Mapping[str, KeyRule]:
    table: dict[str, KeyRule] = {}
    for rule in rules:
        safeguard = rule.safeguard or SAFEGUARD_OF_KIND.get(rule.kind)
        fixed = KeyRule(rule.name, rule.kind, rule.shape, rule.scope, rule.strong, safeguard)
        table[fixed.normal] = fixed
    return MappingProxyType(table)


_T = TokenKind
_P = PhiKind
_V = ValueShape

DEFAULT_KEY_RULES: Final = _rules(
    # Credentials (CDS Hooks best practices: never log JWTs or fhirAuthorization tokens).
    KeyRule("authorization", _T.BEARER_TOKEN, _V.HEADER),
    KeyRule("proxy_authorization", _T.BEARER_TOKEN, _V.HEADER),
    KeyRule("cookie", _T.BEARER_TOKEN, _V.HEADER),
    KeyRule("set_cookie", _T.BEARER_TOKEN, _V.HEADER),
    KeyRule("access_token", _T.URL_TOKEN),
    KeyRule("id_token", _T.URL_TOKEN),
    KeyRule("refresh_token", _T.URL_TOKEN),
    KeyRule("client_assertion", _T.URL_TOKEN),
    KeyRule("token", _T.BEARER_TOKEN, _V.CREDENTIAL, strong=False),
    KeyRule("auth_token", _T.BEARER_TOKEN, _V.CREDENTIAL),
    KeyRule("bearer_token", _T.BEARER_TOKEN, _V.CREDENTIAL),
    KeyRule("api_key", _T.BEARER_TOKEN),
    KeyRule("x_api_key", _T.BEARER_TOKEN),
    KeyRule("jwt", _T.JWT, _V.CREDENTIAL, strong=False),
    KeyRule("client_secret", _T.CLIENT_SECRET),
    KeyRule("secret", _T.CLIENT_SECRET, strong=False),
    KeyRule("password", _T.CLIENT_SECRET),
    KeyRule("passwd", _T.CLIENT_SECRET),
    KeyRule("pwd", _T.CLIENT_SECRET, strong=False),
    KeyRule("passphrase", _T.CLIENT_SECRET),
    KeyRule("private_key", _T.PRIVATE_KEY),
    # PHI by key (HIPAA Safe Harbor identifiers).
    KeyRule("ssn", _P.SSN, _V.SSN, strong=False),
    KeyRule("social_security_number", _P.SSN, _V.SSN),
    KeyRule("mrn", _P.MRN, _V.ID),
    KeyRule("medical_record_number", _P.MRN, _V.ID),
    KeyRule("dob", _P.DOB, _V.DATE, strong=False),
    KeyRule("date_of_birth", _P.DOB, _V.DATE),
    KeyRule("birth_date", _P.DOB, _V.DATE),
    KeyRule("phone", _P.PHONE, _V.PHONE),
    KeyRule("phone_number", _P.PHONE, _V.PHONE),
    KeyRule("telephone", _P.PHONE, _V.PHONE),
    KeyRule("mobile", _P.PHONE, _V.PHONE, strong=False),
    KeyRule("mobile_phone", _P.PHONE, _V.PHONE),
    KeyRule("home_phone", _P.PHONE, _V.PHONE),
    KeyRule("fax", _P.PHONE, _V.PHONE, strong=False, safeguard=SafeHarbor.FAX),
    KeyRule("email", _P.EMAIL, _V.EMAIL),
    KeyRule("email_address", _P.EMAIL, _V.EMAIL),
    KeyRule("patient_name", _P.PERSON_NAME, _V.NAME),
    KeyRule("first_name", _P.PERSON_NAME, _V.NAME),
    KeyRule("last_name", _P.PERSON_NAME, _V.NAME),
    KeyRule("middle_name", _P.PERSON_NAME, _V.NAME),
    KeyRule("full_name", _P.PERSON_NAME, _V.NAME),
    KeyRule("given_name", _P.PERSON_NAME, _V.NAME),
    KeyRule("family_name", _P.PERSON_NAME, _V.NAME),
    KeyRule("street_address", _P.STREET_ADDRESS, _V.ADDRESS),
    KeyRule("home_address", _P.STREET_ADDRESS, _V.ADDRESS),
    KeyRule("address_line", _P.STREET_ADDRESS, _V.ADDRESS),
    KeyRule("zip_code", _P.STREET_ADDRESS, _V.ID),
    # CDS Hooks: context.patientId, fhirAuthorization.patient, and prefetch (FHIR data).
    KeyRule("patient_id", _P.PATIENT_ID, _V.ID),
    KeyRule("patient", _P.PATIENT_ID, _V.ID, Scope.SCALAR, strong=False),
    KeyRule("prefetch", _P.FHIR_RESOURCE, _V.CONTAINER),
    # FHIR members that are PHI wherever they appear in JSON text.
    KeyRule("family", _P.PERSON_NAME, _V.NAME, Scope.TEXT, strong=False),
    KeyRule("given", _P.PERSON_NAME, _V.LIST, Scope.TEXT, strong=False),
    KeyRule("line", _P.STREET_ADDRESS, _V.LIST, Scope.TEXT, strong=False),
    KeyRule("postal_code", _P.STREET_ADDRESS, _V.ID),
)
"""The default sensitive keys, by normal form."""


def key_rules(
    extra: Iterable[KeyRule] = (), *, base: Mapping[str, KeyRule] = DEFAULT_KEY_RULES
) -> Mapping[str, KeyRule]:
    """A key table: ``base`` (the defaults) plus ``extra`` rules, by normal form."""
    return _rules(*base.values(), *extra)

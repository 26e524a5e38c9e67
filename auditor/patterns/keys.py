"""Sensitive keys: names under which a value is a secret or PHI whatever it looks like.

A key is compared in normal form: lower case, only the part after the last dot (so the
OpenTelemetry attribute ``http.request.header.authorization`` is ``authorization``), and
without ``_`` and ``-`` (so ``access_token``, ``access-token`` and ``accessToken`` are one
key). The same table drives structural matching (a dict key) and text matching
(``password=…``, ``"ssn": "…"`` inside a log message).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
        strong: Whether the trigger words are distinctive enough to trigger the text
            prefilter on their own. Generic words (``token``, ``patient``) trigger only
            when followed by ``=``, ``:``, ``#``, a quote or a backslash.
        safeguard: The Safe Harbor category, for PHI.
        triggers: The words (folded) that make the text prefilter run the keyed rule:
            ``None`` derives them from ``name`` (``access_token``, ``accessToken``,
            ``access-token``); an empty tuple relies on another key's words (``token``
            covers every ``*_token`` key, since the rule reads the whole key).
    """

    name: str
    kind: Kind
    shape: ValueShape = ValueShape.SECRET
    scope: Scope = Scope.ANY
    strong: bool = True
    safeguard: SafeHarbor | None = None
    triggers: tuple[str, ...] | None = None
    rule: str = field(init=False, repr=False, compare=False)
    """The stable rule id, ``key.<name>`` (set once: matches read it per value)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", f"key.{self.name}")

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
        fixed = KeyRule(
            rule.name, rule.kind, rule.shape, rule.scope, rule.strong, safeguard, rule.triggers
        )
        table[fixed.normal] = fixed
    return MappingProxyType(table)


_T = TokenKind
_P = PhiKind
_V = ValueShape

_NONE: tuple[str, ...] = ()

DEFAULT_KEY_RULES: Final = _rules(
    # Credentials (CDS Hooks best practices: never log JWTs or fhirAuthorization tokens).
    KeyRule("authorization", _T.BEARER_TOKEN, _V.HEADER, triggers=("authorization",)),
    KeyRule("proxy_authorization", _T.BEARER_TOKEN, _V.HEADER, triggers=_NONE),
    KeyRule("cookie", _T.BEARER_TOKEN, _V.HEADER, triggers=("cookie",)),
    KeyRule("set_cookie", _T.BEARER_TOKEN, _V.HEADER, triggers=_NONE),
    KeyRule("token", _T.BEARER_TOKEN, _V.CREDENTIAL, strong=False, triggers=("token",)),
    KeyRule("access_token", _T.URL_TOKEN, triggers=_NONE),
    KeyRule("id_token", _T.URL_TOKEN, triggers=_NONE),
    KeyRule("refresh_token", _T.URL_TOKEN, triggers=_NONE),
    KeyRule("auth_token", _T.BEARER_TOKEN, _V.CREDENTIAL, triggers=_NONE),
    KeyRule("bearer_token", _T.BEARER_TOKEN, _V.CREDENTIAL, triggers=_NONE),
    KeyRule("client_assertion", _T.URL_TOKEN, triggers=("assertion",)),
    KeyRule("api_key", _T.BEARER_TOKEN, triggers=("api_key", "apikey", "api-key")),
    KeyRule("x_api_key", _T.BEARER_TOKEN, triggers=_NONE),
    KeyRule("jwt", _T.JWT, _V.CREDENTIAL, strong=False, triggers=("jwt",)),
    KeyRule("client_secret", _T.CLIENT_SECRET, triggers=("client_secret", "clientsecret")),
    # "secret" has no anchor byte: its three commonest forms are tested with `in`.
    KeyRule("secret", _T.CLIENT_SECRET, triggers=("secret=", "secret:", 'secret"')),
    KeyRule("password", _T.CLIENT_SECRET, triggers=("password", "passwd")),
    KeyRule("passwd", _T.CLIENT_SECRET, triggers=_NONE),
    KeyRule("pwd", _T.CLIENT_SECRET, strong=False, triggers=("pwd",)),
    KeyRule("passphrase", _T.CLIENT_SECRET, triggers=_NONE),
    KeyRule("private_key", _T.PRIVATE_KEY, triggers=("private",)),
    # PHI by key (HIPAA Safe Harbor identifiers).
    KeyRule("ssn", _P.SSN, _V.SSN, strong=False, triggers=("ssn",)),
    KeyRule("social_security_number", _P.SSN, _V.SSN, triggers=("security",)),
    KeyRule("mrn", _P.MRN, _V.ID, strong=False, triggers=("mrn",)),
    KeyRule("medical_record_number", _P.MRN, _V.ID, triggers=("medical_record", "medicalrecord")),
    KeyRule("dob", _P.DOB, _V.DATE, strong=False, triggers=("dob",)),
    KeyRule("date_of_birth", _P.DOB, _V.DATE, triggers=("birth",)),
    KeyRule("birth_date", _P.DOB, _V.DATE, triggers=_NONE),
    KeyRule("phone", _P.PHONE, _V.PHONE, triggers=("phone",)),
    KeyRule("phone_number", _P.PHONE, _V.PHONE, triggers=_NONE),
    KeyRule("telephone", _P.PHONE, _V.PHONE, triggers=_NONE),
    KeyRule("mobile", _P.PHONE, _V.PHONE, strong=False, triggers=("mobile",)),
    KeyRule("mobile_phone", _P.PHONE, _V.PHONE, triggers=_NONE),
    KeyRule("home_phone", _P.PHONE, _V.PHONE, triggers=_NONE),
    KeyRule("fax", _P.PHONE, _V.PHONE, strong=False, safeguard=SafeHarbor.FAX, triggers=("fax",)),
    KeyRule("email", _P.EMAIL, _V.EMAIL, triggers=("email",)),
    KeyRule("email_address", _P.EMAIL, _V.EMAIL, triggers=_NONE),
    KeyRule("patient_name", _P.PERSON_NAME, _V.NAME, strong=False, triggers=("name",)),
    KeyRule("first_name", _P.PERSON_NAME, _V.NAME, triggers=_NONE),
    KeyRule("last_name", _P.PERSON_NAME, _V.NAME, triggers=_NONE),
    KeyRule("middle_name", _P.PERSON_NAME, _V.NAME, triggers=_NONE),
    KeyRule("full_name", _P.PERSON_NAME, _V.NAME, triggers=_NONE),
    KeyRule("given_name", _P.PERSON_NAME, _V.NAME, triggers=_NONE),
    KeyRule("family_name", _P.PERSON_NAME, _V.NAME, triggers=_NONE),
    KeyRule("street_address", _P.STREET_ADDRESS, _V.ADDRESS, triggers=("_address",)),
    KeyRule("home_address", _P.STREET_ADDRESS, _V.ADDRESS, triggers=_NONE),
    KeyRule("address_line", _P.STREET_ADDRESS, _V.ADDRESS, triggers=("address_line",)),
    KeyRule("zip_code", _P.STREET_ADDRESS, _V.ID, triggers=("zip_code", "zipcode")),
    # CDS Hooks: context.patientId, fhirAuthorization.patient, and prefetch (FHIR data).
    KeyRule("patient_id", _P.PATIENT_ID, _V.ID, triggers=("patientid", "patient_id")),
    KeyRule("patient", _P.PATIENT_ID, _V.ID, Scope.SCALAR, strong=False, triggers=("patient",)),
    KeyRule("prefetch", _P.FHIR_RESOURCE, _V.CONTAINER),
    # FHIR members that are PHI wherever they appear in JSON text.
    KeyRule("family", _P.PERSON_NAME, _V.NAME, Scope.TEXT, strong=False, triggers=("family",)),
    KeyRule("given", _P.PERSON_NAME, _V.LIST, Scope.TEXT, strong=False, triggers=("given",)),
    KeyRule("line", _P.STREET_ADDRESS, _V.LIST, Scope.TEXT, strong=False, triggers=("line",)),
    KeyRule("postal_code", _P.STREET_ADDRESS, _V.ID, triggers=("postal_code",)),
)
"""The default sensitive keys, by normal form."""


def key_rules(
    extra: Iterable[KeyRule] = (), *, base: Mapping[str, KeyRule] = DEFAULT_KEY_RULES
) -> Mapping[str, KeyRule]:
    """A key table: ``base`` (the defaults) plus ``extra`` rules, by normal form."""
    return _rules(*base.values(), *extra)

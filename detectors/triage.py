"""Offline triage of a leaked credential: how bad is it, judged at the time it was logged.

A JWT is judged from its own header and claims (read without verification by
`auditor.patterns.inspect_jwt`): whether it was still live when the record was written
(``exp`` against the record's event time, never the wall clock), whether its algorithm is
``none``, symmetric or asymmetric (CDS Hooks forbids the first two), and whether its
``jku`` points outside the configured allowlist. Other credentials carry no expiry; they
count as live until rotated.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from auditor.patterns import CLAIM_FACTS, Fact
from auditor.vocabulary import PhiKind, Severity, TokenKind

_SYMMETRIC_JWE: Final = frozenset({"dir", "A128KW", "A192KW", "A256KW", "A128GCMKW"})
_SYMMETRIC_JWE_PREFIXES: Final = ("A192GCMKW", "A256GCMKW", "PBES2")
_ASYMMETRIC_PREFIXES: Final = ("RS", "PS", "ES", "EdDSA", "Ed25519", "Ed448", "RSA", "ECDH")

ALG_NONE: Final = "none"
ALG_SYMMETRIC: Final = "symmetric"
ALG_ASYMMETRIC: Final = "asymmetric"
ALG_UNKNOWN: Final = "unknown"


DOCUMENTATION_JWTS: Final = (
    {"alg": "HS256", "iat": 1516239022},  # the token jwt.io shows (sub 1234567890)
    {"iss": "joe", "exp": 1300819380},  # RFC 7519 section 3.1
)
"""Claims of JWTs printed in specifications and tutorials: examples, not leaks."""


def is_documentation_jwt(facts: Mapping[str, Fact]) -> bool:
    """Whether a JWT's facts are those of a well-known documentation example."""
    return any(all(facts.get(k) == v for k, v in doc.items()) for doc in DOCUMENTATION_JWTS)


def alg_class(alg: str) -> str:
    """``none``, ``symmetric`` (HMAC, AES key wrap, ``dir``, PBES2), ``asymmetric``, ``unknown``."""
    if alg.lower() == ALG_NONE:
        return ALG_NONE
    if alg in _SYMMETRIC_JWE or alg.startswith(("HS", *_SYMMETRIC_JWE_PREFIXES)):
        return ALG_SYMMETRIC
    if alg.startswith(_ASYMMETRIC_PREFIXES):
        return ALG_ASYMMETRIC
    return ALG_UNKNOWN


@dataclass(frozen=True, slots=True)
class JkuAllowlist:
    """Where a JWT's ``jku`` may point: exact URLs, or prefixes ending in ``/``.

    Args:
        entries: URLs (``https://ehr.example.org/.well-known/jwks.json``) or prefixes
            (``https://ehr.example.org/``). Compared case-sensitively, as URLs are.
    """

    entries: frozenset[str] = frozenset()

    @classmethod
    def of(cls, entries: Collection[str]) -> JkuAllowlist:
        """An allowlist of ``entries``."""
        return cls(frozenset(entries))

    def allows(self, jku: str) -> bool:
        """Whether ``jku`` is listed, or starts with a listed prefix."""
        if jku in self.entries:
            return True
        return any(e.endswith("/") and jku.startswith(e) for e in self.entries)


def jwt_facts(
    facts: Mapping[str, Fact], *, form: str, observed_at: datetime, jku_allowlist: JkuAllowlist
) -> dict[str, Fact]:
    """The facts a JWT finding records: the token's safe claims plus the triage.

    Adds ``form`` (``jws``/``jwe``), ``alg_class``, ``live`` (when it can be told: from
    ``exp``; a JWS with readable claims but no ``exp`` never expires, so it is live; a
    JWE's claims are encrypted, so it has no ``live``),
    ``expired_for_s`` or ``expires_in_s`` relative to ``observed_at``, and ``jku_allowed``
    when the header names a ``jku``.
    """
    out: dict[str, Fact] = dict(facts)
    out["form"] = form
    alg = facts.get("alg")
    out["alg_class"] = alg_class(alg) if isinstance(alg, str) else ALG_UNKNOWN
    exp = facts.get("exp")
    at = observed_at.timestamp()
    if isinstance(exp, int | float):
        out["live"] = exp > at
        delta = int(exp - at)
        if delta > 0:
            out["expires_in_s"] = delta
        else:
            out["expired_for_s"] = -delta
    elif form == "jws" and any(name in facts for name in CLAIM_FACTS):
        out["live"] = True
    jku = facts.get("jku")
    if isinstance(jku, str):
        out["jku_allowed"] = jku_allowlist.allows(jku)
    return out


_TOKEN_SEVERITY: Final[Mapping[str, Severity]] = {
    TokenKind.JWT: Severity.HIGH,  # raised to critical when live, see token_severity
    TokenKind.BEARER_TOKEN: Severity.HIGH,
    TokenKind.BASIC_AUTH: Severity.HIGH,
    TokenKind.URL_TOKEN: Severity.HIGH,
    TokenKind.CLIENT_SECRET: Severity.HIGH,
    TokenKind.PRIVATE_KEY: Severity.CRITICAL,
    TokenKind.PRIVATE_JWK: Severity.CRITICAL,
}

_PHI_SEVERITY: Final[Mapping[str, Severity]] = {
    PhiKind.SSN: Severity.HIGH,
    PhiKind.FHIR_RESOURCE: Severity.HIGH,
    PhiKind.MRN: Severity.MEDIUM,
    PhiKind.DOB: Severity.MEDIUM,
    PhiKind.PHONE: Severity.MEDIUM,
    PhiKind.EMAIL: Severity.MEDIUM,
    PhiKind.PERSON_NAME: Severity.MEDIUM,
    PhiKind.STREET_ADDRESS: Severity.MEDIUM,
    PhiKind.PATIENT_ID: Severity.LOW,
}

SHORT_LIVED_RULES: Final = frozenset({"param.code", "key.code"})
"""OAuth authorization codes: single use and valid for minutes, so one step lower."""


def token_severity(kind: str, rule: str, facts: Mapping[str, Fact]) -> Severity:
    """How urgent a leaked credential is.

    - ``critical``: a JWT live when logged (it must be revoked, or waited out), and
      private keys and private JWKs (anyone holding them can mint tokens until rotated);
    - ``high``: opaque bearer and URL tokens, Basic credentials, client secrets (no
      expiry to read, so treat as live until rotated), a JWE (its expiry is encrypted),
      and an expired JWT signed with ``none``, a symmetric key or a ``jku`` outside the
      allowlist (a forged or misconfigured client);
    - ``medium``: an expired JWT, and an OAuth authorization code.
    """
    if kind == TokenKind.JWT:
        live = facts.get("live")
        if live is True:
            return Severity.CRITICAL
        if live is None:
            return Severity.HIGH
        suspicious = facts.get("alg_class") in {ALG_NONE, ALG_SYMMETRIC} or (
            facts.get("jku_allowed") is False
        )
        return Severity.HIGH if suspicious else Severity.MEDIUM
    if rule in SHORT_LIVED_RULES:
        return Severity.MEDIUM
    return _TOKEN_SEVERITY.get(kind, Severity.HIGH)


def phi_severity(kind: str) -> Severity:
    """How urgent exposed PHI is.

    ``high`` for SSNs and whole FHIR resources about a person (many identifiers at once,
    and prefetch data); ``medium`` for one direct identifier (MRN, birth date, phone,
    e-mail, name, street address); ``low`` for a patient's resource id, which identifies
    a person only together with access to the FHIR server.
    """
    return _PHI_SEVERITY.get(kind, Severity.MEDIUM)


def lowered(severity: Severity) -> Severity:
    """One step less urgent (``info`` stays ``info``): for weaker evidence."""
    order = list(Severity)
    return order[max(0, order.index(severity) - 1)]

"""What the pattern library reports: a match in a text, or a match at a path in a structure.

A match carries the secret itself in ``value`` so the caller can fingerprint it; that field
is left out of ``repr`` and comparisons, and callers must never log, store or print it.
Everything else (kind, rule, span, facts, safeguard) is safe to record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from auditor.vocabulary import PhiKind, SafeHarbor, TokenKind

Fact = str | int | float | bool | None | tuple[str, ...]
"""A safe fact about a match, such as a JWT's ``alg`` or ``iss``. Never the secret."""

Kind = TokenKind | PhiKind
PathPart = str | int
JsonPath = tuple[PathPart, ...]

NO_FACTS: Final[Mapping[str, Fact]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Match:
    """A sensitive value found in a text, at ``text[start:end]``.

    Attributes:
        kind: The kind of secret or PHI (a stable contract, see ``auditor.vocabulary``).
        rule: The stable id of the rule that matched, e.g. ``jwt.jws`` or ``ssn.dashed``.
        start: Offset of the first character to redact.
        end: Offset after the last character to redact.
        value: The normalized secret, for keyed fingerprinting only. Never log it.
        facts: Safe facts (for a JWT: header and claim values that are safe to record).
        safeguard: The HIPAA Safe Harbor category of a PHI match.
        confidence: 1.0 when the match is validated beyond its shape; lower for weaker
            evidence such as well-known example values.
        priority: Lower wins when matches overlap (tokens before PHI, specific before
            generic).
    """

    kind: Kind
    rule: str
    start: int
    end: int
    value: str = field(repr=False, compare=False)
    facts: Mapping[str, Fact] = field(default_factory=lambda: NO_FACTS, compare=False)
    safeguard: SafeHarbor | None = None
    confidence: float = 1.0
    priority: int = field(default=5, repr=False)

    @property
    def span(self) -> tuple[int, int]:
        """``(start, end)``."""
        return (self.start, self.end)


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """A sensitive value found while walking a structure (parsed JSON, an event dict).

    Attributes:
        path: Keys and indexes from the root to the value.
        kind: As in `Match`.
        rule: As in `Match`; key rules are ``key.<name>``, FHIR rules ``fhir.<member>``.
        value: The normalized secret, for keyed fingerprinting only. Never log it.
        span: Where in the string at ``path`` the match lies; ``None`` when the whole
            value at ``path`` is sensitive (by its key or its place in a FHIR resource).
        facts: As in `Match`.
        safeguard: As in `Match`.
        confidence: As in `Match`.
        redact: ``False`` for a report-only match that describes a container (a FHIR
            Patient resource) whose sensitive members are reported separately.
    """

    path: JsonPath
    kind: Kind
    rule: str
    value: str = field(repr=False, compare=False)
    span: tuple[int, int] | None = None
    facts: Mapping[str, Fact] = field(default_factory=lambda: NO_FACTS, compare=False)
    safeguard: SafeHarbor | None = None
    confidence: float = 1.0
    redact: bool = True

    @property
    def location(self) -> str:
        """The JSON path, plus the character span when the match is inside a string."""
        where = json_path(self.path)
        if self.span is None:
            return where
        return f"{where} chars {self.span[0]}-{self.span[1]}"


def json_path(path: JsonPath) -> str:
    """Render a path as JSONPath: ``$.headers.authorization``, ``$.entry[0]['x-y']``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.isidentifier():
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


SAFEGUARD_OF_KIND: Final[Mapping[Kind, SafeHarbor]] = MappingProxyType(
    {
        PhiKind.SSN: SafeHarbor.SSN,
        PhiKind.MRN: SafeHarbor.MRN,
        PhiKind.DOB: SafeHarbor.DATES,
        PhiKind.PHONE: SafeHarbor.PHONE,
        PhiKind.EMAIL: SafeHarbor.EMAIL,
        PhiKind.PERSON_NAME: SafeHarbor.NAMES,
        PhiKind.STREET_ADDRESS: SafeHarbor.GEOGRAPHIC,
        PhiKind.FHIR_RESOURCE: SafeHarbor.OTHER_ID,
        PhiKind.PATIENT_ID: SafeHarbor.OTHER_ID,
    }
)
"""The Safe Harbor category a PHI kind falls under unless a rule says more precisely."""

TOKEN_KINDS: Final = frozenset(TokenKind)
PHI_KINDS: Final = frozenset(PhiKind)

"""``Finding``: what a detector reports. It never holds a raw secret or PHI value.

A finding carries a keyed fingerprint, a location and a rule name instead of the value
(STYLE.md, rule 2). Its id is deterministic — derived from the detector, the rule and an
anchor (source position, or incident key and window) — so reprocessing the same input
yields the same id and the store inserts nothing new.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from auditor.models.base import Contract, UtcDatetime
from auditor.models.events import Fingerprint
from auditor.patterns.library import default_library
from auditor.patterns.matches import TOKEN_KINDS
from auditor.vocabulary import DetectorName, SafeHarbor, Severity

FactValue = str | int | float | bool | None | tuple[str, ...]
"""A fact about a finding: a claim such as ``alg``, a count, a score. Never a secret."""

MAX_FACTS = 64
MAX_FACT_NAME = 64
MAX_FACT_TEXT = 512

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,127}$")]
KindName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


def refuse_credentials(field: str, text: str) -> str:
    """Return ``text``, or raise if the pattern library sees a credential in it.

    Defense in depth (a secret never travels): a detector that put a token, a PEM key or
    a private JWK into a finding's text by mistake is stopped here. Redaction markers
    (``[REDACTED:jwt fp=… iss=… jti=…]``) and safe facts (an ``iss`` URL, a ``jti``, a
    ``kid``) pass. The message names the field and the rule, never the text.

    Raises:
        ValueError: ``text`` holds a credential.
    """
    if text:
        found = [m for m in default_library().find_in_text(text) if m.kind in TOKEN_KINDS]
        if found:
            raise ValueError(
                f"{field} holds a credential ({found[0].rule}); record a fingerprint instead"
            )
    return text


def finding_id(detector: str, rule: str, *anchor: object) -> str:
    """Derive the deterministic id of a finding.

    Args:
        detector: The detector's stable name.
        rule: The rule id within the detector.
        *anchor: What makes this finding unique and stable across reprocessing, e.g. the
            source position and span, or the incident key and the start of its window.
            Fingerprints, never raw values.

    Returns:
        32 hex digits.
    """
    # Each part's UTF-8 followed by a 0x1F byte: UTF-8 of the joined text is the same
    # bytes, encoded and hashed in one call.
    text = "\x1f".join(map(str, (detector, rule, *anchor))) + "\x1f"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Finding(Contract):
    """One thing a detector found: a leaked credential, exposed PHI, an incident, a violation.

    Incidents that continue (a replay burst that grows, an anomaly that persists) keep
    their ``finding_id`` and raise ``revision``; the store keeps the highest revision.
    """

    finding_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    detector: DetectorName
    rule: RuleId
    kind: KindName
    severity: Severity
    observed_at: UtcDatetime = Field(description="Event time of the evidence (not wall time).")
    title: Annotated[str, StringConstraints(max_length=300)] = Field(
        description="One line a person reads. Names the rule and the facts, never the value."
    )
    client_iss: Annotated[str, StringConstraints(max_length=512)] | None = None
    service_id: Annotated[str, StringConstraints(max_length=512)] | None = None
    fingerprint: Fingerprint | None = None
    location: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="JSON path ($.headers.authorization) or span (chars 10-52)."
    )
    origin: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Where the input came from: file:line or topic/partition@offset."
    )
    event_ids: tuple[str, ...] = ()
    evidence: Annotated[str, StringConstraints(max_length=1024)] = Field(
        default="", description="A redacted excerpt around the match."
    )
    safeguard: SafeHarbor | str | None = Field(
        default=None,
        description="The HIPAA Safe Harbor category, or the spec/policy rule it maps to.",
    )
    reference: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="Spec section or guide practice behind a policy rule."
    )
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    count: Annotated[int, Field(ge=1)] = 1
    revision: Annotated[int, Field(ge=0)] = 0
    facts: dict[str, FactValue] = Field(default_factory=dict)

    @field_validator("facts")
    @classmethod
    def _facts_are_small(cls, value: dict[str, FactValue]) -> dict[str, FactValue]:
        if len(value) > MAX_FACTS:
            raise ValueError(f"a finding carries at most {MAX_FACTS} facts")
        for key, fact in value.items():
            if len(key) > MAX_FACT_NAME:
                raise ValueError(f"fact names are at most {MAX_FACT_NAME} characters")
            if isinstance(fact, str) and len(fact) > MAX_FACT_TEXT:
                raise ValueError(f"fact {key!r} is longer than {MAX_FACT_TEXT} characters")
            texts = fact if isinstance(fact, tuple) else (fact,) if isinstance(fact, str) else ()
            for text in texts:
                refuse_credentials(f"fact {key!r}", text)
        return value

    @field_validator("title", "evidence", "location", "origin")
    @classmethod
    def _no_credentials(cls, value: str | None, info: ValidationInfo) -> str | None:
        return refuse_credentials(str(info.field_name), value) if value else value

    def is_at_least(self, severity: Severity) -> bool:
        """Whether this finding is as urgent as ``severity`` or more."""
        return self.severity >= severity

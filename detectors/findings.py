"""From matches to `auditor.models.Finding`s: severity, fingerprint, facts, title, id.

Findings are checked once per record for credentials (every text field and fact of every
finding of the record, through the token rules of the pattern library — the check
`auditor.models.Finding` runs field by field, done in one trigger search over the
record's distinct texts) and then built without re-validation: their fields are of the
contract's types by construction, and a contract test validates what the detectors
produce. A field that fails the check is replaced (the evidence by its marker, a fact
dropped), never passed on.

Texts found clean are remembered (bounded), as the scanner remembers clean strings:
titles, JSON paths, field evidence (``authorization: [REDACTED:jwt]``) and JWT claims
repeat from record to record, and those built from our own parts (a title names a kind,
a marker names a kind) trip the token rules' triggers (``Bearer token leaked``,
``[REDACTED:basic_auth]``) every time. Each text is judged alone, exactly as
`auditor.models.Finding` judges a field, so a remembered text is one that would pass
there. An origin (``file:line``) is new on every line and is checked, not remembered.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from typing import Final, NamedTuple

from auditor.fingerprints import Fingerprinter
from auditor.models import Finding, finding_id
from auditor.patterns import Fact, FieldMatch, PatternLibrary
from auditor.protocols import ScanContext
from auditor.vocabulary import DetectorName, PhiKind, SafeHarbor, Severity, TokenKind
from detectors.baseline import Baseline
from detectors.building import construct_finding
from detectors.evidence import marker
from detectors.gathering import Hit
from detectors.triage import (
    JkuAllowlist,
    is_documentation_jwt,
    jwt_facts,
    lowered,
    phi_severity,
    token_severity,
)
from detectors.triggers import TriggerSearch

_TOKEN_KINDS: Final = frozenset(TokenKind)
_JWT: Final = str(TokenKind.JWT)
MAX_TITLE: Final = 300
MAX_LOCATION: Final = 512
MAX_ORIGIN: Final = 1024
MAX_FACT_TEXT: Final = 256
_WITHHELD: Final = "(withheld: it holds a credential)"
_CLEAN_TEXTS_LIMIT: Final = 4096
_MAX_REMEMBERED_CHARS: Final = 512

NAMES: Final[Mapping[str, str]] = {
    TokenKind.JWT: "JWT",
    TokenKind.BEARER_TOKEN: "Bearer token",
    TokenKind.BASIC_AUTH: "Basic credentials",
    TokenKind.URL_TOKEN: "OAuth token",
    TokenKind.PRIVATE_KEY: "Private key (PEM)",
    TokenKind.PRIVATE_JWK: "Private JWK",
    TokenKind.CLIENT_SECRET: "Client secret",
    PhiKind.SSN: "Social Security number",
    PhiKind.MRN: "Medical record number",
    PhiKind.DOB: "Date of birth",
    PhiKind.PHONE: "Phone number",
    PhiKind.EMAIL: "E-mail address",
    PhiKind.PERSON_NAME: "Person's name",
    PhiKind.STREET_ADDRESS: "Street address",
    PhiKind.FHIR_RESOURCE: "FHIR data about a person",
    PhiKind.PATIENT_ID: "Patient id",
}
"""What a title calls each kind."""

TOKEN_REFERENCE: Final = "CDS Hooks best practices: never log JWTs or tokens"  # noqa: S105 - prose

_CDS_PARENTS: Final = ("fhirAuthorization", "prefetch", "context")


def cds_hooks_member(path: tuple[str | int, ...]) -> str | None:
    """Where in a CDS Hooks request a value sat, if it did.

    ``fhirAuthorization.access_token``, ``context.patientId``, ``prefetch.patient``;
    ``None`` elsewhere.
    """
    for index, part in enumerate(path):
        if part in _CDS_PARENTS:
            rest = path[index + 1 : index + 2]
            if rest and isinstance(rest[0], str) and len(rest[0]) <= 64:  # noqa: PLR2004
                return f"{part}.{rest[0]}"
            return str(part)
    return None


def _title(kind: str, facts: Mapping[str, Fact], safeguard: object, where: str | None) -> str:
    name = NAMES.get(kind, kind)
    if kind == TokenKind.JWT:
        live = facts.get("live")
        state = "Live " if live is True else "Expired " if live is False else ""
        alg = facts.get("alg")
        iss = facts.get("iss")
        title = f"{state}{name}" + (f" ({alg})" if isinstance(alg, str) else "")
        title += f" of {iss}" if isinstance(iss, str) else ""
        title += " leaked in a log"
    elif kind in _TOKEN_KINDS:
        title = f"{name} leaked in a log"
    else:
        category = (
            f" (Safe Harbor {str(safeguard)[:1]})" if isinstance(safeguard, SafeHarbor) else ""
        )
        title = f"{name} exposed in a log{category}"
    if where is not None:
        title += f" at CDS Hooks {where}"
    return title[:MAX_TITLE]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Record:
    """What every finding of one record shares, worked out once per record."""

    __slots__ = ("client_iss", "event_ids", "event_tail", "observed_at", "origin", "service_id")

    def __init__(self, context: ScanContext, observed_at: datetime) -> None:
        self.observed_at = observed_at
        self.origin = _clip(context.origin, MAX_ORIGIN) if context.origin is not None else None
        self.event_tail = context.event_id or ""
        self.event_ids: tuple[str, ...] = (context.event_id,) if context.event_id else ()
        self.client_iss = context.client_iss
        self.service_id = context.service_id


class _Part(NamedTuple):
    """What a finding's kind, rule, category, place and confidence decide (not a JWT's)."""

    detector: DetectorName
    severity: Severity
    title: str
    reference: str | None


_PARTS_LIMIT: Final = 1024
_PLACES_LIMIT: Final = 4096


class FindingFactory:
    """Builds findings from a record's hits: immutable configuration, no I/O.

    Args:
        fingerprinter: Keys the fingerprints.
        jku_allowlist: Where a JWT's ``jku`` may point.
        allow_fingerprints: Fingerprints never reported.
        baseline: Known findings, never reported again.
        min_confidence: Weaker matches are not reported.
    """

    __slots__ = (
        "_allow",
        "_baseline",
        "_checker",
        "_checker_triggers",
        "_clean_texts",
        "_jku",
        "_min_confidence",
        "_parts",
        "_places",
        "fingerprinter",
    )

    def __init__(
        self,
        *,
        fingerprinter: Fingerprinter,
        jku_allowlist: JkuAllowlist,
        allow_fingerprints: Collection[str],
        baseline: Baseline | None,
        min_confidence: float,
    ) -> None:
        self.fingerprinter = fingerprinter
        self._jku = jku_allowlist
        self._allow = frozenset(allow_fingerprints)
        self._baseline = baseline
        self._min_confidence = min_confidence
        self._checker = PatternLibrary(kinds=_TOKEN_KINDS)
        self._checker_triggers = TriggerSearch(self._checker)
        # A memo, like re's cache: texts the token rules found nothing in (bounded).
        self._clean_texts: set[str] = set()
        self._parts: dict[tuple[object, ...], _Part] = {}
        self._places: dict[tuple[object, ...], tuple[str | None, str]] = {}

    def findings(
        self, hits: list[Hit], context: ScanContext, observed_at: datetime
    ) -> tuple[list[Finding], int]:
        """The findings for a record's hits, and how many were suppressed."""
        fields: list[dict[str, object]] = []
        seen: set[str] = set()
        suppressed = 0
        record = _Record(context, observed_at)
        for hit in hits:
            built = self._fields(hit, record)
            if built is None:
                continue
            if built is _SUPPRESSED:
                suppressed += 1
                continue
            fid = str(built["finding_id"])
            if fid in seen:
                continue
            seen.add(fid)
            fields.append(built)
        if fields and self._any_credential(fields):
            for f in fields:
                self._scrub(f)
        return [construct_finding(f) for f in fields], suppressed

    def _any_credential(self, fields: list[dict[str, object]]) -> bool:
        """Whether any text of any of ``fields`` holds a credential, each text judged alone.

        Each distinct text once (findings of a record share their origin, often titles),
        and none found clean before; one trigger search over them all, the rules only on
        the texts it points at. Texts found clean are remembered, origins excepted.
        """
        known = self._clean_texts
        texts = list(dict.fromkeys(_unknown_texts(fields, known)))
        if not texts:
            return False
        checker = self._checker
        for index, names in self._checker_triggers.segments(texts).items():
            if checker.groups_for(texts[index], names):
                return True
        origins = {f["origin"] for f in fields}
        if len(known) + len(texts) > _CLEAN_TEXTS_LIMIT:
            known.clear()
        known.update(t for t in texts if len(t) <= _MAX_REMEMBERED_CHARS and t not in origins)
        return False

    def _fields(self, hit: Hit, record: _Record) -> dict[str, object] | None:  # noqa: C901, PLR0912 - one decision after the other
        """A finding's fields, in the contract's order, or None or `_SUPPRESSED`."""
        m: FieldMatch = hit.match
        confidence = m.confidence
        if confidence < self._min_confidence:
            return None
        kind = str(m.kind)
        facts: dict[str, Fact] = dict(m.facts)
        if kind == _JWT:
            if is_documentation_jwt(facts):
                return None
            form = "jwe" if m.rule == "jwt.jwe" or "enc" in facts else "jws"
            facts = jwt_facts(
                facts, form=form, observed_at=record.observed_at, jku_allowlist=self._jku
            )
        fingerprint = self.fingerprinter(m.value)
        if hit.text_record:
            assert m.span is not None
            where, location = None, f"chars {m.span[0]}-{m.span[1]}"
        else:
            where, location = self._place(m)
        part = self._part(kind, m.rule, m.safeguard, where, confidence)
        if fingerprint in self._allow or (
            self._baseline is not None and self._baseline.suppresses(part.detector, fingerprint)
        ):
            return _SUPPRESSED
        if confidence < 1.0:
            facts["confidence"] = round(confidence, 2)
        if where is not None:
            facts["cds_hooks"] = where
        if kind == _JWT:
            severity = token_severity(kind, m.rule, facts)
            if confidence < 1.0:
                severity = lowered(severity)
            title = _title(kind, facts, m.safeguard, where)
        else:
            severity, title = part.severity, part.title
        origin = record.origin
        if origin is None:
            fid = finding_id(part.detector, m.rule, "", location, record.event_tail, fingerprint)
        else:
            fid = finding_id(part.detector, m.rule, origin, location)
        client_iss = record.client_iss
        if client_iss is None and kind == _JWT and isinstance(facts.get("iss"), str):
            client_iss = str(facts["iss"])[:512]
        # Every field, in the contract's order: `construct_finding` takes this dict as is.
        return {
            "finding_id": fid,
            "detector": part.detector,
            "rule": m.rule,
            "kind": kind,
            "severity": severity,
            "observed_at": record.observed_at,
            "title": title,
            "client_iss": client_iss,
            "service_id": record.service_id,
            "fingerprint": fingerprint,
            "location": location,
            "origin": origin,
            "event_ids": record.event_ids,
            "evidence": hit.evidence,
            "safeguard": m.safeguard,
            "reference": part.reference,
            "window_start": None,
            "window_end": None,
            "count": 1,
            "revision": 0,
            "facts": {k: v for k, v in facts.items() if _fact_ok(v)},
        }

    def _place(self, m: FieldMatch) -> tuple[str | None, str]:
        """Where in a CDS Hooks request, and the location, of a match in a structure.

        Both follow from the path and span, and paths repeat from record to record
        (``$.headers.authorization``): remembered, bounded.
        """
        key = (m.path, m.span)
        place = self._places.get(key)
        if place is None:
            place = (cds_hooks_member(m.path), _clip(m.location, MAX_LOCATION))
            if len(place[1]) < MAX_LOCATION:  # a clipped location's path may be huge
                if len(self._places) >= _PLACES_LIMIT:
                    self._places.clear()
                self._places[key] = place
        return place

    def _part(
        self, kind: str, rule: str, safeguard: object, where: str | None, confidence: float
    ) -> _Part:
        """The parts these inputs decide, remembered (few combinations occur; bounded)."""
        key = (kind, rule, safeguard, where, confidence < 1.0)
        part = self._parts.get(key)
        if part is None:
            is_token = kind in _TOKEN_KINDS
            severity = (
                Severity.HIGH
                if kind == _JWT
                else (token_severity(kind, rule, {}) if is_token else phi_severity(kind))
            )
            if confidence < 1.0:
                severity = lowered(severity)
            part = _Part(
                DetectorName.LEAKED_TOKEN if is_token else DetectorName.PHI_IN_LOGS,
                severity,
                _title(kind, {}, safeguard, where),
                TOKEN_REFERENCE if is_token else None,
            )
            if len(self._parts) >= _PARTS_LIMIT:
                self._parts.clear()
            self._parts[key] = part
        return part

    def _holds_credential(self, text: str) -> bool:
        """What `auditor.models.findings.refuse_credentials` checks, by the same rules."""
        names = self._checker_triggers.rules(text)
        return bool(names) and bool(self._checker.groups_for(text, names))

    def _scrub(self, f: dict[str, object]) -> None:
        """Replace each field that holds a credential (rare: a key that is a token, say)."""
        kind = str(f["kind"])
        if self._holds_credential(str(f["evidence"])):
            f["evidence"] = marker(kind)
        if self._holds_credential(str(f["location"])):
            f["location"] = _WITHHELD
        if f["origin"] is not None and self._holds_credential(str(f["origin"])):
            f["origin"] = _WITHHELD
        if self._holds_credential(str(f["title"])):
            f["title"] = f"{NAMES.get(kind, kind)} in a log"
        facts: dict[str, Fact] = f["facts"]  # type: ignore[assignment]
        for name in [n for n, v in facts.items() if any(map(self._holds_credential, _strings(v)))]:
            del facts[name]
        if f["client_iss"] is not None and self._holds_credential(str(f["client_iss"])):
            f["client_iss"] = None


_SUPPRESSED: Final[dict[str, object]] = {}
"""What `FindingFactory._fields` returns for a suppressed finding (compared by identity)."""


def _fact_ok(value: Fact) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_FACT_TEXT
    if isinstance(value, tuple):
        return all(len(v) <= MAX_FACT_TEXT for v in value)
    return True


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, tuple):
        yield from (v for v in value if isinstance(v, str))


def _unknown_texts(fields: list[dict[str, object]], known: set[str]) -> list[str]:
    """The text fields and fact strings of ``fields`` that are not in ``known``.

    ``isinstance``, not ``type() is``: a ``str`` subclass is text all the same and must
    be judged (the same test as ``_strings`` and the scrubbing that follows).
    """
    out: list[str] = []
    for f in fields:
        for name in _TEXT_FIELDS:
            value = f[name]
            if isinstance(value, str) and value not in known:
                out.append(value)
        facts: dict[str, Fact] = f["facts"]  # type: ignore[assignment]
        for value in facts.values():
            out.extend(v for v in _strings(value) if v not in known)
    return out


_TEXT_FIELDS: Final = ("title", "evidence", "location", "origin", "client_iss")

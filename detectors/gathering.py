"""What the content detectors gather from one record before it becomes findings.

The pattern library's walk reports matches (`auditor.patterns.FieldMatch`) to a visitor;
`Gatherer` is the detectors' visitor. It keeps each match with its redacted evidence (cut
from the string while the string is at hand), notes values the walk could not examine,
and looks inside a logged CDS Hooks ``prefetch``: the walk treats ``prefetch`` as one
sensitive container (the Redactor replaces it whole), and the detectors report the
container and, separately, the identifiers in the FHIR resources it carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from auditor.patterns import Fact, FieldMatch, JsonPath, LimitReason, Match, Walker
from auditor.vocabulary import TokenKind
from detectors.evidence import excerpt, field_evidence, mask
from detectors.triage import is_documentation_jwt

if TYPE_CHECKING:
    from auditor.patterns.library import Group, PatternLibrary
    from auditor.patterns.memory import CleanMemory

PREFETCH_RULE: Final = "key.prefetch"
MAX_HITS: Final = 256
"""At most this many matches are reported from one record; a record with more (thousands
of tokens in one line is an attack or a dump, not a log line) is only partly examined."""
_MAX_LISTED: Final = 8
_MAX_NAME_CHARS: Final = 64


class Hit(NamedTuple):
    """A match and its redacted evidence; ``text_record`` for a plain text record."""

    match: FieldMatch
    evidence: str
    text_record: bool = False


@dataclass(frozen=True, slots=True)
class WalkSettings:
    """The limits and allowlisted keys of every walk over a record."""

    allow: frozenset[str]
    max_depth: int
    max_string: int
    max_items: int
    context_chars: int
    min_confidence: float


def _listed(names: object) -> tuple[str, ...]:
    out = [n for n in names if isinstance(n, str) and len(n) <= _MAX_NAME_CHARS]  # type: ignore[attr-defined]
    return tuple(sorted(set(out))[:_MAX_LISTED])


def worth_reporting(match: Match | FieldMatch, min_confidence: float) -> bool:
    """Whether a match can become a finding: not a documentation value.

    Well-known examples (SSN 078-05-1120, 555-01xx numbers, the jwt.io token) are matched
    with low confidence or recognised by their claims; they are redacted, not reported.
    """
    if match.confidence < min_confidence:
        return False
    return not (match.kind == TokenKind.JWT and is_documentation_jwt(match.facts))


def prefetch_facts(prefetch: object) -> dict[str, Fact]:
    """Which prefetch templates were logged and which FHIR resource types they held."""
    if not isinstance(prefetch, Mapping):
        return {}
    types: list[str] = []
    for entry in prefetch.values():
        if isinstance(entry, Mapping):
            rt = entry.get("resourceType")
            if isinstance(rt, str):
                types.append(rt)
    facts: dict[str, Fact] = {"prefetch_keys": _listed(prefetch.keys())}
    if types:
        facts["resource_types"] = _listed(types)
    return facts


class Gatherer:
    """The walk visitor of the content detectors: records, never replaces.

    Args:
        library: The compiled rules (for walking inside ``prefetch``).
        settings: Limits of the walk.
        key_cache: Key classifications shared across records (see `Walker`).
        memory: Strings ``library`` found clean, shared across records (see `Walker`).
    """

    __slots__ = ("_key_cache", "_library", "_memory", "_settings", "hits", "limits")

    def __init__(
        self,
        library: PatternLibrary,
        settings: WalkSettings,
        key_cache: dict[str, object],
        memory: CleanMemory | None = None,
    ) -> None:
        self._library = library
        self._settings = settings
        self._key_cache = key_cache
        self._memory = memory
        self.hits: list[Hit] = []
        self.limits: list[str] = []

    def walker(self) -> Walker:
        """A walker that reports to this gatherer."""
        s = self._settings
        return Walker(
            self._library,
            self,
            allow=s.allow,
            max_depth=s.max_depth,
            max_string=s.max_string,
            max_items=s.max_items,
            key_cache=self._key_cache,
            # One pass: a walked record is one log line (a FHIR resource, a JWK), for
            # which two passes around one batched trigger search cost more than they save.
            batch=False,
            memory=self._memory,
        )

    def field(self, match: FieldMatch, original: object) -> object:
        """A whole value is sensitive: keep it, with a marker as evidence."""
        key = match.path[-1] if match.path else None
        if not worth_reporting(match, self._settings.min_confidence) or self._full():
            return original
        if match.rule == PREFETCH_RULE:
            match = match._replace(facts=prefetch_facts(original))
            self.hits.append(Hit(match, field_evidence(key, match.kind)))
            # Report what the prefetch holds too: a walk of its own, placed under it.
            self.walker().walk(original, match.path)
            return original
        self.hits.append(Hit(match, field_evidence(key, match.kind)))
        return original

    def report(self, match: FieldMatch) -> None:
        """A FHIR resource about a person."""
        if self._full():
            return
        key = match.path[-1] if match.path else None
        note = match.facts.get("resource_type")
        self.hits.append(
            Hit(match, field_evidence(key, match.kind, note if isinstance(note, str) else ""))
        )

    def text(self, path: JsonPath, text: str, groups: list[Group]) -> object:
        """Matches inside a string: each with an excerpt of that string."""
        self.add_text(text, groups, path)
        return text

    def add_text(self, text: str, groups: list[Group], path: JsonPath | None) -> None:
        """Record the matches of ``groups`` in ``text`` (``path`` None: a text record)."""
        masked = mask(text, [(g.start, g.end, str(g.best.kind)) for g in groups])
        context = self._settings.context_chars
        for group in groups:
            for m in group.members:
                if self._full():
                    return
                if not worth_reporting(m, self._settings.min_confidence):
                    continue
                evidence = excerpt(text, masked, m.start, context)
                found = FieldMatch.inside(path or (), m)
                self.hits.append(Hit(found, evidence, text_record=path is None))

    def _full(self) -> bool:
        if len(self.hits) < MAX_HITS:
            return False
        if "too_many" not in self.limits:
            self.limits.append("too_many")
        return True

    def limit(self, path: JsonPath, reason: LimitReason, original: object) -> object:  # noqa: ARG002 - Visitor
        """A value past a limit: noted (the record is then only partly examined)."""
        self.limits.append(reason)
        return original

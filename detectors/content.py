"""`ContentScanner`: the engine behind ``leaked_token`` and ``phi_in_logs``.

It examines one record — a parsed JSON value or a text line — with the shared pattern
library (so what the Redactor replaces, the detectors report) and turns each match into a
`auditor.models.Finding`: kind, severity, keyed fingerprint of the normalized value,
location (JSON path, or character span of a text line), redacted evidence, Safe Harbor
category, and safe facts (for a JWT: its header and claims, whether it was live when
logged, its algorithm class, whether its ``jku`` is allowlisted).

The common path is cheap. A parsed record's strings are collected in the walk's order
(`detectors.flattening`), values under sensitive keys judged as the walk judges them, and
all the strings go through one trigger search (`detectors.triggers`); when no trigger
occurs and nothing counts under a key, the record holds nothing and costs nothing more —
no walk, no context, no time parsing (`ContentScanner.gather` returns ``None``). The rules
run only on the strings a trigger points at, and only records with FHIR or JWK shapes (or
Python values that are not parsed JSON) are walked. Strings the rules found clean are
remembered (bounded), so a FHIR search URL logged all day is matched once.

Hostile input: matching is linear (see `auditor.patterns`), and each record is bounded: a
text longer than ``max_record_chars`` is examined up to that length, and a structure's
values past ``max_depth``, ``max_items`` or ``max_string_chars`` are not examined. Either
way the record is *partly examined*: `ContentScanner.scan` (the
`auditor.protocols.ContentDetector` method) raises `PartlyExamined`, a
`auditor.errors.RejectedRecord` with reason ``oversized`` or ``too_deep`` that carries the
findings of the parts that were examined, so the pipeline dead-letters the record without
losing what was found; `ContentScanner.examine` returns both instead of raising. Nothing
else raises: an unexpected error inside the scan becomes a ``processing_error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from auditor.errors import ConfigurationError, RejectedRecord
from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.models import Finding
from auditor.patterns import (
    DEFAULT_KEY_RULES,
    FieldMatch,
    JsonPath,
    KeyRule,
    PatternLibrary,
    normalize_key,
)
from auditor.patterns.library import ALL_KINDS, Group
from auditor.patterns.matches import Kind
from auditor.patterns.memory import CleanMemory
from auditor.protocols import ScanContext
from auditor.redaction.config import DEFAULT_ALLOW_KEYS
from auditor.vocabulary import DeadLetterReason, DetectorName, TokenKind
from detectors.baseline import Baseline, key_id_of, key_mismatch_message
from detectors.findings import FindingFactory
from detectors.flattening import Flattener, Keyed
from detectors.gathering import Gatherer, WalkSettings
from detectors.triage import JkuAllowlist
from detectors.triggers import TriggerSearch

try:
    from orjson import loads as _json_loads
except ModuleNotFoundError:  # pragma: no cover - orjson comes with the fast extra
    from json import loads as _json_loads  # type: ignore[assignment]

TOKEN_KINDS: Final = frozenset(TokenKind)

_KNOWN_CLEAN_LIMIT: Final = 4096
_MIN_KNOWN_CHARS: Final = 1
_MAX_KNOWN_CHARS: Final = 512

_LIMIT_REASONS: Final = {
    "too_deep": DeadLetterReason.TOO_DEEP,
    "oversized": DeadLetterReason.OVERSIZED,
    "too_many": DeadLetterReason.OVERSIZED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentConfig:
    """Configuration of the content detectors; validated when a scanner is built.

    Attributes:
        kinds: The kinds to report (default: every token and PHI kind).
        keys: Sensitive keys by normal form (`auditor.patterns.key_rules`).
        allow_keys: Keys whose values are never examined (as the Redactor's).
        fingerprinter: Keys the fingerprints (default: from the environment).
        jku_allowlist: URLs (or prefixes ending in ``/``) a JWT's ``jku`` may name.
        allow_fingerprints: Fingerprints of values that are never reported (known test
            tokens); they must be of the running key.
        baseline: Known findings, suppressed (`detectors.baseline`); same key.
        min_confidence: Matches weaker than this are not reported (documentation
            values such as the SSN 078-05-1120 or the 555-01xx phone numbers).
        context_chars: Characters of redacted context on each side of the evidence.
        max_record_chars: A text record is examined up to this length.
        max_depth: Values nested deeper are not examined.
        max_string_chars: Longer strings inside a structure are not examined.
        max_items: Containers with more items are not examined.
    """

    kinds: frozenset[Kind] = ALL_KINDS
    keys: Mapping[str, KeyRule] = field(default_factory=lambda: DEFAULT_KEY_RULES)
    allow_keys: frozenset[str] = DEFAULT_ALLOW_KEYS
    fingerprinter: Fingerprinter | None = None
    jku_allowlist: frozenset[str] = frozenset()
    allow_fingerprints: frozenset[str] = frozenset()
    baseline: Baseline | None = None
    min_confidence: float = 0.75
    context_chars: int = 32
    max_record_chars: int = 1 << 20
    max_depth: int = 64
    max_string_chars: int = 1 << 20
    max_items: int = 100_000

    def validate(self, key_id: str) -> None:
        """Check the configuration against the running fingerprint key.

        Raises:
            ConfigurationError: What is wrong and what to do.
        """
        if unknown := set(self.kinds) - ALL_KINDS:
            raise ConfigurationError(f"unknown kinds: {sorted(map(str, unknown))}")
        for name in ("max_record_chars", "max_depth", "max_string_chars", "max_items"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        if self.context_chars < 0:
            raise ConfigurationError("context_chars must not be negative")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigurationError("min_confidence must be between 0 and 1")
        others = {key_id_of(fp) for fp in self.allow_fingerprints} - {key_id}
        if others:
            raise ConfigurationError(
                key_mismatch_message("the fingerprint allowlist", min(others), key_id)
            )
        if self.baseline is not None:
            self.baseline.require_key(key_id)


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What examining one record gave.

    Attributes:
        findings: What was found and not suppressed.
        suppressed: How many findings the allowlist or the baseline suppressed.
        limits: Why parts of the record were not examined (empty: all of it was).
    """

    findings: tuple[Finding, ...] = ()
    suppressed: int = 0
    limits: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether the whole record was examined."""
        return not self.limits


EMPTY: Final = ScanOutcome()


class PartlyExamined(RejectedRecord):
    """A record the detectors could examine only in part (past a size or depth cap).

    The pipeline dead-letters it like any rejected record; ``findings`` holds what was
    found in the parts that were examined, so nothing found is lost.
    """

    def __init__(self, reason: DeadLetterReason, findings: Sequence[Finding], detail: str) -> None:
        super().__init__(reason, detail)
        self.findings: tuple[Finding, ...] = tuple(findings)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ContentScanner:
    """Examines records for leaked tokens and PHI; immutable once built, no I/O.

    Args:
        config: What to look for and what to suppress.

    Raises:
        ConfigurationError: Bad configuration, or an allowlist or baseline made under
            another fingerprint key.
    """

    __slots__ = (
        "_factory",
        "_flattener",
        "_known_clean",
        "_memory",
        "_settings",
        "_triggers",
        "_walker_keys",
        "config",
        "library",
    )

    def __init__(self, config: ContentConfig | None = None) -> None:
        config = config or ContentConfig()
        fingerprinter = config.fingerprinter or default_fingerprinter()
        config.validate(fingerprinter.key_id)
        self.config = config
        self.library = PatternLibrary(keys=config.keys, kinds=config.kinds)
        self._triggers = TriggerSearch(self.library)
        self._settings = WalkSettings(
            allow=frozenset(normalize_key(k) for k in config.allow_keys),
            max_depth=config.max_depth,
            max_string=config.max_string_chars,
            max_items=config.max_items,
            context_chars=config.context_chars,
            min_confidence=config.min_confidence,
        )
        self._factory = FindingFactory(
            fingerprinter=fingerprinter,
            jku_allowlist=JkuAllowlist.of(config.jku_allowlist),
            allow_fingerprints=config.allow_fingerprints,
            baseline=config.baseline,
            min_confidence=config.min_confidence,
        )
        self._flattener = Flattener(self.library.keys, self._settings)
        # A memo, like re's cache: strings the rules found nothing in (bounded).
        self._known_clean: set[str] = set()
        self._walker_keys: dict[str, object] = {}
        # The walks' memory of strings the rules found clean (FHIR codes, systems, uses).
        self._memory = CleanMemory(self.library.prefilter)

    @property
    def key_id(self) -> str:
        """The id of the fingerprint key findings are made with."""
        return self._factory.fingerprinter.key_id

    # --- the ContentDetector method ---------------------------------------------------

    def scan(self, content: object, context: ScanContext) -> list[Finding]:
        """Examine ``content`` (parsed JSON or a text line) and return findings.

        Raises:
            PartlyExamined: Part of the record was past a cap; it carries the findings.
        """
        return _raise_if_partial(self.examine(content, context))

    # --- richer entry points ------------------------------------------------------------

    def examine(self, content: object, context: ScanContext) -> ScanOutcome:
        """Examine ``content`` (parsed JSON or a text line); never raises."""
        gathered = self.gather(content)
        return EMPTY if gathered is None else self.outcome(gathered, context)

    def gather(self, content: object) -> Gatherer | None:
        """The first half of `examine`: what ``content`` holds, before any finding is made.

        ``None`` (the common case) means the whole record was examined and holds nothing,
        so a caller can skip building a `ScanContext` (and finding the record's time).
        """
        try:
            if isinstance(content, str):
                return self._gather_text(content)
            texts: list[str] = []
            keyed: dict[int, Keyed] = {}
            if not self._flattener.flatten(content, 0, texts, keyed):
                gatherer = self._gatherer()
                gatherer.walker().walk(content)
                return gatherer if gatherer.hits or gatherer.limits else None
            return self._gather_strings(content, texts, keyed) if texts else None
        except Exception:  # noqa: BLE001 - a detector never raises on content (protocol)
            gatherer = self._gatherer()
            gatherer.limits.append("processing_error")
            return gatherer

    def outcome(self, gathered: Gatherer, context: ScanContext) -> ScanOutcome:
        """The second half of `examine`: findings from what `gather` found; never raises."""
        try:
            findings, suppressed = self._factory.findings(
                gathered.hits, context, _utc(context.observed_at)
            )
        except Exception:  # noqa: BLE001 - a detector never raises on content (protocol)
            return ScanOutcome(limits=("processing_error",))
        limits = gathered.limits
        return ScanOutcome(
            tuple(findings), suppressed, tuple(dict.fromkeys(limits)) if limits else ()
        )

    def examine_line(self, line: str | bytes, context: ScanContext) -> ScanOutcome:
        """Examine one line as read: a JSON object or array structurally, else as text.

        A line that is not valid JSON (or not valid UTF-8) is examined as text.
        """
        return self.examine(parse_line(line), context)

    def scan_line(self, line: str | bytes, context: ScanContext) -> list[Finding]:
        """`examine_line`, raising `PartlyExamined` as `scan` does."""
        return _raise_if_partial(self.examine_line(line, context))

    # --- internals ----------------------------------------------------------------------

    def _gatherer(self) -> Gatherer:
        return Gatherer(self.library, self._settings, self._walker_keys, self._memory)

    def _gather_text(self, text: str) -> Gatherer | None:
        limited = len(text) > self.config.max_record_chars
        if limited:
            text = text[: self.config.max_record_chars]
        names = self._triggers.rules(text)
        groups = self.library.groups_for(text, names) if names else []
        if not groups and not limited:
            return None
        gatherer = self._gatherer()
        if limited:
            gatherer.limits.append("oversized")
        if groups:
            gatherer.add_text(text, groups, None)
        return gatherer if gatherer.hits or gatherer.limits else None

    def _gather_strings(
        self, content: object, texts: list[str], keyed: dict[int, Keyed]
    ) -> Gatherer | None:
        """A structure without shapes to judge: its strings are all there is.

        Values under sensitive keys that count (``keyed``, by index) are reported whole,
        as the walk reports them. The other strings go through one prefilter pass (the
        common, clean case ends here); the rules run only on the strings it points at.
        The walk would do the same, at the cost of visiting the structure twice. Paths
        are found only for a record that holds something.
        """
        found = self._triggers.segments(texts)
        known = self._known_clean
        if found and (keyed or known):
            # Keyed values are not scanned as text; strings the rules already found clean
            # (a FHIR search URL with ``?code=``, logged again and again) are not looked
            # at twice. Dropped after the search, not blanked before it: the automaton
            # reads every string for less than a set lookup of each costs, and no trigger
            # reaches into the next string, so the other strings' answers are the same.
            found = {
                index: names
                for index, names in found.items()
                if index not in keyed and texts[index] not in known
            }
        if not found and not keyed:
            return None
        library = self.library
        texted: list[tuple[int, list[Group]]] = []
        for index, names in found.items():
            text = texts[index]
            groups = library.groups_for(text, names)
            if groups:
                texted.append((index, groups))
            else:
                self._remember((text,))
        if not texted and not keyed:
            # Triggers, but nothing the rules confirm (a redacted ``Bearer [REDACTED:…]``
            # under ``authorization``): done before any path is built.
            return None
        gatherer = self._gatherer()
        paths = self._flattener.paths(content, [*keyed, *(index for index, _ in texted)])
        for index, (rule, normal) in keyed.items():
            match = self._keyed_match(rule, texts[index], normal, paths[index])
            gatherer.field(match, texts[index])
        for index, groups in texted:
            gatherer.add_text(texts[index], groups, paths[index])
        return gatherer if gatherer.hits else None

    def _keyed_match(self, rule: KeyRule, text: str, normal: str, path: JsonPath) -> FieldMatch:
        """A value that counts under its key, as the walk reports it (`Walker._judge`).

        ``normal`` is the value as its key's shape reads it (`value_of`, which the
        flattening already asked). A credential is named by what it is (a JWT under
        ``authorization``) and the token itself fingerprinted, so it correlates with the
        same token found in text.
        """
        normal = normal or text
        if rule.kind in TOKEN_KINDS:
            names = self._triggers.rules(text)
            for group in self.library.groups_for(text, names) if names else ():
                for m in group.members:
                    if m.kind in TOKEN_KINDS:
                        return FieldMatch(
                            path,
                            m.kind,
                            rule.rule,
                            m.value,
                            facts=m.facts,
                            safeguard=rule.safeguard,
                        )
        return FieldMatch(path, rule.kind, rule.rule, normal, safeguard=rule.safeguard)

    def _remember(self, texts: Iterable[str]) -> None:
        """Note strings that hold nothing; short ones are not worth a lookup."""
        known = self._known_clean
        for text in texts:
            if _MIN_KNOWN_CHARS <= len(text) <= _MAX_KNOWN_CHARS:
                if len(known) >= _KNOWN_CLEAN_LIMIT:
                    known.clear()
                known.add(text)


def parse_line(line: str | bytes) -> object:
    """A line's content: parsed JSON when it is a JSON object or array, else its text.

    Invalid UTF-8 is kept as surrogate escapes, so a line is always examined as text at
    least.
    """
    data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
    head = data[:1]
    if head in _JSON_HEADS or (head in _BLANKS and data.lstrip()[:1] in _JSON_HEADS):
        try:
            return _json_loads(data)
        except (ValueError, RecursionError):
            pass
    return line if isinstance(line, str) else data.decode("utf-8", "surrogateescape")


_JSON_HEADS: Final = frozenset({b"{", b"["})
_BLANKS: Final = frozenset({b" ", b"\t"})


def _raise_if_partial(outcome: ScanOutcome) -> list[Finding]:
    if outcome.complete:
        return list(outcome.findings)
    first = outcome.limits[0]
    reason = _LIMIT_REASONS.get(first, DeadLetterReason.PROCESSING_ERROR)
    raise PartlyExamined(
        reason,
        outcome.findings,
        f"part of the record was not examined ({', '.join(outcome.limits)})",
    )


def detector_of(kind: str) -> DetectorName:
    """``leaked_token`` for token kinds, ``phi_in_logs`` for PHI kinds."""
    return DetectorName.LEAKED_TOKEN if kind in TOKEN_KINDS else DetectorName.PHI_IN_LOGS

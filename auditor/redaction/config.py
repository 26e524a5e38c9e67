"""`RedactorConfig`: what the Redactor redacts, what it leaves alone, and its limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from auditor.errors import ConfigurationError
from auditor.fingerprints import FINGERPRINT_HEX_DIGITS, Fingerprinter
from auditor.patterns.keys import DEFAULT_KEY_RULES, KeyRule, key_rules
from auditor.patterns.library import ALL_KINDS
from auditor.patterns.matches import Kind
from auditor.patterns.memory import DEFAULT_ENTRIES
from auditor.patterns.rules import Rule

DEFAULT_ALLOW_KEYS: Final = frozenset(
    {"timestamp", "level", "logger", "logger_name", "trace_id", "span_id", "parent_span_id"}
)
"""Keys whose values are never examined or replaced (compared in normal form, so
``trace_id`` also covers ``traceId``). They cost nothing on the hot path."""

SAFE_JWT_FACTS: Final = ("iss", "tenant", "jti", "kid", "alg", "exp")
"""What a marker may say about a JWT: CDS Hooks best practices call ``iss``, ``tenant``
and ``jti`` safe to log; ``kid``, ``alg`` and ``exp`` identify the key and the lifetime."""

MIN_FINGERPRINT_DIGITS: Final = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class RedactorConfig:
    """Configuration of a `auditor.Redactor`; validated when the Redactor is built.

    Attributes:
        keys: Sensitive keys by normal form; values under them are replaced whole.
            Build with `auditor.patterns.key_rules` to extend the defaults.
        extra_keys: More sensitive keys, by name, with the kind their values are.
        allow_keys: Keys never touched, at any depth (`DEFAULT_ALLOW_KEYS`).
        kinds: The kinds to redact (default: every token and PHI kind).
        record_key: Where the event lists what was redacted (JSON path and rule, never
            a value); ``None`` to not record.
        max_depth: Containers nested deeper are replaced whole.
        max_value_chars: Longer strings are replaced whole instead of being scanned
            (fail closed: an unscanned value never passes through).
        max_items: Containers with more items are replaced whole.
        max_records: At most this many entries under ``record_key`` (then a count).
        fingerprinter: Keys the fingerprints in markers (default: from the environment,
            `auditor.default_fingerprinter`).
        fingerprint_digits: Hex digits of the fingerprint shown in a marker.
        jwt_facts: Which of `SAFE_JWT_FACTS` a JWT marker shows.
        extra_rules: More text rules (see `auditor.patterns.Rule`).
        memory_entries: How many short strings already found clean the Redactor
            remembers, so that values logged again and again (event names, routes,
            issuers, SQL) are not scanned again; 0 to remember none. Only strings the
            rules found clean enter it, so it holds no secret; it is forgotten whole
            when full.
    """

    keys: Mapping[str, KeyRule] = field(default_factory=lambda: DEFAULT_KEY_RULES)
    extra_keys: Mapping[str, Kind] = field(default_factory=dict)
    allow_keys: frozenset[str] = DEFAULT_ALLOW_KEYS
    kinds: frozenset[Kind] = ALL_KINDS
    record_key: str | None = "redacted"
    max_depth: int = 16
    max_value_chars: int = 65_536
    max_items: int = 10_000
    max_records: int = 32
    fingerprinter: Fingerprinter | None = None
    fingerprint_digits: int = 8
    jwt_facts: tuple[str, ...] = SAFE_JWT_FACTS
    extra_rules: tuple[Rule, ...] = ()
    memory_entries: int = DEFAULT_ENTRIES

    def key_table(self) -> Mapping[str, KeyRule]:
        """``keys`` plus ``extra_keys``."""
        if not self.extra_keys:
            return self.keys
        extra = [KeyRule(name, kind) for name, kind in self.extra_keys.items()]
        return key_rules(extra, base=self.keys)

    def validate(self) -> None:
        """Check the configuration.

        Raises:
            ConfigurationError: What is wrong, and what to set instead.
        """
        if unknown := set(self.kinds) - ALL_KINDS:
            raise ConfigurationError(f"unknown kinds to redact: {sorted(map(str, unknown))}")
        if unsafe := set(self.jwt_facts) - set(SAFE_JWT_FACTS):
            allowed = list(SAFE_JWT_FACTS)
            raise ConfigurationError(
                f"JWT facts {sorted(unsafe)} may not appear in markers; choose from {allowed}"
            )
        if self.record_key is not None and not self.record_key:
            raise ConfigurationError("record_key must be a non-empty key or None")
        for name in ("max_depth", "max_value_chars", "max_items", "max_records"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        if self.memory_entries < 0:
            raise ConfigurationError("memory_entries must be 0 (off) or more")
        if not MIN_FINGERPRINT_DIGITS <= self.fingerprint_digits <= FINGERPRINT_HEX_DIGITS:
            low, high = MIN_FINGERPRINT_DIGITS, FINGERPRINT_HEX_DIGITS
            raise ConfigurationError(f"fingerprint_digits must be between {low} and {high}")
        for name, kind in self.extra_keys.items():
            if kind not in ALL_KINDS:
                raise ConfigurationError(f"extra key {name!r}: unknown kind {kind!r}")

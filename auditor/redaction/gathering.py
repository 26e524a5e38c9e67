"""How the Redactor gathers an event's strings without walking it (a mixin of `Redactor`).

The Redactor's fast paths judge an event from its strings alone: each top-level key is
classified once and remembered (plain, allowlisted, or needing attention: sensitive,
a shape key, structlog's own), and plain nested values — dicts, lists, tuples of strings
and scalars, within the size and depth limits — are flattened into a list of strings
with the key that owns each. Anything else (a sensitive key holding a structure, a
header-like ``(name, value)`` pair, an object) makes the gatherer give up, and the
Redactor walks the event in full (`auditor.patterns.walk`), which is always correct.

A `Gatherer` belongs to one Redactor (it remembers the Redactor's key verdicts) and is
delegated to, not inherited: a compiled subclass that adds ``__call__`` (as the Redactor
does) shifts its base's attributes in mypyc's layout, so a compiled mixin would read the
wrong fields (mypy 2.4's mypyc; reproduced on a two-class example).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from auditor.patterns.keyed import value_of
from auditor.patterns.keys import KeyRule, Scope, normalize_key
from auditor.patterns.lookalikes import SKELETON
from auditor.patterns.prefilter import utf8
from auditor.patterns.shapes import SHAPE_KEYS

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from auditor.patterns.library import PatternLibrary
    from auditor.patterns.memory import CleanMemory

__all__ = [
    "ALLOW",
    "ATTENTION",
    "KEY_CACHE_LIMIT",
    "NESTED",
    "PLAIN",
    "SCALARS",
    "SHAPED",
    "STRUCTLOG_META",
    "UNKNOWN",
    "Gatherer",
]

PLAIN: Final = 0
"""A key whose values are scanned as any text: a new one goes straight to the prefilter."""
SHAPED: Final = 1
"""A plain key whose new values were all look-alikes so far (a request id, a digest): a new
one is tested against the look-alike shapes first, and the key becomes `PLAIN` when one is
not (the test would be wasted on its values; the prefilter judges them as it judges any).
The two plain states are the lowest, so the inline loop tells them in one comparison."""
ALLOW: Final = 2
"""An allowlisted key: its values are never examined."""
ATTENTION: Final = 3
"""A key that needs more than the inline loop (sensitive, a shape key, structlog's)."""
UNKNOWN: Final = 4
"""A key not classified yet (the default of a lookup in `Gatherer.key_state`)."""
KEY_CACHE_LIMIT: Final = 4096
"""Entries of each per-key memory before it is cleared (keys are the services' own words)."""
SCALARS: Final = frozenset(
    {int, float, bool, type(None), UUID, Decimal, datetime, date, time, timedelta}
)
"""Value types that hold no string to judge."""
NESTED: Final = object()
"""Owner of a string gathered from inside a nested value (only a full walk can replace it)."""
STRUCTLOG_META: Final = ("_record", "_from_structlog")
"""Keys structlog's ProcessorFormatter adds and removes itself; never touched."""


class Gatherer:
    """The key classification and string gathering of one `Redactor` (see the module).

    Args:
        lib: The Redactor's pattern library (its key rules).
        memory: The Redactor's memory of strings found clean.
        allow: Allowlisted keys, in normal form.
        max_chars: Longer strings are left to the walk (which replaces them whole).
        max_depth: Deeper values are left to the walk.
        max_items: Larger containers are left to the walk.

    Attributes:
        key_state: Each key seen, by its state (`SHAPED`, `PLAIN`, `ALLOW`, `ATTENTION`);
            a key not in it is classified by `gather`.
    """

    __slots__ = (
        "_allow",
        "_lib",
        "_max_chars",
        "_max_depth",
        "_max_items",
        "_memory",
        "_pair_rules",
        "_top_rules",
        "key_state",
    )

    def __init__(
        self,
        lib: PatternLibrary,
        memory: CleanMemory,
        *,
        allow: frozenset[str],
        max_chars: int,
        max_depth: int,
        max_items: int,
    ) -> None:
        self._lib = lib
        self._memory = memory
        self._allow = allow
        self._max_chars = max_chars
        self._max_depth = max_depth
        self._max_items = max_items
        self.key_state: dict[object, int] = {}
        self._top_rules: dict[object, KeyRule] = {}
        """Sensitive keys a flat event may hold (not shape keys, not structlog's)."""
        self._pair_rules: dict[str, KeyRule | None] = {}
        """The rule of a header name in a (name, value) pair, None for other names."""

    def _state(self, key: object) -> int:
        if not isinstance(key, str):
            return ATTENTION
        if len(self.key_state) >= KEY_CACHE_LIMIT:
            self.key_state.clear()
            self._top_rules.clear()
        normal = normalize_key(key)
        if normal in self._allow:
            state = ALLOW
        else:
            rule = self._lib.keys.get(normal)
            sensitive = rule is not None and rule.scope is not Scope.TEXT
            special = key in STRUCTLOG_META or key == "exc_info"
            state = ATTENTION if sensitive or special or normal in SHAPE_KEYS else SHAPED
            if sensitive and not special and normal not in SHAPE_KEYS:
                self._top_rules[key] = rule  # type: ignore[assignment]  # sensitive: a rule
        self.key_state[key] = state
        return state

    def reshape(self) -> None:
        """Test every plain key's new values against the look-alike shapes again.

        Called when the memory forgets: a key made `PLAIN` by one odd value gets its
        chance back, at most once per memory's lifetime.
        """
        states = self.key_state
        for key, state in list(states.items()):
            if state == PLAIN:
                states[key] = SHAPED

    def gather(
        self, event_dict: MutableMapping[str, Any], keyed: list[tuple[str, KeyRule]]
    ) -> tuple[list[str], list[object]] | None:
        """The event's strings to scan and who owns each, or None for the full walk.

        A top-level string is owned by its key, one inside a nested value by `NESTED`;
        allowlisted keys are skipped (never examined); a string under a sensitive
        top-level key goes to ``keyed`` with the key's rule. None when a key is a shape
        key or structlog's, a sensitive key holds anything but a string, or a nested
        value is not plain data.
        """
        strings: list[str] = []
        owners: list[object] = []
        states = self.key_state
        for key, value in event_dict.items():
            state = states.get(key, UNKNOWN)
            if state == UNKNOWN:
                state = self._state(key)
            if state == ATTENTION:
                rule = self._top_rules.get(key)
                if rule is None or type(value) is not str or len(value) > self._max_chars:
                    return None
                keyed.append((key, rule))
                continue
            if state == ALLOW:
                continue
            kind = type(value)
            if kind is str:
                strings.append(value)
                owners.append(key)
            elif kind not in SCALARS:
                start = len(strings)
                if not self._collect(value, strings, 1):
                    return None
                owners.extend([NESTED] * (len(strings) - start))
        return strings, owners

    def known_strings(self, items: list[object] | tuple[object, ...]) -> bool:
        """Whether a top-level list or tuple holds only strings known clean (no pair)."""
        if len(items) > self._max_items:
            return False
        if len(items) == 2 and self._is_sensitive_pair(items):  # noqa: PLR2004 - a (name, value) pair
            return False
        memory = self._memory
        clean, shapes, widest = memory.strings, memory.skeletons, memory.shape_chars
        for item in items:
            if type(item) is not str or (
                item not in clean
                and (len(item) > widest or utf8(item).translate(SKELETON) not in shapes)
            ):
                return False
        return True

    def collect_novel(self, value: object, novel: list[str], owners: list[object]) -> bool:
        """`_collect` a top-level nested value's strings that are not known clean."""
        found: list[str] = []
        if not self._collect(value, found, 1):
            return False
        memory = self._memory
        clean, shapes, widest = memory.strings, memory.skeletons, memory.shape_chars
        for text in found:
            if text in clean or (len(text) <= widest and utf8(text).translate(SKELETON) in shapes):
                continue
            novel.append(text)
            owners.append(NESTED)
        return True

    def _collect(self, value: object, strings: list[str], depth: int) -> bool:  # noqa: C901, PLR0911, PLR0912 - one branch per kind of value
        """Gather the strings of a plain nested value; False when it needs the full walk."""
        if depth > self._max_depth:
            return False
        if type(value) is dict:  # told by type (narrowed: mypyc reads it as a dict)
            if len(value) > self._max_items:
                return False
            states = self.key_state
            for key, item in value.items():
                state = states.get(key, UNKNOWN)
                if state == UNKNOWN:
                    state = self._state(key)
                if state == ALLOW:
                    continue
                if state == ATTENTION or not self._collect_leaf(item, strings, depth):
                    return False
            return True
        if type(value) is list or type(value) is tuple:
            size = len(value)
            if size > self._max_items:
                return False
            if size == 2 and self._is_sensitive_pair(value):  # noqa: PLR2004 - a (name, value) pair
                return False
            for item in value:
                if type(item) is str:
                    if len(item) > self._max_chars:
                        return False
                    strings.append(item)
                elif not self._collect_leaf(item, strings, depth):
                    return False
            return True
        return False

    def _is_sensitive_pair(self, pair: list[object] | tuple[object, ...]) -> bool:
        """Whether the walk would redact this pair as a header: (sensitive name, value).

        Mirrors `Walker._header_pair`: there the second item is judged by the name, so a
        string that is clean as text may still count (``("authorization", "s3cr3t")``).
        """
        name, value = pair
        if type(name) is not str:
            return False  # bytes and other names are not collected: the walk sees them
        rules = self._pair_rules
        rule = rules[name] if name in rules else self._pair_rule(name)
        if rule is None:
            return False
        return type(value) is not str or value_of(rule.shape, value) is not None

    def _pair_rule(self, name: str) -> KeyRule | None:
        """The rule `_is_sensitive_pair` judges a pair named ``name`` by, remembered."""
        state = self.key_state.get(name, UNKNOWN)
        if state == UNKNOWN:
            state = self._state(name)
        rule = self._lib.keys.get(normalize_key(name)) if state == ATTENTION else None
        if rule is not None and rule.scope is Scope.TEXT:
            rule = None
        if len(self._pair_rules) >= KEY_CACHE_LIMIT:
            self._pair_rules.clear()
        self._pair_rules[name] = rule
        return rule

    def _collect_leaf(self, value: object, strings: list[str], depth: int) -> bool:
        if type(value) is str:
            if len(value) > self._max_chars:
                return False
            strings.append(value)
            return True
        if type(value) in SCALARS:
            return True
        return self._collect(value, strings, depth + 1)

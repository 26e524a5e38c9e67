"""`PatternLibrary`: every rule compiled once, with the prefilter in front.

The Redactor and the content detectors use the same library, so what one catches the
other catches: the Redactor replaces what `PatternLibrary.find_in_text` and
`PatternLibrary.scan` report.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final, NamedTuple

from auditor.patterns.keyed import KeyedRule
from auditor.patterns.keys import DEFAULT_KEY_RULES, KeyRule
from auditor.patterns.matches import PHI_KINDS, TOKEN_KINDS, Kind, Match
from auditor.patterns.prefilter import Prefilter, fold
from auditor.patterns.rules import BUILTIN_RULES, Rule
from auditor.patterns.walk import Collector, ScanResult, Walker

ALL_KINDS: Final = TOKEN_KINDS | PHI_KINDS


class Group(NamedTuple):
    """Overlapping matches in a text, redacted as one span (immutable, cheap to build).

    Attributes:
        start: Where the first of them starts.
        end: Where the last of them ends (the span is their union).
        best: The most specific of them; a marker names it.
        members: The matches a detector reports: chosen by priority, then length, then
            position, leaving out those that overlap one chosen before. ``best`` is one.
    """

    start: int
    end: int
    best: Match
    members: tuple[Match, ...]


def _rank(m: Match) -> tuple[int, int, int]:
    return (m.priority, m.start - m.end, m.start)


def _select(members: list[Match]) -> tuple[Match, ...]:
    chosen: list[Match] = []
    for m in sorted(members, key=_rank):
        if all(m.end <= c.start or c.end <= m.start for c in chosen):
            chosen.append(m)
    return tuple(sorted(chosen, key=lambda m: m.start))


def resolve(found: list[Match]) -> list[Group]:
    """Group overlapping matches, left to right."""
    if not found:
        return []
    if len(found) == 1:
        (only,) = found
        return [Group(only.start, only.end, only, (only,))]
    found.sort(key=lambda m: (m.start, -m.end))
    groups: list[Group] = []
    members = [found[0]]
    end = found[0].end
    for m in found[1:]:
        if m.start < end:
            members.append(m)
            end = max(end, m.end)
            continue
        groups.append(Group(members[0].start, end, min(members, key=_rank), _select(members)))
        members, end = [m], m.end
    groups.append(Group(members[0].start, end, min(members, key=_rank), _select(members)))
    return groups


class PatternLibrary:
    """The compiled rules, key table and prefilter.

    Args:
        keys: Sensitive keys by normal form (`auditor.patterns.keys.key_rules`).
        kinds: The kinds to look for (default: every token and PHI kind).
        extra_rules: More text rules (objects with ``name``, ``triggers``, ``examples``
            and ``find``), e.g. an organisation's own token format.

    Raises:
        ValueError: An unknown kind, or rules with clashing names.
    """

    __slots__ = ("keyed", "keys", "kinds", "prefilter", "rules")

    def __init__(
        self,
        *,
        keys: Mapping[str, KeyRule] = DEFAULT_KEY_RULES,
        kinds: Collection[Kind] | None = None,
        extra_rules: Iterable[Rule] = (),
    ) -> None:
        self.kinds: frozenset[Kind] = ALL_KINDS if kinds is None else frozenset(kinds)
        if unknown := self.kinds - ALL_KINDS:
            raise ValueError(f"unknown kinds: {sorted(map(str, unknown))}")
        self.keys: Mapping[str, KeyRule] = {n: r for n, r in keys.items() if r.kind in self.kinds}
        self.keyed = KeyedRule(self.keys)
        chosen: list[Rule] = [r for r in BUILTIN_RULES if r.kind in self.kinds]
        chosen.append(self.keyed)
        chosen.extend(extra_rules)
        self.rules: dict[str, Rule] = {}
        for rule in chosen:
            if rule.name in self.rules:
                raise ValueError(f"two rules are named {rule.name!r}")
            self.rules[rule.name] = rule
        triggers: dict[bytes, set[str]] = {}
        for rule in chosen:
            for trigger in rule.triggers:
                triggers.setdefault(fold(trigger), set()).add(rule.name)
        self.prefilter = Prefilter(triggers)

    def matches(self, text: str) -> list[Match]:
        """Every match of every rule in ``text``, overlapping ones included."""
        names = self.prefilter.rules(text)
        if not names:
            return []
        rules = self.rules
        return [m for name in names for m in rules[name].find(text)]

    def groups(self, text: str) -> list[Group]:
        """Overlapping matches grouped, left to right: what `redact_text` replaces."""
        return resolve(self.matches(text))

    def groups_for(self, text: str, names: Iterable[str]) -> list[Group]:
        """`groups` for rules already known to be worth running (from the prefilter)."""
        rules = self.rules
        return resolve([m for name in names for m in rules[name].find(text)])

    def find_in_text(self, text: str) -> list[Match]:
        """The sensitive values in ``text``, left to right, not overlapping.

        Where rules overlap (``Authorization: Bearer eyJ…`` is a keyed header, a bearer
        credential and a JWT) the most specific one is reported.
        """
        return [m for group in self.groups(text) for m in group.members]

    def contains(self, text: str, kinds: Collection[Kind] | None = None) -> bool:
        """Whether ``text`` holds anything sensitive (of ``kinds``, when given)."""
        if not self.prefilter.hits(text):
            return False
        found = self.matches(text)
        return any(m.kind in kinds for m in found) if kinds is not None else bool(found)

    def redact_text(self, text: str, replace: Callable[[Group], str]) -> tuple[str, list[Group]]:
        """Replace the span of each group of matches with ``replace(group)``.

        Returns:
            The new text (``text`` itself when nothing matched) and the groups replaced.
        """
        groups = self.groups(text)
        return splice(text, groups, replace), groups

    def scan(
        self,
        value: object,
        *,
        max_depth: int = 64,
        max_string: int = 1 << 20,
        max_items: int = 100_000,
    ) -> ScanResult:
        """Walk a parsed JSON value (or any Python structure) and report what is sensitive.

        Keys, FHIR and JWK shapes and every string are examined; a value under a
        sensitive key is reported whole and not walked further. Values past a limit
        (too deep, too long, too many items, a cycle) are listed in ``limits``.
        """
        collector = Collector()
        walker = Walker(
            self, collector, max_depth=max_depth, max_string=max_string, max_items=max_items
        )
        walker.walk(value)
        return collector.result


def splice(text: str, groups: list[Group], replace: Callable[[Group], str]) -> str:
    """``text`` with each group's span replaced by ``replace(group)``."""
    if not groups:
        return text
    out: list[str] = []
    pos = 0
    for group in groups:
        out.append(text[pos : group.start])
        out.append(replace(group))
        pos = group.end
    out.append(text[pos:])
    return "".join(out)


_default: PatternLibrary | None = None


def default_library() -> PatternLibrary:
    """The library with the default keys and every kind, compiled on first use."""
    global _default  # noqa: PLW0603 - compiled once per process, like re's cache
    if _default is None:
        _default = PatternLibrary()
    return _default


def find_in_text(text: str) -> list[Match]:
    """`PatternLibrary.find_in_text` of the default library."""
    return default_library().find_in_text(text)


def scan(
    value: object, *, max_depth: int = 64, max_string: int = 1 << 20, max_items: int = 100_000
) -> ScanResult:
    """`PatternLibrary.scan` of the default library."""
    return default_library().scan(
        value, max_depth=max_depth, max_string=max_string, max_items=max_items
    )

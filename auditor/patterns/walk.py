"""One walk over any structure, shared by the Redactor and the detectors.

The Redactor rewrites and the detectors report, but keys, shapes and strings are judged
the same way in both.

The walk is copy-on-write: a container is rebuilt only when something under it was
replaced, so a clean structure comes back as the very same object. It is bounded: a depth
limit, an item limit per container, a length limit per string, and cycle detection; what
exceeds a limit goes to the visitor's ``limit`` instead of being walked.

By default the strings of a structure are scanned together, between two walks (one
prefilter pass for a large document). The Redactor walks its small events once instead,
skipping strings its `auditor.patterns.memory.CleanMemory` already found clean; a
property test checks that both modes find the same.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol
from uuid import UUID

from pydantic import BaseModel

from auditor.patterns.keyed import value_of
from auditor.patterns.keys import KeyRule, Scope, normalize_key
from auditor.patterns.matches import TOKEN_KINDS, FieldMatch, JsonPath
from auditor.patterns.shapes import Member, Shape, canonical, shape_of

if TYPE_CHECKING:
    from auditor.patterns.library import Group, PatternLibrary
    from auditor.patterns.memory import CleanMemory

LimitReason = Literal["too_deep", "oversized", "cycle", "unreadable"]

_SCALAR_TYPES: Final = frozenset({int, float, bool, type(None), complex, Decimal, UUID})
_TIME_TYPES: Final = (datetime, date, time, timedelta)
_CONTAINERS: Final = (Mapping, list, tuple, set, frozenset)
_ALLOW: Final = object()
_KEY_CACHE_LIMIT: Final = 4096


class Visitor(Protocol):
    """What the walk reports to. Called synchronously, once per finding; may not raise."""

    def field(self, match: FieldMatch, original: object) -> object:
        """A whole value is sensitive; return what replaces it."""
        ...

    def report(self, match: FieldMatch) -> None:
        """A report-only match (``redact`` is false), e.g. a person resource."""
        ...

    def text(self, path: JsonPath, text: str, groups: list[Group]) -> object:
        """Matches inside a string; return what replaces the string."""
        ...

    def limit(self, path: JsonPath, reason: LimitReason, original: object) -> object:
        """A value past a limit; return what replaces it."""
        ...


@dataclass(frozen=True, slots=True)
class Limit:
    """A value the walk did not examine, and why."""

    path: JsonPath
    reason: LimitReason


@dataclass(slots=True)
class ScanResult:
    """What `PatternLibrary.scan` found: matches, and values left unexamined."""

    matches: list[FieldMatch] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)


class Collector:
    """A visitor that records and replaces nothing: the detectors' view of a structure."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result = ScanResult()

    def field(self, match: FieldMatch, original: object) -> object:
        """Record ``match``; keep the value."""
        self.result.matches.append(match)
        return original

    def report(self, match: FieldMatch) -> None:
        """Record ``match``."""
        self.result.matches.append(match)

    def text(self, path: JsonPath, text: str, groups: list[Group]) -> object:
        """Record each match a detector reports, with its span in the string."""
        for m in (m for group in groups for m in group.members):
            self.result.matches.append(FieldMatch.inside(path, m))
        return text

    def limit(self, path: JsonPath, reason: LimitReason, original: object) -> object:
        """Record that ``path`` was not examined."""
        self.result.limits.append(Limit(path, reason))
        return original


def _member_match(path: JsonPath, member: Member, *, redact: bool = True) -> FieldMatch:
    return FieldMatch(
        path,
        member.kind,
        member.rule,
        member.value,
        None,
        member.facts,
        member.safeguard,
        1.0,
        redact,
    )


class _Silent:
    """The first pass's visitor: replaces nothing; marks the containers it was called in."""

    __slots__ = ("dirty", "trail")

    def __init__(self, trail: list[int]) -> None:
        self.trail = trail
        self.dirty: set[int] = set()

    def _mark(self) -> None:
        # The empty trail (a bare value at the root) still counts as found.
        self.dirty.update(self.trail or (-1,))

    def field(self, match: FieldMatch, original: object) -> object:  # noqa: ARG002 - Visitor
        self._mark()
        return original

    def report(self, match: FieldMatch) -> None:  # noqa: ARG002 - Visitor
        self._mark()

    def text(self, path: JsonPath, text: str, groups: list[Group]) -> object:  # noqa: ARG002 - Visitor
        self._mark()
        return text

    def limit(self, path: JsonPath, reason: LimitReason, original: object) -> object:  # noqa: ARG002 - Visitor
        self._mark()
        return original


def _rebuild(
    items: list[object] | tuple[object, ...] | set[object] | frozenset[object], out: list[object]
) -> object:
    """A container like ``items`` holding ``out``: same type where it can be rebuilt."""
    if isinstance(items, set | frozenset):
        return type(items)(out)
    if isinstance(items, tuple):
        if type(items) is tuple:
            return tuple(out)
        try:
            return type(items)(*out)  # type: ignore[arg-type]  # a namedtuple
        except TypeError:
            return tuple(out)
    return out


class Walker:
    """Walks a value and reports every sensitive part of it to a visitor.

    Args:
        library: The compiled rules.
        visitor: Receives matches and limits and says what replaces them.
        allow: Keys (normal form) whose values are never examined or replaced.
        max_depth: Containers nested deeper than this go to ``visitor.limit``.
        max_string: Strings longer than this go to ``visitor.limit`` unexamined.
        max_items: Containers with more items than this go to ``visitor.limit``.
        key_cache: A dict to remember key classifications in, shared by walkers with the
            same library and allowlist (keys repeat from event to event).
        batch: Scan all strings of a structure in one prefilter pass, between two walks
            (the default: cheaper for large structures). False walks once and scans each
            string where it is met: cheaper for small ones, such as log events.
        memory: Strings already found clean by ``library`` (built from its prefilter):
            they are not scanned again, and strings found clean are added. Used when
            ``batch`` is False.
    """

    __slots__ = (
        "_allow",
        "_batch",
        "_dirty",
        "_extent",
        "_found",
        "_index",
        "_keyed_cache",
        "_keys",
        "_lib",
        "_max_depth",
        "_max_items",
        "_max_string",
        "_memory",
        "_texts",
        "_trail",
        "_visitor",
        "_visits",
    )

    def __init__(
        self,
        library: PatternLibrary,
        visitor: Visitor,
        *,
        allow: frozenset[str] = frozenset(),
        max_depth: int = 32,
        max_string: int = 1 << 20,
        max_items: int = 100_000,
        key_cache: dict[str, object] | None = None,
        batch: bool = True,
        memory: CleanMemory | None = None,
    ) -> None:
        self._lib = library
        self._batch = batch
        self._memory = memory
        self._visitor = visitor
        self._allow = allow
        self._max_depth = max_depth
        self._max_string = max_string
        self._max_items = max_items
        self._keys: dict[str, object] = {} if key_cache is None else key_cache
        self._texts: list[str] | None = None
        self._found: dict[int, set[str]] | None = None
        self._index = 0
        # Containers are numbered in visiting order (the same in both passes). The first
        # pass notes each one's strings and where its subtree ends; the second skips
        # those in which nothing was found.
        self._visits = 0
        self._trail: list[int] = []
        self._extent: dict[int, tuple[int, int, int]] = {}
        self._dirty: set[int] | None = None
        self._keyed_cache: dict[tuple[int, str], tuple[Any, ...] | None] = {}

    def key_class(self, key: str) -> object:
        """The `KeyRule` for a sensitive key, ``_ALLOW`` for an allowlisted one, else None."""
        found = self._keys.get(key, self)
        if found is self:
            normal = normalize_key(key)
            rule = self._lib.keys.get(normal)
            if normal in self._allow:
                found = _ALLOW
            elif rule is not None and rule.scope is not Scope.TEXT:
                found = rule
            else:
                found = None
            if len(self._keys) >= _KEY_CACHE_LIMIT:
                self._keys.clear()
            self._keys[key] = found
        return found

    def walk(self, value: object, path: JsonPath = ()) -> object:
        """Walk ``value``; return it, or its replacement if anything in it was replaced.

        Two passes, so the strings of a structure are scanned together: the first decides
        what to descend into (keys, shapes, limits) and gathers every string it would
        examine, with the visitor silenced; one prefilter pass then says which strings
        need their rules run; the second pass reports and rebuilds. A structure where the
        first pass found nothing at all is returned after it.

        Without ``batch``, one pass: each string is scanned where it is met.
        """
        if not self._batch:
            self._keyed_cache = {}
            try:
                return self._walk(value, path, 0, set(), in_person=False)
            finally:
                self._keyed_cache = {}
        visitor, silent = self._visitor, _Silent(self._trail)
        self._visitor, self._texts, self._found, self._dirty = silent, [], None, None
        self._visits, self._extent, self._keyed_cache = 0, {}, {}
        try:
            self._walk(value, path, 0, set(), in_person=False)
            texts = self._texts
        finally:
            self._visitor, self._texts = visitor, None
        found = self._lib.prefilter.segments(texts) if texts else {}
        if not found and not silent.dirty:
            return value
        flagged = sorted(found)
        dirty = silent.dirty
        for visit, (first, end, _) in self._extent.items():
            at = bisect_left(flagged, first)
            if at < len(flagged) and flagged[at] < end:
                dirty.add(visit)
        self._found, self._dirty, self._index, self._visits = found, dirty, 0, 0
        try:
            return self._walk(value, path, 0, set(), in_person=False)
        finally:
            self._found, self._dirty, self._keyed_cache = None, None, {}

    def _enter(self) -> int | None:
        """Number a container; ``None`` in the second pass when nothing is inside it."""
        visit = self._visits
        self._visits += 1
        if self._dirty is not None and visit not in self._dirty:
            _, end, after = self._extent[visit]
            self._index, self._visits = end, after
            return None
        if self._texts is not None:
            self._trail.append(visit)
            self._extent[visit] = (len(self._texts), 0, 0)
        return visit

    def _leave(self, visit: int) -> None:
        if self._texts is not None:
            self._trail.pop()
            self._extent[visit] = (self._extent[visit][0], len(self._texts), self._visits)

    def string(self, text: str, path: JsonPath = ()) -> object:
        """Examine one string; return it or its replacement."""
        if len(text) > self._max_string:
            return self._visitor.limit(path, "oversized", text)
        if self._texts is not None:  # first pass: gather
            self._texts.append(text)
            return text
        if self._found is not None:  # second pass: only where the prefilter pointed
            names = self._found.get(self._index)
            self._index += 1
            if not names:
                return text
            groups = self._lib.groups_for(text, names)
        else:
            memory = self._memory
            if memory is None:
                groups = self._lib.groups(text)
            elif text in memory:
                return text
            else:
                groups = self._lib.groups(text)
                if not groups:
                    memory.remember((text,))
        if not groups:
            return text
        return self._visitor.text(path, text, groups)

    def _walk(  # noqa: C901, PLR0911 - one branch per kind of value
        self, value: object, path: JsonPath, depth: int, active: set[int], *, in_person: bool
    ) -> object:
        kind = type(value)
        if kind is str:
            return self.string(value, path)  # type: ignore[arg-type]
        if kind in _SCALAR_TYPES or isinstance(value, _TIME_TYPES):
            return value
        if depth >= self._max_depth:
            return self._visitor.limit(path, "too_deep", value)
        # A plain dict is told by its type first: the Mapping test is an ABC check.
        if kind is dict or isinstance(value, Mapping):
            return self._mapping(value, path, depth, active, in_person=in_person)  # type: ignore[arg-type]
        if isinstance(value, list | tuple | set | frozenset):
            return self._collection(value, path, depth, active, in_person=in_person)
        if isinstance(value, str):  # str subclasses such as StrEnum members
            new = self.string(str(value), path)
            return value if new == str(value) else new
        if isinstance(value, bytes | bytearray | memoryview):
            text = bytes(value).decode("utf-8", "surrogateescape")
            new = self.string(text, path)
            if new is text:
                return value
            return new.encode("utf-8", "surrogateescape") if isinstance(new, str) else new
        if isinstance(value, int | float | Enum):
            return value
        if isinstance(value, BaseModel):
            return self._as_mapping(value, dict(value.model_dump()), path, depth, active)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return self._as_mapping(value, fields, path, depth, active)
        return self._object(value, path)

    def _as_mapping(
        self,
        original: object,
        members: Mapping[Any, object],
        path: JsonPath,
        depth: int,
        active: set[int],
    ) -> object:
        if id(original) in active:
            return self._visitor.limit(path, "cycle", original)
        active.add(id(original))
        try:
            new = self._mapping(members, path, depth, active, in_person=False)
        finally:
            active.discard(id(original))
        return original if new is members else new

    def _object(self, value: object, path: JsonPath) -> object:
        # Renderers print unknown objects with repr(); examine what they would print.
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not break logging
            return self._visitor.limit(path, "unreadable", value)
        new = self.string(text, path)
        return value if new is text else new

    def _mapping(  # noqa: C901, PLR0912 - keys, shapes and members in one pass
        self,
        d: Mapping[object, object],
        path: JsonPath,
        depth: int,
        active: set[int],
        *,
        in_person: bool,
    ) -> object:
        if len(d) > self._max_items:
            return self._visitor.limit(path, "oversized", d)
        if id(d) in active:
            return self._visitor.limit(path, "cycle", d)
        visit = self._enter()
        if visit is None:
            return d
        active.add(id(d))
        try:
            kinds = self._lib.kinds
            shape: Shape | None = shape_of(d, in_person=in_person)  # type: ignore[arg-type]
            if shape is not None:
                if shape.whole is not None and shape.whole.kind in kinds:
                    return self._visitor.field(_member_match(path, shape.whole), d)
                if shape.report is not None and shape.report.kind in kinds:
                    self._visitor.report(_member_match(path, shape.report, redact=False))
            members = shape.members if shape is not None else {}
            child_person = shape.person if shape is not None else in_person
            changes: dict[object, object] = {}
            # One pass with a memory (the Redactor): a string it already found clean
            # under a plain key is passed over here, as `string` would, without its path.
            clean = self._memory.strings if self._memory is not None and not self._batch else None
            keys_get, max_string = self._keys.get, self._max_string
            for key, value in d.items():
                if type(key) is str or isinstance(key, str):
                    member = members.get(key)
                    if member is not None and member.kind in kinds:
                        new = self._visitor.field(_member_match((*path, key), member), value)
                    else:
                        rule = keys_get(key, self)
                        if rule is self:
                            rule = self.key_class(key)
                        if rule is None:
                            if (
                                clean is not None
                                and type(value) is str
                                and value in clean
                                and len(value) <= max_string
                            ):
                                continue
                            new = self._walk(
                                value, (*path, key), depth + 1, active, in_person=child_person
                            )
                        elif rule is _ALLOW:
                            continue
                        else:
                            key_path = (*path, key)
                            match = self._keyed(rule, value, key_path)  # type: ignore[arg-type]
                            if match is not None:
                                new = self._visitor.field(match, value)
                            else:
                                new = self._walk(
                                    value, key_path, depth + 1, active, in_person=child_person
                                )
                else:
                    key_path = (*path, key if isinstance(key, int) else repr(key))
                    new = self._walk(value, key_path, depth + 1, active, in_person=child_person)
                if new is not value:
                    changes[key] = new
        finally:
            active.discard(id(d))
            self._leave(visit)
        if not changes:
            return d
        out = dict(d)
        out.update(changes)
        return out

    def _collection(
        self,
        items: list[object] | tuple[object, ...] | set[object] | frozenset[object],
        path: JsonPath,
        depth: int,
        active: set[int],
        *,
        in_person: bool,
    ) -> object:
        if len(items) > self._max_items:
            return self._visitor.limit(path, "oversized", items)
        if id(items) in active:
            return self._visitor.limit(path, "cycle", items)
        visit = self._enter()
        if visit is None:
            return items
        active.add(id(items))
        try:
            # A (name, value) pair, as in ASGI and HTTP client header lists.
            if isinstance(items, list | tuple) and len(items) == 2:  # noqa: PLR2004
                pair = self._header_pair(items, path)
                if pair is not None:
                    return pair
            changed = False
            out: list[object] = []
            for index, value in enumerate(items):
                new = self._walk(value, (*path, index), depth + 1, active, in_person=in_person)
                changed = changed or new is not value
                out.append(new)
        finally:
            active.discard(id(items))
            self._leave(visit)
        if not changed:
            return items
        return _rebuild(items, out)

    def _header_pair(
        self, items: list[object] | tuple[object, ...], path: JsonPath
    ) -> object | None:
        name, value = items
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if not isinstance(name, str):
            return None
        rule = self.key_class(name)
        if not isinstance(rule, KeyRule):
            return None
        match = self._keyed(rule, value, (*path, 1))
        if match is None:
            return None
        return _rebuild(items, [items[0], self._visitor.field(match, value)])

    def _keyed(self, rule: KeyRule, value: object, path: JsonPath) -> FieldMatch | None:
        """`_judge` once per value and walk (both passes ask), placed at ``path``."""
        key = (id(value), rule.rule)
        if key in self._keyed_cache:
            found = self._keyed_cache[key]
        else:
            found = self._keyed_cache[key] = self._judge(rule, value)
        if found is None:
            return None
        kind, normal, facts = found
        return FieldMatch(path, kind, rule.rule, normal, facts=facts, safeguard=rule.safeguard)

    def _judge(self, rule: KeyRule, value: object) -> tuple[Any, ...] | None:
        """Whether the value under a sensitive key counts: (kind, normalized value, facts)."""
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, str):
            text = value
        elif isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8", "replace")
        elif isinstance(value, date | time):
            text = value.isoformat()
        elif isinstance(value, int | float | Decimal):
            text = str(value)
        elif isinstance(value, _CONTAINERS):
            if rule.scope is Scope.SCALAR or not value:
                return None
            return (rule.kind, canonical(value), {})
        else:
            return (rule.kind, canonical(repr(value)), {})
        return judge_text(self._lib, rule, text)


def judge_text(library: PatternLibrary, rule: KeyRule, text: str) -> tuple[Any, ...] | None:
    """Whether a string under a sensitive key counts: (kind, normalized value, facts).

    What the walk decides for a string value of ``rule``'s key; the Redactor decides
    the top-level keys of a flat event the same way without a walk.
    """
    normal = value_of(rule.shape, text)
    if normal is None:
        return None
    if rule.kind in TOKEN_KINDS:
        # Name a token by what it is (a JWT under "authorization"), fingerprint the
        # token itself so it correlates with the same token found in text.
        for m in library.find_in_text(text):
            if m.kind in TOKEN_KINDS:
                return (m.kind, m.value, m.facts)
    return (rule.kind, normal, {})

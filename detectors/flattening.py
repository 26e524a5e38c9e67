"""The detectors' fast path: a parsed record's strings, collected the way the walk visits them.

Most log records are plain JSON: strings, numbers and nested objects, with no FHIR or JWK
shape in them. For those, the walk (`auditor.patterns.Walker`, which the Redactor uses)
would visit the structure twice to learn what one flat list of strings already says.
`Flattener` collects that list in the walk's order, judges the values under sensitive keys
as the walk does (``"authorization": "Bearer [REDACTED:jwt]"`` is scanned as text, a real
token there is reported whole), and gives up — so the walk runs — at anything else the walk
judges by structure: a shape's member, a header pair whose value counts, a Python value
that is not parsed JSON, or a value past a limit. A property test checks that the hits are
the walk's (``tests/test_content_fast_path.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final, cast

from auditor.patterns import JsonPath, KeyRule, Scope, normalize_key
from auditor.patterns.keyed import value_of
from auditor.patterns.shapes import SHAPE_KEYS
from detectors.gathering import WalkSettings

_PLAIN: Final = object()
"""A key of no interest: its value is scanned like any other."""
_SHAPE: Final = object()
"""A member FHIR and JWK shapes are recognised by: the record is walked."""
_ALLOWED: Final = object()
"""An allowlisted key: its value is never examined."""
_KEY_CACHE_LIMIT: Final = 4096
Keyed = tuple[KeyRule, str]
"""A value that counts under its key: the key's rule and the normalized value."""
_JSON_SCALARS: Final = frozenset({int, float, bool, type(None)})


class Flattener:
    """Collects a parsed record's strings and the values that count under their keys.

    Args:
        keys: Sensitive keys by normal form (the library's).
        settings: The walk's limits and allowlisted keys.
    """

    __slots__ = ("_flags", "_keyed", "_settings")

    def __init__(self, keys: Mapping[str, KeyRule], settings: WalkSettings) -> None:
        # Keys the walk judges by structure: sensitive keys (not the text-only FHIR member
        # names) and the members FHIR and JWK shapes are recognised by.
        self._keyed = {n: r for n, r in keys.items() if r.scope is not Scope.TEXT}
        self._settings = settings
        # A memo of key classifications (keys repeat from record to record), bounded.
        self._flags: dict[object, object] = {}

    def flatten(  # noqa: C901, PLR0911, PLR0912 - one pass, one exit per reason to walk
        self, value: object, depth: int, out: list[str], keyed: dict[int, Keyed]
    ) -> bool:
        """Collect the strings of a parsed JSON value, in walk order.

        A string under a sensitive key that counts there is noted in ``keyed`` by its
        index. Returns False as soon as the walk is needed instead: a shape's member
        (FHIR, JWK), a non-string value under a sensitive key, a header pair whose value
        counts, a Python value that is not parsed JSON, or a value past a limit (which
        the walk reports).
        """
        # Exact types are tested (a str subclass or a Mapping is the walk's to judge); the
        # casts then let the compiled build use native str, dict and list operations.
        kind = type(value)
        settings = self._settings
        if kind is str:
            text = cast("str", value)
            if len(text) > settings.max_string:
                return False
            out.append(text)
            return True
        if kind is dict:
            record = cast("dict[object, object]", value)
            if depth >= settings.max_depth or len(record) > settings.max_items:
                return False
            flags = self._flags
            max_string = settings.max_string
            for key, item in record.items():
                flag = flags.get(key)
                if flag is None:
                    flag = self._flag(key)
                if flag is _ALLOWED:
                    continue
                item_kind = type(item)
                if item_kind is str:
                    string = cast("str", item)
                    if len(string) > max_string:
                        return False
                    if flag is not _PLAIN:
                        if flag is _SHAPE:
                            return False
                        rule = cast("KeyRule", flag)
                        normal = value_of(rule.shape, string)
                        if normal is not None:
                            keyed[len(out)] = (rule, normal)
                    out.append(string)
                elif flag is not _PLAIN:
                    return False
                elif item_kind is dict or item_kind is list:
                    if not self.flatten(item, depth + 1, out, keyed):
                        return False
                elif item_kind not in _JSON_SCALARS:
                    return False  # a tuple, bytes, an object: the walk knows them
            return True
        if kind is list:
            items = cast("list[object]", value)
            if depth >= settings.max_depth or len(items) > settings.max_items:
                return False
            # A (name, value) pair, as in header lists, is judged by the name.
            if len(items) == 2 and type(items[0]) is str and not self._plain_pair(items):  # noqa: PLR2004
                return False
            for item in items:
                item_kind = type(item)
                if item_kind is str or item_kind is dict or item_kind is list:
                    if not self.flatten(item, depth + 1, out, keyed):
                        return False
                elif item_kind not in _JSON_SCALARS:
                    return False
            return True
        # Numbers, booleans and null hold nothing; anything else is not parsed JSON.
        return kind in _JSON_SCALARS

    def paths(self, value: object, wanted: Collection[int]) -> dict[int, JsonPath]:
        """The paths of the strings `flatten` collected at the indices ``wanted``.

        One walk in the same order, counting strings; a path is built only for a wanted
        string (most of a record's strings are not), and the walk stops after the last.
        """
        out: dict[int, JsonPath] = {}
        if wanted:
            self._paths(value, [], set(wanted), max(wanted), [0], out)
        return out

    def _paths(  # noqa: C901, PLR0917 - one walk; its state passed down, not allocated
        self,
        value: object,
        trail: list[str | int],
        wanted: set[int],
        last: int,
        count: list[int],
        out: dict[int, JsonPath],
    ) -> bool:
        """Fill ``out``; False once the last wanted string is found (the walk stops)."""
        kind = type(value)
        if kind is str:
            index = count[0]
            count[0] = index + 1
            if index in wanted:
                out[index] = tuple(trail)
            return index < last
        if kind is dict:
            flags = self._flags
            # Its keys are strings: `flatten` gave up at any other (a shape's member).
            for key, item in cast("dict[str, object]", value).items():
                flag = flags.get(key)
                if flag is None:
                    flag = self._flag(key)
                if flag is _ALLOWED:
                    continue
                trail.append(key)
                going = self._paths(item, trail, wanted, last, count, out)
                trail.pop()
                if not going:
                    return False
        elif kind is list:
            for index, item in enumerate(cast("list[object]", value)):
                trail.append(index)
                going = self._paths(item, trail, wanted, last, count, out)
                trail.pop()
                if not going:
                    return False
        return True

    def _plain_pair(self, pair: list[object]) -> bool:
        """Whether a (name, value) pair holds nothing its name makes sensitive."""
        flag = self._flag(pair[0])
        if flag is _PLAIN or flag is _ALLOWED:
            return True
        value = pair[1]
        return isinstance(value, str) and self._plain_under(flag, value)

    @staticmethod
    def _plain_under(flag: object, text: str) -> bool:
        """Whether a string under a sensitive key is judged like any other string.

        As the walk does: a value that does not count under its key (a redacted
        ``Bearer [REDACTED:jwt]``, a placeholder, a word under ``patient``) is scanned
        as text; one that counts is reported by the walk.
        """
        return isinstance(flag, KeyRule) and value_of(flag.shape, text) is None

    def _flag(self, key: object) -> object:
        """How the walk judges a key: allowed, a shape's member, sensitive, or plain."""
        if not isinstance(key, str):
            return _SHAPE
        normal = normalize_key(key)
        flag: object
        if normal in self._settings.allow:
            flag = _ALLOWED
        elif normal in SHAPE_KEYS:
            flag = _SHAPE
        else:
            flag = self._keyed.get(normal, _PLAIN)
        if len(self._flags) >= _KEY_CACHE_LIMIT:
            self._flags.clear()
        self._flags[key] = flag
        return flag

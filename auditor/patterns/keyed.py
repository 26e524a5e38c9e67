"""Values under sensitive keys: in structures (``{"ssn": …}``) and in text (``ssn=…``).

Both paths share `value_of`, which says whether a value under a key counts and what its
normalized form is, so a structure and its JSON text are judged alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

from auditor.patterns.keys import KeyRule, Scope, ValueShape, normalize_key
from auditor.patterns.matches import NO_FACTS, Kind, Match
from auditor.patterns.prefilter import ANCHOR_BYTES
from auditor.patterns.rules import P_KEYED_PHI, P_KEYED_TOKEN
from auditor.patterns.validators import (
    is_placeholder,
    looks_like_credential,
    nanp_digits_are_valid,
    parse_birth_date,
    ssn_digits_are_valid,
)
from auditor.vocabulary import TokenKind

MAX_NAME_CHARS: Final = 200
_TOKEN_KINDS: Final = frozenset(TokenKind)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


_AUTH_SCHEME: Final = re.compile(r"(?i:bearer|basic|digest|negotiate|token|jwt|dpop)[ \t]+")


def _placeholder_header(text: str) -> bool:
    """Whether a header value is a scheme and a placeholder, not a credential.

    ``Bearer [REDACTED:jwt]`` is a redacted header and ``Bearer <token> (see docs)`` a
    placeholder: the word after the scheme is judged.
    """
    scheme = _AUTH_SCHEME.match(text)
    if scheme is None:
        return False
    rest = text[scheme.end() :]
    return is_placeholder(rest) or is_placeholder(rest.split(None, 1)[0] if rest else rest)


def value_of(shape: ValueShape, value: str) -> str | None:  # noqa: C901 - one case per shape
    """The normalized value when ``value`` counts under a key of ``shape``, else ``None``.

    The normalized value is what gets fingerprinted: digits only for SSNs and phone
    numbers, lower case for e-mail, so ``536-22-8714`` and ``536228714`` correlate.
    """
    text = value.strip()
    if (shape is ValueShape.HEADER and _placeholder_header(text)) or is_placeholder(text):
        return None
    result: str | None
    match shape:
        case ValueShape.SECRET | ValueShape.HEADER:
            result = text
        case ValueShape.CREDENTIAL:
            result = text if looks_like_credential(text) else None
        case ValueShape.SSN:
            digits = _digits(text)
            result = digits if ssn_digits_are_valid(digits) else None
        case ValueShape.PHONE:
            digits = _digits(text)
            result = digits[-10:] if nanp_digits_are_valid(digits) else None
        case ValueShape.EMAIL:
            result = text.lower() if "@" in text else None
        case ValueShape.DATE:
            result = text if parse_birth_date(text) else None
        case ValueShape.ID:
            result = text if any(ch.isdigit() for ch in text) or not text.isalpha() else None
        case ValueShape.NAME:
            ok = len(text) <= MAX_NAME_CHARS and any(ch.isalpha() for ch in text)
            result = text if ok else None
        case ValueShape.ADDRESS | ValueShape.LIST:
            result = text if any(ch.isalnum() for ch in text) else None
        case ValueShape.CONTAINER:
            result = None
    return result


# A key, possibly quoted (also as escaped JSON inside a string), then `:` or `=`.
KEY_RE: Final = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<q>\\?[\"']?)(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,63}+)(?P=q)"
    r"[ \t]{0,3}+[:=][ \t]{0,3}+"
)
VALUE_RE: Final = re.compile(
    r"""\\"(?P<edq>[^"\\\r\n]{0,4096}+)(?:\\")?
      | "(?P<dq>(?:[^"\\\r\n]|\\.){0,4096}+)"?
      | '(?P<sq>(?:[^'\\\r\n]|\\.){0,4096}+)'?
      | \[(?P<arr>[^\]\r\n]{0,4096}+)\]?
      | (?P<bare>[^\s"',;&}\]<>\[{]{1,4096}+)
    """,
    re.VERBOSE,
)
HEADER_VALUE_RE: Final = re.compile(r"(?P<bare>[^\s\"'\[{][^\r\n\"'&]{0,4095}+)")
_LIST_ITEM_RE: Final = re.compile(r"\\?\"([^\"\\]*)\\?\"|'([^']*)'")


_SEPARATORS: Final = ("=", ":", '"', "'", "\\")


def _trigger_forms(rule: KeyRule) -> set[str]:
    """The key as written in text: ``access_token``, ``access-token``, ``accessToken``.

    A separator follows it when the bare word is too common. A derived spelling without
    an anchor byte (`ANCHOR_BYTES`) cannot be scanned for cheaply and is left out;
    explicit triggers are kept as given (the prefilter tests a few anchorless ones with
    ``in``, and refuses too many).
    """
    explicit = rule.triggers is not None
    if rule.triggers is not None:
        bases = set(rule.triggers)
    else:
        words = rule.name.split("_")
        bases = {sep.join(words) for sep in ("", "_", "-")}
    forms: set[str] = set()
    for form in bases:
        if not explicit and not ANCHOR_BYTES.intersection(form.encode()):
            continue
        if rule.strong:
            forms.add(form)
        else:
            forms.update(form + sep for sep in _SEPARATORS)
    return forms


class KeyedRule:
    """Finds ``key=value``, ``key: value`` and ``"key": "value"`` for sensitive keys in text.

    Matching is two-step so hostile input stays linear: a bounded key candidate first,
    and the (longer) value only after its key is known to be sensitive.

    Args:
        keys: The key table by normal form (`auditor.patterns.keys.key_rules`).
    """

    name: Final = "keyed"
    __slots__ = ("_cache", "_keys", "examples", "triggers")

    def __init__(self, keys: Mapping[str, KeyRule]) -> None:
        self._keys = {
            normal: rule for normal, rule in keys.items() if rule.shape is not ValueShape.CONTAINER
        }
        self._cache: dict[str, KeyRule | None] = {}
        self.triggers: tuple[str, ...] = tuple(
            sorted({t for rule in self._keys.values() for t in _trigger_forms(rule)})
        )
        self.examples: tuple[str, ...] = (
            "login failed password=hunter2 user=svc",
            "{'access_token': 'opaque-8f3kQ9zLr2', 'token_type': 'Bearer'}",
            '{"ssn": "536-22-8714", "dob": "1954-03-07"}',
            '"patientId":"smart-1288992"',
            'body="{\\"client_secret\\": \\"Xk29-sEcr3t\\"}"',
            'resource={"name":[{"family":"Lopez","given":["Maria","Ana"]}]}',
            "Authorization: Basic-ish custom-scheme Zm9vOmJhcg",
            "GET /fhir?access_token=opaque-8f3kQ9zLr2&x=1",
        )

    def rule_for(self, key: str) -> KeyRule | None:
        """The key rule for ``key`` in any spelling, if it is sensitive."""
        found = self._cache.get(key, False)
        if found is False:
            found = self._keys.get(normalize_key(key))
            if len(self._cache) > 4096:  # noqa: PLR2004 - bounded: keys can be attacker data
                self._cache.clear()
            self._cache[key] = found
        return found  # type: ignore[return-value]  # False was replaced above

    def find(self, text: str) -> Iterator[Match]:
        """Yield the values under sensitive keys in ``text``."""
        pos = 0
        key_search = KEY_RE.search
        while (km := key_search(text, pos)) is not None:
            pos = km.end()
            rule = self.rule_for(km.group("key"))
            if rule is None:
                continue
            found = self._value(rule, text, km.end())
            if found is not None:
                yield found
                pos = max(pos, found.end)

    def _value(self, rule: KeyRule, text: str, at: int) -> Match | None:  # noqa: C901, PLR0911 - each exit is a reason to reject
        vm = None
        if rule.shape is ValueShape.HEADER:
            vm = HEADER_VALUE_RE.match(text, at)
        if vm is None:
            vm = VALUE_RE.match(text, at)
        if vm is None:
            return None
        group = vm.lastgroup
        if group is None:
            return None
        if (group == "arr") != (rule.shape is ValueShape.LIST) and rule.scope is Scope.TEXT:
            return None
        raw = vm.group(group)
        if raw.lstrip().startswith("[REDACTED"):
            return None
        # A bare value cut short by a brace is a template (``${CLIENT_SECRET}``, ``%{x}``).
        if group == "bare" and text[vm.end() : vm.end() + 1] == "{":
            return None
        if group == "arr":
            items = [a or b for a, b in _LIST_ITEM_RE.findall(raw)]
            shape = ValueShape.NAME if rule.shape is ValueShape.LIST else rule.shape
            if not any(value_of(shape, item) is not None for item in items):
                return None
            value: str | None = ",".join(items)
        else:
            value = value_of(rule.shape, raw)
        if value is None:
            return None
        start, end = vm.span(group)
        # Trim the span to the value itself, so the marker keeps surrounding spacing.
        stripped = raw.strip()
        start += raw.index(stripped[:1]) if stripped else 0
        end = start + len(stripped)
        return _keyed_match(rule, rule.kind, start, end, value)


def _keyed_match(rule: KeyRule, kind: Kind, start: int, end: int, value: str) -> Match:
    priority = P_KEYED_TOKEN if kind in _TOKEN_KINDS else P_KEYED_PHI
    return Match(kind, rule.rule, start, end, value, NO_FACTS, rule.safeguard, 1.0, priority)

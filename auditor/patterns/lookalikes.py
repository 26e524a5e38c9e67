r"""Look-alikes: exact value shapes in which no trigger of a prefilter can occur.

Log events are full of values that look like tokens to a casual eye but have a fixed,
harmless shape: UUIDs (``hookInstance``, request ids, ``jti``), hex digests and trace ids,
dotted numbers (versions, IPv4 addresses), ISO 8601 timestamps, plain numbers. A value
that has one of these shapes *whole* cannot hold a secret that any rule finds.

That is a claim about the rules, so it is proved, not assumed: a shape is used only if no
trigger of the prefilter in front of those rules can occur anywhere in any value of the
shape (each rule promises that one of its triggers occurs in whatever it matches; see
`auditor.patterns.prefilter`). The proof runs when a `Lookalikes` is built, over the
shape's folded language (digits as ``0``, letters in lower case), so a rule added later
whose trigger fits inside a shape (say ``deadbeef`` inside a UUID) switches that shape off
for its library instead of being silently defeated.

The test is cheap on purpose (it runs on every new value of every event): a value's
*skeleton* is its UTF-8 bytes with each hex digit (``0-9a-fA-F``) written as ``h``, the
few other characters the shapes use kept, and every other byte written as ``\0``. Each
shape is a finite set of skeletons, so a value is a look-alike when one ``translate`` and
one set lookup say its skeleton is one of them (about half the cost of a regex
``fullmatch``). Hence the shapes are written over hex digits: a "version" may be
``a.b.c``, and the proof covers exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product
from typing import Final

from auditor.patterns.prefilter import PLAIN_FOLD, utf8

HEX: Final = "0123456789abcdefABCDEF"
_HEX_MARK: Final = ord("h")


@dataclass(frozen=True, slots=True)
class _Run:
    """``low`` to ``high`` characters, each one of ``chars``: all of `HEX`, or others."""

    chars: str
    low: int = 1
    high: int = 1


@dataclass(frozen=True, slots=True)
class _Seq:
    parts: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    options: tuple[_Node, ...]


_Node = _Run | _Seq | _Alt
_EMPTY: Final = _Seq(())


def _seq(*parts: _Node | str) -> _Seq:
    """A sequence; a str part is that literal text."""
    return _Seq(tuple(_literal(p) if isinstance(p, str) else p for p in parts))


def _literal(text: str) -> _Node:
    return _Seq(tuple(_Run(c) for c in text))


def _opt(*parts: _Node | str) -> _Alt:
    return _Alt((_seq(*parts), _EMPTY))


def _either(*options: _Node | str) -> _Alt:
    return _Alt(tuple(_literal(o) if isinstance(o, str) else o for o in options))


def _hex(low: int, high: int | None = None) -> _Run:
    return _Run(HEX, low, low if high is None else high)


def _one_of(chars: str) -> _Run:
    return _Run(chars)


_ZONE: Final = _either(_one_of("Zz"), _seq(_one_of("+-"), _hex(2), _opt(":"), _hex(2)))

SHAPES: Final[dict[str, _Node]] = {
    # 8-4-4-4-12: request ids, hookInstance, jti.
    "uuid": _seq(_hex(8), "-", _hex(4), "-", _hex(4), "-", _hex(4), "-", _hex(12)),
    # Digests (MD5 to SHA-512), trace and span ids.
    "hex": _hex(16, 128),
    # Versions and IPv4 addresses. At most three digits a part: a fourth would let a
    # phone number (555.123.4567) in, and the proof would refuse the shape.
    "dotted": _seq(
        _opt(_one_of("vV")), _hex(1, 3), ".", _hex(1, 3), _opt(".", _hex(1, 3)),
        _opt(".", _hex(1, 3)),
    ),
    # ISO 8601 / RFC 3339 dates and times (a date alone is no birth date without a
    # keyword, and a keyword is a trigger).
    "timestamp": _seq(
        _hex(4), "-", _hex(2), "-", _hex(2),
        _opt(
            _one_of("T "), _hex(2), ":", _hex(2), _opt(":", _hex(2), _opt(".", _hex(1, 9))),
            _opt(_ZONE),
        ),
    ),
    # Plain decimal numbers, as strings.
    "number": _seq(_opt("-"), _hex(1, 20), _opt(".", _hex(1, 20))),
}  # fmt: skip
"""The candidate shapes, by name: each proved safe (or not) per trigger set."""


def _skeleton_table() -> bytes:
    table = bytearray(256)
    literals = {c for node in SHAPES.values() for c in _chars(node)} - set(HEX)
    for char in literals:
        table[ord(char)] = ord(char)
    for char in HEX:
        table[ord(char)] = _HEX_MARK
    return bytes(table)


def _chars(node: _Node) -> set[str]:
    if isinstance(node, _Run):
        return set(node.chars)
    parts = node.parts if isinstance(node, _Seq) else node.options
    return set().union(*map(_chars, parts)) if parts else set()


def _skeletons(node: _Node) -> set[bytes]:
    """Every skeleton of the shape (a finite set: shapes are bounded)."""
    if isinstance(node, _Run):
        marks = {_HEX_MARK} if node.chars == HEX else {ord(c) for c in node.chars}
        return {
            bytes(combo)
            for count in range(node.low, node.high + 1)
            for combo in product(sorted(marks), repeat=count)
        }
    if isinstance(node, _Alt):
        return set().union(*map(_skeletons, node.options))
    out = {b""}
    for part in node.parts:
        out = {head + tail for head in out for tail in _skeletons(part)}
    return out


SKELETON: Final = _skeleton_table()
"""``text.encode("utf-8", "surrogatepass").translate(SKELETON)`` is the skeleton of text."""


def _pattern(node: _Node) -> str:
    if isinstance(node, _Run):
        chars = re.escape(node.chars)
        one = chars if len(node.chars) == 1 else f"[{chars}]"
        if node.low == node.high == 1:
            return one
        if node.low == node.high:
            return f"{one}{{{node.low}}}"
        return f"{one}{{{node.low},{node.high}}}"
    if isinstance(node, _Seq):
        return "".join(_pattern(p) for p in node.parts)
    if _EMPTY in node.options:
        rest = [o for o in node.options if o != _EMPTY]
        return f"(?:{'|'.join(_pattern(o) for o in rest)})?"
    return f"(?:{'|'.join(_pattern(o) for o in node.options)})"


def shape_pattern(shape: str) -> str:
    """The regular expression (``re`` syntax) of the named shape: its exact language."""
    return _pattern(SHAPES[shape])


class _Nfa:
    """A Thompson automaton over folded bytes, for the proof only."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[frozenset[int], int]]] = []
        self.empty: list[list[int]] = []
        self.alphabet: frozenset[int] = frozenset()

    def state(self) -> int:
        self.moves.append([])
        self.empty.append([])
        return len(self.moves) - 1

    def build(self, node: _Node, start: int) -> int:
        """Add ``node`` after ``start``; return its end state."""
        if isinstance(node, _Run):
            folded = frozenset(c.encode("ascii").translate(PLAIN_FOLD)[0] for c in node.chars)
            self.alphabet |= folded
            end = start
            for count in range(node.high):
                nxt = self.state()
                self.moves[end].append((folded, nxt))
                if count >= node.low:
                    self.empty[end].append(nxt)  # an optional character may be skipped
                end = nxt
            return end
        if isinstance(node, _Seq):
            end = start
            for part in node.parts:
                end = self.build(part, end)
            return end
        end = self.state()
        for option in node.options:
            first = self.state()
            self.empty[start].append(first)
            self.empty[self.build(option, first)].append(end)
        return end

    def closure(self, states: Iterable[int]) -> set[int]:
        seen = set(states)
        todo = list(seen)
        while todo:
            for nxt in self.empty[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def holds_substring(self, needle: bytes) -> bool:
        """Whether some string of the language contains ``needle``.

        Every state lies on a path from the start to the end (the construction builds
        no dead branches), so a run of ``needle`` from any state extends to a whole value.
        """
        if not self.alphabet.issuperset(needle):
            return False  # most triggers hold a letter no shape has
        current = self.closure(range(len(self.moves)))
        for byte in needle:
            current = self.closure(
                nxt for state in current for chars, nxt in self.moves[state] if byte in chars
            )
            if not current:
                return False
        return True


def _automaton(shape: str) -> _Nfa:
    nfa = _Nfa()
    nfa.build(SHAPES[shape], nfa.state())
    return nfa


def shape_admits(shape: str, trigger: bytes) -> bool:
    """Whether the folded ``trigger`` can occur in some value of the named shape."""
    return _automaton(shape).holds_substring(trigger)


class Lookalikes:
    """The shapes that hold none of ``triggers``, as a set of skeletons.

    Args:
        triggers: The prefilter's triggers, folded (`auditor.patterns.Prefilter.triggers`).
        max_length: Use no shape whose values can be longer (0: none).

    Attributes:
        names: The shapes in use (proved to hold no trigger).
        skeletons: Their skeletons: ``text`` is a look-alike when
            ``text.encode("utf-8", "surrogatepass").translate(SKELETON)`` is one of them.
    """

    __slots__ = ("names", "skeletons")

    def __init__(self, triggers: Iterable[bytes], *, max_length: int = 1 << 20) -> None:
        triggers = tuple(triggers)
        names = []
        skeletons: set[bytes] = set()
        for name, shape in SHAPES.items():
            if any(map(_automaton(name).holds_substring, triggers)):
                continue
            shaped = _skeletons(shape)
            if max(map(len, shaped)) <= max_length:
                names.append(name)
                skeletons |= shaped
        self.names: tuple[str, ...] = tuple(names)
        self.skeletons: frozenset[bytes] = frozenset(skeletons)

    def match(self, text: str) -> bool:
        """Whether ``text`` is wholly a value of one of the shapes in use."""
        return utf8(text).translate(SKELETON) in self.skeletons

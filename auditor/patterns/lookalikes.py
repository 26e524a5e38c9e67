"""Look-alikes: exact value shapes in which no trigger of a prefilter can occur.

Log events are full of values that look like tokens to a casual eye but have a fixed,
harmless shape: UUIDs (``hookInstance``, request ids, ``jti``), hex digests and trace ids,
dotted numbers (versions, IPv4 addresses), ISO 8601 timestamps, plain numbers. A value
that matches one of these shapes *whole* cannot hold a secret that any rule finds, and
one ``fullmatch`` says so for less than the prefilter's pass costs.

That is a claim about the rules, so it is proved, not assumed: a shape is used only if no
trigger of the prefilter in front of those rules can occur anywhere in any value of the
shape (each rule promises that one of its triggers occurs in whatever it matches; see
`auditor.patterns.prefilter`). The proof runs when a `Lookalikes` is built, over the
shape's folded language (digits as ``0``, letters in lower case), so a rule added later
whose trigger fits inside a shape (say ``deadbeef`` inside a UUID) switches that shape off
for its library instead of being silently defeated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from auditor.patterns.prefilter import PLAIN_FOLD

_DIGITS: Final = "0123456789"
_HEX: Final = "0123456789abcdefABCDEF"


@dataclass(frozen=True, slots=True)
class _Run:
    """``low`` to ``high`` characters, each one of ``chars`` (ASCII only)."""

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


def _seq(*parts: _Node | str) -> _Seq:
    """A sequence; a str part is that literal text."""
    return _Seq(tuple(_literal(p) if isinstance(p, str) else p for p in parts))


def _literal(text: str) -> _Node:
    return _Seq(tuple(_Run(c) for c in text))


def _opt(*parts: _Node | str) -> _Alt:
    return _Alt((_seq(*parts), _Seq(())))


def _either(*options: _Node | str) -> _Alt:
    return _Alt(tuple(_literal(o) if isinstance(o, str) else o for o in options))


def _digits(low: int, high: int | None = None) -> _Run:
    return _Run(_DIGITS, low, low if high is None else high)


def _hex(low: int, high: int | None = None) -> _Run:
    return _Run(_HEX, low, low if high is None else high)


def _one_of(chars: str) -> _Run:
    return _Run(chars)


_ZONE: Final = _either(_one_of("Zz"), _seq(_one_of("+-"), _digits(2), _opt(":"), _digits(2)))

SHAPES: Final[dict[str, _Node]] = {
    # 8-4-4-4-12 hex: request ids, hookInstance, jti.
    "uuid": _seq(_hex(8), "-", _hex(4), "-", _hex(4), "-", _hex(4), "-", _hex(12)),
    # Digests (MD5 to SHA-512), trace and span ids.
    "hex": _hex(16, 128),
    # Versions and IPv4 addresses. At most three digits a part: a fourth would let a
    # phone number (555.123.4567) in, and the proof would refuse the shape.
    "dotted": _seq(
        _opt(_one_of("vV")),
        _digits(1, 3),
        ".",
        _digits(1, 3),
        _opt(".", _digits(1, 3)),
        _opt(".", _digits(1, 3)),
    ),
    # ISO 8601 / RFC 3339 dates and times (a date alone is no birth date without a
    # keyword, and a keyword is a trigger).
    "timestamp": _seq(
        _digits(4),
        "-",
        _digits(2),
        "-",
        _digits(2),
        _opt(
            _one_of("T "),
            _digits(2),
            ":",
            _digits(2),
            _opt(":", _digits(2), _opt(".", _digits(1, 9))),
            _opt(_ZONE),
        ),
    ),
    # Plain decimal numbers, as strings.
    "number": _seq(_opt("-"), _digits(1, 40), _opt(".", _digits(1, 40))),
}
"""The candidate shapes, by name: each proved safe (or not) per trigger set."""


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
    if any(isinstance(o, _Seq) and not o.parts for o in node.options):
        rest = [o for o in node.options if not (isinstance(o, _Seq) and not o.parts)]
        return f"(?:{'|'.join(_pattern(o) for o in rest)})?"
    return f"(?:{'|'.join(_pattern(o) for o in node.options)})"


def shape_pattern(shape: str) -> str:
    """The regular expression (``re`` syntax) of the named shape."""
    return _pattern(SHAPES[shape])


def _max_length(node: _Node) -> int:
    if isinstance(node, _Run):
        return node.high
    if isinstance(node, _Seq):
        return sum(_max_length(p) for p in node.parts)
    return max(_max_length(o) for o in node.options)


class _Nfa:
    """A Thompson automaton over folded bytes, for the proof only."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[frozenset[int], int]]] = []
        self.empty: list[list[int]] = []
        self.alphabet: frozenset[int] | None = None

    def state(self) -> int:
        self.moves.append([])
        self.empty.append([])
        return len(self.moves) - 1

    def build(self, node: _Node, start: int) -> int:
        """Add ``node`` after ``start``; return its end state."""
        if isinstance(node, _Run):
            folded = frozenset(c.encode("ascii").translate(PLAIN_FOLD)[0] for c in node.chars)
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
        if self.alphabet is None:
            self.alphabet = frozenset(
                b for moves in self.moves for chars, _ in moves for b in chars
            )
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
    """The shapes that hold none of ``triggers``, tested with one ``fullmatch``.

    Args:
        triggers: The prefilter's triggers, folded (`auditor.patterns.Prefilter.triggers`).

    Attributes:
        names: The shapes in use (proved to hold no trigger), in the order tried.
        max_length: The longest value any of them matches (0 when none is in use).
        match: ``match(text)`` is truthy when ``text`` is wholly one of the shapes.
    """

    __slots__ = ("match", "max_length", "names")

    def __init__(self, triggers: Iterable[bytes]) -> None:
        triggers = tuple(triggers)
        automata = {name: _automaton(name) for name in SHAPES}
        self.names: tuple[str, ...] = tuple(
            name for name, nfa in automata.items() if not any(map(nfa.holds_substring, triggers))
        )
        self.max_length = max((_max_length(SHAPES[n]) for n in self.names), default=0)
        union = "|".join(f"(?:{_pattern(SHAPES[name])})" for name in self.names)
        self.match: Callable[[str], object] = re.compile(union or "(?!)").fullmatch

r"""A cheap test that says which rules could match a text, before any exact rule runs.

Log events are overwhelmingly clean, so the common path must be a single pass over the
event's strings. The text is folded with ``bytes.translate`` (ASCII letters to lower case,
digits to ``0``); every rule declares trigger literals in that folded alphabet. Three
facts about CPython's ``re`` shape the design (measured on this project's corpus):

- A pattern whose branches all start with one literal byte is searched with a tight C
  loop (~1 ns a byte); branches starting with different bytes make ``re`` test a
  character set at every position (~10 ns a byte), and with a few hundred triggers an
  exact search costs tens of microseconds per line.
- Every position where that first byte occurs costs a match attempt: ~11 ns, plus ~2 ns
  for each alternative tried there and ~10 ns for each lookbehind.
- A ``bytes.translate`` of a log line costs about as much as one such search.

So every trigger must hold an anchor byte (`RARE_ANCHORS` or `COMMON_ANCHORS`). One
translate folds the text and marks anchors: rare ones become ``\x01``, common ones
``\x02`` (and separators ``\x03``). Each group is searched with its own pattern: the
anchor byte, then a trie of what follows the anchor in each trigger (what precedes it is
checked with a lookbehind). Rare anchors are few, so their many triggers cost little;
common anchors are frequent, so they carry only a few triggers with a small trie. A
search may confuse two anchors of a group, so each hit is confirmed exactly with
``bytes.startswith``. A few triggers have no anchor byte at all (``@``, digit groups such
as ``000-00-0000``): each is tested with ``in`` on the marked text decoded as latin-1
(``bytes in bytes`` first tries its operand as an int and builds a TypeError, ~300 ns a
test; ``str in str`` costs ~40 ns).

Saying *which* rules to run (`Prefilter.identify`) must find every trigger, not one, so it
visits every anchor in the text; in base64 (a JWT) a quarter of the bytes are rare
anchors. It restarts a plain search past each hit (no lookahead, no capture group), and
the few triggers anchored at their last byte (``security``, ``assertion``), which would
make every visit run lookbehinds, are found with ``bytes.find`` instead.

The prefilter may say yes when no rule matches; it must never say no when one does: every
positive example of every rule must trip it (a property test checks this).

Measured on the clean events of ``bench/corpus.py`` (~150 bytes of strings each, on a
shared 2-core machine, so read the numbers as proportions): one trie of all triggers
searched directly took ~40 us a line (a character-set test at every position); one
merged anchor byte, ~3.5 us but 98% of clean lines hit (anchors of different kinds looked
alike); two anchor groups with lookbehinds, ~2.3 us in a tight loop with 9% hits, which
is the design here (separators folded to one byte, digit groups tested with ``in``, and
lookbehinds only for short tails, to keep the compiled patterns small). In a structlog
pipeline the same scan costs about twice its tight-loop time, and sre's work per
candidate (~60-100 ns, ~12 candidates an event) dominates. A C Aho-Corasick
(``ahocorasick-rs``) did the scan ~45% faster; see the README.
"""

from __future__ import annotations

import re
import string
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final

BytesAhoCorasick: Any
Implementation: Any
try:
    from ahocorasick_rs import BytesAhoCorasick, Implementation
except ImportError:  # the fast extra is optional
    BytesAhoCorasick = Implementation = None

ANCHOR: Final = 0x01
"""What rare anchor bytes become in marked text."""
COMMON_MARK: Final = 0x02
"""What common anchor bytes become in marked text."""

COMMONNESS: Final = b'0ecatr-ds.\nofi/hpn blm:ugwkxvjy=_qz$"(),&;?|+'
"""Bytes of folded CDS service logs, most common first (measured on the clean events of
``bench/corpus.py``: ``0`` is 24% of bytes, ``e`` 8.5%, ``-`` 3.9%, ``b`` 2.0%, ``k`` 0.7%,
``j`` 0.4%, ``z`` 0.2%, ``@`` and ``#`` never). A byte not listed counts as rarest."""

_RANK: Final = {byte: len(COMMONNESS) - i for i, byte in enumerate(COMMONNESS)}

RARE_ANCHORS: Final = frozenset(b"jkqvwxyz#?&(+$|*!<>[]{}%~^`;_")
"""Anchor bytes that are rare in log text (together ~4% of a clean event's bytes)."""

COMMON_ANCHORS: Final = frozenset(b"bmn")
"""Anchor bytes admitted for triggers with nothing rarer (~1-2% of bytes each): ``b`` for
``bearer``, ``basic``, ``birth``, ``m`` and ``n`` for ``mrn``, ``ssn``, ``name``,
``phone`` and FHIR ``Patient/`` references."""

MAX_LITERALS: Final = 8
"""Triggers without an anchor byte (``@``, the digit groups of SSNs and phone numbers) are
each tested with ``in``: cheap one by one, so a few are allowed, but each adds a pass."""

SEPARATORS: Final = frozenset(b":=#\"'\\")
"""Key/value separators (``ssn:``, ``ssn=``, ``"ssn"``). The quick searches see them as one
byte, so a keyword's forms share one branch of the trie; confirmation is exact. Space,
``.`` and ``,`` stay apart: "token rejected" and "jwt.validated" must not look like
``token:`` and ``jwt=``."""
SEPARATOR_MARK: Final = 0x03

ANCHOR_BYTES: Final = RARE_ANCHORS | COMMON_ANCHORS
"""Key/value separators (``=``, ``:``, quotes, ``,``) are deliberately not anchors: anchors
of a group look alike to the quick search, and ``patient:`` must not look like the
``patient-`` of every ``patient-view`` hook. A trigger without an anchor byte is a
configuration error: it would make every space or vowel a match attempt."""


def _fold_table() -> bytes:
    table = bytearray(range(256))
    for upper, lower in zip(string.ascii_uppercase, string.ascii_lowercase, strict=True):
        table[ord(upper)] = ord(lower)
    for digit in string.digits:
        table[ord(digit)] = ord("0")
    return bytes(table)


PLAIN_FOLD: Final = _fold_table()
"""Lower-case ASCII letters, every digit to ``0``; how triggers are written."""


def utf8(text: str) -> bytes:
    """``text.encode("utf-8", "surrogatepass")``, by the fast path when it can.

    Compiled, ``text.encode()`` is a direct call into CPython's UTF-8 encoder (no codec
    name to look up: about half the cost on a short string). It refuses only a lone
    surrogate, which a log string may hold: that text is encoded as ``surrogatepass`` does.
    """
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def fold(text: str) -> bytes:
    """Fold ``text`` the way triggers are written (no anchors): for tests and tools."""
    return utf8(text).translate(PLAIN_FOLD)


def _rarity(byte: int) -> int:
    return _RANK.get(byte, 0)


def anchor_of(trigger: bytes) -> int:
    """The index of the byte a trigger is anchored at.

    A byte before the last if there is one (so a tail byte follows and the trie dispatches
    on it: an anchor at the end leaves only a lookbehind, which every match attempt then
    pays for), then a rare anchor over a common one, then the rarest.

    Raises:
        ValueError: The trigger holds no anchor byte.
    """
    ranked = [
        ((index == len(trigger) - 1, byte in COMMON_ANCHORS, _rarity(byte)), index)
        for index, byte in enumerate(trigger)
        if byte in ANCHOR_BYTES
    ]
    if not ranked:
        raise ValueError(f"trigger {trigger!r} holds no anchor byte; add a rarer character")
    return min(ranked)[1]


class _Node:
    __slots__ = ("children", "prefixes")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.prefixes: set[bytes] = set()  # triggers ending here, by what precedes the anchor


def _lookbehind(prefixes: Iterable[bytes], tail: bytes, anchor: bytes) -> bytes:
    """One lookbehind per prefix width (``re`` needs fixed width), each an alternation."""
    by_width: dict[int, list[bytes]] = {}
    for prefix in prefixes:
        by_width.setdefault(len(prefix), []).append(prefix)
    checks = [
        b"(?<=(?:"
        + b"|".join(re.escape(p) for p in sorted(group))
        + b")"
        + re.escape(anchor + tail)
        + b")"
        for _, group in sorted(by_width.items())
    ]
    return checks[0] if len(checks) == 1 else b"(?:" + b"|".join(checks) + b")"


MIN_SPECIFIC_TAIL: Final = 3
"""A tail this long is specific enough alone; a shorter one also checks what precedes
the anchor (a lookbehind). Lookbehinds make the compiled pattern large, and a large
pattern is slow in a real logging pipeline, where other code evicts it from the CPU's
caches between events (measured: ~2.5x slower than in a tight loop)."""


def _emit(node: _Node, tail: bytes, anchor: bytes) -> bytes:
    """The regex for a trie node: longer tails first, then the end conditions here."""
    branches = [
        re.escape(bytes([byte])) + _emit(child, tail + bytes([byte]), anchor)
        for byte, child in sorted(node.children.items())
    ]
    if node.prefixes:
        if b"" in node.prefixes or len(tail) >= MIN_SPECIFIC_TAIL:
            branches.append(b"")
        else:
            branches.append(_lookbehind(node.prefixes, tail, anchor))
    if len(branches) == 1:
        return branches[0]
    return b"(?:" + b"|".join(branches) + b")"


_Placed = tuple[bytes, bytes, bytes, int, frozenset[str]]
"""A trigger placed in a group: tail and prefix (marked), the trigger, its anchor index,
and its rules."""


def _trie(placed: Iterable[_Placed], anchor: bytes) -> bytes:
    root = _Node()
    for tail, prefix, _, _, _ in placed:
        node = root
        for byte in tail:
            node = node.children.setdefault(byte, _Node())
        node.prefixes.add(prefix)
    return re.escape(anchor) + _emit(root, b"", anchor)


class _Group:
    """The triggers anchored at one group's bytes, and their compiled searches."""

    __slots__ = ("candidates", "ends", "search", "seek")

    def __init__(self, mark: int, placed: list[_Placed]) -> None:
        anchor = bytes([mark])
        self.search = re.compile(_trie(placed, anchor)).search
        # Finding every trigger (not just one) visits every anchor in the text, and a
        # trigger with nothing after its anchor would make each visit run lookbehinds
        # (in base64 a quarter of the bytes are rare anchors): those few are found with
        # bytes.find instead, and the rest with a plain search restarted past each hit.
        tailed = [item for item in placed if item[0]]
        self.ends = tuple((trigger, rules) for tail, _, trigger, _, rules in placed if not tail)
        self.seek = re.compile(_trie(tailed, anchor)).search if tailed else None
        # The trie prefers the longest tail at a position; triggers whose tails are
        # prefixes of it may occur there too. Each is confirmed exactly; candidates are
        # indexed by tail and by the real byte at the anchor, so few are tried.
        self.candidates: dict[tuple[bytes, int], tuple[tuple[bytes, int, frozenset[str]], ...]] = {}
        for tail in {item[0] for item in tailed}:
            for other, _, trigger, at, rules in tailed:
                if tail.startswith(other):
                    key = (tail, trigger[at])
                    self.candidates[key] = (*self.candidates.get(key, ()), (trigger, at, rules))


class Prefilter:
    """Says which rules could match a text.

    With the optional ``ahocorasick-rs`` package (the ``fast`` extra), a Rust
    Aho-Corasick automaton over the folded triggers answers `quick` and `identify`
    instead, exactly (`quick` then says yes only when a trigger occurs): one call, with
    no Python work per candidate, where ``re`` visits every anchor of a JWT-long string.

    Args:
        triggers: For each trigger literal (folded: lower case, digits as ``0``), the
            names of the rules it stands for.
        accelerate: Use the Aho-Corasick engine when it is installed.

    Raises:
        ValueError: No triggers, or more than `MAX_LITERALS` without an anchor byte.
    """

    __slots__ = (
        "_automaton",
        "_groups",
        "_literals",
        "_marked_literals",
        "_rules_of",
        "_searches",
        "_table",
        "triggers",
    )

    def __init__(  # noqa: C901 - one pass over the triggers
        self, triggers: Mapping[bytes, Collection[str]], *, accelerate: bool = True
    ) -> None:
        if not triggers or not all(triggers):
            raise ValueError("a prefilter needs non-empty triggers")
        self._automaton: Any = None
        self._rules_of: tuple[frozenset[str], ...] = ()
        if accelerate and BytesAhoCorasick is not None:
            self._automaton = BytesAhoCorasick(list(triggers), implementation=Implementation.DFA)
            self._rules_of = tuple(frozenset(rules) for rules in triggers.values())
        self.triggers: tuple[bytes, ...] = tuple(triggers)
        """The trigger literals, folded."""
        table = bytearray(PLAIN_FOLD)
        for byte in range(256):
            if table[byte] in {ANCHOR, COMMON_MARK, SEPARATOR_MARK}:
                table[byte] = 0x04  # real control bytes must not pose as marks
        for byte in range(256):
            if table[byte] in RARE_ANCHORS:
                table[byte] = ANCHOR
            elif table[byte] in COMMON_ANCHORS:
                table[byte] = COMMON_MARK
            elif table[byte] in SEPARATORS:
                table[byte] = SEPARATOR_MARK
        self._table = bytes(table)
        literals = {
            t: frozenset(r)
            for t, r in triggers.items()
            if len(t) == 1 or not ANCHOR_BYTES.intersection(t)
        }
        if len(literals) > MAX_LITERALS:
            raise ValueError(
                f"{len(literals)} triggers have no anchor byte (at most {MAX_LITERALS}): "
                f"{sorted(literals)}; add a rarer character to them"
            )
        self._literals = tuple(literals.items())
        self._marked_literals = tuple(
            {t.translate(self._table).decode("latin-1") for t in literals}
        )
        placed: dict[int, list[_Placed]] = {ANCHOR: [], COMMON_MARK: []}
        for trigger, rules in triggers.items():
            if trigger in literals:
                continue
            at = anchor_of(trigger)
            marked = trigger.translate(self._table)
            placed[marked[at]].append(
                (marked[at + 1 :], marked[:at], trigger, at, frozenset(rules))
            )
        self._groups = tuple(_Group(mark, items) for mark, items in placed.items() if items)
        self._searches = tuple(group.search for group in self._groups)

    @staticmethod
    def folded(text: str) -> bytes:
        """The folded bytes of ``text`` (UTF-8; ASCII letters lower-cased; digits as 0)."""
        return utf8(text).translate(PLAIN_FOLD)

    def marked(self, text: str) -> bytes:
        """``text`` folded with its anchors marked: what the quick searches run on."""
        return utf8(text).translate(self._table)

    def hits(self, text: str) -> bool:
        """Whether any trigger occurs in ``text``."""
        return bool(self.search((text,), text))

    def rules(self, text: str) -> frozenset[str]:
        """The names of the rules whose triggers occur in ``text``."""
        found = self.search((text,), text)
        return frozenset(found.get(0, ()))

    def segments(self, texts: Sequence[str], max_chars: int | None = None) -> dict[int, set[str]]:
        """Which rules could match which of ``texts``, in one pass over all of them.

        Args:
            texts: The strings, e.g. of one log event.
            max_chars: When given and one of ``texts`` is longer, return `OVERSIZED`
                (a caller that redacts such values whole need not scan them).

        Returns:
            For each index of a text holding a trigger, the names of the rules to run on
            it; empty when no text holds one (the common case, and the cheap one). The
            result is read-only.
        """
        joined = "\n".join(texts)
        if max_chars is not None and len(joined) > max_chars and max(map(len, texts)) > max_chars:
            return OVERSIZED
        return self.search(texts, joined)

    def search(self, texts: Sequence[str], joined: str | None = None) -> dict[int, set[str]]:
        """`segments` without the size limit; ``joined``: the texts joined by newlines.

        With the Aho-Corasick engine, one pass: it finds exactly what `identify` would
        and nothing on a text without a trigger, so the quick test first would only scan
        the text twice where a trigger occurs. Otherwise the quick test, then `identify`
        when it says a trigger may occur.
        """
        if self._automaton is not None:
            return self._identify_fast(texts, joined)
        if not self.quick("\n".join(texts) if joined is None else joined):
            return _NOTHING
        return self._identify_re(texts)

    @property
    def accelerated(self) -> bool:
        """Whether the Aho-Corasick engine answers (the ``fast`` extra is installed)."""
        return self._automaton is not None

    def quick(self, text: str) -> bool:
        """The quick test alone: False means no trigger occurs in ``text``.

        True means one may: confirm with `identify`. The common path of the Redactor.
        """
        if self._automaton is not None:
            folded = utf8(text).translate(PLAIN_FOLD)
            return bool(self._automaton.find_matches_as_indexes(folded))
        marked = utf8(text).translate(self._table)
        for search in self._searches:
            if search(marked) is not None:
                return True
        if self._marked_literals:
            # On str, not bytes: CPython's ``bytes in bytes`` first tries the needle as an
            # int and builds a TypeError (~300 ns a test); latin-1 decodes byte for byte.
            letters = marked.decode("latin-1")
            for literal in self._marked_literals:
                if literal in letters:
                    return True
        return False

    def identify(self, texts: Sequence[str]) -> dict[int, set[str]]:
        """`segments` without the quick test: which rules to run on which text."""
        if self._automaton is not None:
            return self._identify_fast(texts)
        return self._identify_re(texts)

    def _identify_re(self, texts: Sequence[str]) -> dict[int, set[str]]:
        raw = utf8("\n".join(texts))
        marked = raw.translate(self._table)
        folded = raw.translate(PLAIN_FOLD)
        found: dict[int, set[str]] = {}
        starts = _starts(texts)
        for literal, rules in self._literals:
            at = folded.find(literal)
            while at >= 0:
                found.setdefault(bisect_right(starts, at) - 1, set()).update(rules)
                at = folded.find(literal, at + 1)
        for group in self._groups:
            if group.search(marked) is None:
                continue
            for trigger, rules in group.ends:
                at = folded.find(trigger)
                while at >= 0:
                    found.setdefault(bisect_right(starts, at) - 1, set()).update(rules)
                    at = folded.find(trigger, at + 1)
            seek, candidates = group.seek, group.candidates
            m = seek(marked) if seek is not None else None
            while m is not None:
                pos = m.start()
                tail = marked[pos + 1 : m.end()]
                for trigger, at, rules in candidates.get((tail, folded[pos]), ()):
                    if folded.startswith(trigger, pos - at):
                        index = bisect_right(starts, pos - at) - 1
                        found.setdefault(index, set()).update(rules)
                m = seek(marked, pos + 1)  # type: ignore[misc]  # seek is set when m is
        return found

    def _identify_fast(
        self, texts: Sequence[str], joined: str | None = None
    ) -> dict[int, set[str]]:
        if joined is None:
            joined = "\n".join(texts)
        folded = utf8(joined).translate(PLAIN_FOLD)
        # overlapping=True, passed by position: a keyword costs the Rust binding a name
        # match on every call, and this is one call per event with new strings.
        hits = self._automaton.find_matches_as_indexes(folded, True)  # noqa: FBT003 - see above
        found: dict[int, set[str]] = {}
        if not hits:
            return found
        rules_of = self._rules_of
        if len(texts) == 1:
            names: set[str] = set()
            for pattern, _, _ in hits:
                names.update(rules_of[pattern])
            return {0: names}
        starts = _starts(texts)
        for pattern, start, _ in hits:
            found.setdefault(bisect_right(starts, start) - 1, set()).update(rules_of[pattern])
        return found


OVERSIZED: Final[dict[int, set[str]]] = {-1: set()}
"""What `Prefilter.segments` returns when a text is longer than ``max_chars``."""
_NOTHING: Final[dict[int, set[str]]] = {}


def _starts(texts: Sequence[str]) -> list[int]:
    """Byte offsets where each text starts once joined with newlines and UTF-8 encoded."""
    starts = []
    at = 0
    for text in texts:
        starts.append(at)
        at += (len(text) if text.isascii() else len(utf8(text))) + 1
    return starts

"""`CleanMemory`: strings one rule set already found clean, so they are not scanned again.

Most of what a service logs repeats: event names, routes, hook names, issuers, SQL
statements, user agents, a FHIR search URL logged on every retry. Scanning such a string
once is enough; afterwards one set lookup (~40 ns: a str caches its hash) answers.

It holds no secret by construction: a string enters only after the rules of one pattern
library found nothing in it, and only that library's users may consult it (a library
with another rule set, say one more organisation token format, would judge otherwise).
It is bounded: only short strings enter, and it is forgotten whole when full.

It also answers for values of a harmless shape it never saw (UUIDs, digests, versions,
timestamps: `auditor.patterns.lookalikes`), which would only churn the set.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final

from auditor.patterns.lookalikes import SKELETON, Lookalikes
from auditor.patterns.prefilter import Prefilter, utf8

MAX_CHARS: Final = 256
"""Longer strings are not remembered: they rarely repeat, and the memory stays small."""
DEFAULT_ENTRIES: Final = 16_384
"""At most ~6 MB with `MAX_CHARS`-long strings, ~2 MB with typical 30-character values.
The benchmark ran as fast with 1,024 as with 65,536: what repeats in a service's logs is
a few thousand strings."""


class CleanMemory:
    """Strings found clean by the rules behind ``prefilter``, and look-alike shapes.

    Args:
        prefilter: The prefilter of the library whose verdicts are remembered.
        entries: How many strings to remember; 0 for none.
        max_chars: Strings longer than this are never called clean here (the Redactor
            replaces them whole instead of scanning them).

    Attributes:
        strings: The remembered strings.
        lookalike: ``lookalike(text)`` is true when ``text`` is wholly one of the
            shapes proved to hold no trigger of ``prefilter``.
        skeletons: Those shapes' skeletons. Hot loops test ``text in strings``, then
            ``len(text) <= shape_chars and text.encode("utf-8", "surrogatepass")
            .translate(SKELETON) in skeletons`` themselves; everything else uses
            `__contains__` and `remember`.
        shape_chars: The length of the longest skeleton. A longer string is of none of
            the shapes (its UTF-8 is at least as long), and is not encoded to find out: a
            new token or traceback is hundreds of characters.
        forgotten: How many times the memory was full and forgot every string.
    """

    __slots__ = (
        "_entries",
        "_max_chars",
        "forgotten",
        "lookalike",
        "shape_chars",
        "skeletons",
        "strings",
    )

    def __init__(
        self, prefilter: Prefilter, *, entries: int = DEFAULT_ENTRIES, max_chars: int = MAX_CHARS
    ) -> None:
        self.strings: set[str] = set()
        self.forgotten = 0
        self._entries = entries
        self._max_chars = min(max_chars, MAX_CHARS)
        # A value longer than max_chars is replaced whole, whatever its shape.
        shapes = Lookalikes(prefilter.triggers, max_length=max_chars)
        self.lookalike: Callable[[str], bool] = shapes.match
        self.skeletons: frozenset[bytes] = shapes.skeletons
        self.shape_chars: int = max(map(len, self.skeletons), default=0)

    def __contains__(self, text: str) -> bool:
        """Whether ``text`` is known clean (remembered, or a look-alike)."""
        return text in self.strings or (
            len(text) <= self.shape_chars and utf8(text).translate(SKELETON) in self.skeletons
        )

    def __len__(self) -> int:
        """How many strings are remembered."""
        return len(self.strings)

    def remember(self, texts: Collection[str], joined: str | None = None) -> None:
        """Note strings the rules found clean (only short ones; forgets all when full).

        Callers must pass only strings they scanned in full with this memory's rules.
        ``joined``, when the caller has it, is the texts joined by newlines: when it is
        short, every text is, and they are added in one call.
        """
        strings = self.strings
        if len(strings) + len(texts) > self._entries:
            strings.clear()
            self.forgotten += 1
            if len(texts) > self._entries:
                return
        limit = self._max_chars
        if joined is not None and len(joined) <= limit:
            strings.update(texts)
            return
        for text in texts:
            if len(text) <= limit:
                strings.add(text)

    def clear(self) -> None:
        """Forget every remembered string."""
        self.strings.clear()

"""`CleanMemory`: strings one rule set already found clean, so they are not scanned again.

Most of what a service logs repeats: event names, routes, hook names, issuers, SQL
statements, user agents, a FHIR search URL logged on every retry. Scanning such a string
once is enough; afterwards one set lookup (~40 ns: a str caches its hash) answers.

Much of the rest repeats up to its digits: ``Encounter/4711``, ``ORD-2026-000123``,
``retry 2 of 5``. The prefilter reads text folded (digits as ``0``, letters in lower
case), and every rule promises that one of its triggers occurs in the folded text of
whatever it matches; so a string whose folded form equals that of a string in which no
trigger occurred at all holds no trigger either, and no rule can match it. Those folded
forms are remembered too. (Not for strings that held a trigger the rules then cleared:
their verdict depends on the exact text.)

It holds no secret by construction: a string enters only after the rules of one pattern
library found nothing in it, and only that library's users may consult it (a library
with another rule set, say one more organisation token format, would judge otherwise).
It is bounded: only short strings enter, and each set is forgotten whole when full.

It also answers for values of a harmless shape it never saw (UUIDs, digests, versions,
timestamps: `auditor.patterns.lookalikes`), which would only churn the sets.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final

from auditor.patterns.lookalikes import SKELETON, Lookalikes
from auditor.patterns.prefilter import PLAIN_FOLD, Prefilter

MAX_CHARS: Final = 256
"""Longer strings are not remembered: they rarely repeat, and the memory stays small."""
DEFAULT_ENTRIES: Final = 16_384
"""Per set (strings, folded forms): at most ~11 MB together with `MAX_CHARS`-long strings,
~2 MB with typical 30-character values. The benchmark ran as fast with 1,024 as with
65,536: what repeats in a service's logs is a few thousand strings."""


class CleanMemory:
    """Strings found clean by the rules behind ``prefilter``, and look-alike shapes.

    Args:
        prefilter: The prefilter of the library whose verdicts are remembered.
        entries: How many strings (and as many folded forms) to remember; 0 for none.
        max_chars: Strings longer than this are never called clean here (the Redactor
            replaces them whole instead of scanning them).

    Attributes:
        strings: The remembered strings.
        folded: Folded forms (``PLAIN_FOLD``) of strings in which no trigger occurred.
        lookalike: ``lookalike(text)`` is true when ``text`` is wholly one of the
            shapes proved to hold no trigger of ``prefilter``.
        skeletons: Those shapes' skeletons. Hot loops test ``text in strings``, then
            ``raw.translate(SKELETON) in skeletons`` and ``raw.translate(PLAIN_FOLD) in
            folded`` (``raw`` is ``text.encode("utf-8", "surrogatepass")``) themselves;
            everything else uses `__contains__` and the ``remember`` methods.
    """

    __slots__ = ("_entries", "_max_chars", "folded", "lookalike", "skeletons", "strings")

    def __init__(
        self, prefilter: Prefilter, *, entries: int = DEFAULT_ENTRIES, max_chars: int = MAX_CHARS
    ) -> None:
        self.strings: set[str] = set()
        self.folded: set[bytes] = set()
        self._entries = entries
        self._max_chars = min(max_chars, MAX_CHARS)
        # A value longer than max_chars is replaced whole, whatever its shape.
        shapes = Lookalikes(prefilter.triggers, max_length=max_chars)
        self.lookalike: Callable[[str], bool] = shapes.match
        self.skeletons: frozenset[bytes] = shapes.skeletons

    def __contains__(self, text: str) -> bool:
        """Whether ``text`` is known clean (remembered, a look-alike, or its folded twin)."""
        if text in self.strings:
            return True
        raw = text.encode("utf-8", "surrogatepass")
        return raw.translate(SKELETON) in self.skeletons or raw.translate(PLAIN_FOLD) in self.folded

    def __len__(self) -> int:
        """How many strings are remembered (folded forms not counted)."""
        return len(self.strings)

    def remember(self, texts: Collection[str]) -> None:
        """Note strings the rules found clean (only short ones; forgets all when full).

        Callers must pass only strings they scanned in full with this memory's rules.
        """
        strings = self.strings
        if len(strings) + len(texts) > self._entries:
            strings.clear()
            if len(texts) > self._entries:
                return
        limit = self._max_chars
        for text in texts:
            if len(text) <= limit:
                strings.add(text)

    def remember_trigger_free(self, texts: Collection[str], joined: str | None = None) -> None:
        """Note strings in which the prefilter found no trigger at all, and their folds.

        Callers must pass only strings the prefilter of this memory's library cleared.
        ``joined``, when the caller has it, is the texts joined by newlines (saves work).
        """
        if joined is None:
            joined = "\n".join(texts)
        if len(joined) > self._max_chars:
            self.remember(texts)
            folds = [t.encode("utf-8", "surrogatepass").translate(PLAIN_FOLD) for t in texts]
            folds = [f for f in folds if len(f) <= self._max_chars]
        else:
            # All short: remembered in C. Split after folding, the pieces are the texts'
            # folds (or, for a text with a newline, folds of its lines: no trigger in
            # those either).
            strings = self.strings
            if len(strings) + len(texts) > self._entries:
                strings.clear()
            if len(texts) <= self._entries:
                strings.update(texts)
            folds = joined.encode("utf-8", "surrogatepass").translate(PLAIN_FOLD).split(b"\n")
        folded = self.folded
        if len(folded) + len(folds) > self._entries:
            folded.clear()
        if len(folds) <= self._entries:
            folded.update(folds)

    def clear(self) -> None:
        """Forget every remembered string."""
        self.strings.clear()
        self.folded.clear()

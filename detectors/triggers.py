"""Which rules could match which strings: one pass over a record's strings, exact.

The pattern library's prefilter answers this. With the optional ``ahocorasick-rs``
package (the ``fast`` extra) it holds a Rust Aho-Corasick automaton (a DFA) over the
folded trigger literals, which finds every trigger with the positions that map it to its
string in one pass, so its ``identify`` needs no quick test first; without it, the quick
``re`` search comes first and rules out most records cheaply. The answer is the same
either way (a property test compares them); only the cost differs.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.patterns import PatternLibrary


class TriggerSearch:
    """`PatternLibrary.prefilter`'s ``segments``, by the cheapest route its engine has.

    Args:
        library: The compiled rules whose triggers to look for.
    """

    __slots__ = ("_prefilter",)

    def __init__(self, library: PatternLibrary) -> None:
        self._prefilter = library.prefilter

    @property
    def accelerated(self) -> bool:
        """Whether the Aho-Corasick engine is in use."""
        return self._prefilter.accelerated

    def segments(self, texts: Sequence[str]) -> dict[int, set[str]]:
        """For each index of a text holding a trigger, the names of the rules to run on it.

        Empty when none does (the common case). Triggers are looked for in the texts
        joined by newlines, as the prefilter does, so the answers are the same.
        """
        prefilter = self._prefilter
        if prefilter.accelerated:
            return prefilter.identify(texts)
        return prefilter.segments(texts)

    def rules(self, text: str) -> set[str]:
        """The names of the rules whose triggers occur in ``text``."""
        return self.segments((text,)).get(0, set())

"""Redacted evidence: a short excerpt around a match, with every sensitive value replaced.

A reviewer needs to see where a value sat ("``token validation failed for [REDACTED:jwt]``")
to judge a finding, but must never see the value. So the excerpt is cut from the text
around the match, and every match of the pattern library that touches the excerpt — the
finding's own and any other — is replaced by a marker naming its kind. Characters glued
to a match (a token's tail in a character the rule does not accept, say ``%2F``) are
replaced with it, so a partly matched value never shows its remainder. Control characters
become spaces so that an excerpt is one line.

What the library does not recognise stays readable: a name in free text next to an SSN
is not a match and can appear in the excerpt. ``context_chars=0`` keeps only the marker.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from typing import Final

MAX_EVIDENCE_CHARS: Final = 1000
"""Below the `auditor.models.Finding` limit of 1024, with room for the ellipses."""

_MAX_GLUE: Final = 64
_GLUED: Final = re.compile(rf"[^\s\"'`,;<>()\[\]{{}}|]{{0,{_MAX_GLUE}}}+")
"""What counts as glued to a match on its right: anything up to a space or delimiter."""
_GLUED_LEFT: Final = re.compile(r"[^\s\"'`,;<>()\[\]{}|:=]*+$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
ELLIPSIS: Final = "…"


def marker(kind: str) -> str:
    """What replaces a value of ``kind`` in evidence: ``[REDACTED:jwt]``."""
    return f"[REDACTED:{kind}]"


Span = tuple[int, int, str]
"""A sensitive span of a text: start, end, and the kind its marker names."""


def mask(text: str, found: Iterable[Span]) -> list[Span]:
    """The spans to replace in ``text``: widened over glued characters, merged, sorted.

    Computed once per string; each excerpt of it then looks up the spans it shows.
    """
    spans: list[Span] = []
    for first, last, kind in sorted(found):
        glued_right = _GLUED.match(text, last)
        end = glued_right.end() if glued_right is not None else last
        glued_left = _GLUED_LEFT.search(text, max(0, first - _MAX_GLUE), first)
        start = glued_left.start() if glued_left is not None else first
        if spans and start <= spans[-1][1]:
            prev_start, prev_end, prev_kind = spans[-1]
            spans[-1] = (prev_start, max(prev_end, end), prev_kind)
        else:
            spans.append((start, end, kind))
    return spans


def excerpt(text: str, masked: list[Span], at: int, context_chars: int) -> str:
    """The redacted excerpt of ``text`` around the match starting at ``at``.

    Args:
        text: The string the match was found in.
        masked: `mask` of every sensitive span in ``text`` (the match's included).
        at: Where the match starts.
        context_chars: How many characters of context on each side, at most.
    """
    index = max(0, bisect_right(masked, (at, len(text) + 1, "")) - 1)
    own_start, own_end, _ = masked[index]
    if not own_start <= at < max(own_end, own_start + 1):
        own_start, own_end = at, at
    lo = max(0, own_start - context_chars)
    hi = min(len(text), own_end + context_chars)
    if context_chars == 0:
        lo, hi = own_start, own_end
    # Spans that show in the window: a few on each side of the match's own.
    first = bisect_right(masked, (lo, -1, "")) - 1
    shown = []
    for start, end, kind in masked[max(0, first) :]:
        if start >= hi:
            break
        if end <= lo:
            continue
        # A masked span cut by the window's edge is shown whole, as its marker.
        lo, hi = min(lo, start), max(hi, end)
        shown.append((start, end, kind))
    out: list[str] = [ELLIPSIS] if lo > 0 else []
    pos = lo
    for start, end, kind in shown:
        out.append(text[pos:start])
        out.append(marker(kind))
        pos = end
    out.append(text[pos:hi])
    if hi < len(text):
        out.append(ELLIPSIS)
    result = _CONTROL.sub(" ", "".join(out))
    if len(result) > MAX_EVIDENCE_CHARS:
        result = result[: MAX_EVIDENCE_CHARS - 1] + ELLIPSIS
    return result


def field_evidence(key: str | int | None, kind: str, note: str = "") -> str:
    """Evidence for a whole value under a key: ``authorization: [REDACTED:jwt]``."""
    shown = marker(kind) + (f" {note}" if note else "")
    if key is None:
        return shown
    name = key if isinstance(key, str) else f"[{key}]"
    if len(name) > 64:  # noqa: PLR2004 - a key is shown, not a document
        name = name[:63] + ELLIPSIS
    return _CONTROL.sub(" ", f"{name}: {shown}")

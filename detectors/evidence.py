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
from collections.abc import Iterable
from typing import Final

MAX_EVIDENCE_CHARS: Final = 1000
"""Below the `auditor.models.Finding` limit of 1024, with room for the ellipses."""

_GLUED: Final = re.compile(r"[^\s\"'`,;<>()\[\]{}|]*+")
"""What counts as glued to a match on its right: anything up to a space or delimiter."""
_GLUED_LEFT: Final = re.compile(r"[^\s\"'`,;<>()\[\]{}|:=]*+$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
ELLIPSIS: Final = "…"


def marker(kind: str) -> str:
    """What replaces a value of ``kind`` in evidence: ``[REDACTED:jwt]``."""
    return f"[REDACTED:{kind}]"


Span = tuple[int, int, str]
"""A sensitive span of a text: start, end, and the kind its marker names."""


def _masked_spans(text: str, found: Iterable[Span]) -> list[Span]:
    """Spans to replace, widened over glued characters, merged."""
    spans: list[Span] = []
    for first, last, kind in sorted(found):
        glued_right = _GLUED.match(text, last)
        end = glued_right.end() if glued_right is not None else last
        glued_left = _GLUED_LEFT.search(text, max(0, first - 64), first)
        start = glued_left.start() if glued_left is not None else first
        if spans and start <= spans[-1][1]:
            prev_start, prev_end, prev_kind = spans[-1]
            spans[-1] = (prev_start, max(prev_end, end), prev_kind)
        else:
            spans.append((start, end, kind))
    return spans


def excerpt(text: str, target: Span, found: Iterable[Span], context_chars: int) -> str:
    """The redacted excerpt of ``text`` around ``target``.

    Args:
        text: The string the match was found in.
        target: The span the evidence is for.
        found: Every sensitive span in ``text``, ``target`` included or not (each is
            redacted where it shows).
        context_chars: How many characters of context on each side, at most.
    """
    spans = _masked_spans(text, [target, *found])
    at = target[0]
    own = next((s for s in spans if s[0] <= at < s[1]), spans[0])
    lo = max(0, own[0] - context_chars)
    hi = min(len(text), own[1] + context_chars)
    # A masked span cut by the window's edge is shown whole, as its marker.
    for start, end, _ in spans:
        if start < lo < end:
            lo = start
        if start < hi < end:
            hi = end
    if context_chars == 0:
        lo, hi = own[0], own[1]
    out: list[str] = [ELLIPSIS] if lo > 0 else []
    pos = lo
    for start, end, kind in spans:
        if end <= lo or start >= hi:
            continue
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

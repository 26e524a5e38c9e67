"""A finding's redacted evidence and facts, read for one reviewer and masked once more.

The detectors store a *redacted* excerpt around each match, and the exports and named
queries never read it at all. A person judging one incident needs that context, so the
incident page reads it — for one finding at a time, by id — and passes it through
:func:`mask_residue` first: anything that still looks like a credential or an SSN is
masked and counted, and the page says so. A non-zero count means redaction upstream
missed something, which is itself worth a ticket.

Facts go through the same filter as the exports (:func:`dashboards.records.exportable_facts`):
numbers, booleans and claims known to be safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from dashboards.records import exportable_facts

if TYPE_CHECKING:
    from dashboards.storage import StoreHandle

__all__ = ["MASK", "Evidence", "mask_residue", "read_evidence"]

MASK: Final = "[masked]"

_RESIDUE: Final = (
    # A JWS/JWT in compact form: base64url header starting '{"' , payload, signature.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    # PEM private keys, whole or cut off by the excerpt.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----)?", re.DOTALL
        ),
        MASK,
    ),
    # Authorization header values: the scheme stays, the credential goes.
    (re.compile(r"(?i)\b(bearer|basic)\s+(?!\[)[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    # key=value and "key": "value" forms of well-known secret names.
    (
        re.compile(
            r"(?i)\b(access_token|id_token|refresh_token|client_secret|client_assertion|"
            r"password|passwd|api_key|apikey|secret)(\"?\s*[:=]\s*\"?)(?!\[)[^\s\"&,;}]{4,}"
        ),
        rf"\1\2{MASK}",
    ),
    # US social security numbers.
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), MASK),
    # Long opaque runs (API keys, opaque bearer tokens). Keyed fingerprints are 32 hex
    # digits after a colon and stay below this length, so they survive.
    (re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{40,}={0,2}"), MASK),
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a reviewer may see of a finding's inspected content."""

    excerpt: str
    masked: int
    facts: dict[str, object]


def mask_residue(text: str) -> tuple[str, int]:
    """Mask what still looks like a secret or an SSN; return the text and how many masks."""
    total = 0
    for pattern, replacement in _RESIDUE:
        text, count = pattern.subn(replacement, text)
        total += count
    return text, total


def read_evidence(store: StoreHandle, finding_id: str) -> Evidence | None:
    """The masked evidence excerpt and the safe facts of one finding (reads the store).

    Returns ``None`` when the store holds no such finding.
    """
    table = store.query(
        "SELECT evidence, facts_json FROM findings WHERE finding_id = $id", {"id": finding_id}
    )
    if table.num_rows == 0:
        return None
    row = table.to_pylist()[0]
    excerpt, masked = mask_residue(str(row["evidence"] or ""))
    facts_json = row["facts_json"]
    return Evidence(
        excerpt=excerpt,
        masked=masked,
        facts=exportable_facts(None if facts_json is None else str(facts_json)),
    )

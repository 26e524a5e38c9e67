"""Offline JWT triage: recognise JWS and JWE compact forms and read their safe facts.

Nothing here verifies a signature or fetches a key: a leaked token is described from
its own header and claims, decoded without verification and without any network call.
Only facts that are safe to record leave this module (never the token, never other
claims such as names or e-mail addresses that a token may carry).
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pydantic_core import from_json

from auditor.patterns.matches import Fact

HEADER_FACTS: Final = ("alg", "typ", "kid", "jku", "enc", "cty", "x5u")
"""Header members recorded as facts (RFC 7515 §4.1, RFC 7516 §4.1)."""

CLAIM_FACTS: Final = ("iss", "aud", "jti", "exp", "nbf", "iat", "tenant")
"""Claims recorded as facts: what CDS Hooks requires, plus ``tenant``. No ``sub``."""

SAFE_FACTS: Final = frozenset(HEADER_FACTS + CLAIM_FACTS)

MAX_HEADER_CHARS: Final = 4096
MAX_PAYLOAD_CHARS: Final = 65536
MAX_FACT_CHARS: Final = 256
_MAX_AUD_VALUES: Final = 8


_FROM_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")


def b64url_decode(part: str) -> bytes | None:
    """Decode one base64url segment (padding optional); ``None`` when it is not one.

    The same as ``base64.urlsafe_b64decode`` (non-alphabet bytes are skipped, as there),
    without its generic argument handling.
    """
    try:
        data = (part + "=" * (-len(part) % 4)).encode("ascii").translate(_FROM_URLSAFE)
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return None


def json_object(raw: bytes) -> dict[str, object] | None:
    """``raw`` parsed as JSON when it is an object, else ``None``: what ``json.loads`` says.

    pydantic-core's parser (a dependency of pydantic, so always installed) runs ~5x faster
    than ``json.loads`` and agrees with it on every document it accepts; what it refuses
    (a lone surrogate, a byte-order mark, bad syntax) is left to ``json.loads``. It is
    told not to keep strings in its process-wide cache: claims are not to linger.
    """
    try:
        value = from_json(raw, cache_strings=False)
    except ValueError:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return None
    return value if type(value) is dict else None


def _json_object(part: str, limit: int) -> dict[str, object] | None:
    if len(part) > limit:
        return None
    raw = b64url_decode(part)
    return None if raw is None else json_object(raw)


def _fact(value: object) -> Fact | None:
    if type(value) is str:  # the common case first: alg, typ, kid, iss, jti
        return value if len(value) <= MAX_FACT_CHARS else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_FACT_CHARS else None
    if isinstance(value, list) and 0 < len(value) <= _MAX_AUD_VALUES:
        items = tuple(v for v in value if isinstance(v, str) and len(v) <= MAX_FACT_CHARS)
        return items if len(items) == len(value) else None
    return None


@dataclass(frozen=True, slots=True)
class JwtInfo:
    """What a compact JWT says about itself, decoded without verification.

    Attributes:
        form: ``jws`` (three segments) or ``jwe`` (five segments, claims encrypted).
        facts: Safe header members and claims (`HEADER_FACTS`, `CLAIM_FACTS`) that are
            present and of a sensible type and size.
        claims_readable: Whether the payload decoded to a JSON object (a JWS whose
            payload is not JSON, a JWE, or a truncated token has no readable claims).
    """

    form: Literal["jws", "jwe"]
    facts: Mapping[str, Fact]
    claims_readable: bool


def inspect_jwt(token: str) -> JwtInfo | None:
    """Recognise a compact JWS or JWE and read its safe facts, offline.

    A JWS has three dot-separated segments, a JWE five; the header must be a base64url
    JSON object naming an ``alg`` (and an ``enc`` for a JWE). A JWS cut off after its
    payload (two segments, as in a truncated log line) is still recognised when its
    payload decodes to a JSON object.

    Returns:
        The facts, or ``None`` when ``token`` is not a JWT.
    """
    return inspect_segments(token.split("."))


def inspect_segments(parts: list[str]) -> JwtInfo | None:
    """`inspect_jwt` of a token already split at its dots."""
    header = _header(parts[0])
    if header is None:
        return None
    header_facts, encrypted = header
    form: Literal["jws", "jwe"]
    count = len(parts)
    if count == 5 and encrypted:  # noqa: PLR2004 - JWE layout
        form, claims = "jwe", None
    elif count in {2, 3}:
        form, claims = "jws", _json_object(parts[1], MAX_PAYLOAD_CHARS)
        if claims is None and count == 2:  # noqa: PLR2004 - truncated JWS
            return None
    else:
        return None
    facts: dict[str, Fact] = dict(header_facts)
    if claims:
        _add_claim_facts(claims, facts)
    return JwtInfo(form=form, facts=facts, claims_readable=claims is not None)


def _add_claim_facts(claims: dict[str, object], facts: dict[str, Fact]) -> None:
    for name in CLAIM_FACTS:
        value = claims.get(name)
        if value is None:
            continue
        if type(value) is str:  # the common case first: iss, jti, tenant
            if len(value) <= MAX_FACT_CHARS:
                facts[name] = value
        elif (fact := _fact(value)) is not None:
            facts[name] = fact


_Header = tuple[tuple[tuple[str, Fact], ...], bool]
"""A header's safe facts (in `HEADER_FACTS` order) and whether it names an ``enc``."""
_MISSING: Final = object()
_HEADERS: dict[str, _Header | None] = {}
"""Headers decoded before, by their segment: a service sees tokens of a few issuers and
keys, so the same few headers come back on every token (their claims differ). Bounded,
in process memory only; a header holds algorithm and key names, not the secret."""
_MAX_HEADERS: Final = 256
_MAX_CACHED_HEADER_CHARS: Final = 512


def _header(part: str) -> _Header | None:
    """The facts of a JOSE header segment, or ``None`` when it is none (no ``alg``)."""
    cached = _HEADERS.get(part, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[return-value]
    header = _json_object(part, MAX_HEADER_CHARS)
    found: _Header | None = None
    if header is not None and isinstance(header.get("alg"), str):
        facts = tuple(
            (name, fact)
            for name in HEADER_FACTS
            if (value := header.get(name)) is not None and (fact := _fact(value)) is not None
        )
        found = (facts, isinstance(header.get("enc"), str))
    if len(part) <= _MAX_CACHED_HEADER_CHARS:
        if len(_HEADERS) >= _MAX_HEADERS:
            _HEADERS.clear()
        _HEADERS[part] = found
    return found

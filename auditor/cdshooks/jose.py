"""JOSE plumbing: compact JWS parsing, base64url, JWK thumbprints and the algorithm table.

The cryptography is PyJWT's (its ``Algorithm`` objects over ``cryptography``); what lives
here is the strict framing around it. Parsing refuses what a lenient parser would let an
attacker smuggle: padding and non-alphabet characters in base64url, duplicate JSON
members (two ``alg`` values read differently by two parsers), ``NaN``, JWE (five
segments) and oversized input. Errors carry a fixed description, never the input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jwt.algorithms import Algorithm, get_default_algorithms

from auditor.errors import AuditorError

ALGORITHM_KEY_TYPES: Final[Mapping[str, tuple[str, str | None]]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
"""The asymmetric algorithms we sign and verify with, and the JWK ``kty``/``crv`` each needs."""

FORBIDDEN_ALGORITHMS: Final = frozenset({"none", "HS256", "HS384", "HS512"})
"""CDS Hooks: ``none`` and every symmetric algorithm SHALL NOT be used (normative)."""

RECOMMENDED_ALGORITHMS: Final = ("ES384", "RS384")
"""CDS Hooks: ES384 and RS384 are RECOMMENDED."""

PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
"""JWK members that hold private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4)."""

PUBLIC_JWK_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}
"""The required public members of each key type, which RFC 7638 thumbprints are taken over."""

MIN_RSA_BITS: Final = 2048

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_ALGORITHMS: Final[Mapping[str, Algorithm]] = {
    name: alg for name, alg in get_default_algorithms().items() if name in ALGORITHM_KEY_TYPES
}


class JoseFormatError(AuditorError):
    """A token or JWK that is not well-formed. The message names the defect, never the input."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str, what: str) -> bytes:
    """Decode strict, canonical base64url without padding.

    Raises:
        JoseFormatError: Padding, a character outside the alphabet, an impossible length,
            or non-zero trailing bits (two encodings for one value).
    """
    if len(segment) % 4 == 1 or not _B64URL.fullmatch(segment):
        raise JoseFormatError(f"{what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JoseFormatError(f"{what} is not base64url") from None
    if b64url_encode(data) != segment:
        raise JoseFormatError(f"{what} is not canonical base64url")
    return data


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JoseFormatError("duplicate member name")
    return obj


def _no_constants(_name: str) -> Any:
    raise JoseFormatError("NaN or Infinity in JSON")


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object without duplicate member names.

    Raises:
        JoseFormatError: Not UTF-8, not JSON, not an object, duplicate members, or too deep.
    """
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_unique_members, parse_constant=_no_constants
        )
    except JoseFormatError as exc:
        raise JoseFormatError(f"{what}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JoseFormatError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise JoseFormatError(f"{what} is not a JSON object")
    return value


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON with sorted members, as RFC 7638 and our token headers use."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class CompactJws:
    """The three parts of a JWS in compact serialization, decoded but not verified.

    Attributes:
        header: The protected header (a JSON object).
        payload: The payload octets (for a JWT, a JSON object; see :func:`json_object`).
        signing_input: ``BASE64URL(header) || '.' || BASE64URL(payload)``, what was signed.
        signature: The signature octets.
    """

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes


def parse_compact(token: str, *, max_length: int = 8192) -> CompactJws:
    """Split and decode a compact JWS (RFC 7515 §7.1) without verifying it.

    Raises:
        JoseFormatError: Not a string, too long, not three segments, or a segment that is
            not canonical base64url; a header that is not a JSON object.
    """
    if not isinstance(token, str):
        raise JoseFormatError("token is not a string")
    if len(token) > max_length:
        raise JoseFormatError(f"token is longer than {max_length} characters")
    segments = token.split(".")
    if len(segments) == 5:  # noqa: PLR2004 - five segments is the JWE compact form
        raise JoseFormatError("token is a JWE, not a JWS")
    if len(segments) != 3:  # noqa: PLR2004 - header.payload.signature
        raise JoseFormatError("token is not three dot-separated segments")
    header_b64, payload_b64, signature_b64 = segments
    header = json_object(b64url_decode(header_b64, "header"), "header")
    payload = b64url_decode(payload_b64, "payload")
    signature = b64url_decode(signature_b64, "signature")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return CompactJws(header, payload, signing_input, signature)


def encode_compact(
    header: Mapping[str, Any], payload: bytes, sign: Callable[[bytes], bytes]
) -> str:
    """Serialize and sign a compact JWS; ``sign`` maps the signing input to the signature."""
    signing_input = f"{b64url_encode(canonical_json(header))}.{b64url_encode(payload)}"
    signature = sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def algorithm(name: str) -> Algorithm:
    """PyJWT's implementation of an allowed asymmetric algorithm.

    Raises:
        KeyError: ``name`` is not one of :data:`ALGORITHM_KEY_TYPES`.
    """
    return _ALGORITHMS[name]


def verify_signature(jws: CompactJws, alg: str, public_key: Any) -> bool:
    """Whether ``jws`` carries a valid ``alg`` signature by ``public_key``.

    ``public_key`` must already suit ``alg`` (see :func:`key_suits`); a raw ``R || S``
    ECDSA signature of the wrong length is simply invalid.
    """
    return bool(_ALGORITHMS[alg].verify(jws.signing_input, public_key, jws.signature))


def key_suits(alg: str, jwk: Mapping[str, Any]) -> bool:
    """Whether a JWK's ``kty``/``crv`` (and ``alg``, when it names one) fit algorithm ``alg``."""
    expected = ALGORITHM_KEY_TYPES.get(alg)
    if expected is None:
        return False
    kty, crv = expected
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    declared = jwk.get("alg")
    return declared is None or declared == alg


def public_members(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The required public members of an EC or RSA JWK, and nothing else.

    Raises:
        JoseFormatError: Unsupported ``kty`` or a missing member.
    """
    kty = jwk.get("kty")
    members = PUBLIC_JWK_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise JoseFormatError("JWK kty is not EC or RSA")
    out: dict[str, Any] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise JoseFormatError(f"JWK lacks the {name!r} member")
        out[name] = value
    return out


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a JWK, base64url-encoded: a stable ``kid``.

    Raises:
        JoseFormatError: Unsupported ``kty`` or a missing member.
    """
    digest = hashlib.sha256(canonical_json(public_members(jwk))).digest()
    return b64url_encode(digest)


def has_private_members(jwk: Mapping[str, Any]) -> bool:
    """Whether a JWK holds private or symmetric key material."""
    return not PRIVATE_JWK_MEMBERS.isdisjoint(jwk)

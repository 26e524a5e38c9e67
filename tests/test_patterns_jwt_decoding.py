"""The JWT decoders agree with the standard library they replaced, on any input.

`auditor.patterns.jwt` decodes segments with ``binascii`` directly and parses JSON with
pydantic-core first (falling back to ``json.loads``) because that is several times faster;
what a token is recognised as, and which facts it yields, must not change.
"""

from __future__ import annotations

import base64
import binascii
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.patterns.jwt import b64url_decode, json_object


def _reference_b64url(part: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        return None


def _reference_object(raw: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _same(a: object, b: object) -> bool:
    """Equal, with the same types and key order (``repr``), NaN equal to NaN."""
    return repr(a) == repr(b)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 80), max_value=1 << 80)  # past 64 bits, too
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_documents, st.booleans())
def test_json_object_agrees_with_json_loads_on_any_json_document(
    value: object, ascii_only: bool
) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _same(json_object(raw), _reference_object(raw))


@given(st.binary(max_size=64))
def test_json_object_agrees_with_json_loads_on_any_bytes(raw: bytes) -> None:
    assert _same(json_object(raw), _reference_object(raw))


@pytest.mark.parametrize(
    "raw",
    [
        # Duplicate members: both keep the last.
        b'{"alg":"none","alg":"RS256"}',
        # A lone surrogate escape and an encoded surrogate: json.loads accepts them,
        # pydantic-core refuses, so the fallback must answer.
        b'{"kid":"\\ud800"}',
        b'{"kid":"\xed\xa0\x80"}',
        # A byte-order mark: json.loads skips it, pydantic-core refuses.
        b'\xef\xbb\xbf{"alg":"RS256"}',
        # NaN and infinities: json.loads accepts them by default.
        b'{"exp":NaN,"iat":Infinity,"nbf":-Infinity}',
        # An integer past 64 bits stays an exact int (orjson would make it a float).
        b'{"exp":123456789012345678901234567890}',
        # Deep nesting: json.loads gives up (RecursionError), which means "not a JWT".
        b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",
        # Not an object, or not JSON at all.
        b'["alg"]',
        b"",
        b'{"alg":"RS256",}',
    ],
)
def test_json_object_agrees_with_json_loads_on_edge_cases(raw: bytes) -> None:
    assert _same(json_object(raw), _reference_object(raw))


@given(st.text(alphabet="ABCxyz0189-_+/=. \n\u00e9", max_size=40))
def test_b64url_decode_agrees_with_urlsafe_b64decode(part: str) -> None:
    assert b64url_decode(part) == _reference_b64url(part)


@given(st.binary(max_size=48))
def test_b64url_decode_reverses_unpadded_base64url(data: bytes) -> None:
    part = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64url_decode(part) == data

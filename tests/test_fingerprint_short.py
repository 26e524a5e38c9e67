"""A marker's short fingerprint is the start of the keyed HMAC-SHA256's hex digest."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from auditor.fingerprints import Fingerprinter

KEY = b"short-fingerprint-key-0123"


@given(value=st.text() | st.binary(), digits=st.integers(-40, 40))
def test_short_is_the_start_of_the_hmac_hex_digest(value: str | bytes, digits: int) -> None:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    # At most the 32 digits of a fingerprint; a negative count cuts from the full digest.
    expected = hmac.new(KEY, raw, hashlib.sha256).hexdigest()[: min(digits, 32)]
    assert Fingerprinter(KEY).short(value, digits) == expected

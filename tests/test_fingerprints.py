"""Keyed fingerprints: stable under one key, unlinkable without it, never a plain hash."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.models.events import FINGERPRINT_PATTERN


def test_same_key_same_value_same_fingerprint(fingerprinter: Fingerprinter) -> None:
    again = Fingerprinter(b"test-key-0123456789abcdef")
    assert fingerprinter("eyJhbGciOiJSUzM4NCJ9.e30.c2ln") == again("eyJhbGciOiJSUzM4NCJ9.e30.c2ln")


def test_fingerprint_has_key_id_and_128_bits(fingerprinter: Fingerprinter) -> None:
    fp = fingerprinter("123-45-6789")
    assert re.fullmatch(FINGERPRINT_PATTERN, fp)
    key_id, _, digest = fp.partition(":")
    assert key_id == fingerprinter.key_id
    assert len(digest) == 32


def test_other_key_gives_unrelated_fingerprint_and_key_id(fingerprinter: Fingerprinter) -> None:
    other = Fingerprinter(b"another-key-0123456789")
    assert other("123-45-6789") != fingerprinter("123-45-6789")
    assert other.key_id != fingerprinter.key_id


def test_ssn_fingerprint_is_no_unkeyed_hash_of_it(fingerprinter: Fingerprinter) -> None:
    # An SSN has ~10^9 values: an unkeyed hash of it is reversible by enumeration.
    ssn = "123-45-6789"
    digest = fingerprinter(ssn).partition(":")[2]
    forms = {ssn, ssn.replace("-", ""), f" {ssn}", f"{ssn}\n"}
    for form in forms:
        for name in sorted(hashlib.algorithms_guaranteed):
            h = hashlib.new(name, form.encode())
            try:
                unkeyed = h.hexdigest()
            except TypeError:  # shake_* need a length
                unkeyed = h.hexdigest(64)  # type: ignore[call-arg]
            assert digest not in unkeyed, f"fingerprint equals a plain {name} of the SSN"


def test_key_id_does_not_reveal_the_key() -> None:
    key = b"a-rather-secret-key-value"
    fp = Fingerprinter(key)
    assert key.hex()[:8] not in fp.key_id
    assert hashlib.sha256(key).hexdigest()[:8] not in fp.key_id


def test_short_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        Fingerprinter(b"short")


def test_environment_key_is_used() -> None:
    fp = Fingerprinter.from_environment({"AUDITOR_FINGERPRINT_KEY": "env-key-0123456789abcdef"})
    assert not fp.ephemeral
    assert fp("x") == Fingerprinter(b"env-key-0123456789abcdef")("x")


def test_key_file_is_used_without_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "fp.key"
    path.write_bytes(b"file-key-0123456789abcdef\n")
    fp = Fingerprinter.from_environment({"AUDITOR_FINGERPRINT_KEY_FILE": str(path)})
    assert fp("x") == Fingerprinter(b"file-key-0123456789abcdef")("x")


def test_unreadable_key_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigurationError, match=r"nope\.key"):
        Fingerprinter.from_environment({"AUDITOR_FINGERPRINT_KEY_FILE": str(missing)})


def test_both_key_sources_is_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="only one"):
        Fingerprinter.from_environment(
            {"AUDITOR_FINGERPRINT_KEY": "k" * 20, "AUDITOR_FINGERPRINT_KEY_FILE": str(tmp_path)}
        )


def test_no_key_means_ephemeral_and_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    import auditor.fingerprints as module

    module._warned = False
    fp = Fingerprinter.from_environment({})
    assert fp.ephemeral
    assert fp.key_id.startswith("eph")
    assert "ephemeral fingerprint key" in capsys.readouterr().err


def test_repr_shows_no_key() -> None:
    key = b"do-not-print-this-key"
    assert key.decode() not in repr(Fingerprinter(key))


@given(st.text(min_size=1), st.text(min_size=1))
def test_distinct_values_get_distinct_fingerprints(a: str, b: str) -> None:
    fp = Fingerprinter(b"property-key-0123456789")
    assert (fp(a) == fp(b)) == (a == b)


@given(key=st.binary(min_size=16, max_size=200), value=st.text())
def test_fingerprint_is_standard_hmac_sha256(key, value) -> None:
    # The precomputed-pad implementation must equal the standard library's HMAC, for
    # short keys and for keys longer than the SHA-256 block (which HMAC hashes first).
    expected = hmac.digest(key, value.encode("utf-8", "surrogatepass"), "sha256").hex()[:32]
    assert Fingerprinter(key)(value).partition(":")[2] == expected

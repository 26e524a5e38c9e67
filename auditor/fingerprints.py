"""Keyed fingerprints: correlate a leaked value across services and days without storing it.

A fingerprint is ``HMAC-SHA256(key, value)`` truncated to 128 bits (32 hex digits) with
the key id beside it: ``<key id>:<hex>``. Never a plain hash — an SSN has about 10^9
possible values, so its SHA-256 is reversed by enumeration in seconds; without the key an
HMAC cannot be enumerated.

The key comes from ``AUDITOR_FINGERPRINT_KEY`` (the key itself) or
``AUDITOR_FINGERPRINT_KEY_FILE`` (a file holding it). Without either, an ephemeral random
key is used and a warning is written to stderr once: fingerprints then correlate only
within this process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path
from typing import Final

from auditor.errors import ConfigurationError

FINGERPRINT_HEX_DIGITS: Final = 32
"""Truncation: 128 bits, ample against collisions, short enough to read."""

MIN_KEY_BYTES: Final = 16
ENV_KEY: Final = "AUDITOR_FINGERPRINT_KEY"
ENV_KEY_FILE: Final = "AUDITOR_FINGERPRINT_KEY_FILE"
_KEY_ID_LABEL: Final = b"cds-hooks-auditor/key-id/v1"


class Fingerprinter:
    """Computes keyed fingerprints with one key.

    Args:
        key: The secret HMAC key, at least 16 bytes.
        ephemeral: Whether the key was generated for this process only.
    """

    __slots__ = ("_inner", "_key", "_outer", "ephemeral", "key_id")

    def __init__(self, key: bytes, *, ephemeral: bool = False) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"the fingerprint key must be at least {MIN_KEY_BYTES} bytes long"
            )
        self._key = key
        # HMAC (RFC 2104) with the padded key hashed once: each fingerprint then copies
        # two SHA-256 states instead of setting up an HMAC from scratch (hmac.digest looks
        # the digest up in OpenSSL on every call), about 40% less per value.
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        self.ephemeral = ephemeral
        # The key id is itself keyed, so publishing it reveals nothing about the key.
        derived = hmac.digest(key, _KEY_ID_LABEL, "sha256").hex()[:8]
        self.key_id: str = ("eph" if ephemeral else "k") + derived

    def __repr__(self) -> str:
        return f"Fingerprinter(key_id={self.key_id!r}, ephemeral={self.ephemeral})"

    def __call__(self, value: str | bytes) -> str:
        """Return ``<key id>:<32 hex digits>`` for ``value``."""
        return f"{self.key_id}:{self._hex(value)[:FINGERPRINT_HEX_DIGITS]}"

    def short(self, value: str | bytes, digits: int = 8) -> str:
        """A short form for log markers: the first ``digits`` hex digits of the fingerprint."""
        digits = min(digits, FINGERPRINT_HEX_DIGITS)
        if digits <= 0:
            return self._hex(value)[:digits]
        # Only the bytes those digits show are written out (a marker shows 8 of 64).
        return self._digest(value)[: (digits + 1) // 2].hex()[:digits]

    def _hex(self, value: str | bytes) -> str:
        return self._digest(value).hex()

    def _digest(self, value: str | bytes) -> bytes:
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    @classmethod
    def ephemeral_key(cls) -> Fingerprinter:
        """A fingerprinter with a random key that lives as long as this process."""
        return cls(secrets.token_bytes(32), ephemeral=True)

    @classmethod
    def from_environment(
        cls, environ: dict[str, str] | None = None, *, warn: bool = True
    ) -> Fingerprinter:
        """Build from ``AUDITOR_FINGERPRINT_KEY`` or ``AUDITOR_FINGERPRINT_KEY_FILE``.

        Falls back to an ephemeral key, and says so on stderr unless ``warn`` is false.

        Raises:
            ConfigurationError: The key is too short, or the key file cannot be read.
        """
        env = os.environ if environ is None else environ
        raw = env.get(ENV_KEY)
        path = env.get(ENV_KEY_FILE)
        if raw and path:
            raise ConfigurationError(f"set only one of {ENV_KEY} and {ENV_KEY_FILE}")
        if raw:
            return cls(raw.encode())
        if path:
            return cls(read_key_file(Path(path)))
        if warn:
            _warn_ephemeral()
        return cls.ephemeral_key()


def read_key_file(path: Path) -> bytes:
    """Read a fingerprint key from a file, without its trailing newline.

    Raises:
        ConfigurationError: The file cannot be read. The message names the path, not
            the content.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the fingerprint key file {path}: {exc.strerror}"
        ) from None
    return data.rstrip(b"\r\n")


_warned = False


def _warn_ephemeral() -> None:
    global _warned  # noqa: PLW0603 - one warning per process is the point
    if _warned:
        return
    _warned = True
    sys.stderr.write(
        f"auditor: warning: no {ENV_KEY} or {ENV_KEY_FILE} set; using an ephemeral "
        "fingerprint key, so fingerprints will not match those of other runs\n"
    )


_default: Fingerprinter | None = None


def default_fingerprinter() -> Fingerprinter:
    """The process-wide fingerprinter built from the environment on first use."""
    global _default  # noqa: PLW0603 - lazily built singleton, like logging's root logger
    if _default is None:
        _default = Fingerprinter.from_environment()
    return _default

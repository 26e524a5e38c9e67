"""A CDS client's signing keys: generation, loading, a public JWK Set and rotation.

The ``kid`` of a key is its RFC 7638 thumbprint, so it is stable across restarts and
processes and unique within the JWK Set without coordination. The published JWK Set is
built from an allowlist of public members (``kty``, ``crv``, ``x``, ``y``, ``n``, ``e``,
plus ``kid``, ``alg``, ``use``): no private member can reach it, whatever the key object
holds.

Rotation keeps the old key published until the last token it signed has expired, so a
service that caches the JWK Set never sees a valid token it cannot verify; the new key
signs from the moment of rotation, and services find it through their one rate-limited
refetch on an unknown ``kid``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auditor.cdshooks import jose
from auditor.errors import ConfigurationError

DEFAULT_ALGORITHM = "ES384"
"""CDS Hooks recommends ES384 and RS384. ES256 signs and verifies ~6x faster (see bench/)."""

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_ALG_FOR_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def check_algorithm(alg: str) -> None:
    """Refuse algorithms CDS Hooks forbids or that we do not implement.

    Raises:
        ConfigurationError: ``none``, an HMAC algorithm, or an unknown one.
    """
    if alg in jose.FORBIDDEN_ALGORITHMS:
        raise ConfigurationError(
            f"algorithm {alg!r} is forbidden by CDS Hooks (none and HMAC algorithms SHALL NOT "
            "be used)"
        )
    if alg not in jose.ALGORITHM_KEY_TYPES:
        raise ConfigurationError(
            f"algorithm {alg!r} is not supported; use one of {sorted(jose.ALGORITHM_KEY_TYPES)}"
        )


class SigningKey:
    """An asymmetric private key bound to one JWS algorithm, with its public JWK.

    Args:
        private_key: An EC or RSA private key from ``cryptography``.
        alg: The JWS algorithm it signs with; must suit the key (ES384 needs P-384).
        kid: Key id; defaults to the RFC 7638 thumbprint of the public key.

    Raises:
        ConfigurationError: A forbidden algorithm, a key that does not suit it, or an RSA
            key shorter than 2048 bits.
    """

    __slots__ = ("_algorithm", "_private", "_public_jwk", "alg", "kid")

    def __init__(self, private_key: PrivateKey, *, alg: str, kid: str | None = None) -> None:
        check_algorithm(alg)
        if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size < jose.MIN_RSA_BITS:
            raise ConfigurationError(f"RSA signing keys need at least {jose.MIN_RSA_BITS} bits")
        algorithm = jose.algorithm(alg)
        public = algorithm.to_jwk(private_key.public_key(), as_dict=True)
        if not jose.key_suits(alg, public):
            raise ConfigurationError(f"the private key does not suit algorithm {alg!r}")
        members = jose.public_members(public)
        self._private = private_key
        self._algorithm = algorithm
        self.alg = alg
        self.kid = kid or jose.jwk_thumbprint(members)
        self._public_jwk: dict[str, str] = {**members, "kid": self.kid, "alg": alg, "use": "sig"}

    def __repr__(self) -> str:
        return f"SigningKey(alg={self.alg!r}, kid={self.kid!r})"

    @classmethod
    def generate(cls, alg: str = DEFAULT_ALGORITHM, *, rsa_bits: int = 2048) -> SigningKey:
        """A fresh key for ``alg`` (EC on the algorithm's curve, or RSA of ``rsa_bits``)."""
        check_algorithm(alg)
        kty, crv = jose.ALGORITHM_KEY_TYPES[alg]
        key: PrivateKey
        if kty == "EC":
            assert crv is not None  # every EC entry names its curve
            key = ec.generate_private_key(_CURVES[crv])
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        return cls(key, alg=alg)

    @classmethod
    def from_pem(
        cls,
        data: bytes,
        *,
        alg: str | None = None,
        password: bytes | None = None,
        kid: str | None = None,
    ) -> SigningKey:
        """Load a PEM (PKCS#8 or traditional) private key.

        Args:
            data: The PEM bytes.
            alg: The algorithm; by default ES256/ES384/ES512 by curve, RS384 for RSA.
            password: The PEM password, if encrypted.
            kid: Key id; defaults to the RFC 7638 thumbprint.

        Raises:
            ConfigurationError: Not a PEM private key, or not EC/RSA. The message never
                repeats the PEM.
        """
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError):
            raise ConfigurationError("not a readable PEM private key") from None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            chosen = alg or _ALG_FOR_CURVE.get(key.curve.name)
        elif isinstance(key, rsa.RSAPrivateKey):
            chosen = alg or "RS384"
        else:
            raise ConfigurationError("only EC and RSA private keys can sign CDS Hooks JWTs")
        if chosen is None:
            raise ConfigurationError("the EC key's curve is not P-256, P-384 or P-521")
        return cls(key, alg=chosen, kid=kid)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        """The public half, for in-process verification."""
        return self._private.public_key()

    def public_jwk(self) -> dict[str, str]:
        """The public JWK: ``kty``, curve or modulus members, ``kid``, ``alg``, ``use``."""
        return dict(self._public_jwk)

    def sign(self, signing_input: bytes) -> bytes:
        """Sign the JWS signing input (raw ``R || S`` for ECDSA, as JWS requires)."""
        return bytes(self._algorithm.sign(signing_input, self._private))


@dataclass(frozen=True, slots=True)
class _Published:
    key: SigningKey
    until: datetime | None  # None: the current key, published indefinitely


class KeyRing:
    """The current signing key and the retired keys still published for verification.

    Thread-safe: minting reads ``current`` while another thread may rotate.

    Args:
        current: The key that signs new tokens.
    """

    __slots__ = ("_lock", "_published")

    def __init__(self, current: SigningKey) -> None:
        self._lock = threading.Lock()
        self._published: tuple[_Published, ...] = (_Published(current, None),)

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current!r}, published={len(self._published)})"

    @property
    def current(self) -> SigningKey:
        """The key that signs new tokens."""
        return self._published[0].key

    def rotate(
        self, new: SigningKey, *, keep_old_until: datetime, now: datetime | None = None
    ) -> SigningKey:
        """Make ``new`` the signing key; keep the old one published until ``keep_old_until``.

        ``keep_old_until`` should be the rotation time plus the longest token lifetime plus
        the verifiers' clock skew: the moment the last token signed by the old key is no
        longer accepted anywhere. Retired keys whose time has passed at ``now`` are
        forgotten. Returns the retired key.

        Raises:
            ConfigurationError: ``new`` has the ``kid`` of a key still published.
        """
        with self._lock:
            kept = tuple(
                p for p in self._published[1:] if now is None or p.until is None or p.until > now
            )
            old = self._published[0]
            if any(p.key.kid == new.kid for p in (old, *kept)):
                raise ConfigurationError(f"a key with kid {new.kid!r} is already published")
            self._published = (_Published(new, None), _Published(old.key, keep_old_until), *kept)
            return old.key

    def published(self, *, now: datetime) -> tuple[SigningKey, ...]:
        """The keys a verifier may still see tokens from at ``now``: current first."""
        published = self._published
        return tuple(p.key for p in published if p.until is None or p.until > now)

    def jwks(self, *, now: datetime) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set to publish at ``now`` (public members only)."""
        return {"keys": [key.public_jwk() for key in self.published(now=now)]}

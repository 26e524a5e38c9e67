"""Signing keys that a seed reproduces: EC keys derived from it, RFC 6979 signatures.

A simulation must write the same bytes for the same seed, and the keyed fingerprint of a
token is a function of the whole token, signature included. ECDSA as usually run draws a
fresh random nonce per signature, so two runs would sign the same claims differently.
RFC 6979 derives the nonce from the key and the message instead: the signature is still a
real ES256/ES384 signature that any verifier accepts, and it is the same on every run.
"""

from __future__ import annotations

import random
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from auditor.cdshooks import SigningKey
from auditor.cdshooks.jose import b64url_encode
from auditor.errors import ConfigurationError

_CURVES: Final[dict[str, tuple[ec.EllipticCurve, type[hashes.HashAlgorithm]]]] = {
    "ES256": (ec.SECP256R1(), hashes.SHA256),
    "ES384": (ec.SECP384R1(), hashes.SHA384),
    "ES512": (ec.SECP521R1(), hashes.SHA512),
}


class DeterministicKey(SigningKey):
    """A :class:`~auditor.cdshooks.SigningKey` that signs with deterministic ECDSA (RFC 6979).

    Args:
        private_key: An EC private key on the curve of ``alg``.
        alg: ``ES256``, ``ES384`` or ``ES512``.

    Raises:
        ConfigurationError: Another algorithm, or a key on the wrong curve.
    """

    __slots__ = ("_ec", "_ecdsa", "_size")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, *, alg: str) -> None:
        if alg not in _CURVES:
            raise ConfigurationError(f"deterministic signing supports {sorted(_CURVES)}, not {alg}")
        super().__init__(private_key, alg=alg)
        self._ec = private_key
        self._ecdsa = ec.ECDSA(_CURVES[alg][1](), deterministic_signing=True)
        self._size = (private_key.curve.key_size + 7) // 8

    @classmethod
    def derive(cls, rng: random.Random, alg: str) -> DeterministicKey:
        """A key whose private value is drawn from ``rng`` (so a seed fixes it).

        Raises:
            ConfigurationError: An algorithm other than ES256, ES384 or ES512.
        """
        if alg not in _CURVES:
            raise ConfigurationError(f"deterministic keys support {sorted(_CURVES)}, not {alg}")
        curve = _CURVES[alg][0]
        # Below 2^(bits-1), hence below the curve order, and never zero.
        value = rng.getrandbits(curve.key_size - 1) | 1
        return cls(ec.derive_private_key(value, curve), alg=alg)

    def private_jwk(self) -> dict[str, str]:
        """The key as a private JWK (``d`` included): what a careless process might log.

        Only the simulator's leak incidents call this; a real client never should.
        """
        value = self._ec.private_numbers().private_value
        return {**self.public_jwk(), "d": b64url_encode(value.to_bytes(self._size, "big"))}

    def sign(self, signing_input: bytes) -> bytes:
        """Sign with RFC 6979 nonces; raw ``R || S`` as JWS requires."""
        r, s = decode_dss_signature(self._ec.sign(signing_input, self._ecdsa))
        return r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")

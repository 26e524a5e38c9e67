"""Attack tokens, for tests and the traffic simulator. Never for production code paths.

A :class:`Forger` starts from a real client's identity (its ``iss`` and signing key) and
crafts the tokens an attacker, a broken client or a drifting clock would produce:
``alg: none``, HS256 keyed with the client's *public* key (algorithm confusion), an
unknown ``kid``, the wrong audience, expired, skewed, over-long lifetimes, missing
claims, a wrong ``typ``, an unapproved ``jku``, a tampered payload, a foreign issuer.
A replay is simply a valid token sent twice.

:data:`EXPECTED_REASON` names the refusal :class:`~auditor.cdshooks.verification.Verifier`
gives each forgery, so simulations can label their ground truth.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import uuid4

from cryptography.hazmat.primitives import serialization

from auditor.cdshooks import jose
from auditor.cdshooks.client import CdsClient
from auditor.cdshooks.keys import SigningKey
from auditor.vocabulary import FailureReason

EXPECTED_REASON: Final[Mapping[str, FailureReason]] = {
    "alg_none": FailureReason.ALG_NOT_ALLOWED,
    "hs256_with_public_key": FailureReason.ALG_NOT_ALLOWED,
    "unknown_kid": FailureReason.UNKNOWN_KID,
    "wrong_audience": FailureReason.AUD_MISMATCH,
    "expired": FailureReason.EXPIRED,
    "clock_ahead": FailureReason.IAT_IN_FUTURE,
    "clock_behind": FailureReason.EXPIRED,
    "not_yet_valid": FailureReason.NOT_YET_VALID,
    "long_lifetime": FailureReason.LIFETIME_TOO_LONG,
    "missing_claim": FailureReason.MISSING_CLAIM,
    "wrong_typ": FailureReason.TYP_INVALID,
    "unapproved_jku": FailureReason.JKU_NOT_ALLOWED,
    "tampered": FailureReason.BAD_SIGNATURE,
    "foreign_issuer": FailureReason.UNKNOWN_ISSUER,
    "garbage": FailureReason.MALFORMED,
}
"""The reason a default :class:`Verifier` gives each :class:`Forger` method's token."""


def sign_raw(header: Mapping[str, Any], claims: Mapping[str, Any], key: SigningKey) -> str:
    """Sign any header and claims with ``key``, bypassing every check a client makes."""
    return jose.encode_compact(header, jose.canonical_json(claims), key.sign)


class Forger:
    """Crafts attack tokens in the name of one client.

    Args:
        issuer: The ``iss`` to claim.
        key: The client's real signing key (its ``kid`` and public key are what services
            know).
        lifetime: ``exp - iat`` of otherwise normal tokens, in seconds.
        new_jti: Makes each token's ``jti`` (a random UUID by default; a simulation that
            must be reproducible passes a seeded one).
        stranger: The key nobody published, for ``unknown_kid`` and ``foreign_issuer``
            (generated on first use by default).
    """

    def __init__(
        self,
        issuer: str,
        key: SigningKey,
        *,
        lifetime: int = 300,
        new_jti: Callable[[], str] | None = None,
        stranger: SigningKey | None = None,
    ) -> None:
        self.issuer = issuer
        self.key = key
        self.lifetime = lifetime
        self._new_jti = new_jti or (lambda: str(uuid4()))
        self._stranger: SigningKey | None = stranger

    @classmethod
    def for_client(cls, client: CdsClient) -> Forger:
        """A forger with the identity and current key of ``client``."""
        return cls(
            client.issuer,
            client.keyring.current,
            lifetime=int(client.token_lifetime.total_seconds()),
        )

    def header(self, **overrides: Any) -> dict[str, Any]:
        """A correct header (``alg``, ``kid``, ``typ``), with overrides; ``None`` removes one."""
        header: dict[str, Any] = {"alg": self.key.alg, "kid": self.key.kid, "typ": "JWT"}
        return _apply(header, overrides)

    def claims(self, audience: str, now: datetime, **overrides: Any) -> dict[str, Any]:
        """Correct claims for ``audience`` at ``now``, with overrides; ``None`` removes one."""
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": iat,
            "exp": iat + self.lifetime,
            "jti": self._new_jti(),
        }
        return _apply(claims, overrides)

    def valid(self, audience: str, now: datetime) -> str:
        """A correct token — send it twice for a replay."""
        return sign_raw(self.header(), self.claims(audience, now), self.key)

    def alg_none(self, audience: str, now: datetime) -> str:
        """``alg: none`` with an empty signature (RFC 7519 §6 unsecured JWT)."""
        header = self.header(alg="none")
        payload = jose.canonical_json(self.claims(audience, now))
        return jose.encode_compact(header, payload, lambda _signing_input: b"")

    def hs256_with_public_key(self, audience: str, now: datetime) -> str:
        """HS256 keyed with the client's public key PEM: the algorithm-confusion attack."""
        secret = self.key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = self.header(alg="HS256")
        payload = jose.canonical_json(self.claims(audience, now))
        return jose.encode_compact(
            header, payload, lambda data: hmac.new(secret, data, hashlib.sha256).digest()
        )

    def unknown_kid(self, audience: str, now: datetime) -> str:
        """Signed by a key the client never published, under a ``kid`` nobody knows."""
        stranger = self._stranger_key()
        return sign_raw(
            self.header(kid=stranger.kid, alg=stranger.alg), self.claims(audience, now), stranger
        )

    def wrong_audience(
        self,
        audience: str,
        now: datetime,
        *,
        other: str = "https://cds.attacker.example/cds-services/x",
    ) -> str:
        """A correct token for ``other``, presented at ``audience`` (token forwarding)."""
        del audience  # presented there, minted for the other service
        return sign_raw(self.header(), self.claims(other, now), self.key)

    def expired(
        self, audience: str, now: datetime, *, ago: timedelta = timedelta(minutes=10)
    ) -> str:
        """A token whose ``exp`` passed ``ago`` before ``now``."""
        exp = int((now - ago).timestamp())
        claims = self.claims(audience, now, exp=exp, iat=exp - self.lifetime)
        return sign_raw(self.header(), claims, self.key)

    def clock_ahead(
        self, audience: str, now: datetime, *, skew: timedelta = timedelta(minutes=10)
    ) -> str:
        """Minted by a client whose clock runs ``skew`` ahead (``iat`` in the future)."""
        return sign_raw(self.header(), self.claims(audience, now + skew), self.key)

    def clock_behind(
        self, audience: str, now: datetime, *, skew: timedelta = timedelta(minutes=10)
    ) -> str:
        """Minted by a client whose clock runs ``skew`` behind (expired on arrival)."""
        return sign_raw(self.header(), self.claims(audience, now - skew), self.key)

    def not_yet_valid(
        self, audience: str, now: datetime, *, delay: timedelta = timedelta(minutes=2)
    ) -> str:
        """A token with ``nbf`` ``delay`` after ``now``."""
        claims = self.claims(audience, now, nbf=int((now + delay).timestamp()))
        return sign_raw(self.header(), claims, self.key)

    def long_lifetime(
        self, audience: str, now: datetime, *, lifetime: timedelta = timedelta(hours=2)
    ) -> str:
        """A token valid for ``lifetime`` (over the verifier's limit)."""
        iat = int(now.timestamp())
        claims = self.claims(audience, now, exp=iat + int(lifetime.total_seconds()))
        return sign_raw(self.header(), claims, self.key)

    def missing_claim(self, audience: str, now: datetime, *, claim: str = "jti") -> str:
        """A signed token without ``claim`` (``iss``, ``aud``, ``exp``, ``iat`` or ``jti``)."""
        return sign_raw(self.header(), self.claims(audience, now, **{claim: None}), self.key)

    def wrong_typ(self, audience: str, now: datetime, *, typ: str | None = "at+jwt") -> str:
        """A signed token whose ``typ`` is not ``JWT`` (or absent with ``typ=None``)."""
        return sign_raw(self.header(typ=typ), self.claims(audience, now), self.key)

    def unapproved_jku(
        self, audience: str, now: datetime, *, jku: str = "https://keys.attacker.example/jwks.json"
    ) -> str:
        """A token pointing at a JWK Set URL the service never approved."""
        return sign_raw(self.header(jku=jku), self.claims(audience, now), self.key)

    def tampered(self, audience: str, now: datetime) -> str:
        """A valid token whose payload was changed after signing."""
        header_b64, _, signature_b64 = self.valid(audience, now).split(".")
        forged = self.claims(audience, now, tenant="escalated")
        return f"{header_b64}.{jose.b64url_encode(jose.canonical_json(forged))}.{signature_b64}"

    def foreign_issuer(
        self, audience: str, now: datetime, *, iss: str = "https://ehr.attacker.example"
    ) -> str:
        """A well-formed token from an issuer the service does not trust."""
        stranger = self._stranger_key()
        claims = self.claims(audience, now, iss=iss)
        return sign_raw(self.header(kid=stranger.kid, alg=stranger.alg), claims, stranger)

    def garbage(self, audience: str, now: datetime) -> str:
        """Not a JWT at all (three segments of junk)."""
        del audience, now
        return "not-base64!.still-not.nope"

    def _stranger_key(self) -> SigningKey:
        if self._stranger is None:
            self._stranger = SigningKey.generate(self.key.alg)
        return self._stranger


def _apply(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base

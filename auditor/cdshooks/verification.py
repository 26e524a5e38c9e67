"""Service side: verify a CDS Hooks JWT and record the decision.

The checks run in this order, and the first that fails names the ``reason``:

=====================  =======================================  ==========================
reason                 check                                    rule
=====================  =======================================  ==========================
``missing_token``      a bearer token is present                CDS Hooks (normative)
``malformed``          compact JWS, canonical base64url, JSON   RFC 7515 / RFC 7519
                       objects without duplicate members, no
                       ``crit``, claim types
``missing_claim``      header ``alg``, ``kid``; payload         CDS Hooks (normative)
                       ``iss`` (before the signature), ``aud``,
                       ``exp``, ``iat``, ``jti`` (after it).
                       There is no ``sub`` in CDS Hooks.
``alg_not_allowed``    ``alg`` on the allowlist (never ``none`` CDS Hooks (normative)
                       or HMAC), and suits the key's type
``typ_invalid``        ``typ`` is ``JWT``                       CDS Hooks (normative)
``unknown_issuer``     ``iss`` is a trusted issuer              CDS Hooks (SHOULD)
``jku_not_allowed``    ``jku``, when present, is pre-approved   CDS Hooks (SHOULD)
``unknown_kid``        ``kid`` is in the issuer's JWK Set       CDS Hooks (normative)
``jwks_unavailable``   the issuer's JWK Set could be loaded     operational
``bad_signature``      the signature verifies                   RFC 7515
``aud_mismatch``       ``aud`` names this endpoint's URL        CDS Hooks (normative)
``expired``            ``now <= exp + skew``                    RFC 7519
``not_yet_valid``      ``nbf <= now + skew``                    RFC 7519
``iat_in_future``      ``iat <= now + skew``                    local policy
``lifetime_too_long``  ``exp - iat`` and ``exp - now`` within   local policy (SMART
                       ``max_lifetime`` (default 5 minutes)     Backend Services)
``replayed_jti``       ``(iss, jti)`` not seen before           best practice / SMART
``replay_cache_full``  the replay cache could record it         operational (fail closed)
=====================  =======================================  ==========================

Header checks come first because the key cannot be chosen without them; the signature
comes before any claim check, so claim-based reasons are only reported for tokens the
issuer really signed. The token itself never appears in a result, an event, a log line
or an exception: only its keyed fingerprint and its claims do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from auditor.cdshooks import jose
from auditor.cdshooks.events import (
    EventFactory,
    audiences,
    aware,
    client_ref,
    numeric_date,
    text,
    token_claims,
)
from auditor.cdshooks.jwks import JwksFetch, VerificationKey
from auditor.cdshooks.replay import InMemoryReplayCache, ReplayCache, ReplayVerdict
from auditor.cdshooks.trust import TrustRegistry
from auditor.cdshooks.urls import canonical_url, require_canonical_url
from auditor.errors import AuditorError, ConfigurationError
from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.models import ClientRef, Peer, ServiceRef, Source, TlsInfo, TokenClaims
from auditor.protocols import EventSink
from auditor.vocabulary import AuthzAction, FailureReason, Outcome

DEFAULT_ALGORITHMS: Final = tuple(jose.ALGORITHM_KEY_TYPES)
"""Every asymmetric algorithm we implement. Restrict to ``RECOMMENDED_ALGORITHMS`` if you can."""

MAX_LIFETIME_CEILING: Final = timedelta(hours=1)
"""CDS Hooks best practices: keep ``jti``s for the longest lifetime, "no more than an hour"."""

_TYP_VALUES: Final = frozenset({"JWT", "APPLICATION/JWT"})  # media types are case-insensitive
_MAX_KID: Final = 256
_MAX_JTI: Final = 256
_MAX_AUDIENCES: Final = 16


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """The tunable rules of :class:`Verifier`; the normative ones are not tunable.

    Attributes:
        algorithms: Accepted ``alg`` values. ``none`` and HMAC algorithms are refused at
            construction (CDS Hooks: SHALL NOT be used).
        clock_skew: Tolerance for ``exp``, ``nbf`` and ``iat`` (the spec sets none).
        max_lifetime: Longest accepted ``exp - iat`` (and ``exp - now``). Local policy, after
            SMART Backend Services' 5 minutes; at most one hour.
        max_token_length: Longest accepted compact token, in characters.
    """

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    clock_skew: timedelta = timedelta(seconds=30)
    max_lifetime: timedelta = timedelta(minutes=5)
    max_token_length: int = 8192

    def validated(self) -> VerificationPolicy:
        """Return ``self`` after checking it.

        Raises:
            ConfigurationError: A forbidden or unknown algorithm, or limits out of range.
        """
        if not self.algorithms:
            raise ConfigurationError("the verification policy allows no algorithm")
        for alg in self.algorithms:
            if alg in jose.FORBIDDEN_ALGORITHMS:
                raise ConfigurationError(
                    f"algorithm {alg!r} is forbidden by CDS Hooks (none and HMAC SHALL NOT be used)"
                )
            if alg not in jose.ALGORITHM_KEY_TYPES:
                raise ConfigurationError(f"algorithm {alg!r} is not supported")
        if not timedelta(0) <= self.clock_skew <= timedelta(minutes=5):
            raise ConfigurationError("clock_skew must be between 0 and 5 minutes")
        if not timedelta(seconds=1) <= self.max_lifetime <= MAX_LIFETIME_CEILING:
            raise ConfigurationError("max_lifetime must be between 1 second and 1 hour")
        if not 256 <= self.max_token_length <= 65536:  # noqa: PLR2004 - sane bounds
            raise ConfigurationError("max_token_length must be between 256 and 65536")
        return self


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking one token.

    Attributes:
        reason: ``None`` when the token is accepted; otherwise why it is not.
        detail: Which check or claim failed, without any value from the token.
        claims: What may be recorded about the token (claims and fingerprint).
        client: ``iss`` and ``tenant`` (from the unverified token when it was refused).
        payload: The verified claims; empty when the token was refused.
    """

    reason: FailureReason | None
    detail: str | None
    claims: TokenClaims
    client: ClientRef | None
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the token was accepted."""
        return self.reason is None

    @property
    def issuer(self) -> str | None:
        """The client's ``iss``, when the token named one."""
        return self.client.iss if self.client is not None else None


class TokenRejected(AuditorError):
    """Raised by :meth:`Verifier.require`; carries the reason, never the token."""

    def __init__(self, verification: Verification) -> None:
        reason = verification.reason.value if verification.reason else "rejected"
        super().__init__(
            f"token rejected: {reason}"
            + (f" ({verification.detail})" if verification.detail else "")
        )
        self.verification = verification
        self.reason = verification.reason


class _Refusal(Exception):
    """A failed check inside ``Verifier.check`` (never escapes it); the detail holds no value."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _issuer(claims: Mapping[str, Any]) -> str:
    iss = claims.get("iss")
    if iss is None:
        raise _Refusal(FailureReason.MISSING_CLAIM, "iss")
    if text(iss) is None:
        raise _Refusal(FailureReason.MALFORMED, "iss is not a short string")
    return str(iss)


def _check_signature(jws: jose.CompactJws, alg: str, key: VerificationKey) -> None:
    if not jose.verify_signature(jws, alg, key.public_key):
        raise _Refusal(FailureReason.BAD_SIGNATURE, "signature does not verify")


class Verifier:
    """Verifies CDS Hooks JWTs for the services under one base URL, and records each decision.

    Thread-safe; one instance serves every request of a process. Emits ``token.validated``
    or ``token.rejected`` from :meth:`verify` and ``jwks.fetched`` whenever a JWK Set
    source is loaded.

    Args:
        registry: The trusted issuers and their keys.
        base_url: The public base URL of the CDS services (``aud`` is
            ``{base_url}/cds-services/{id}``), as the clients call it.
        policy: Algorithm allowlist, skew and lifetime limits.
        replay_cache: Where seen ``jti``s are kept; an in-memory cache by default.
        sink: Where events go; ``None`` records nothing.
        source: The emitting service, for events.
        fingerprinter: Keyed fingerprints of tokens; the environment's by default.
        allow_http: Accept an ``http`` base URL (loopback development only).

    Raises:
        ConfigurationError: A bad policy or base URL.
    """

    def __init__(
        self,
        registry: TrustRegistry,
        *,
        base_url: str,
        policy: VerificationPolicy | None = None,
        replay_cache: ReplayCache | None = None,
        sink: EventSink | None = None,
        source: Source | None = None,
        fingerprinter: Fingerprinter | None = None,
        allow_http: bool = False,
    ) -> None:
        self.registry = registry
        self.policy = (policy or VerificationPolicy()).validated()
        self.base_url = require_canonical_url(base_url, what="base_url", allow_http=allow_http)
        # Not `or`: an empty cache has len() 0 and is falsy.
        self.replay_cache: ReplayCache = (
            InMemoryReplayCache() if replay_cache is None else replay_cache
        )
        self.fingerprinter = fingerprinter or default_fingerprinter()
        self._allow_http = allow_http
        self._algorithms = frozenset(self.policy.algorithms)
        self._skew = self.policy.clock_skew.total_seconds()
        self._max_lifetime = self.policy.max_lifetime.total_seconds()
        self._services_prefix = f"{self.base_url}/cds-services/"
        self._events = (
            EventFactory(
                source or Source(role="service", name="cds-service"), sink, self.fingerprinter
            )
            if sink is not None
            else None
        )

    def __repr__(self) -> str:
        return f"Verifier(base_url={self.base_url!r}, issuers={len(self.registry.issuers)})"

    @property
    def events(self) -> EventFactory | None:
        """The event factory (for the middleware, which records request-level decisions)."""
        return self._events

    def audience(self, service_id: str | None = None) -> str:
        """The ``aud`` a token must carry for a service (or for discovery when ``None``)."""
        if service_id is None:
            return f"{self.base_url}/cds-services"
        return f"{self._services_prefix}{service_id}"

    def service_ref(self, audience: str) -> ServiceRef:
        """The service an audience URL names, for events."""
        service_id = None
        if audience.startswith(self._services_prefix):
            service_id = text(audience[len(self._services_prefix) :].split("/", 1)[0])
        # The path comes from the request: capped here so recording it can never raise.
        return ServiceRef.model_construct(id=service_id, url=text(audience))

    def verify(
        self,
        token: str | None,
        service_id: str | None = None,
        *,
        audience: str | None = None,
        now: datetime | None = None,
        peer_ip: str | None = None,
        tls: TlsInfo | None = None,
    ) -> Verification:
        """Check a token for a service and emit ``token.validated`` or ``token.rejected``.

        Args:
            token: The compact JWT (without ``Bearer``), or ``None`` when absent.
            service_id: The CDS service called; ``aud`` must be its endpoint URL.
            audience: The exact endpoint URL instead of ``service_id``.
            now: The decision time; the wall clock when omitted.
            peer_ip: The caller's address, for the event.
            tls: The TLS session, for the event.
        """
        at = aware(now)
        aud = audience or self.audience(service_id)
        result = self.check(token, audience=aud, now=at)
        if self._events is not None:
            self._events.emit(
                AuthzAction.TOKEN_VALIDATED if result.ok else AuthzAction.TOKEN_REJECTED,
                time=at,
                reason=result.reason,
                detail=result.detail,
                client=result.client,
                service=self.service_ref(aud),
                token=result.claims,
                peer=Peer(ip=peer_ip) if peer_ip else None,
                tls=tls,
            )
        return result

    def require(
        self, token: str | None, service_id: str | None = None, *, now: datetime | None = None
    ) -> Verification:
        """Like :meth:`verify`, but raise :class:`TokenRejected` on refusal.

        Raises:
            TokenRejected: The token was refused; its message names the reason only.
        """
        result = self.verify(token, service_id, now=now)
        if not result.ok:
            raise TokenRejected(result)
        return result

    def check(self, token: str | None, *, audience: str, now: datetime) -> Verification:
        """Check a token without emitting its decision (``jwks.fetched`` is still emitted).

        The middleware uses this to emit one event per request once the body is checked.
        """
        aware(now)
        if not token:
            return self._refuse(FailureReason.MISSING_TOKEN, "no bearer token", {}, {}, None)
        fingerprint = self.fingerprinter(token) if isinstance(token, str) else None
        header: dict[str, Any] = {}
        claims: dict[str, Any] = {}
        at = now.timestamp()
        try:
            jws = jose.parse_compact(token, max_length=self.policy.max_token_length)
            header = jws.header
            claims = jose.json_object(jws.payload, "payload")
            alg, kid, jku = self._check_header(header)
            key = self._key_for(_issuer(claims), kid, jku, alg, at)
            _check_signature(jws, alg, key)
            self._check_claims(claims, audience, at)
            self._remember(claims, at)
        except jose.JoseFormatError as exc:
            return self._refuse(FailureReason.MALFORMED, str(exc), header, claims, fingerprint)
        except _Refusal as refusal:
            return self._refuse(refusal.reason, refusal.detail, header, claims, fingerprint)
        return Verification(
            None, None, token_claims(header, claims, fingerprint), client_ref(claims), claims
        )

    def _check_header(self, header: Mapping[str, Any]) -> tuple[str, str, str | None]:
        alg = header.get("alg")
        if alg is None:
            raise _Refusal(FailureReason.MISSING_CLAIM, "alg (header)")
        if alg not in self._algorithms:
            raise _Refusal(FailureReason.ALG_NOT_ALLOWED, "alg is not on the allowlist")
        typ = header.get("typ")
        if typ is None:
            raise _Refusal(FailureReason.TYP_INVALID, "typ (header) is missing")
        if not isinstance(typ, str) or typ.upper() not in _TYP_VALUES:
            raise _Refusal(FailureReason.TYP_INVALID, "typ (header) is not JWT")
        if "crit" in header:
            raise _Refusal(FailureReason.MALFORMED, "crit (header) extensions are not supported")
        kid = header.get("kid")
        if kid is None:
            raise _Refusal(FailureReason.MISSING_CLAIM, "kid (header)")
        if text(kid, _MAX_KID) is None:
            raise _Refusal(FailureReason.MALFORMED, "kid (header) is not a short string")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise _Refusal(FailureReason.MALFORMED, "jku (header) is not a string")
        return alg, kid, jku

    def _key_for(self, iss: str, kid: str, jku: str | None, alg: str, at: float) -> VerificationKey:
        lookup = self.registry.lookup(iss, kid, jku, now=at, listener=self._on_fetch)
        if lookup.key is None:
            reason = lookup.reason or FailureReason.UNKNOWN_KID
            raise _Refusal(reason, lookup.detail or reason.value)
        if not lookup.key.suits(alg):
            raise _Refusal(FailureReason.ALG_NOT_ALLOWED, "alg does not suit the key named by kid")
        return lookup.key

    def _check_claims(self, claims: Mapping[str, Any], audience: str, at: float) -> None:
        for name in ("aud", "exp", "iat", "jti"):
            if claims.get(name) is None:
                raise _Refusal(FailureReason.MISSING_CLAIM, name)
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is not None and numeric_date(value) is None:
                raise _Refusal(FailureReason.MALFORMED, f"{name} is not a NumericDate")
        for name, limit, required in (("jti", _MAX_JTI, True), ("tenant", 512, False)):
            value = claims.get(name)
            if (required or value is not None) and text(value, limit) is None:
                raise _Refusal(FailureReason.MALFORMED, f"{name} is not a short string")
        aud = claims["aud"]
        if isinstance(aud, list):
            well_formed = 0 < len(aud) <= _MAX_AUDIENCES and all(text(a) for a in aud)
        else:
            well_formed = text(aud) is not None
        if not well_formed:
            raise _Refusal(FailureReason.MALFORMED, "aud is not a string or array of strings")
        if not self._audience_matches(audiences(aud), audience):
            raise _Refusal(FailureReason.AUD_MISMATCH, "aud does not name this endpoint")
        self._check_times(claims["exp"], claims["iat"], claims.get("nbf"), at)

    def _remember(self, claims: Mapping[str, Any], at: float) -> None:
        verdict = self.replay_cache.check_and_remember(
            claims["iss"], claims["jti"], expires_at=float(claims["exp"]) + self._skew, now=at
        )
        if verdict is ReplayVerdict.REPLAYED:
            raise _Refusal(FailureReason.REPLAYED_JTI, "jti was already used")
        if verdict is ReplayVerdict.FULL:
            raise _Refusal(FailureReason.REPLAY_CACHE_FULL, "replay cache is full")

    def _check_times(self, exp: float, iat: float, nbf: float | None, at: float) -> None:
        skew, limit = self._skew, self._max_lifetime
        if at > exp + skew:
            raise _Refusal(FailureReason.EXPIRED, "exp has passed")
        if nbf is not None and nbf > at + skew:
            raise _Refusal(FailureReason.NOT_YET_VALID, "nbf is in the future")
        if iat > at + skew:
            raise _Refusal(FailureReason.IAT_IN_FUTURE, "iat is in the future")
        if exp <= iat:
            raise _Refusal(FailureReason.MALFORMED, "exp is not after iat")
        if exp - iat > limit:
            raise _Refusal(
                FailureReason.LIFETIME_TOO_LONG,
                f"exp - iat is {exp - iat:.0f}s, over the {limit:.0f}s limit (local policy)",
            )
        if exp - at > limit + skew:
            raise _Refusal(
                FailureReason.LIFETIME_TOO_LONG,
                f"exp is {exp - at:.0f}s ahead, over the {limit:.0f}s limit (local policy)",
            )

    def _audience_matches(self, values: tuple[str, ...], expected: str) -> bool:
        if expected in values:
            return True
        wanted = canonical_url(expected, allow_http=self._allow_http)
        return wanted is not None and any(
            canonical_url(value, allow_http=self._allow_http) == wanted for value in values
        )

    def _refuse(
        self,
        reason: FailureReason,
        detail: str,
        header: Mapping[str, Any],
        claims: Mapping[str, Any],
        fingerprint: str | None,
    ) -> Verification:
        return Verification(
            reason, detail, token_claims(header, claims, fingerprint), client_ref(claims)
        )

    def _on_fetch(self, fetch: JwksFetch) -> None:
        if self._events is None:
            return
        self._events.emit(
            AuthzAction.JWKS_FETCHED,
            time=datetime.fromtimestamp(fetch.at, UTC),
            reason=None if fetch.ok else FailureReason.JWKS_UNAVAILABLE,
            outcome=Outcome.SUCCESS if fetch.ok else Outcome.FAILURE,
            detail=fetch.detail,
            client=ClientRef(iss=fetch.iss),
            attributes={"jwks_source": fetch.source, "keys": fetch.keys},
        )

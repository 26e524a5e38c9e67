"""Client side: an EHR (CDS client) minting CDS Hooks JWTs for the services it may call.

A :class:`CdsClient` holds the client's ``iss``, its :class:`~auditor.cdshooks.keys.KeyRing`
and an allowlist of service endpoints. :meth:`CdsClient.mint` refuses any audience that
is not on the allowlist (emitting ``allowlist.denied``) — a token is a credential for the
URL it names, and minting one for an arbitrary URL hands that URL a credential. Every
token gets a fresh ``jti`` and emits ``token.issued``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import uuid4

from auditor.cdshooks import jose
from auditor.cdshooks.events import EventFactory, aware, client_ref, text, token_claims
from auditor.cdshooks.keys import KeyRing, SigningKey
from auditor.cdshooks.urls import canonical_url, display_url, require_canonical_url
from auditor.errors import AuditorError, ConfigurationError
from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.models import AuthzEvent, ServiceRef, Source
from auditor.protocols import EventSink
from auditor.vocabulary import AuthzAction, FailureReason

DEFAULT_TOKEN_LIFETIME: Final = timedelta(minutes=5)
"""Short, and within SMART Backend Services' 5 minutes that services often enforce."""

DEFAULT_ROTATION_MARGIN: Final = timedelta(minutes=1)
"""Extra time a retired key stays published, for verifiers' clock skew."""

_SERVICES_PATH: Final = "/cds-services"
_MAX_REMEMBERED_URLS: Final = 4096


class ServiceNotAllowed(AuditorError):
    """A token was requested for an audience that is not on the client's service allowlist."""


def service_url(base_url: str, service_id: str | None = None) -> str:
    """The endpoint URL of a service (``{base}/cds-services/{id}``), or of discovery."""
    base = base_url.rstrip("/")
    return (
        f"{base}{_SERVICES_PATH}" if service_id is None else f"{base}{_SERVICES_PATH}/{service_id}"
    )


class ServiceAllowlist:
    """The CDS services a client may call, by base URL or by exact endpoint URL.

    A base URL (``https://cds.example.com``) allows its discovery endpoint and every
    ``{base}/cds-services/{id}`` below it; a full endpoint URL allows only itself.

    Args:
        entries: Base or endpoint URLs.
        allow_http: Accept http URLs (loopback development only).

    Raises:
        ConfigurationError: An entry is not an https URL without credentials, query or
            fragment.
    """

    __slots__ = ("_allow_http", "_bases", "_decided", "_endpoints")

    def __init__(self, entries: Iterable[str], *, allow_http: bool = False) -> None:
        self._allow_http = allow_http
        bases: set[str] = set()
        endpoints: set[str] = set()
        for entry in entries:
            url = require_canonical_url(entry, what="allowed service", allow_http=allow_http)
            (endpoints if f"{_SERVICES_PATH}" in url else bases).add(url)
        self._bases = frozenset(bases)
        self._endpoints = frozenset(endpoints)
        self._decided: dict[str, bool] = {}  # a client mints for a few URLs, many times

    def __repr__(self) -> str:
        return f"ServiceAllowlist(bases={len(self._bases)}, endpoints={len(self._endpoints)})"

    def allows(self, url: str) -> bool:
        """Whether a token may be minted for ``url``."""
        decided = self._decided.get(url)
        if decided is None:
            decided = self._decide(url)
            if len(self._decided) < _MAX_REMEMBERED_URLS:
                self._decided[url] = decided
        return decided

    def _decide(self, url: str) -> bool:
        canonical = canonical_url(url, allow_http=self._allow_http)
        if canonical is None:
            return False
        if canonical in self._endpoints:
            return True
        base, sep, rest = canonical.partition(_SERVICES_PATH)
        if not sep or base not in self._bases:
            return False
        return rest == "" or (rest.startswith("/") and rest.count("/") == 1 and len(rest) > 1)


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A minted CDS Hooks JWT and its claims. ``repr`` never shows the token.

    Attributes:
        token: The compact JWT. Send it; never log it.
        jti: Its unique id.
        kid: The signing key's id.
        alg: The signing algorithm.
        audience: The service endpoint it is valid for.
        issued_at: ``iat`` (seconds since the epoch).
        expires_at: ``exp`` (seconds since the epoch).
        header: The JOSE header.
        claims: The claims.
    """

    token: str = field(repr=False)
    jti: str
    kid: str
    alg: str
    audience: str
    issued_at: int
    expires_at: int
    header: Mapping[str, Any] = field(default_factory=dict, repr=False)
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self.token}"


class CdsClient:
    """A CDS client (EHR) that mints tokens for allowlisted services and publishes its JWK Set.

    Thread-safe. Cheap to create many (the simulator runs several EHRs in one process).

    Args:
        issuer: The client's ``iss`` (its identifier, usually its base URL).
        keys: The signing key, or a key ring for rotation.
        services: The allowlist: service base URLs or endpoint URLs.
        sink: Where ``token.issued``, ``allowlist.denied``, ``request.sent`` and
            ``key.rotated`` events go; ``None`` records nothing.
        name: The emitting process's name, for events.
        instance: The emitting instance, for events.
        tenant: Default ``tenant`` claim.
        jku: A ``jku`` header to put in every token (the URL the JWK Set is published at).
        token_lifetime: ``exp - iat``; at most one hour.
        fingerprinter: Keyed fingerprints of tokens; the environment's by default.
        allow_http: Accept http service URLs (loopback development only).
        new_jti: Makes each token's ``jti`` (a random UUID by default; a simulation that
            must be reproducible passes a seeded one). Values must never repeat.

    Raises:
        ConfigurationError: A bad lifetime, URL or key.
    """

    def __init__(
        self,
        *,
        issuer: str,
        keys: KeyRing | SigningKey,
        services: ServiceAllowlist | Iterable[str],
        sink: EventSink | None = None,
        name: str = "cds-client",
        instance: str | None = None,
        tenant: str | None = None,
        jku: str | None = None,
        token_lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
        fingerprinter: Fingerprinter | None = None,
        allow_http: bool = False,
        new_jti: Callable[[], str] | None = None,
    ) -> None:
        if not issuer:
            raise ConfigurationError("a CDS client needs an issuer")
        if not timedelta(seconds=1) <= token_lifetime <= timedelta(hours=1):
            raise ConfigurationError("token_lifetime must be between 1 second and 1 hour")
        self.issuer = issuer
        self.keyring = keys if isinstance(keys, KeyRing) else KeyRing(keys)
        self.services = (
            services
            if isinstance(services, ServiceAllowlist)
            else ServiceAllowlist(services, allow_http=allow_http)
        )
        self.tenant = tenant
        self.jku = require_canonical_url(jku, what="jku", allow_http=allow_http) if jku else None
        self.token_lifetime = token_lifetime
        self._lifetime = int(token_lifetime.total_seconds())
        self.fingerprinter = fingerprinter or default_fingerprinter()
        self._new_jti = new_jti or _random_jti
        self._events = (
            EventFactory(
                Source(role="client", name=name, instance=instance), sink, self.fingerprinter
            )
            if sink is not None
            else None
        )

    def __repr__(self) -> str:
        return f"CdsClient(issuer={self.issuer!r}, key={self.keyring.current!r})"

    @property
    def events(self) -> EventFactory | None:
        """The event factory (for the HTTP helper, which records ``request.sent``)."""
        return self._events

    def mint(
        self,
        audience: str,
        *,
        now: datetime | None = None,
        tenant: str | None = None,
        jti: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> MintedToken:
        """Mint a token for one service endpoint.

        Args:
            audience: The endpoint URL, ``{base}/cds-services/{id}`` (see :func:`service_url`).
            now: ``iat``; the wall clock when omitted.
            tenant: The ``tenant`` claim; the client's default when omitted.
            jti: A specific ``jti`` (default: a random UUID). Reusing one is a replay.
            extra_claims: More claims (never ``iss``/``aud``/``exp``/``iat``/``jti``).

        Raises:
            ServiceNotAllowed: ``audience`` is not on the allowlist (after emitting
                ``allowlist.denied``).
        """
        at = aware(now)
        if not self.services.allows(audience):
            self._emit(
                AuthzAction.ALLOWLIST_DENIED,
                at,
                reason=FailureReason.SERVICE_NOT_ALLOWED,
                detail="audience is not on the service allowlist",
                service=ServiceRef.model_construct(id=None, url=display_url(audience)),
            )
            raise ServiceNotAllowed("the audience is not on this client's service allowlist")
        key = self.keyring.current
        iat = int(at.timestamp())
        header: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
        if self.jku is not None:
            header["jku"] = self.jku
        claims: dict[str, Any] = dict(extra_claims or {})
        claims |= {
            "iss": self.issuer,
            "aud": audience,
            "exp": iat + self._lifetime,
            "iat": iat,
            "jti": jti or self._new_jti(),
        }
        chosen_tenant = tenant if tenant is not None else self.tenant
        if chosen_tenant is not None:
            claims["tenant"] = chosen_tenant
        token = jose.encode_compact(header, jose.canonical_json(claims), key.sign)
        minted = MintedToken(
            token=token,
            jti=claims["jti"],
            kid=key.kid,
            alg=key.alg,
            audience=audience,
            issued_at=iat,
            expires_at=claims["exp"],
            header=header,
            claims=claims,
        )
        if self._events is not None:
            self._emit(
                AuthzAction.TOKEN_ISSUED,
                at,
                client=client_ref({"iss": self.issuer, "tenant": chosen_tenant}),
                service=_service_ref(audience),
                token=token_claims(header, claims, self.fingerprinter(token)),
            )
        return minted

    def mint_for(
        self, base_url: str, service_id: str | None = None, *, now: datetime | None = None
    ) -> MintedToken:
        """Mint for ``{base_url}/cds-services/{service_id}`` (discovery when ``None``)."""
        return self.mint(service_url(base_url, service_id), now=now)

    def jwks(self, *, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set to publish (public members only), including retired keys still in use."""
        return self.keyring.jwks(now=aware(now))

    def rotate_key(
        self,
        new_key: SigningKey | None = None,
        *,
        now: datetime | None = None,
        margin: timedelta = DEFAULT_ROTATION_MARGIN,
    ) -> SigningKey:
        """Sign with a new key from ``now``; keep the old one published until its tokens expire.

        The old key stays in :meth:`jwks` until ``now + token_lifetime + margin``. Emits
        ``key.rotated``. Returns the new key.
        """
        at = aware(now)
        new = new_key or SigningKey.generate(self.keyring.current.alg)
        old = self.keyring.rotate(new, keep_old_until=at + self.token_lifetime + margin, now=at)
        self._emit(
            AuthzAction.KEY_ROTATED,
            at,
            client=client_ref({"iss": self.issuer, "tenant": self.tenant}),
            attributes={"old_kid": old.kid, "new_kid": new.kid, "alg": new.alg},
        )
        return new

    def _emit(self, action: AuthzAction, at: datetime, **fields: Any) -> AuthzEvent | None:
        if self._events is None:
            return None
        return self._events.emit(action, time=at, **fields)


def _random_jti() -> str:
    return str(uuid4())


def _service_ref(audience: str) -> ServiceRef:
    _, sep, rest = audience.partition(f"{_SERVICES_PATH}/")
    service_id = text(rest.split("/", 1)[0]) if sep else None
    # Checked here (text() and display_url() cap lengths), so minting can never raise on it.
    return ServiceRef.model_construct(id=service_id, url=display_url(audience))

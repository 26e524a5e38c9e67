"""Which CDS clients a service trusts, and the keys their tokens must be signed with.

Each allowed ``iss`` maps to keys from one or more sources:

- a **pinned** JWK Set (a mapping, or a file read at start-up) — no network at all;
- **pre-approved URLs**, fetched with httpx (timeout, size cap, no redirects, TLS
  verified), cached for ``cache_ttl``, refetched at most once per ``refetch_interval``
  when a token names a ``kid`` they do not hold (the client rotated its key);
- an in-process **provider** callable, treated like a URL (the simulator uses it to
  rotate keys without HTTP).

A token's ``jku`` header is honoured only when it equals (after URL normalisation) one of
the issuer's pre-approved URLs; the verifier never fetches a URL a token supplies.
Fetched JWK Sets that publish private key material are refused whole: that client's key
is compromised.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import structlog

from auditor.cdshooks import jose
from auditor.cdshooks.jwks import (
    FetchListener,
    JwksError,
    RemoteJwks,
    VerificationKey,
    parse_jwk_set,
    read_jwks_file,
)
from auditor.cdshooks.urls import canonical_url, require_canonical_url
from auditor.errors import ConfigurationError, InputError
from auditor.vocabulary import FailureReason

_log = structlog.get_logger("auditor.cdshooks")

MAX_JWKS_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class JwksUrl:
    """A pre-approved JWK Set URL of one issuer.

    Attributes:
        url: The https URL (http only with ``allow_http``, for loopback development).
        cache_ttl: How long a fetched set is used before it is fetched again.
        refetch_interval: The least time between fetches triggered by an unknown ``kid``.
        allow_http: Permit plain http. Never in production.
    """

    url: str
    cache_ttl: timedelta = timedelta(hours=1)
    refetch_interval: timedelta = timedelta(minutes=1)
    allow_http: bool = False


JwksProvider = Callable[[], Mapping[str, Any]]
"""An in-process source of a JWK Set, called like a URL would be fetched."""


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """One CDS client the service accepts tokens from.

    Attributes:
        iss: The exact ``iss`` value.
        jwks: A pinned JWK Set (public keys only).
        jwks_urls: Pre-approved JWK Set URLs; a token's ``jku`` must be one of them.
        jwks_provider: An in-process JWK Set source (simulation, tests).
        provider_refetch_interval: Refetch throttle for ``jwks_provider``.
    """

    iss: str
    jwks: Mapping[str, Any] | None = None
    jwks_urls: Sequence[JwksUrl | str] = ()
    jwks_provider: JwksProvider | None = None
    provider_refetch_interval: timedelta = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """The key for a token, or why there is none."""

    key: VerificationKey | None
    reason: FailureReason | None = None
    detail: str | None = None


class _Issuer:
    __slots__ = ("by_url", "pinned", "remotes")

    def __init__(
        self,
        pinned: dict[str, VerificationKey],
        remotes: tuple[RemoteJwks, ...],
        by_url: dict[str, RemoteJwks],
    ) -> None:
        self.pinned = pinned
        self.remotes = remotes
        self.by_url = by_url


class TrustRegistry:
    """The allowed issuers and their keys. Shared by every verifier of a process.

    Args:
        issuers: The trusted CDS clients.
        http: The httpx client for JWK Set URLs; by default one is made on first use
            (TLS verified, no redirects, no proxies from the environment).
        timeout: Seconds allowed for one JWK Set fetch.
        max_jwks_bytes: Largest JWK Set document accepted.

    Raises:
        ConfigurationError: Duplicate or empty issuers, an issuer without keys, a bad URL,
            or a pinned JWK Set that is invalid or holds private key material.
    """

    def __init__(
        self,
        issuers: Iterable[TrustedIssuer],
        *,
        http: httpx.Client | None = None,
        timeout: float = 5.0,
        max_jwks_bytes: int = MAX_JWKS_BYTES,
    ) -> None:
        self._http = http
        self._own_http = http is None
        self._timeout = timeout
        self._max_bytes = max_jwks_bytes
        self._lock = threading.Lock()
        self._issuers: dict[str, _Issuer] = {}
        for issuer in issuers:
            if not issuer.iss:
                raise ConfigurationError("a trusted issuer needs a non-empty iss")
            if issuer.iss in self._issuers:
                raise ConfigurationError(f"issuer {issuer.iss!r} is listed twice")
            self._issuers[issuer.iss] = self._compile(issuer)

    def _compile(self, issuer: TrustedIssuer) -> _Issuer:
        pinned: dict[str, VerificationKey] = {}
        if issuer.jwks is not None:
            try:
                pinned = parse_jwk_set(issuer.jwks)
            except JwksError as exc:
                raise ConfigurationError(f"pinned JWK Set of {issuer.iss!r}: {exc}") from None
        remotes: list[RemoteJwks] = []
        by_url: dict[str, RemoteJwks] = {}
        for entry in issuer.jwks_urls:
            spec = JwksUrl(entry) if isinstance(entry, str) else entry
            url = require_canonical_url(
                spec.url, what=f"JWK Set URL of {issuer.iss!r}", allow_http=spec.allow_http
            )
            remote = RemoteJwks(
                issuer.iss,
                url,
                self._fetcher(url),
                cache_ttl=spec.cache_ttl.total_seconds(),
                refetch_interval=spec.refetch_interval.total_seconds(),
            )
            remotes.append(remote)
            by_url[url] = remote
        if issuer.jwks_provider is not None:
            provider = issuer.jwks_provider
            remotes.append(
                RemoteJwks(
                    issuer.iss,
                    "provider",
                    lambda: _call_provider(provider),
                    cache_ttl=float("inf"),
                    refetch_interval=issuer.provider_refetch_interval.total_seconds(),
                )
            )
        if not pinned and not remotes:
            raise ConfigurationError(f"issuer {issuer.iss!r} has no keys, URLs or provider")
        return _Issuer(pinned, tuple(remotes), by_url)

    @classmethod
    def from_mapping(
        cls, config: Mapping[str, Any], *, base_dir: Path | None = None
    ) -> TrustRegistry:
        """Build from ``{"issuers": [{"iss", "jwks" | "jwks_file" | "jwks_urls"}]}``.

        Reads any ``jwks_file`` (relative to ``base_dir``) at once.

        Raises:
            ConfigurationError: The structure is wrong.
            InputError: A JWK Set file cannot be read.
        """
        entries = config.get("issuers")
        if not isinstance(entries, list):
            raise ConfigurationError("the trust configuration needs an 'issuers' list")
        issuers = []
        for entry in entries:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("iss"), str):
                raise ConfigurationError("each trusted issuer needs an 'iss' string")
            jwks = entry.get("jwks")
            if "jwks_file" in entry:
                path = Path(str(entry["jwks_file"]))
                jwks = read_jwks_file(path if base_dir is None else base_dir / path)
            urls = [
                JwksUrl(u, allow_http=bool(entry.get("allow_http", False)))
                for u in entry.get("jwks_urls", ())
            ]
            issuers.append(TrustedIssuer(iss=entry["iss"], jwks=jwks, jwks_urls=urls))
        return cls(issuers)

    @classmethod
    def from_file(cls, path: Path) -> TrustRegistry:
        """Read a JSON trust configuration (see :meth:`from_mapping`).

        Raises:
            InputError: The file cannot be read or is not JSON.
            ConfigurationError: The structure is wrong.
        """
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(
                f"cannot read the trust configuration {path}: {exc.strerror}"
            ) from None
        except ValueError:
            raise InputError(f"the trust configuration {path} is not JSON") from None
        if not isinstance(config, Mapping):
            raise ConfigurationError("the trust configuration must be a JSON object")
        return cls.from_mapping(config, base_dir=path.parent)

    @property
    def may_block(self) -> bool:
        """Whether a lookup may wait on the network (some issuer has a JWK Set URL)."""
        return any(issuer.by_url for issuer in self._issuers.values())

    @property
    def issuers(self) -> frozenset[str]:
        """The trusted ``iss`` values."""
        return frozenset(self._issuers)

    def __contains__(self, iss: object) -> bool:
        return iss in self._issuers

    def lookup(  # noqa: PLR0911 - each refusal reason is its own early return
        self, iss: str, kid: str, jku: str | None, *, now: float, listener: FetchListener
    ) -> KeyLookup:
        """Find the key a token from ``iss`` names with ``kid`` (and ``jku``).

        May fetch a pre-approved JWK Set URL (blocking, bounded by the timeout); reports
        each fetch to ``listener``.
        """
        issuer = self._issuers.get(iss)
        if issuer is None:
            return KeyLookup(None, FailureReason.UNKNOWN_ISSUER, "iss is not a trusted issuer")
        remotes: tuple[RemoteJwks, ...]
        if jku is not None:
            remote = issuer.by_url.get(canonical_url(jku, allow_http=True) or "")
            if remote is None:
                return KeyLookup(None, FailureReason.JKU_NOT_ALLOWED, "jku is not pre-approved")
            remotes = (remote,)
        else:
            key = issuer.pinned.get(kid)
            if key is not None:
                return KeyLookup(key)
            remotes = issuer.remotes
        for remote in remotes:
            key = remote.get(kid, now, listener)
            if key is not None:
                return KeyLookup(key)
        for remote in remotes:
            key = remote.refetch_for(kid, now, listener)
            if key is not None:
                return KeyLookup(key)
        if (jku is not None or not issuer.pinned) and not any(r.has_keys for r in remotes):
            return KeyLookup(None, FailureReason.JWKS_UNAVAILABLE, "no JWK Set could be loaded")
        return KeyLookup(None, FailureReason.UNKNOWN_KID, "kid is not in the issuer's JWK Set")

    def refresh(self, *, now: float, listener: FetchListener) -> None:
        """Load every URL and provider source now (e.g. at start-up), reporting each fetch."""
        for issuer in self._issuers.values():
            for remote in issuer.remotes:
                remote.get("", now, listener)

    def close(self) -> None:
        """Close the httpx client this registry made, if any."""
        if self._own_http and self._http is not None:
            self._http.close()

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=self._timeout, follow_redirects=False, trust_env=False
                )
            return self._http

    def _fetcher(self, url: str) -> Callable[[], Mapping[str, Any]]:
        def fetch() -> Mapping[str, Any]:
            return self._get_jwks(url)

        return fetch

    def _get_jwks(self, url: str) -> Mapping[str, Any]:
        try:
            with self._client().stream(
                "GET", url, headers={"Accept": "application/jwk-set+json, application/json"}
            ) as response:
                if response.status_code != 200:  # noqa: PLR2004 - only 200 carries a JWK Set
                    raise JwksError(f"HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise JwksError(f"JWK Set larger than {self._max_bytes} bytes")
        except httpx.TimeoutException:
            raise JwksError("timeout") from None
        except httpx.HTTPError as exc:
            raise JwksError(f"unreachable ({type(exc).__name__})") from None
        try:
            return jose.json_object(bytes(body), "JWK Set")
        except jose.JoseFormatError as exc:
            raise JwksError(str(exc)) from None


def _call_provider(provider: JwksProvider) -> Mapping[str, Any]:
    try:
        return provider()
    except Exception as exc:  # noqa: BLE001 - a failing provider is an unavailable JWK Set
        _log.warning("jwks provider failed", error=type(exc).__name__)
        raise JwksError(f"provider failed ({type(exc).__name__})") from None

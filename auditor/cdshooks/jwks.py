"""JWK Sets: parsing them into verification keys, and sources that are fetched and cached.

A JWK Set from anywhere is parsed the same way: keys for encryption, of unsupported types,
without a ``kid`` or RSA under 2048 bits are skipped; a set that publishes private key
material is refused whole (that client's key is compromised); two keys with one ``kid`` are
ambiguous and refused. Errors name the defect, never a key value.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from auditor.cdshooks import jose
from auditor.errors import AuditorError, InputError

_ALG_FOR_CRV: Final = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key a token may be verified with.

    Attributes:
        kid: Its key id.
        jwk: Its public members, plus ``alg`` when the JWK declared one.
        public_key: The ``cryptography`` public key.
    """

    kid: str
    jwk: Mapping[str, str]
    public_key: Any = field(repr=False)

    def suits(self, alg: str) -> bool:
        """Whether a token with header ``alg`` may be verified with this key."""
        return jose.key_suits(alg, self.jwk)


class JwksError(AuditorError):
    """A fetched document that is not a usable JWK Set. The message names the defect only."""


def parse_jwk_set(document: Any) -> dict[str, VerificationKey]:
    """The usable verification keys of a JWK Set, by ``kid``.

    Keys for encryption (``use`` other than ``sig``), of other types than EC/RSA, without
    a ``kid``, or RSA shorter than 2048 bits are skipped.

    Raises:
        JwksError: Not a JWK Set, private key material, duplicate ``kid``s, or no usable key.
    """
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise JwksError("not a JWK Set (no 'keys' array)")
    found: dict[str, VerificationKey] = {}
    for jwk in keys:
        if not isinstance(jwk, Mapping):
            continue
        if jose.has_private_members(jwk):
            raise JwksError("the JWK Set publishes private key material")
        key = _verification_key(jwk)
        if key is None:
            continue
        if key.kid in found:
            raise JwksError("the JWK Set has two keys with one kid")
        found[key.kid] = key
    if not found:
        raise JwksError("the JWK Set holds no usable signature key")
    return found


def _verification_key(  # noqa: PLR0911 - one guard per kind of unusable key reads clearest
    jwk: Mapping[str, Any],
) -> VerificationKey | None:
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:  # noqa: PLR2004 - sane kid cap
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    try:
        members = jose.public_members(jwk)
    except jose.JoseFormatError:
        return None
    if members["kty"] == "EC":
        alg_for_parsing = _ALG_FOR_CRV.get(members["crv"])
        if alg_for_parsing is None:
            return None
    else:
        alg_for_parsing = "RS256"
    declared = jwk.get("alg")
    if declared is not None and not (isinstance(declared, str) and jose.key_suits(declared, jwk)):
        return None
    try:
        public_key = jose.algorithm(alg_for_parsing).from_jwk(dict(members))
    except Exception:  # noqa: BLE001 - any malformed key is skipped, never trusted
        return None
    if members["kty"] == "RSA" and public_key.key_size < jose.MIN_RSA_BITS:
        return None
    described = {**members, "kid": kid}
    if declared is not None:
        described["alg"] = declared
    return VerificationKey(kid=kid, jwk=described, public_key=public_key)


def read_jwks_file(path: Path) -> dict[str, Any]:
    """Read a JWK Set from a JSON file.

    Raises:
        InputError: The file cannot be read or is not JSON.
    """
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise InputError(f"cannot read the JWK Set file {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise InputError(f"the JWK Set file {path} is not a JSON object") from None


@dataclass(frozen=True, slots=True)
class JwksFetch:
    """What happened when a JWK Set source was (re)loaded; the verifier turns it into an event."""

    iss: str
    source: str
    ok: bool
    at: float
    detail: str | None = None
    keys: int = 0


FetchListener = Callable[[JwksFetch], None]


class RemoteJwks:
    """A fetched JWK Set: cached, refreshed on expiry, refetched (throttled) on unknown kid.

    Thread-safe: one fetch at a time; readers see the last good set, which a failed
    fetch never replaces (stale keys beat no keys while a key server is down).

    Args:
        iss: The issuer whose keys these are.
        label: The URL (or ``provider``), for events.
        fetch: Returns the JWK Set document; raises :class:`JwksError` when it cannot.
        cache_ttl: Seconds a fetched set is used before it is fetched again.
        refetch_interval: Least seconds between fetches after the first attempt.
    """

    __slots__ = (
        "_fetch",
        "_fetched_at",
        "_keys",
        "_last_attempt",
        "_lock",
        "cache_ttl",
        "iss",
        "label",
        "refetch_interval",
    )

    def __init__(
        self,
        iss: str,
        label: str,
        fetch: Callable[[], Mapping[str, Any]],
        *,
        cache_ttl: float,
        refetch_interval: float,
    ) -> None:
        self.iss = iss
        self.label = label
        self._fetch = fetch
        self.cache_ttl = cache_ttl
        self.refetch_interval = refetch_interval
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = threading.Lock()

    @property
    def has_keys(self) -> bool:
        """Whether a fetch has ever succeeded."""
        return bool(self._keys)

    def get(self, kid: str, now: float, listener: FetchListener) -> VerificationKey | None:
        """The key for ``kid``, loading the set first if it was never loaded or has expired."""
        fetched = self._fetched_at
        if fetched is None or now - fetched >= self.cache_ttl:
            # Throttled after the first attempt, so a JWK Set URL that is down is not
            # fetched once per incoming token.
            self._refresh(now, listener, throttle=self._last_attempt is not None)
        return self._keys.get(kid)

    def refetch_for(self, kid: str, now: float, listener: FetchListener) -> VerificationKey | None:
        """Fetch again for an unknown ``kid`` unless a fetch happened within the interval."""
        self._refresh(now, listener, throttle=True)
        return self._keys.get(kid)

    def _refresh(self, now: float, listener: FetchListener, *, throttle: bool) -> None:
        with self._lock:
            last = self._last_attempt
            if throttle and last is not None and now - last < self.refetch_interval:
                return
            if last is not None and last == now:
                return  # another thread fetched while we waited for the lock
            self._last_attempt = now
            try:
                keys = parse_jwk_set(self._fetch())
            except JwksError as exc:
                outcome = JwksFetch(self.iss, self.label, ok=False, at=now, detail=str(exc))
            else:
                self._keys = keys
                self._fetched_at = now
                outcome = JwksFetch(self.iss, self.label, ok=True, at=now, keys=len(keys))
        listener(outcome)

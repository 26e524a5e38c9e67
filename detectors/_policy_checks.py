"""The checks of the ``policy`` detector: which rules one authz event breaks.

Pure and stateless: ``PolicyChecks.violations(event)`` returns the broken rules with the
detail that identifies each incident (the alg, the host, the missing fields) and the facts
to report. The detector calls it twice for a violating event (in ``key`` to decide whether
the event needs state at all, and in ``step``); conformant events — nearly all — are
recognised by ``key``'s own flat pass and never get here.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from auditor.models import AuthzView, FactValue, TlsInfo
from auditor.vocabulary import AuthzAction, FailureReason, Outcome, PolicyRule
from detectors.config import PolicyConfig, ServicePolicy, is_forged_alg
from detectors.scopes import classify_scope

__all__ = ["Found", "PolicyChecks"]

_ISSUED = AuthzAction.TOKEN_ISSUED
_SENT = AuthzAction.REQUEST_SENT
_VALIDATED = AuthzAction.TOKEN_VALIDATED
_TLS_FAILED = AuthzAction.TLS_FAILED
_SUCCESS = Outcome.SUCCESS
_TLS_ERROR = FailureReason.TLS_ERROR
_TLS_VERSIONS = {"1.0": 1.0, "1.1": 1.1, "1.2": 1.2, "1.3": 1.3}
_MAX_LISTED = 8

Found = tuple[PolicyRule, str, dict[str, FactValue]]


@lru_cache(maxsize=4096)
def _split_url(url: str) -> tuple[str, str]:
    """Scheme and lower-case host of a URL; never raises (bad URLs give empty parts)."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower()
    except ValueError:
        return "", ""


def _host_matcher(policy: ServicePolicy) -> tuple[frozenset[str], tuple[str, ...]]:
    """Exact hosts and ``.suffix`` patterns of a service's fhirServer allowlist."""
    hosts = policy.allowed_fhir_hosts or frozenset()
    exact = frozenset(h for h in hosts if not h.startswith("*."))
    return exact, tuple(sorted(h[1:] for h in hosts if h.startswith("*.")))


@lru_cache(maxsize=256)
def _tls_rank(version: str) -> float | None:
    text = version.strip().upper().replace(" ", "")
    if text.startswith("SSL"):
        return 0.0
    text = text.removeprefix("TLSV").removeprefix("TLS")
    if text in {"1", "1.0"}:
        return 1.0
    return _TLS_VERSIONS.get(text)


class PolicyChecks:
    """The rules of a ``PolicyConfig``, compiled once."""

    __slots__ = (
        "_clients",
        "_config",
        "_default_hosts",
        "_disabled",
        "_hosts",
        "_max_payload",
        "_min_tls",
    )

    def __init__(self, config: PolicyConfig) -> None:
        self._config = config
        # Read on every event: plain attributes, not lookups through the pydantic model.
        self._clients = config.clients
        self._max_payload = config.max_payload_bytes
        self._disabled = config.disabled_rules
        self._min_tls = _TLS_VERSIONS[config.min_tls_version]
        self._hosts = {name: _host_matcher(p) for name, p in config.services.items()}
        self._default_hosts = _host_matcher(config.default_service)

    def violations(self, event: AuthzView) -> list[Found]:
        """The rules ``event`` breaks, with the detail that identifies each incident.

        Every check, for every event it is given: ``PolicyDetector.key`` recognises the
        plainly conformant events (nearly all) in one flat pass and never calls this for them.
        """
        found: list[Found] = []
        action = event.action
        if event.role == "service":
            if event.outcome is _SUCCESS:
                if action is _VALIDATED and event.has_token:
                    self._check_token(event, found)
                self._check_request(event, found, client_side=False, accepted=True)
        elif action is _ISSUED:
            if event.has_token:
                self._check_token(event, found)
        elif action is _SENT:
            self._check_request(event, found, client_side=True, accepted=False)
        tls = event.tls
        if tls is not None:
            self._check_tls(tls, action, found)
        if action is _TLS_FAILED or event.reason is _TLS_ERROR:
            found.append((PolicyRule.TLS_FAILURE, "", {"action": action.value}))
        if self._disabled:
            return [item for item in found if item[0] not in self._disabled]
        return found

    def _check_tls(self, tls: TlsInfo, action: AuthzAction, found: list[Found]) -> None:
        if tls.version is not None:
            rank = _tls_rank(tls.version)
            if rank is not None and rank < self._min_tls:
                facts: dict[str, FactValue] = {
                    "tls_version": tls.version,
                    "minimum": self._config.min_tls_version,
                }
                found.append((PolicyRule.TLS_BELOW_MINIMUM, tls.version, facts))
        if tls.error is not None and action is not _TLS_FAILED:
            found.append((PolicyRule.TLS_FAILURE, "", {"action": action.value}))

    def _check_token(self, event: AuthzView, found: list[Found]) -> None:
        alg = event.alg
        if alg is not None and alg not in self._config.allowed_algorithms:
            # The allowlist holds no forged algorithm (validated), so this is rare.
            if is_forged_alg(alg):
                found.append((PolicyRule.ALG_NONE_OR_HMAC, alg[:32], {"alg": alg[:32]}))
            else:
                found.append((PolicyRule.ALG_NOT_ALLOWED, alg[:32], {"alg": alg[:32]}))
        iss = event.iss
        kid, typ, aud, exp, iat, jti = (
            event.kid,
            event.typ,
            event.aud,
            event.exp,
            event.iat,
            event.jti,
        )
        if (
            alg is None
            or kid is None
            or typ is None
            or not iss
            or not aud
            or exp is None
            or iat is None
            or jti is None
        ):
            present = {
                "alg": alg,
                "kid": kid,
                "typ": typ,
                "iss": iss or None,
                "aud": aud or None,
                "exp": exp,
                "iat": iat,
                "jti": jti,
            }
            missing = tuple(name for name, value in present.items() if value is None)
            found.append(
                (PolicyRule.REQUIRED_FIELD_MISSING, ",".join(missing), {"missing": missing})
            )
        if typ is not None and typ != "JWT" and typ.upper() != "JWT":
            found.append((PolicyRule.TYP_NOT_JWT, typ[:64], {"typ": typ[:64]}))
        jku = event.jku
        clients = self._clients
        if jku is not None and clients:
            policy = clients.get(iss or "")
            if policy is None or jku not in policy.approved_jku:
                host = _split_url(jku)[1]
                found.append((PolicyRule.JKU_NOT_APPROVED, host, {"jku_host": host}))

    def _check_request(
        self, event: AuthzView, found: list[Found], *, client_side: bool, accepted: bool
    ) -> None:
        url = event.service_url
        if client_side and url is not None:
            aud = event.aud
            if aud and url not in aud:
                audiences = tuple(a[:200] for a in aud[:_MAX_LISTED])
                found.append((PolicyRule.AUD_NOT_ENDPOINT, "", {"audiences": audiences}))
        if self._clients and event.iss is not None:
            self._check_allowlists(event, accepted, found)
        service_id = event.service_id or ""
        if event.fhir_server is not None or event.fhir_authorization:
            self._check_fhir_server(event, service_id, found)
        if event.scopes:
            policy = self._config.services.get(service_id, self._config.default_service)
            broad = self._broad_scopes(event.scopes, policy)
            if broad:
                listed = broad[:_MAX_LISTED]
                facts: dict[str, FactValue] = {"scopes": listed, "read_only": policy.read_only}
                found.append((PolicyRule.SCOPE_TOO_BROAD, " ".join(listed), facts))
        cap = self._max_payload
        size = event.payload_bytes
        if cap is not None and size is not None and size > cap:
            found.append((PolicyRule.PAYLOAD_OVER_CAP, "", {"cap_bytes": cap, "bytes": size}))

    def _check_allowlists(self, event: AuthzView, accepted: bool, found: list[Found]) -> None:
        config = self._config
        policy = config.clients.get(event.iss or "")
        if policy is None:
            if accepted and config.flag_unknown_clients:
                found.append((PolicyRule.ISSUER_NOT_ALLOWLISTED, "", {}))
        elif policy.allowed_services is not None and event.has_service:
            # A service part that names neither id nor url is still checked (as "?").
            allowed = policy.allowed_services
            service_id, service_url = event.service_id, event.service_url
            if service_id not in allowed and service_url not in allowed:
                name = service_id or service_url or "?"
                found.append((PolicyRule.SERVICE_NOT_ALLOWLISTED, name, {"service": name}))

    def _check_fhir_server(self, event: AuthzView, service_id: str, found: list[Found]) -> None:
        fhir_server = event.fhir_server
        with_auth = event.fhir_authorization is True
        if fhir_server is None:
            found.append((PolicyRule.FHIR_SERVER_MISSING, "", {}))
            return
        scheme, host = _split_url(fhir_server)
        if with_auth and scheme != "https":
            facts: dict[str, FactValue] = {"scheme": scheme or None, "fhir_host": host or None}
            found.append((PolicyRule.FHIR_SERVER_NOT_HTTPS, host, facts))
        policy = self._config.services.get(service_id, self._config.default_service)
        if policy.allowed_fhir_hosts is not None:
            exact, suffixes = self._hosts.get(service_id, self._default_hosts)
            if host not in exact and not (suffixes and host.endswith(suffixes)):
                found.append(
                    (PolicyRule.FHIR_SERVER_NOT_ALLOWLISTED, host, {"fhir_host": host or None})
                )

    @staticmethod
    def _broad_scopes(scopes: tuple[str, ...], policy: ServicePolicy) -> tuple[str, ...]:
        broad: list[str] = []
        for scope in scopes:
            if policy.allowed_scopes is not None and scope not in policy.allowed_scopes:
                broad.append(scope)
                continue
            access = classify_scope(scope)
            if access is None:
                continue
            if (access.wildcard and not policy.allow_wildcard) or (
                access.write and policy.read_only
            ):
                broad.append(scope)
        return tuple(sorted(s[:128] for s in broad))

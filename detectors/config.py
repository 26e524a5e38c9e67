"""Configuration of the stream detectors: validated once, at start-up.

Each detector takes one frozen pydantic model; ``StreamDetectorsConfig`` holds all three so
the pipeline can load them from one file or mapping (unknown keys are errors, so a typo
stops start-up instead of silently disabling a rule). Durations are seconds of event time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditor.vocabulary import FailureReason, PolicyRule, Severity

__all__ = [
    "DEFAULT_TRUSTED_REASONS",
    "RECOMMENDED_ALGORITHMS",
    "BurstThreshold",
    "ClientPolicy",
    "NonNegativeSeconds",
    "PolicyConfig",
    "ReplayBurstConfig",
    "Seconds",
    "ServicePolicy",
    "StreamDetectorsConfig",
    "SustainedThreshold",
    "ValidationAnomalyConfig",
    "is_forged_alg",
]

Seconds = Annotated[float, Field(gt=0, le=30 * 86400)]
"""A positive duration in seconds, at most 30 days (longer is surely a unit mistake)."""

NonNegativeSeconds = Annotated[float, Field(ge=0, le=30 * 86400)]
"""A duration in seconds that may be zero, at most 30 days."""


class BurstThreshold(BaseModel):
    """At least ``count`` events within ``window`` seconds.

    A burst ends after ``window`` seconds without a matching event.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    window: Seconds


class SustainedThreshold(BaseModel):
    """At least ``count`` events over at least ``duration`` seconds, no gap over ``gap``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    duration: Annotated[float, Field(ge=0, le=30 * 86400)]
    gap: Seconds


DEFAULT_TRUSTED_REASONS: frozenset[FailureReason] = frozenset(
    {
        FailureReason.EXPIRED,
        FailureReason.NOT_YET_VALID,
        FailureReason.IAT_IN_FUTURE,
        FailureReason.AUD_MISMATCH,
        FailureReason.REPLAYED_JTI,
        FailureReason.LIFETIME_TOO_LONG,
        FailureReason.REPLAY_CACHE_FULL,
        FailureReason.RATE_LIMITED,
        FailureReason.PAYLOAD_TOO_LARGE,
        FailureReason.INVALID_REQUEST,
        FailureReason.FHIR_SERVER_NOT_ALLOWED,
        FailureReason.SERVICE_NOT_ALLOWED,
    }
)
"""Rejections whose claims were authenticated: the signature was checked before them.

As ``auditor.cdshooks`` verifies: header (``typ``, ``alg``, ``kid``, ``jku``), key, then
the signature, then claims (missing, ``aud``, times, lifetime), then the replay cache;
rate limits and payload checks come after verification. ``malformed`` and
``missing_claim`` can happen on either side of the signature, so they are not trusted.
"""

RECOMMENDED_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


def is_forged_alg(alg: str) -> bool:
    """Whether ``alg`` is ``none`` or an HMAC algorithm: forbidden by CDS Hooks."""
    return alg.lower() == "none" or alg.upper().startswith("HS")


class ReplayBurstConfig(BaseModel):
    """Configuration of ``replay_burst``; validated once at start-up.

    Attributes:
        clock_skew: Seconds added to ``exp``: how long after expiry a presentation of the
            same jti is still compared against the first.
        retry_window: A presentation this many seconds after the first, with the same
            hookInstance, service and peer and no acceptance yet, is a benign retry.
        max_retention: The longest a jti is remembered after its first presentation,
            whatever its ``exp`` (bounds the state of long-lived tokens; those are
            reported by the lifetime rules).
        smart_lifetime_cap: ``exp - iat`` above this is ``lifetime_over_smart_cap``
            (SMART Backend Services' 5 minutes, local policy); ``None`` disables it.
        best_practice_lifetime_cap: ``exp - iat`` above this is
            ``lifetime_over_best_practice`` (one hour); ``None`` disables it. A token over
            both caps is reported once, by this rule.
        max_jtis_per_client: Cap of the jti table of one ``iss``.
        trusted_reasons: Rejection reasons whose claims were authenticated.
        incident_gap: Audience, lifetime and capacity incidents close after this many
            seconds without a new occurrence.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    clock_skew: NonNegativeSeconds = 60.0
    retry_window: NonNegativeSeconds = 10.0
    max_retention: Seconds = 3600.0
    smart_lifetime_cap: NonNegativeSeconds | None = 300.0
    best_practice_lifetime_cap: NonNegativeSeconds | None = 3600.0
    max_jtis_per_client: Annotated[int, Field(ge=1)] = 1_000_000
    trusted_reasons: frozenset[FailureReason] = DEFAULT_TRUSTED_REASONS
    incident_gap: Seconds = 3600.0


class ValidationAnomalyConfig(BaseModel):
    """Configuration of ``validation_anomaly``; validated once at start-up.

    Attributes:
        window: Length of the tumbling windows of the rate baselines, in seconds.
        alpha: EWMA weight of the newest window (0.1 ~ a memory of ten windows).
        z_threshold: z-score at or above which a window is anomalous.
        min_count: Failures a window needs before it can be anomalous.
        warmup: Seconds a client must have been seen before rate spikes are reported.
        new_reason_warmup: Seconds a client must have been seen before a reason is "new".
        new_reason_memory: Seconds of inactivity after which a client's history is let go.
        signature_reasons: Failure reasons that look like forgery attempts.
        untrusted_issuer_reasons: Reasons whose ``iss`` is attacker-chosen: keyed by peer.
        signature: Burst threshold of attack signatures.
        clock_skew: Burst threshold of clock-skew failures.
        expired: Threshold of sustained use of expired tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Annotated[float, Field(ge=1, le=86400)] = 60.0
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.1
    z_threshold: Annotated[float, Field(gt=0)] = 4.0
    min_count: Annotated[int, Field(ge=1)] = 10
    warmup: Annotated[float, Field(ge=0)] = 900.0
    new_reason_warmup: Annotated[float, Field(ge=0)] = 3600.0
    new_reason_memory: Seconds = 7 * 86400.0
    signature_reasons: frozenset[FailureReason] = frozenset(
        {
            FailureReason.ALG_NOT_ALLOWED,
            FailureReason.UNKNOWN_KID,
            FailureReason.JKU_NOT_ALLOWED,
            FailureReason.AUD_MISMATCH,
            FailureReason.BAD_SIGNATURE,
            FailureReason.UNKNOWN_ISSUER,
        }
    )
    untrusted_issuer_reasons: frozenset[FailureReason] = frozenset(
        {FailureReason.UNKNOWN_ISSUER, FailureReason.MALFORMED, FailureReason.MISSING_TOKEN}
    )
    signature: BurstThreshold = BurstThreshold(count=5, window=60.0)
    clock_skew: BurstThreshold = BurstThreshold(count=3, window=300.0)
    expired: SustainedThreshold = SustainedThreshold(count=10, duration=300.0, gap=300.0)


class ClientPolicy(BaseModel):
    """What one CDS client (``iss``) may do.

    Attributes:
        allowed_services: Service ids or endpoint URLs the client may call; ``None``
            leaves calls unchecked.
        approved_jku: JWK Set URLs pre-approved for this client's ``jku`` header.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_services: frozenset[str] | None = None
    approved_jku: frozenset[str] = frozenset()


class ServicePolicy(BaseModel):
    """What one CDS service may receive.

    Attributes:
        allowed_fhir_hosts: Hosts its ``fhirServer`` may name: exact (``fhir.example.org``)
            or a subdomain pattern (``*.example.org``); ``None`` leaves it unchecked.
        read_only: The service only reads: write scopes are too broad.
        allow_wildcard: Whether ``*`` resource scopes are acceptable.
        allowed_scopes: The exact scopes it may get; ``None`` allows any other scope.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_fhir_hosts: frozenset[str] | None = None
    read_only: bool = False
    allow_wildcard: bool = False
    allowed_scopes: frozenset[str] | None = None

    @field_validator("allowed_fhir_hosts")
    @classmethod
    def _hosts_are_names(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        if value is None:
            return None
        for host in value:
            bare = host.removeprefix("*.")
            if not bare or "/" in bare or "*" in bare or ":" in bare:
                raise ValueError(f"allowed_fhir_hosts holds host names or *.suffix: {host!r}")
        return frozenset(host.lower() for host in value)


class PolicyConfig(BaseModel):
    """Configuration of ``policy``; validated once at start-up.

    Attributes:
        clients: Policy per client ``iss``. When non-empty, a service accepting another
            iss is ``issuer_not_allowlisted`` (unless ``flag_unknown_clients`` is off),
            and any ``jku`` not approved for its iss is ``jku_not_approved``.
        flag_unknown_clients: See ``clients``.
        services: Policy per service id.
        default_service: Policy of services not listed in ``services``.
        allowed_algorithms: Signing algorithms the site allows. ``none`` and HMAC are
            refused by the spec and cannot be listed.
        min_tls_version: The oldest acceptable TLS version.
        max_payload_bytes: Request bodies above this are ``payload_over_cap``.
        rate_limit_burst: Rate-limit rejections of one client that make a burst.
        request_burst: Requests of one client to services per window that are too many
            (``None``: not checked).
        incident_gap: Seconds without a repeat after which a violation incident closes.
        disabled_rules: Rules not to report.
        severity: Severity overrides per rule.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    clients: Mapping[str, ClientPolicy] = Field(default_factory=dict)
    flag_unknown_clients: bool = True
    services: Mapping[str, ServicePolicy] = Field(default_factory=dict)
    default_service: ServicePolicy = ServicePolicy()
    allowed_algorithms: frozenset[str] = RECOMMENDED_ALGORITHMS
    min_tls_version: Literal["1.0", "1.1", "1.2", "1.3"] = "1.2"
    max_payload_bytes: Annotated[int, Field(ge=1)] | None = 1_048_576
    rate_limit_burst: BurstThreshold | None = BurstThreshold(count=20, window=60.0)
    request_burst: BurstThreshold | None = None
    incident_gap: Seconds = 3600.0
    disabled_rules: frozenset[PolicyRule] = frozenset()
    severity: Mapping[PolicyRule, Severity] = Field(default_factory=dict)

    @field_validator("allowed_algorithms")
    @classmethod
    def _no_forbidden_algorithms(cls, value: frozenset[str]) -> frozenset[str]:
        forbidden = sorted(alg for alg in value if is_forged_alg(alg))
        if forbidden:
            raise ValueError(f"CDS Hooks forbids none and HMAC algorithms: {forbidden}")
        if not value:
            raise ValueError("allowed_algorithms cannot be empty")
        return value


class StreamDetectorsConfig(BaseModel):
    """The configuration of all three stream detectors, e.g. one section of a file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    replay_burst: ReplayBurstConfig = ReplayBurstConfig()
    validation_anomaly: ValidationAnomalyConfig = ValidationAnomalyConfig()
    policy: PolicyConfig = PolicyConfig()

"""The rule catalogue of the stream detectors: id, kind, default severity, basis, reference.

Every finding a stream detector reports names one of these rules. The catalogue is what
the README documents and what a compliance officer reads to tell "the CDS Hooks
specification forbids this" (``normative``) from "the site chose this" (``local_policy``).
The reference is stored with each finding (``Finding.reference``) and the basis plus its
source in ``Finding.safeguard``, e.g. ``normative:cds-hooks-2.0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from auditor.vocabulary import (
    AnomalyRule,
    DetectorName,
    PolicyRule,
    ReplayRule,
    RuleBasis,
    Severity,
    StreamKind,
)

__all__ = ["RULES", "RuleSpec", "rule_spec"]

_SPEC = "https://cds-hooks.hl7.org/2.0/"
_BEST = "https://cds-hooks.org/best-practices/"
_SMART = (
    "https://hl7.org/fhir/smart-app-launch/STU2/client-confidential-asymmetric.html"
    "#authenticating-to-the-token-endpoint"
)
_REVIEW = "https://www.ecfr.gov/current/title-45/section-164.308#p-164.308(a)(1)(ii)(D)"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule of a stream detector.

    Attributes:
        rule: The stable rule id (``Finding.rule``).
        detector: The detector that reports it.
        kind: ``Finding.kind`` of its findings.
        severity: The default severity (a configuration may override it).
        basis: Normative spec rule, best practice, local policy or heuristic.
        source: Short name of the document the rule comes from.
        reference: URL with anchor of the section behind the rule.
        summary: One line saying what the rule flags.
    """

    rule: str
    detector: DetectorName
    kind: StreamKind
    severity: Severity
    basis: RuleBasis
    source: str
    reference: str
    summary: str

    @property
    def safeguard(self) -> str:
        """``<basis>:<source>``, stored in ``Finding.safeguard``."""
        return f"{self.basis.value}:{self.source}"


def _replay(
    rule: ReplayRule,
    kind: StreamKind,
    severity: Severity,
    *,
    basis: RuleBasis,
    source: str,
    reference: str,
    summary: str,
) -> RuleSpec:
    return RuleSpec(
        rule.value, DetectorName.REPLAY_BURST, kind, severity, basis, source, reference, summary
    )


def _anomaly(
    rule: AnomalyRule, kind: StreamKind, severity: Severity, summary: str, reference: str = _REVIEW
) -> RuleSpec:
    return RuleSpec(
        rule.value,
        DetectorName.VALIDATION_ANOMALY,
        kind,
        severity,
        RuleBasis.HEURISTIC,
        "hipaa-164.308(a)(1)(ii)(D)",
        reference,
        summary,
    )


def _policy(
    rule: PolicyRule,
    severity: Severity,
    *,
    basis: RuleBasis,
    source: str,
    reference: str,
    summary: str,
) -> RuleSpec:
    return RuleSpec(
        rule.value,
        DetectorName.POLICY,
        StreamKind.POLICY_VIOLATION,
        severity,
        basis,
        source,
        reference,
        summary,
    )


_N, _B, _L = RuleBasis.NORMATIVE, RuleBasis.BEST_PRACTICE, RuleBasis.LOCAL_POLICY
_CDS, _CDS_BP, _SITE = "cds-hooks-2.0", "cds-hooks-best-practices", "site-policy"

_ALL: tuple[RuleSpec, ...] = (
    _replay(
        ReplayRule.JTI_REPLAY,
        StreamKind.JWT_REPLAY,
        Severity.HIGH,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#trusting-cds-clients",
        summary="a jti presented again for the same iss within the token's lifetime: a different "
        "hookInstance, service or peer, or after it was accepted (critical once a replay "
        "is accepted)",
    ),
    _replay(
        ReplayRule.WRONG_AUDIENCE,
        StreamKind.AUDIENCE_MISUSE,
        Severity.MEDIUM,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#trusting-cds-clients",
        summary="a token presented at a service whose endpoint is not in its aud "
        "(high if accepted)",
    ),
    _replay(
        ReplayRule.LIFETIME_OVER_SMART_CAP,
        StreamKind.TOKEN_LIFETIME,
        Severity.LOW,
        basis=_L,
        source="smart-backend-services",
        reference=_SMART,
        summary="exp - iat above the SMART Backend Services cap (5 minutes), applied as "
        "local policy",
    ),
    _replay(
        ReplayRule.LIFETIME_OVER_BEST_PRACTICE,
        StreamKind.TOKEN_LIFETIME,
        Severity.MEDIUM,
        basis=_B,
        source=_CDS_BP,
        reference=_BEST + "#jwt",
        summary="exp - iat above the longest lifetime the best practices allow (one hour)",
    ),
    _replay(
        ReplayRule.JTI_TABLE_FULL,
        StreamKind.DETECTOR_CAPACITY,
        Severity.HIGH,
        basis=_L,
        source=_SITE,
        reference=_BEST + "#jwt",
        summary="the replay detector's jti table for a client hit its cap; the earliest-expiring "
        "jtis were forgotten early",
    ),
    _anomaly(
        AnomalyRule.FAILURE_RATE_SPIKE,
        StreamKind.FAILURE_SPIKE,
        Severity.MEDIUM,
        "failures of one reason at one service departed from the client's baseline "
        "(z-score and minimum count per window)",
    ),
    _anomaly(
        AnomalyRule.NEW_FAILURE_REASON,
        StreamKind.NEW_FAILURE_REASON,
        Severity.LOW,
        "a failure reason seen for the first time for a client known for a while",
    ),
    _anomaly(
        AnomalyRule.ATTACK_SIGNATURE,
        StreamKind.ATTACK_SIGNATURE,
        Severity.HIGH,
        "a burst of forgery-shaped failures (alg not allowed, unknown kid, jku not allowed, "
        "aud mismatch, bad signature); critical with alg none or HMAC",
        _SPEC + "#jwt-signing-algorithm",
    ),
    _anomaly(
        AnomalyRule.CLOCK_SKEW_DRIFT,
        StreamKind.CLOCK_SKEW,
        Severity.MEDIUM,
        "repeated iat-in-future / not-yet-valid failures: the client's clock runs ahead",
    ),
    _anomaly(
        AnomalyRule.SUSTAINED_EXPIRED_TOKENS,
        StreamKind.EXPIRED_TOKEN_USE,
        Severity.MEDIUM,
        "expired tokens presented again and again over minutes: a stale cache or a "
        "captured token being tried",
    ),
    _policy(
        PolicyRule.ALG_NONE_OR_HMAC,
        Severity.CRITICAL,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#jwt-signing-algorithm",
        summary="a token signed with none or an HMAC algorithm was issued or accepted",
    ),
    _policy(
        PolicyRule.REQUIRED_FIELD_MISSING,
        Severity.HIGH,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#trusting-cds-clients",
        summary="a token without kid, typ, iss, aud, exp, iat or jti was issued or accepted",
    ),
    _policy(
        PolicyRule.TYP_NOT_JWT,
        Severity.LOW,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#trusting-cds-clients",
        summary="a token whose typ header is not JWT was issued or accepted",
    ),
    _policy(
        PolicyRule.AUD_NOT_ENDPOINT,
        Severity.HIGH,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#trusting-cds-clients",
        summary="a client sent a token whose aud is not the endpoint it called",
    ),
    _policy(
        PolicyRule.FHIR_SERVER_MISSING,
        Severity.MEDIUM,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#calling-a-cds-service",
        summary="fhirAuthorization sent without fhirServer",
    ),
    _policy(
        PolicyRule.FHIR_SERVER_NOT_HTTPS,
        Severity.HIGH,
        basis=_N,
        source=_CDS,
        reference=_SPEC + "#calling-a-cds-service",
        summary="fhirAuthorization sent with a fhirServer that is not https",
    ),
    _policy(
        PolicyRule.ALG_NOT_ALLOWED,
        Severity.MEDIUM,
        basis=_L,
        source=_SITE,
        reference=_SPEC + "#jwt-signing-algorithm",
        summary="a token signed with an algorithm outside the configured allowlist (ES384 and "
        "RS384 are recommended)",
    ),
    _policy(
        PolicyRule.ISSUER_NOT_ALLOWLISTED,
        Severity.HIGH,
        basis=_B,
        source=_CDS,
        reference=_SPEC + "#trusting-cds-clients",
        summary="a service accepted a token from an iss that is not on the configured allowlist",
    ),
    _policy(
        PolicyRule.SERVICE_NOT_ALLOWLISTED,
        Severity.HIGH,
        basis=_B,
        source=_CDS_BP,
        reference=_BEST + "#cds-clients",
        summary="a client called a service endpoint that is not on its allowlist",
    ),
    _policy(
        PolicyRule.FHIR_SERVER_NOT_ALLOWLISTED,
        Severity.HIGH,
        basis=_B,
        source="owasp-ssrf",
        reference="https://cheatsheetseries.owasp.org/cheatsheets/"
        "Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html",
        summary="a fhirServer host outside the service's allowlist (SSRF)",
    ),
    _policy(
        PolicyRule.JKU_NOT_APPROVED,
        Severity.HIGH,
        basis=_B,
        source=_CDS,
        reference=_SPEC + "#trusting-cds-clients",
        summary="a token with a jku that is not pre-approved for its iss was issued or accepted",
    ),
    _policy(
        PolicyRule.SCOPE_TOO_BROAD,
        Severity.MEDIUM,
        basis=_B,
        source=_CDS_BP,
        reference=_BEST + "#cds-clients",
        summary="fhirAuthorization scopes broader than configured for the service (wildcard, "
        "write for a read-only service, or not on its scope list)",
    ),
    _policy(
        PolicyRule.TLS_BELOW_MINIMUM,
        Severity.HIGH,
        basis=_B,
        source="rfc8996",
        reference="https://www.rfc-editor.org/rfc/rfc8996",
        summary="a call over TLS older than the configured minimum (1.2)",
    ),
    _policy(
        PolicyRule.TLS_FAILURE,
        Severity.MEDIUM,
        basis=_B,
        source="rfc9325",
        reference="https://www.rfc-editor.org/rfc/rfc9325",
        summary="TLS handshake or certificate failures",
    ),
    _policy(
        PolicyRule.PAYLOAD_OVER_CAP,
        Severity.LOW,
        basis=_L,
        source=_SITE,
        reference="https://owasp.org/API-Security/editions/2023/en/0xa4-unrestricted-resource-consumption/",
        summary="a request body larger than the configured cap was sent or accepted",
    ),
    _policy(
        PolicyRule.RATE_LIMIT_BURST,
        Severity.MEDIUM,
        basis=_L,
        source=_SITE,
        reference="https://owasp.org/API-Security/editions/2023/en/0xa4-unrestricted-resource-consumption/",
        summary="a burst of rate-limit rejections for one client",
    ),
    _policy(
        PolicyRule.REQUEST_RATE_EXCEEDED,
        Severity.MEDIUM,
        basis=_L,
        source=_SITE,
        reference="https://owasp.org/API-Security/editions/2023/en/0xa4-unrestricted-resource-consumption/",
        summary="a client's calls to services exceeded the configured burst threshold",
    ),
)

RULES: Mapping[str, RuleSpec] = MappingProxyType({spec.rule: spec for spec in _ALL})
"""Every stream rule by id."""


def rule_spec(rule: str) -> RuleSpec:
    """The spec of ``rule``; raises ``KeyError`` for an unknown id."""
    return RULES[rule]

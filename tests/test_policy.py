"""policy: one case per rule and per reason it must stay quiet."""

from __future__ import annotations

from typing import Any

import pytest
from authz_events import ISS, OTHER_ISS, event, url_of
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from auditor.models import AuthzEvent, AuthzView, Finding
from detectors import (
    BurstThreshold,
    ClientPolicy,
    PolicyConfig,
    PolicyDetector,
    ServicePolicy,
)
from detectors._policy_checks import PolicyChecks
from detectors.scopes import classify_scope
from pipelines.runtime import latest_revisions, run_stream

JWKS = "https://ehr.example.org/.well-known/jwks.json"

SITE = PolicyConfig(
    clients={
        ISS: ClientPolicy(
            allowed_services=frozenset({"patient-greeter", url_of("order-check")}),
            approved_jku=frozenset({JWKS}),
        )
    },
    services={
        "patient-greeter": ServicePolicy(
            allowed_fhir_hosts=frozenset({"fhir.example.org", "*.hospital.example"}),
            read_only=True,
        ),
        "order-check": ServicePolicy(allowed_scopes=frozenset({"patient/MedicationRequest.read"})),
    },
    allowed_algorithms=frozenset({"ES384", "RS384"}),
)

FHIR = {"fhir_server": "https://fhir.example.org/r4", "fhir_authorization": True}
ISSUED = {"action": "token.issued"}
SENT = {"action": "request.sent"}


def _with(**updates: object) -> PolicyConfig:
    """SITE with some settings changed, validated like a configuration file would be."""
    return PolicyConfig.model_validate({**SITE.model_dump(), **updates})


def _rules(events: list[AuthzEvent], config: PolicyConfig = SITE) -> dict[str, Finding]:
    return {f.rule: f for f in latest_revisions(run_stream([PolicyDetector(config)], events))}


VIOLATIONS = [
    # (id, event, rule; why)
    ("alg-none-issued", event(0, alg="none", **ISSUED), "alg_none_or_hmac"),
    # The spec's SHALL NOT: unsigned tokens identify no one.
    ("hs256-accepted", event(0, alg="HS256"), "alg_none_or_hmac"),
    # A service that accepts HMAC shares a secret with the client: forbidden.
    ("rs256-issued", event(0, alg="RS256", **ISSUED), "alg_not_allowed"),
    # Allowed by the spec, not by this site's tighter allowlist (local policy).
    ("no-kid", event(0, kid=None, **ISSUED), "required_jwt_field_missing"),
    # kid is REQUIRED: without it the service cannot pick the key.
    ("no-jti-accepted", event(0, jti=None), "required_jwt_field_missing"),
    # Without jti no replay protection is possible.
    ("no-exp", event(0, exp=None, **ISSUED), "required_jwt_field_missing"),
    ("typ", event(0, typ="at+jwt", **ISSUED), "typ_not_jwt"),
    # typ is fixed to JWT for CDS Hooks.
    (
        "aud-base-url",
        event(0, aud=("https://cds.example.com/cds-services",), **SENT),
        "aud_not_endpoint",
    ),
    # aud must be the endpoint called, not the discovery URL.
    ("fhir-auth-without-server", event(0, fhir_authorization=True, **SENT), "fhir_server_missing"),
    (
        "fhir-http",
        event(0, fhir_server="http://fhir.example.org/r4", fhir_authorization=True, **SENT),
        "fhir_server_not_https",
    ),
    # An access token sent to a service that will use it over plain http.
    ("unknown-issuer-accepted", event(0, iss=OTHER_ISS), "issuer_not_allowlisted"),
    # The service took a token from a client nobody vetted.
    (
        "service-not-allowlisted",
        event(0, service="billing-upsell", **SENT),
        "service_not_allowlisted",
    ),
    # The client called an endpoint that is not on its list.
    (
        "ssrf",
        event(0, fhir_server="https://169.254.169.254/latest", fhir_authorization=True),
        "fhir_server_not_allowlisted",
    ),
    # A fhirServer pointing at the cloud metadata endpoint: SSRF.
    ("jku-unapproved", event(0, jku="https://evil.example/jwks", **ISSUED), "jku_not_approved"),
    # A jku the service would have to fetch from an unvetted host.
    (
        "wildcard-scope",
        event(0, scopes=("user/*.read",), **FHIR, **SENT),
        "scope_too_broad",
    ),
    # Every resource type for a service that needs a patient's few.
    (
        "write-scope-read-only",
        event(0, scopes=("patient/Observation.write",), **FHIR),
        "scope_too_broad",
    ),
    (
        "v2-write-scope",
        event(0, scopes=("patient/Observation.cruds",), **FHIR),
        "scope_too_broad",
    ),
    # SMART v2 permissions: c, u and d are writes.
    (
        "scope-not-on-list",
        event(0, service="order-check", scopes=("patient/Observation.read",), **FHIR),
        "scope_too_broad",
    ),
    ("tls-1.1", event(0, tls_version="TLSv1.1"), "tls_below_minimum"),
    ("ssl3", event(0, tls_version="SSLv3", **SENT), "tls_below_minimum"),
    (
        "tls-failed",
        event(0, action="tls.failed", reason="tls_error", iss=None, token=False),
        "tls_failure",
    ),
    # A certificate that does not verify: someone in the middle, or a broken deployment.
    ("payload", event(0, payload_bytes=5_000_000), "payload_over_cap"),
]


@pytest.mark.parametrize(
    ("events", "rule"),
    [pytest.param([ev], rule, id=name) for name, ev, rule in VIOLATIONS],
)
def test_policy_violation(events: list[AuthzEvent], rule: str) -> None:
    found = _rules(events)
    assert rule in found, found
    assert found[rule].facts["basis"] in {"normative", "best_practice", "local_policy"}
    assert found[rule].reference


CONFORMANT = [
    # (id, event; why it must stay quiet)
    ("issued", event(0, **ISSUED)),  # a conformant token
    ("accepted", event(0, **FHIR, scopes=("patient/Observation.read",))),
    ("subdomain-fhir", event(0, fhir_server="https://ehr.hospital.example/r4")),
    # *.hospital.example admits any subdomain.
    ("approved-jku", event(0, jku=JWKS, **ISSUED)),
    ("allowlisted-by-url", event(0, service="order-check", **SENT)),
    # The client's allowlist may name an endpoint URL instead of an id.
    ("aud-array", event(0, aud=(url_of("patient-greeter"), "https://x.example"), **SENT)),
    # aud may be an array holding the endpoint.
    (
        "rejected-hs256",
        event(0, alg="HS256", reason="alg_not_allowed"),
    ),  # refused by the service: the control worked (validation_anomaly watches refusals)
    ("tls-1.3", event(0, tls_version="TLSv1.3")),
    ("no-fhir-auth", event(0, fhir_server="http://fhir.example.org/r4", **SENT)),
    # http fhirServer without fhirAuthorization sends no token: not the spec's concern.
    ("non-resource-scopes", event(0, scopes=("openid", "launch", "fhirUser"), **FHIR)),
    ("typ-lowercase", event(0, typ="jwt", **ISSUED)),  # typ is case-insensitive
]


@pytest.mark.parametrize("ev", [pytest.param(ev, id=name) for name, ev in CONFORMANT])
def test_conformant_traffic_raises_nothing(ev: AuthzEvent) -> None:
    assert _rules([ev]) == {}


def test_many_violations_of_one_kind_are_one_incident() -> None:
    findings = run_stream(
        [PolicyDetector(SITE)], [event(t, alg="HS256", **ISSUED) for t in range(100)]
    )
    assert len({f.finding_id for f in findings}) == 1
    final = latest_revisions(findings)[0]
    assert final.count == 100
    assert final.facts["alg"] == "HS256"
    assert final.facts["role"] == "client"
    assert final.severity.value == "critical"


def test_a_violation_after_the_incident_gap_is_a_new_incident() -> None:
    events = [event(0, alg="HS256", **ISSUED), event(7200, alg="HS256", **ISSUED)]
    assert len(latest_revisions(run_stream([PolicyDetector(SITE)], events))) == 2


def test_the_client_and_the_service_side_are_separate_incidents() -> None:
    events = [event(0, alg="HS256", **ISSUED), event(1, alg="HS256")]
    found = latest_revisions(run_stream([PolicyDetector(SITE)], events))
    assert sorted(f.facts["role"] for f in found) == ["client", "service"]  # type: ignore[type-var]


def test_a_burst_of_rate_limit_rejections_is_one_finding() -> None:
    config = _with(rate_limit_burst=BurstThreshold(count=5, window=10))
    events = [event(i, reason="rate_limited", action="ratelimit.exceeded") for i in range(8)]
    (found,) = _rules(events, config).values()
    assert found.rule == "rate_limit_burst"
    assert found.count == 8


def test_too_many_requests_per_window_when_configured() -> None:
    config = _with(request_burst={"count": 50, "window": 10})
    calm = [event(t) for t in range(0, 100, 2)]
    storm = [event(100 + i * 0.1) for i in range(80)]
    found = _rules(calm + storm, config)
    assert set(found) == {"request_rate_exceeded"}
    assert found["request_rate_exceeded"].facts["peak_per_window"] == 80


def test_disabled_rules_stay_silent() -> None:
    config = _with(disabled_rules=["alg_none_or_hmac"])
    assert _rules([event(0, alg="HS256", **ISSUED)], config) == {}


def test_severity_can_be_overridden_per_rule() -> None:
    config = _with(severity={"payload_over_cap": "high"})
    found = _rules([event(0, payload_bytes=5_000_000)], config)
    assert found["payload_over_cap"].severity.value == "high"


def test_without_client_configuration_only_structural_rules_apply() -> None:
    found = _rules([event(0, iss=OTHER_ISS, jku="https://x.example/jwks")], PolicyConfig())
    assert found == {}


@pytest.mark.parametrize(
    ("scope", "write", "wildcard"),
    [
        ("patient/Observation.read", False, False),
        ("user/*.read", False, True),
        ("system/*.*", True, True),
        ("patient/Observation.rs", False, False),  # SMART v2 read + search
        ("patient/Observation.cud", True, False),
        ("patient/Observation.rs?category=laboratory", False, False),
    ],
)
def test_smart_scopes_are_classified(scope: str, write: bool, wildcard: bool) -> None:
    access = classify_scope(scope)
    assert access is not None
    assert (access.write, access.wildcard) == (write, wildcard)


@pytest.mark.parametrize("scope", ["openid", "launch/patient", "offline_access", "patient/.read"])
def test_scopes_without_resource_access_are_not_classified(scope: str) -> None:
    assert classify_scope(scope) is None


@pytest.mark.parametrize(
    "config",
    [
        {"allowed_algorithms": ["ES384", "HS256"]},  # the spec forbids HMAC outright
        {"allowed_algorithms": []},  # nothing allowed: every token is a violation
        {"min_tls_version": "1.4"},  # no such version
        {"services": {"s": {"allowed_fhir_hosts": ["https://fhir.example.org/r4"]}}},
        # hosts, not URLs: a URL here would never match
        {"disabled_rules": ["no_such_rule"]},  # a typo must not disable nothing silently
    ],
)
def test_bad_policy_configuration_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate(config)


# What each field read by policy's flat pass in ``key`` may be instead of its conformant
# default (the defaults of ``event``).
_DEVIATIONS: dict[str, list[Any]] = {
    "iss": [OTHER_ISS],
    "service": ["order-check", None],
    "aud": [None, (url_of("billing"),)],
    "alg": ["HS256", "PS256", "none", None],
    "typ": ["jwt", "at+jwt", None],
    "kid": [None],
    "jti": [None],
    "jku": [JWKS, "https://evil.example/jwks"],
    "token": [False],
    "fhir_server": ["https://fhir.example.org/r4", "http://10.0.0.1/r4"],
    "fhir_authorization": [True, False],
    "scopes": [("patient/*.read",), ("user/*.write",), ("patient/Observation.read",)],
    "payload_bytes": [1000, 5_000_000],
    "tls_version": ["TLSv1.3", "TLSv1.0"],
}


@st.composite
def _policy_events(draw: st.DrawFn) -> AuthzEvent:
    """A client's event, conformant but for up to two fields the flat pass reads."""
    action = draw(
        st.sampled_from(["token.issued", "request.sent", "token.validated", "token.rejected"])
    )
    changed = draw(st.sets(st.sampled_from(sorted(_DEVIATIONS)), max_size=2))
    fields = {name: draw(st.sampled_from(_DEVIATIONS[name])) for name in sorted(changed)}
    reason = "expired" if action == "token.rejected" else None
    return event(0, action=action, reason=reason, **fields)


@pytest.mark.parametrize("config", [PolicyConfig(), SITE], ids=["default", "site"])
@settings(max_examples=200, deadline=None)
@given(ev=_policy_events())
def test_a_client_event_that_key_lets_pass_breaks_no_rule(
    config: PolicyConfig, ev: AuthzEvent
) -> None:
    # key() recognises conformant events in a flat pass of its own, without the checks;
    # whatever it lets pass must be what every check finds nothing in.
    view = AuthzView(ev)
    if PolicyDetector(config).key(view) is None:
        assert PolicyChecks(config).violations(view) == []

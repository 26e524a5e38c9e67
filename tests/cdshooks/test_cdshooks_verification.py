"""Verifier rules as a case table: every reason code, each from a real signed token."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from cdshooks_support import AUDIENCE, BASE, ISS, NOW, SERVICE

from auditor.cdshooks import (
    CdsClient,
    InMemoryReplayCache,
    ListSink,
    SigningKey,
    TokenRejected,
    TrustedIssuer,
    TrustRegistry,
    VerificationPolicy,
    Verifier,
    jose,
)
from auditor.cdshooks.adversary import EXPECTED_REASON, Forger, sign_raw
from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.vocabulary import AuthzAction, FailureReason, Outcome


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Forger], str]
    reason: FailureReason | None
    why: str


def _signed(header: dict | None = None, **claims: object) -> Callable[[Forger], str]:
    """A token signed with the client's real key, with header/claim overrides."""

    def make(f: Forger) -> str:
        return sign_raw(f.header(**(header or {})), f.claims(AUDIENCE, NOW, **claims), f.key)

    return make


def _raw(header: dict, payload: bytes, signature: bytes = b"sig") -> str:
    return ".".join(
        (
            jose.b64url_encode(jose.canonical_json(header)),
            jose.b64url_encode(payload),
            jose.b64url_encode(signature),
        )
    )


def _with_other_key_same_kid(f: Forger) -> str:
    impostor = SigningKey.generate("ES256")
    return sign_raw(f.header(), f.claims(AUDIENCE, NOW), impostor)


def _truncate_signature(token: str) -> str:
    signing_input, _, signature = token.rpartition(".")
    short = jose.b64url_decode(signature, "signature")[:-3]
    return f"{signing_input}.{jose.b64url_encode(short)}"


def _ts(delta: timedelta) -> int:
    return int((NOW + delta).timestamp())


CASES = [
    # Accepted tokens: the rules must not refuse what CDS Hooks allows.
    Case("valid", lambda f: f.valid(AUDIENCE, NOW), None, "a normal token"),
    Case("no_sub", _signed(), None, "CDS Hooks has no sub claim; its absence is normal"),
    Case("tenant", _signed(tenant="t-1"), None, "tenant is an optional claim"),
    Case("aud_array", _signed(aud=[AUDIENCE, "https://x.example"]), None, "aud may be an array"),
    Case(
        "aud_variant",
        _signed(aud="HTTPS://CDS.EXAMPLE.COM:443/cds-services/patient-greeter/"),
        None,
        "the same URL written with case, default port and trailing slash",
    ),
    Case("typ_lower", _signed({"typ": "jwt"}), None, "typ is a case-insensitive media type"),
    Case(
        "typ_media",
        _signed({"typ": "application/jwt"}),
        None,
        "RFC 7515: typ may carry the application/ prefix",
    ),
    Case(
        "expired_within_skew",
        _signed(iat=_ts(timedelta(seconds=-310)), exp=_ts(timedelta(seconds=-10))),
        None,
        "exp passed 10 s ago, inside the 30 s skew",
    ),
    Case(
        "iat_ahead_within_skew",
        _signed(iat=_ts(timedelta(seconds=20)), exp=_ts(timedelta(seconds=200))),
        None,
        "a client clock 20 s fast is tolerated",
    ),
    Case(
        "float_dates",
        _signed(iat=NOW.timestamp() + 0.5, exp=NOW.timestamp() + 60.5),
        None,
        "NumericDate may be non-integer (RFC 7519 §2)",
    ),
    # missing_token
    Case("empty", lambda _f: "", FailureReason.MISSING_TOKEN, "no bearer token at all"),
    # malformed
    Case("garbage", lambda f: f.garbage(AUDIENCE, NOW), FailureReason.MALFORMED, "not a JWS"),
    Case(
        "jwe",
        lambda _f: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        FailureReason.MALFORMED,
        "five segments: an encrypted JWT, which CDS Hooks does not use",
    ),
    Case(
        "padded",
        lambda f: f.valid(AUDIENCE, NOW).replace(".", "=.", 1),
        FailureReason.MALFORMED,
        "base64url in JWS has no padding",
    ),
    Case(
        "duplicate_alg",
        lambda f: (
            jose.b64url_encode(b'{"alg":"none","alg":"ES256","kid":"k","typ":"JWT"}')
            + "."
            + f.valid(AUDIENCE, NOW).split(".", 1)[1]
        ),
        FailureReason.MALFORMED,
        "two alg members read differently by different parsers",
    ),
    Case(
        "payload_not_json",
        lambda f: _raw(f.header(), b"not json"),
        FailureReason.MALFORMED,
        "the payload of a JWT is a JSON object",
    ),
    Case(
        "payload_array",
        lambda f: _raw(f.header(), b"[1,2]"),
        FailureReason.MALFORMED,
        "a JSON array is not a claims set",
    ),
    Case("crit", _signed({"crit": ["exp"]}), FailureReason.MALFORMED, "unknown crit extension"),
    Case("kid_number", _signed({"kid": 7}), FailureReason.MALFORMED, "kid must be a string"),
    Case("iss_number", _signed(iss=7), FailureReason.MALFORMED, "iss must be a string"),
    Case("exp_string", _signed(exp="soon"), FailureReason.MALFORMED, "exp is a NumericDate"),
    Case("exp_bool", _signed(exp=True), FailureReason.MALFORMED, "a JSON true is not a number"),
    Case("aud_number", _signed(aud=5), FailureReason.MALFORMED, "aud is string or array"),
    Case(
        "aud_mixed_array",
        _signed(aud=[AUDIENCE, 5]),
        FailureReason.MALFORMED,
        "an aud array holds strings only, even when one of them matches",
    ),
    Case("aud_empty_array", _signed(aud=[]), FailureReason.MALFORMED, "an empty aud names no one"),
    Case("jti_number", _signed(jti=5), FailureReason.MALFORMED, "jti is a string"),
    Case(
        "exp_before_iat",
        _signed(iat=_ts(timedelta(seconds=10)), exp=_ts(timedelta(seconds=5))),
        FailureReason.MALFORMED,
        "a token cannot expire before it was issued",
    ),
    Case(
        "too_long",
        _signed(pad="x" * 9000),
        FailureReason.MALFORMED,
        "tokens over 8 KiB are refused before decoding",
    ),
    # missing_claim, each required member (there is no sub)
    Case("no_alg", _signed({"alg": None}), FailureReason.MISSING_CLAIM, "alg is required"),
    Case("no_kid", _signed({"kid": None}), FailureReason.MISSING_CLAIM, "kid is required"),
    Case("no_iss", _signed(iss=None), FailureReason.MISSING_CLAIM, "iss is required"),
    Case("no_aud", _signed(aud=None), FailureReason.MISSING_CLAIM, "aud is required"),
    Case("no_exp", _signed(exp=None), FailureReason.MISSING_CLAIM, "exp is required"),
    Case("no_iat", _signed(iat=None), FailureReason.MISSING_CLAIM, "iat is required"),
    Case("no_jti", _signed(jti=None), FailureReason.MISSING_CLAIM, "jti is required"),
    # alg_not_allowed
    Case(
        "alg_none",
        lambda f: f.alg_none(AUDIENCE, NOW),
        FailureReason.ALG_NOT_ALLOWED,
        "alg none SHALL NOT be used",
    ),
    Case(
        "hs256_public_key",
        lambda f: f.hs256_with_public_key(AUDIENCE, NOW),
        FailureReason.ALG_NOT_ALLOWED,
        "algorithm confusion: HMAC keyed with the public key",
    ),
    Case(
        "alg_key_mismatch",
        _signed({"alg": "ES384"}),
        FailureReason.ALG_NOT_ALLOWED,
        "ES384 claimed for a P-256 key",
    ),
    Case(
        "alg_rsa_for_ec",
        _signed({"alg": "RS384"}),
        FailureReason.ALG_NOT_ALLOWED,
        "an RSA algorithm for an EC key",
    ),
    # typ_invalid
    Case("typ_missing", _signed({"typ": None}), FailureReason.TYP_INVALID, "typ JWT is required"),
    Case(
        "typ_other",
        lambda f: f.wrong_typ(AUDIENCE, NOW),
        FailureReason.TYP_INVALID,
        "an access token (at+jwt) is not a CDS Hooks JWT",
    ),
    # trust
    Case(
        "foreign_issuer",
        lambda f: f.foreign_issuer(AUDIENCE, NOW),
        FailureReason.UNKNOWN_ISSUER,
        "iss is not on the allowlist",
    ),
    Case(
        "unapproved_jku",
        lambda f: f.unapproved_jku(AUDIENCE, NOW),
        FailureReason.JKU_NOT_ALLOWED,
        "jku pointing at an attacker's JWK Set",
    ),
    Case(
        "unknown_kid",
        lambda f: f.unknown_kid(AUDIENCE, NOW),
        FailureReason.UNKNOWN_KID,
        "a key the client never published",
    ),
    # bad_signature
    Case(
        "tampered",
        lambda f: f.tampered(AUDIENCE, NOW),
        FailureReason.BAD_SIGNATURE,
        "payload changed after signing",
    ),
    Case(
        "impostor_key",
        _with_other_key_same_kid,
        FailureReason.BAD_SIGNATURE,
        "right kid, wrong private key",
    ),
    Case(
        "truncated_signature",
        lambda f: _truncate_signature(f.valid(AUDIENCE, NOW)),
        FailureReason.BAD_SIGNATURE,
        "an ECDSA signature of the wrong length",
    ),
    # claims
    Case(
        "wrong_audience",
        lambda f: f.wrong_audience(AUDIENCE, NOW),
        FailureReason.AUD_MISMATCH,
        "a token for another service (forwarding)",
    ),
    Case(
        "sibling_service",
        _signed(aud=f"{BASE}/cds-services/other-service"),
        FailureReason.AUD_MISMATCH,
        "a token for a sibling service on the same host",
    ),
    Case(
        "expired",
        lambda f: f.expired(AUDIENCE, NOW),
        FailureReason.EXPIRED,
        "exp passed 10 minutes ago",
    ),
    Case(
        "clock_behind",
        lambda f: f.clock_behind(AUDIENCE, NOW),
        FailureReason.EXPIRED,
        "a client clock 10 minutes slow mints expired tokens",
    ),
    Case(
        "not_yet_valid",
        lambda f: f.not_yet_valid(AUDIENCE, NOW),
        FailureReason.NOT_YET_VALID,
        "nbf two minutes ahead",
    ),
    Case(
        "clock_ahead",
        lambda f: f.clock_ahead(AUDIENCE, NOW),
        FailureReason.IAT_IN_FUTURE,
        "a client clock 10 minutes fast",
    ),
    Case(
        "long_lifetime",
        lambda f: f.long_lifetime(AUDIENCE, NOW),
        FailureReason.LIFETIME_TOO_LONG,
        "two-hour token over the 5-minute local policy",
    ),
    Case(
        "exp_far_ahead_backdated_iat",
        _signed(iat=_ts(timedelta(minutes=-58)), exp=_ts(timedelta(minutes=2)) + 3600),
        FailureReason.LIFETIME_TOO_LONG,
        "lifetime measured from now too: exp an hour ahead",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verification_case(case: Case, forger: Forger, verifier: Verifier) -> None:
    result = verifier.verify(case.make(forger), SERVICE, now=NOW)
    assert result.reason is case.reason, result.detail
    assert result.ok is (case.reason is None)


def test_the_table_covers_every_reason_a_token_alone_can_cause() -> None:
    # replayed_jti, replay_cache_full and jwks_unavailable need state; they have own tests.
    token_reasons = {
        FailureReason.MISSING_TOKEN,
        FailureReason.MALFORMED,
        FailureReason.MISSING_CLAIM,
        FailureReason.ALG_NOT_ALLOWED,
        FailureReason.TYP_INVALID,
        FailureReason.UNKNOWN_ISSUER,
        FailureReason.JKU_NOT_ALLOWED,
        FailureReason.UNKNOWN_KID,
        FailureReason.BAD_SIGNATURE,
        FailureReason.AUD_MISMATCH,
        FailureReason.EXPIRED,
        FailureReason.NOT_YET_VALID,
        FailureReason.IAT_IN_FUTURE,
        FailureReason.LIFETIME_TOO_LONG,
    }
    covered = {c.reason for c in CASES}
    assert token_reasons <= covered
    assert set(EXPECTED_REASON.values()) <= covered


def test_missing_token_as_none_is_refused(verifier: Verifier) -> None:
    assert verifier.verify(None, SERVICE, now=NOW).reason is FailureReason.MISSING_TOKEN


def test_missing_claim_detail_names_the_claim(forger: Forger, verifier: Verifier) -> None:
    result = verifier.verify(forger.missing_claim(AUDIENCE, NOW, claim="exp"), SERVICE, now=NOW)
    assert result.reason is FailureReason.MISSING_CLAIM
    assert result.detail == "exp"


def test_a_jti_is_accepted_once(forger: Forger, verifier: Verifier) -> None:
    token = forger.valid(AUDIENCE, NOW)
    assert verifier.verify(token, SERVICE, now=NOW).ok
    second = verifier.verify(token, SERVICE, now=NOW + timedelta(seconds=1))
    assert second.reason is FailureReason.REPLAYED_JTI


def test_the_same_jti_from_two_issuers_is_not_a_replay(
    ehr: CdsClient, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    other = CdsClient(
        issuer="https://other-ehr.example.org",
        keys=SigningKey.generate("ES256"),
        services=[BASE],
        fingerprinter=fingerprinter,
    )
    registry = TrustRegistry(
        [
            TrustedIssuer(ISS, jwks=ehr.jwks(now=NOW)),
            TrustedIssuer(other.issuer, jwks=other.jwks(now=NOW)),
        ]
    )
    verifier = Verifier(registry, base_url=BASE, sink=sink, fingerprinter=fingerprinter)
    assert verifier.verify(ehr.mint(AUDIENCE, now=NOW, jti="j-1").token, SERVICE, now=NOW).ok
    assert verifier.verify(other.mint(AUDIENCE, now=NOW, jti="j-1").token, SERVICE, now=NOW).ok


def test_a_full_replay_cache_fails_closed(
    ehr: CdsClient, registry: TrustRegistry, fingerprinter: Fingerprinter
) -> None:
    verifier = Verifier(
        registry,
        base_url=BASE,
        replay_cache=InMemoryReplayCache(max_entries=1),
        fingerprinter=fingerprinter,
    )
    assert verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW).ok
    refused = verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    assert refused.reason is FailureReason.REPLAY_CACHE_FULL
    # Once the first token has expired its entry leaves and there is room again.
    later = NOW + timedelta(minutes=6)
    assert verifier.verify(ehr.mint(AUDIENCE, now=later).token, SERVICE, now=later).ok


def test_an_issuer_whose_jwks_provider_fails_is_jwks_unavailable(
    forger: Forger, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    def broken() -> dict:
        raise OSError("key store down")

    registry = TrustRegistry([TrustedIssuer(ISS, jwks_provider=broken)])
    verifier = Verifier(registry, base_url=BASE, sink=sink, fingerprinter=fingerprinter)
    result = verifier.verify(forger.valid(AUDIENCE, NOW), SERVICE, now=NOW)
    assert result.reason is FailureReason.JWKS_UNAVAILABLE
    fetch = next(e for e in sink if e.action is AuthzAction.JWKS_FETCHED)
    assert fetch.outcome is Outcome.FAILURE
    assert fetch.reason is FailureReason.JWKS_UNAVAILABLE


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "RS256", "RS384", "PS256"])
def test_every_supported_algorithm_round_trips(alg: str, fingerprinter: Fingerprinter) -> None:
    key = SigningKey.generate(alg)
    client = CdsClient(issuer=ISS, keys=key, services=[BASE], fingerprinter=fingerprinter)
    registry = TrustRegistry([TrustedIssuer(ISS, jwks=client.jwks(now=NOW))])
    verifier = Verifier(registry, base_url=BASE, fingerprinter=fingerprinter)
    result = verifier.verify(client.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    assert result.ok, result.detail
    assert result.claims.alg == alg


def test_an_algorithm_off_the_policy_is_refused(
    forger: Forger, registry: TrustRegistry, fingerprinter: Fingerprinter
) -> None:
    # ES256 is valid CDS Hooks, but this service allows only the recommended algorithms.
    policy = VerificationPolicy(algorithms=jose.RECOMMENDED_ALGORITHMS)
    verifier = Verifier(registry, base_url=BASE, policy=policy, fingerprinter=fingerprinter)
    result = verifier.verify(forger.valid(AUDIENCE, NOW), SERVICE, now=NOW)
    assert result.reason is FailureReason.ALG_NOT_ALLOWED


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512"])
def test_a_policy_allowing_none_or_hmac_does_not_start(alg: str, registry: TrustRegistry) -> None:
    with pytest.raises(ConfigurationError, match="forbidden by CDS Hooks"):
        Verifier(registry, base_url=BASE, policy=VerificationPolicy(algorithms=(alg,)))


def test_max_lifetime_is_configurable_up_to_one_hour(
    ehr: CdsClient, registry: TrustRegistry, fingerprinter: Fingerprinter
) -> None:
    policy = VerificationPolicy(max_lifetime=timedelta(minutes=1))
    verifier = Verifier(registry, base_url=BASE, policy=policy, fingerprinter=fingerprinter)
    result = verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    assert result.reason is FailureReason.LIFETIME_TOO_LONG
    assert "local policy" in (result.detail or "")
    with pytest.raises(ConfigurationError, match="1 hour"):
        VerificationPolicy(max_lifetime=timedelta(hours=2)).validated()


def test_claims_are_checked_only_after_the_signature(forger: Forger, verifier: Verifier) -> None:
    # An expired token with a bad signature is reported as a bad signature: the claims of
    # a token nobody signed are not evidence of anything.
    expired = forger.expired(AUDIENCE, NOW)
    head, payload, signature = expired.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    assert verifier.verify(tampered, SERVICE, now=NOW).reason is FailureReason.BAD_SIGNATURE


def test_a_refused_token_records_its_claims_and_fingerprint(
    forger: Forger, verifier: Verifier, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    token = forger.expired(AUDIENCE, NOW)
    verifier.verify(token, SERVICE, now=NOW, peer_ip="10.0.0.7")
    event = sink[-1]
    assert event.action is AuthzAction.TOKEN_REJECTED
    assert event.reason is FailureReason.EXPIRED
    assert event.client is not None
    assert event.client.iss == ISS
    assert event.service is not None
    assert event.service.id == SERVICE
    assert event.token is not None
    assert event.token.fingerprint == fingerprinter(token)
    assert event.token.kid == forger.key.kid
    assert event.peer is not None
    assert event.peer.ip == "10.0.0.7"
    assert event.time == NOW


def test_an_accepted_token_emits_token_validated(
    ehr: CdsClient, verifier: Verifier, sink: ListSink
) -> None:
    minted = ehr.mint(AUDIENCE, now=NOW, tenant="t-9")
    result = verifier.verify(minted.token, SERVICE, now=NOW)
    event = sink[-1]
    assert result.ok
    assert event.action is AuthzAction.TOKEN_VALIDATED
    assert event.outcome is Outcome.SUCCESS
    assert event.client is not None
    assert event.client.tenant == "t-9"
    assert event.token is not None
    assert event.token.jti == minted.jti
    assert result.payload["jti"] == minted.jti


def test_require_raises_with_the_reason_only(forger: Forger, verifier: Verifier) -> None:
    token = forger.expired(AUDIENCE, NOW)
    with pytest.raises(TokenRejected) as caught:
        verifier.require(token, SERVICE, now=NOW)
    assert caught.value.reason is FailureReason.EXPIRED
    assert str(caught.value) == "token rejected: expired (exp has passed)"


def test_trace_and_span_ids_come_from_the_current_span(
    ehr: CdsClient, verifier: Verifier, sink: ListSink
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("cds-call") as span:
        verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
        context = span.get_span_context()
    event = sink[-1]
    assert event.trace_id == f"{context.trace_id:032x}"
    assert event.span_id == f"{context.span_id:016x}"


def test_without_a_span_there_are_no_trace_ids(
    ehr: CdsClient, verifier: Verifier, sink: ListSink
) -> None:
    verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    assert sink[-1].trace_id is None


def test_the_hs256_forgery_really_is_keyed_with_the_public_key(forger: Forger) -> None:
    # Guard against a forgery that is refused only because it is broken: recompute the MAC.
    from cryptography.hazmat.primitives import serialization

    token = forger.hs256_with_public_key(AUDIENCE, NOW)
    signing_input, _, signature = token.rpartition(".")
    pem = forger.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert jose.b64url_decode(signature, "signature") == expected


def test_a_naive_time_is_a_programming_error(ehr: CdsClient, verifier: Verifier) -> None:
    # Epoch seconds of a naive time depend on the host's zone: refuse rather than guess.
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(TypeError, match="timezone-aware"):
        verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=naive)
    with pytest.raises(TypeError, match="timezone-aware"):
        ehr.mint(AUDIENCE, now=naive)

"""The parts under the verifier: JOSE framing, URLs, the replay cache, the rate limiter, bodies.

Properties (Hypothesis) where a rule must hold for all inputs; tables where cases matter.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import structlog
from cdshooks_support import AUDIENCE, NOW, SERVICE
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from auditor.cdshooks import (
    FhirServerPolicy,
    HookRequest,
    InMemoryReplayCache,
    ListSink,
    ReplayVerdict,
    TokenBucketLimiter,
    Verifier,
    jose,
)
from auditor.cdshooks.adversary import EXPECTED_REASON, Forger
from auditor.cdshooks.hooks import describe_errors
from auditor.cdshooks.urls import canonical_url, display_url

# -- JOSE framing ---------------------------------------------------------------------------

B64_CASES = [
    # Each case: a segment, whether it decodes, and why.
    ("", True, "the empty segment is the empty string"),
    ("Zm9v", True, "canonical, no padding needed"),
    ("Zm8", True, "unpadded, as JWS requires"),
    ("Zm8=", False, "padding is not used in JWS"),
    ("Zm9v+w", False, "'+' belongs to base64, not base64url"),
    ("Zm9v/w", False, "'/' belongs to base64, not base64url"),
    ("Zm9", False, "non-zero trailing bits after two bytes"),
    ("Zm9=", False, "padding again"),
    ("Z", False, "a length that encodes no whole byte"),
    ("Zm9w", True, "canonical"),
    ("Zm9x", True, "canonical: the last char carries six data bits"),
    ("Zh", False, "non-zero trailing bits: a second spelling of 'f'"),
    ("Zg", True, "the canonical spelling of 'f'"),
    ("Zm9v\n", False, "whitespace"),
]


@pytest.mark.parametrize(("segment", "ok", "why"), B64_CASES, ids=[c[2] for c in B64_CASES])
def test_base64url_is_strict(segment: str, ok: bool, why: str) -> None:
    try:
        jose.b64url_decode(segment, "segment")
    except jose.JoseFormatError:
        decoded = False
    else:
        decoded = True
    assert decoded is ok, why


@given(st.binary(max_size=300))
def test_base64url_round_trips(data: bytes) -> None:
    assert jose.b64url_decode(jose.b64url_encode(data), "x") == data


@given(
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=20), max_size=6),
    st.binary(max_size=200),
)
def test_a_serialized_jws_parses_back_to_its_parts(header: dict, payload: bytes) -> None:
    token = jose.encode_compact(header, payload, lambda data: data[:7])
    parsed = jose.parse_compact(token)
    assert parsed.header == header
    assert parsed.payload == payload
    assert parsed.signature == parsed.signing_input[:7]


JSON_CASES = [
    (b'{"a":1,"a":2}', "duplicate member name"),
    (b'{"exp":NaN}', "NaN or Infinity"),
    (b'{"exp":Infinity}', "NaN or Infinity"),
    (b"[]", "not a JSON object"),
    (b"\xff\xfe", "not JSON"),
    (b"[" * 5000 + b"]" * 5000, "not JSON"),
]


@pytest.mark.parametrize(("data", "message"), JSON_CASES, ids=[m for _, m in JSON_CASES])
def test_json_objects_are_strict(data: bytes, message: str) -> None:
    with pytest.raises(jose.JoseFormatError, match=message):
        jose.json_object(data, "payload")


# -- URLs ---------------------------------------------------------------------------------

URL_CASES = [
    # Each case: a URL, its canonical form (None: refused), and why.
    ("https://CDS.Example.com:443/a/", "https://cds.example.com/a", "case, default port, slash"),
    ("https://cds.example.com:8443/a", "https://cds.example.com:8443/a", "other ports stay"),
    ("https://[::1]:8443/x", "https://[::1]:8443/x", "IPv6 literal"),
    ("http://cds.example.com/a", None, "http refused by default"),
    ("ftp://cds.example.com/a", None, "other schemes"),
    ("https://u:p@cds.example.com/a", None, "credentials"),
    ("https://cds.example.com/a?x=1", None, "query"),
    ("https://cds.example.com/a#f", None, "fragment"),
    ("https://cds.example.com/a/../b", None, "dot segments"),
    ("https://cds.example.com/a b", None, "whitespace"),
    ("https:///a", None, "no host"),
    ("https://cds.example.com:99999/", None, "bad port"),
    ("/cds-services", None, "relative"),
]


@pytest.mark.parametrize(("url", "canonical", "why"), URL_CASES, ids=[c[2] for c in URL_CASES])
def test_canonical_url(url: str, canonical: str | None, why: str) -> None:
    assert canonical_url(url) == canonical, why


def test_display_url_drops_credentials_and_query() -> None:
    shown = display_url("https://user:s3cret@fhir.example.org:8443/r4?access_token=abc")
    assert shown == "https://fhir.example.org:8443/r4"


FHIR_POLICY_CASES = [
    # Each case: fhirServer, refused without an allowlist?, and why.
    ("https://fhir.example.org/r4", False, "a public https server"),
    ("https://localhost/fhir", True, "loopback by name"),
    ("https://127.0.0.1/fhir", True, "loopback"),
    ("https://10.1.2.3/fhir", True, "private network"),
    ("https://169.254.169.254/latest", True, "link-local cloud metadata"),
    ("https://[::1]/fhir", True, "IPv6 loopback"),
    ("http://fhir.example.org/r4", True, "plain http"),
]


@pytest.mark.parametrize(
    ("server", "refused", "why"), FHIR_POLICY_CASES, ids=[c[2] for c in FHIR_POLICY_CASES]
)
def test_fhir_server_policy_without_allowlist(server: str, refused: bool, why: str) -> None:
    assert (FhirServerPolicy().refusal(server) is not None) is refused, why


# -- Replay cache ---------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["iss-a", "iss-b"]),
        st.sampled_from(["j1", "j2", "j3", "j4"]),
        st.integers(min_value=0, max_value=30),  # seconds since the previous operation
        st.integers(min_value=1, max_value=60),  # lifetime
    ),
    max_size=60,
)


@given(_ops, st.integers(min_value=1, max_value=5))
def test_the_replay_cache_matches_its_model(
    ops: list[tuple[str, str, int, int]], capacity: int
) -> None:
    cache = InMemoryReplayCache(max_entries=capacity)
    model: dict[tuple[str, str], float] = {}
    now = 0.0
    for issuer, jti, step, lifetime in ops:
        now += step
        live = {k: v for k, v in model.items() if v > now}
        if (issuer, jti) in live:
            expected = ReplayVerdict.REPLAYED
        elif len(live) >= capacity:
            expected = ReplayVerdict.FULL
        else:
            expected = ReplayVerdict.FRESH
            live[issuer, jti] = now + lifetime
        model = live
        verdict = cache.check_and_remember(issuer, jti, expires_at=now + lifetime, now=now)
        assert verdict is expected


def test_a_replay_cache_of_size_zero_does_not_start() -> None:
    from auditor.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        InMemoryReplayCache(max_entries=0)


# -- Rate limiter ---------------------------------------------------------------------------


@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=80),
    st.floats(min_value=0.5, max_value=20),
    st.integers(min_value=1, max_value=10),
)
def test_the_rate_limiter_never_allows_more_than_burst_plus_rate(
    gaps: list[float], rate: float, burst: int
) -> None:
    limiter = TokenBucketLimiter(rate=rate, burst=burst)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += limiter.acquire("client", now) == 0.0
    assert allowed <= burst + rate * now + 1e-9


def test_a_denied_request_is_told_when_to_retry() -> None:
    limiter = TokenBucketLimiter(rate=2.0, burst=1)
    assert limiter.acquire("c", 0.0) == 0.0
    wait = limiter.acquire("c", 0.0)
    assert wait == pytest.approx(0.5)
    assert limiter.acquire("c", wait) == 0.0


def test_clients_have_separate_buckets() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1)
    assert limiter.acquire("a", 0.0) == 0.0
    assert limiter.acquire("b", 0.0) == 0.0


def test_the_bucket_table_is_bounded() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1, max_keys=10)
    for i in range(100):
        limiter.acquire(f"client-{i}", float(i) / 1000)
    assert len(limiter._buckets) <= 10


# -- Request bodies -------------------------------------------------------------------------


def _error_text(value: str) -> str:
    """What a validation error of a body holding ``value`` everywhere says, both ways."""
    body = {
        "hook": "patient-view",
        "hookInstance": value,
        "context": {"userId": value},
        "fhirAuthorization": {"access_token": value, "token_type": value},
    }
    with pytest.raises(ValidationError) as caught:
        HookRequest.model_validate(body)
    return describe_errors(caught.value) + "\n" + str(caught.value)


# The words of the messages themselves ("Field required", "missing"...) are not the input.
_MESSAGES = _error_text("\x00placeholder\x00")


@given(st.text(min_size=8, max_size=40).filter(lambda s: s.strip() == s and s))
def test_a_validation_error_never_repeats_the_input(secret: str) -> None:
    assume(secret not in _MESSAGES)
    assert secret not in _error_text(secret)


def test_the_fhir_access_token_is_masked_in_reprs() -> None:
    request = HookRequest.model_validate_json(
        b'{"hook":"patient-view","hookInstance":"d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",'
        b'"fhirServer":"https://fhir.example.org","context":{"userId":"u","patientId":"p"},'
        b'"fhirAuthorization":{"access_token":"tok-SECRET-123","token_type":"Bearer",'
        b'"expires_in":300,"scope":"patient/*.read","subject":"svc"}}'
    )
    assert "tok-SECRET-123" not in repr(request)
    assert request.scopes == ("patient/*.read",)


# -- The verifier never raises and never leaks ------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_the_verifier_never_raises_on_any_string(verifier: Verifier, junk: str) -> None:
    result = verifier.check(junk, audience=AUDIENCE, now=NOW)
    assert result.reason is not None


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_mutated_token_is_refused_and_never_raises(
    forger: Forger, verifier: Verifier, data: st.DataObject
) -> None:
    token = forger.valid(AUDIENCE, NOW)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from("AQgw_-.=x "))
    mutated = token[:position] + replacement + token[position + 1 :]
    result = verifier.check(mutated, audience=AUDIENCE, now=NOW)
    assert result.ok is (mutated == token)


def test_no_token_reaches_events_logs_results_or_exceptions(
    forger: Forger, verifier: Verifier, sink: ListSink
) -> None:
    from auditor.cdshooks import TokenRejected

    tokens = [getattr(forger, name)(AUDIENCE, NOW) for name in EXPECTED_REASON]
    valid = forger.valid(AUDIENCE, NOW)
    tokens += [valid, valid]  # the second is a replay
    texts: list[str] = []
    with structlog.testing.capture_logs() as logs:
        for token in tokens:
            try:
                result = verifier.require(token, SERVICE, now=NOW + timedelta(seconds=1))
            except TokenRejected as exc:
                texts += [str(exc), repr(exc), repr(exc.verification)]
            else:
                texts.append(repr(result))
    texts += [event.model_dump_json() for event in sink] + [repr(entry) for entry in logs]
    blob = "\n".join(texts)
    for token in tokens:
        assert token not in blob
        signature = token.rpartition(".")[2]
        if len(signature) >= 16:
            assert signature not in blob
    assert len(sink) == len(tokens)


_claim_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=600)
    | st.lists(st.text(max_size=600), max_size=20)
)


@given(
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku", "x"]), _claim_values),
    st.dictionaries(
        st.sampled_from(["iss", "tenant", "jti", "iat", "nbf", "exp", "aud", "y"]), _claim_values
    ),
)
def test_recorded_claims_always_satisfy_the_contract(header: dict, claims: dict) -> None:
    # token_claims() and client_ref() skip pydantic validation for speed; whatever an
    # attacker puts in a token, what they build must still validate.
    from auditor.cdshooks.events import client_ref, token_claims
    from auditor.models import ClientRef, TokenClaims

    recorded = token_claims(header, claims, "k1:" + "0" * 32)
    assert TokenClaims.model_validate(recorded.model_dump()) == recorded
    client = client_ref(claims)
    if client is not None:
        assert ClientRef.model_validate(client.model_dump()) == client

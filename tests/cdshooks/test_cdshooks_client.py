"""Client side: minting, the service allowlist, the published JWK Set, keys and rotation."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cdshooks_support import AUDIENCE, BASE, ISS, NOW, SERVICE
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auditor.cdshooks import (
    CdsClient,
    KeyRing,
    ListSink,
    ServiceAllowlist,
    ServiceNotAllowed,
    SigningKey,
    TrustedIssuer,
    TrustRegistry,
    Verifier,
    jose,
)
from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.vocabulary import AuthzAction, FailureReason


def test_a_minted_token_carries_exactly_the_cds_hooks_claims(ehr: CdsClient) -> None:
    minted = ehr.mint(AUDIENCE, now=NOW, tenant="t-1")
    header = jwt.get_unverified_header(minted.token)
    claims = jwt.decode(minted.token, options={"verify_signature": False})
    assert header == {"alg": "ES256", "kid": ehr.keyring.current.kid, "typ": "JWT"}
    assert set(claims) == {"iss", "aud", "exp", "iat", "jti", "tenant"}  # no sub in CDS Hooks
    assert claims["iss"] == ISS
    assert claims["aud"] == AUDIENCE
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] - claims["iat"] == 300


def test_pyjwt_verifies_our_tokens(ehr: CdsClient) -> None:
    # Interoperability: an independent implementation accepts what we mint.
    minted = ehr.mint(AUDIENCE, now=NOW)
    claims = jwt.decode(
        minted.token,
        ehr.keyring.current.public_key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["jti"] == minted.jti


def test_every_token_has_a_fresh_jti(ehr: CdsClient) -> None:
    jtis = {ehr.mint(AUDIENCE, now=NOW).jti for _ in range(200)}
    assert len(jtis) == 200


def test_a_jku_is_put_in_the_header_when_configured(es256_key: SigningKey) -> None:
    client = CdsClient(
        issuer=ISS, keys=es256_key, services=[BASE], jku="https://ehr.example.org/jwks.json"
    )
    minted = client.mint(AUDIENCE, now=NOW)
    assert jwt.get_unverified_header(minted.token)["jku"] == "https://ehr.example.org/jwks.json"


def test_minting_emits_token_issued_with_claims_and_fingerprint(
    ehr: CdsClient, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    minted = ehr.mint(AUDIENCE, now=NOW)
    [event] = sink
    assert event.action is AuthzAction.TOKEN_ISSUED
    assert event.source.role == "client"
    assert event.service is not None
    assert event.service.id == SERVICE
    assert event.token is not None
    assert event.token.jti == minted.jti
    assert event.token.fingerprint == fingerprinter(minted.token)


def test_minting_for_a_service_off_the_allowlist_is_refused_and_recorded(
    ehr: CdsClient, sink: ListSink
) -> None:
    with pytest.raises(ServiceNotAllowed):
        ehr.mint("https://cds.attacker.example/cds-services/x", now=NOW)
    [event] = sink
    assert event.action is AuthzAction.ALLOWLIST_DENIED
    assert event.reason is FailureReason.SERVICE_NOT_ALLOWED
    assert event.service is not None
    assert event.service.url == "https://cds.attacker.example/cds-services/x"


ALLOWLIST_CASES = [
    # Each case: a URL, whether a token may be minted for it, and why.
    (f"{BASE}/cds-services", True, "discovery under an allowed base"),
    (f"{BASE}/cds-services/patient-greeter", True, "a service under an allowed base"),
    ("HTTPS://CDS.EXAMPLE.COM:443/cds-services/x", True, "same URL, other spelling"),
    (f"{BASE}/cds-services/a/feedback", False, "only service endpoints, not deeper paths"),
    (f"{BASE}/admin", False, "not a CDS Hooks endpoint"),
    (f"{BASE}/cds-services/../admin", False, "dot segments"),
    (f"{BASE}/cds-services/x?next=evil", False, "a query string"),
    ("https://cds.example.com.evil.test/cds-services/x", False, "a look-alike host"),
    ("https://user@cds.example.com/cds-services/x", False, "credentials in the URL"),
    ("http://cds.example.com/cds-services/x", False, "plain http"),
    ("https://other.example.com/cds-services/only", True, "an exact endpoint entry"),
    ("https://other.example.com/cds-services/else", False, "an exact entry allows only itself"),
]


@pytest.mark.parametrize(
    ("url", "allowed", "why"), ALLOWLIST_CASES, ids=[c[2] for c in ALLOWLIST_CASES]
)
def test_service_allowlist(url: str, allowed: bool, why: str) -> None:
    allowlist = ServiceAllowlist([BASE, "https://other.example.com/cds-services/only"])
    assert allowlist.allows(url) is allowed, why


def test_an_allowlist_entry_with_a_query_does_not_start() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ServiceAllowlist(["https://cds.example.com/?token=s3cr3t-value"])
    assert "s3cr3t-value" not in str(caught.value)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "RS256", "RS384", "PS384"])
def test_the_published_jwks_holds_public_members_only(alg: str) -> None:
    client = CdsClient(issuer=ISS, keys=SigningKey.generate(alg), services=[BASE])
    [jwk] = client.jwks(now=NOW)["keys"]
    assert not jose.has_private_members(jwk)
    expected = {"kty", "kid", "alg", "use"} | (
        {"crv", "x", "y"} if alg.startswith("ES") else {"n", "e"}
    )
    assert set(jwk) == expected
    assert jwk["alg"] == alg
    assert jwk["use"] == "sig"


def test_the_kid_is_the_rfc7638_thumbprint_and_survives_a_reload(es384_key: SigningKey) -> None:
    pem = es384_key._private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    reloaded = SigningKey.from_pem(pem)
    assert reloaded.alg == "ES384"
    assert reloaded.kid == es384_key.kid == jose.jwk_thumbprint(es384_key.public_jwk())


def test_a_pem_rsa_key_defaults_to_rs384(rs384_key: SigningKey) -> None:
    pem = rs384_key._private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert SigningKey.from_pem(pem).alg == "RS384"


def test_a_pem_that_is_not_a_key_is_refused_without_echo() -> None:
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_pem(
            b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END PRIVATE KEY-----\n"
        )
    assert "c2VjcmV0" not in str(caught.value)


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512"])
def test_signing_keys_refuse_forbidden_algorithms(alg: str) -> None:
    with pytest.raises(ConfigurationError, match="forbidden by CDS Hooks"):
        SigningKey.generate(alg)


def test_a_signing_key_must_suit_its_algorithm() -> None:
    with pytest.raises(ConfigurationError, match="does not suit"):
        SigningKey(ec.generate_private_key(ec.SECP256R1()), alg="ES384")


def test_short_rsa_keys_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    with pytest.raises(ConfigurationError, match="2048"):
        SigningKey(weak, alg="RS384")


def test_reprs_name_keys_and_tokens_without_their_secrets(ehr: CdsClient) -> None:
    minted = ehr.mint(AUDIENCE, now=NOW)
    text = repr(minted) + repr(ehr) + repr(ehr.keyring) + repr(ehr.keyring.current)
    assert minted.token not in text
    assert minted.kid in text
    assert "BEGIN" not in text


def test_rotation_keeps_the_old_key_published_until_its_tokens_expire(
    ehr: CdsClient, sink: ListSink
) -> None:
    old = ehr.keyring.current
    new = ehr.rotate_key(now=NOW)
    kids = [k["kid"] for k in ehr.jwks(now=NOW + timedelta(minutes=5))["keys"]]
    assert kids == [new.kid, old.kid]
    # Lifetime (5 min) + margin (1 min) later, the old key is gone.
    kids = [k["kid"] for k in ehr.jwks(now=NOW + timedelta(minutes=6, seconds=1))["keys"]]
    assert kids == [new.kid]
    rotated = sink[-1]
    assert rotated.action is AuthzAction.KEY_ROTATED
    assert rotated.attributes == {"old_kid": old.kid, "new_kid": new.kid, "alg": "ES256"}


def test_reading_the_jwks_at_a_later_time_forgets_nothing(ehr: CdsClient) -> None:
    ehr.rotate_key(now=NOW)
    ehr.jwks(now=NOW + timedelta(days=1))
    assert len(ehr.jwks(now=NOW)["keys"]) == 2


def test_a_rotation_forgets_retired_keys_whose_tokens_have_expired(ehr: CdsClient) -> None:
    ehr.rotate_key(now=NOW)
    ehr.rotate_key(now=NOW + timedelta(hours=1))
    assert len(ehr.keyring._published) == 2


def test_rotation_never_interrupts_verification(
    ehr: CdsClient, sink: ListSink, fingerprinter: Fingerprinter
) -> None:
    # The service learns keys from the client's published JWK Set (here in process).
    registry = TrustRegistry([TrustedIssuer(ISS, jwks_provider=lambda: ehr.jwks(now=NOW))])
    verifier = Verifier(registry, base_url=BASE, sink=sink, fingerprinter=fingerprinter)
    assert verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW).ok
    pending = ehr.mint(AUDIENCE, now=NOW)  # signed by the old key, not yet sent
    ehr.rotate_key(now=NOW)
    fresh = ehr.mint(AUDIENCE, now=NOW)  # signed by the new key
    later = NOW + timedelta(minutes=2)
    assert verifier.verify(pending.token, SERVICE, now=later).ok
    # The new kid is not in the cached set: one refetch of the JWK Set finds it.
    assert verifier.verify(fresh.token, SERVICE, now=later).ok
    fetches = [e for e in sink if e.action is AuthzAction.JWKS_FETCHED]
    assert [e.attributes["keys"] for e in fetches] == [1, 2]


def test_a_retired_key_in_use_verifies_during_the_overlap(
    es256_key: SigningKey, fingerprinter: Fingerprinter
) -> None:
    ring = KeyRing(es256_key)
    client = CdsClient(issuer=ISS, keys=ring, services=[BASE], fingerprinter=fingerprinter)
    in_flight = client.mint(AUDIENCE, now=NOW)
    client.rotate_key(now=NOW + timedelta(seconds=1))
    registry = TrustRegistry([TrustedIssuer(ISS, jwks=client.jwks(now=NOW + timedelta(seconds=2)))])
    verifier = Verifier(registry, base_url=BASE, fingerprinter=fingerprinter)
    assert verifier.verify(in_flight.token, SERVICE, now=NOW + timedelta(seconds=2)).ok


def test_rotating_to_a_published_kid_is_refused(ehr: CdsClient) -> None:
    with pytest.raises(ConfigurationError, match="already published"):
        ehr.rotate_key(ehr.keyring.current, now=NOW)


def test_token_lifetime_is_bounded() -> None:
    with pytest.raises(ConfigurationError, match="1 hour"):
        CdsClient(
            issuer=ISS,
            keys=SigningKey.generate("ES256"),
            services=[BASE],
            token_lifetime=timedelta(hours=3),
        )


def test_minting_never_fails_on_what_it_cannot_record(
    es256_key: SigningKey, fingerprinter: Fingerprinter
) -> None:
    sink = ListSink()
    client = CdsClient(
        issuer="i" * 2000, keys=es256_key, services=[BASE], sink=sink, fingerprinter=fingerprinter
    )
    minted = client.mint(f"{BASE}/cds-services/{'s' * 1000}", now=NOW)
    assert minted.jti
    [event] = sink
    assert event.action is AuthzAction.TOKEN_ISSUED
    assert event.client is None

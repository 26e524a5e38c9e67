"""Seeded keys and RFC 6979 signatures: reproducible, and real ECDSA every verifier accepts."""

from __future__ import annotations

import random

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from auditor.cdshooks import CdsClient, TrustedIssuer, TrustRegistry, Verifier
from pipelines.simulate.signing import DeterministicKey

# RFC 6979 A.2.5: ECDSA P-256 with SHA-256, message "sample".
RFC6979_X = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC6979_R = 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
RFC6979_S = 0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8


def test_signatures_are_the_rfc_6979_test_vector():
    key = DeterministicKey(ec.derive_private_key(RFC6979_X, ec.SECP256R1()), alg="ES256")
    signature = key.sign(b"sample")
    assert signature == RFC6979_R.to_bytes(32, "big") + RFC6979_S.to_bytes(32, "big")


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_a_seed_derives_the_same_key_and_the_same_signature(alg):
    first = DeterministicKey.derive(random.Random("seed"), alg)
    second = DeterministicKey.derive(random.Random("seed"), alg)
    assert first.kid == second.kid
    assert first.sign(b"payload") == second.sign(b"payload")
    assert DeterministicKey.derive(random.Random("other"), alg).kid != first.kid


def test_tokens_signed_with_it_pass_the_real_verifier_and_pyjwt(fingerprinter):
    from datetime import UTC, datetime

    key = DeterministicKey.derive(random.Random(3), "ES384")
    client = CdsClient(
        issuer="https://ehr.example.org",
        keys=key,
        services=["https://cds.example.com"],
        fingerprinter=fingerprinter,
    )
    now = datetime(2026, 11, 16, 14, 0, tzinfo=UTC)
    minted = client.mint("https://cds.example.com/cds-services/x", now=now)
    registry = TrustRegistry([TrustedIssuer(client.issuer, jwks=client.jwks(now=now))])
    verifier = Verifier(registry, base_url="https://cds.example.com", fingerprinter=fingerprinter)
    assert verifier.verify(minted.token, "x", now=now).ok
    public = jwt.PyJWK(key.public_jwk()).key
    claims = jwt.decode(minted.token, public, algorithms=["ES384"], audience=minted.audience,
                        options={"verify_exp": False, "verify_iat": False})  # fmt: skip
    assert claims["jti"] == minted.jti


def test_the_private_jwk_holds_d_and_the_published_one_does_not():
    key = DeterministicKey.derive(random.Random(5), "ES256")
    assert "d" in key.private_jwk()
    assert "d" not in key.public_jwk()


def test_other_algorithms_are_refused():
    from auditor.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="deterministic"):
        DeterministicKey.derive(random.Random(1), "RS384")

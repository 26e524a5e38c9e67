"""Examples from RFC 7515, 7519, 7520 and 7638, byte for byte, where they apply to CDS Hooks.

The values were checked against the RFC texts; each test also proves its example is
genuine (the signature verifies, the MAC recomputes) before asserting what we do with it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from auditor.cdshooks import TrustedIssuer, TrustRegistry, Verifier, jose
from auditor.cdshooks.jwks import parse_jwk_set
from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.vocabulary import FailureReason

# RFC 7515 §A.1 / RFC 7519 §3.1: the HS256 example JWT and its symmetric key.
RFC7519_JWT = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQ"
    "ogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
RFC7515_A1_KEY = (
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
)

# RFC 7515 §A.3: ES256 over the same payload, and the P-256 public key.
RFC7515_A3_JWS = (
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQ"
    "ogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
RFC7515_A3_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}

# RFC 7515 §A.2: RS256 over the same payload, and the RSA public key.
RFC7515_A2_JWS = (
    "eyJhbGciOiJSUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQ"
    "ogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--"
    "f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07"
    "Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHW"
    "EsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI"
    "8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
)
RFC7515_A2_JWK = {
    "kty": "RSA",
    "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoT"
    "bji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0B"
    "m4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r"
    "2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexM"
    "dbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVM"
    "TBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-"
    "DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    "e": "AQAB",
}

# RFC 7520 §3.3 (RSA public key) and §4.1 (RSA v1.5 signature over the Tolkien payload).
RFC7520_RSA_JWK = {
    "kty": "RSA",
    "kid": "bilbo.baggins@hobbiton.example",
    "use": "sig",
    "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuK"
    "PEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJ"
    "mSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0d"
    "Apr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVf"
    "Hd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEH"
    "g8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKn"
    "S2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw",
    "e": "AQAB",
}
RFC7520_4_1_JWS = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9"
    ".SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbyw"
    "gZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0"
    "aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIg"
    "ZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91"
    "IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
    ".MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e"
    "5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7P"
    "NDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0Rn"
    "ltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eR"
    "o4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaL"
    "GdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZ"
    "Dnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg"
)

# RFC 7638 §3.1: the RSA key of RFC 7517 §A.1 and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFb"
    "WhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
    "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yB"
    "XArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY36"
    "8QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1"
    "n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2"
    "NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# The examples were signed in 2011; this is shortly before their exp (1300819380).
RFC_NOW = datetime(2011, 3, 22, 18, 40, tzinfo=UTC)


def _public_key(jwk: dict) -> object:
    alg = "ES256" if jwk["kty"] == "EC" else "RS256"
    return jose.algorithm(alg).from_jwk(jose.public_members(jwk))


def test_rfc7515_a3_es256_signature_verifies() -> None:
    jws = jose.parse_compact(RFC7515_A3_JWS)
    assert jose.verify_signature(jws, "ES256", _public_key(RFC7515_A3_JWK))


def test_rfc7515_a3_with_one_payload_bit_flipped_does_not_verify() -> None:
    head, payload, signature = RFC7515_A3_JWS.split(".")
    flipped = bytearray(jose.b64url_decode(payload, "payload"))
    flipped[2] ^= 0x01
    jws = jose.parse_compact(f"{head}.{jose.b64url_encode(bytes(flipped))}.{signature}")
    assert not jose.verify_signature(jws, "ES256", _public_key(RFC7515_A3_JWK))


def test_rfc7515_a3_is_refused_by_the_verifier_for_lacking_typ(
    fingerprinter: Fingerprinter,
) -> None:
    # A genuine ES256 token from a trusted "joe" is still not a CDS Hooks JWT: no typ/kid.
    registry = TrustRegistry(
        [TrustedIssuer("joe", jwks={"keys": [{**RFC7515_A3_JWK, "kid": "a3"}]})]
    )
    verifier = Verifier(registry, base_url="https://cds.example.com", fingerprinter=fingerprinter)
    result = verifier.verify(RFC7515_A3_JWS, "svc", now=RFC_NOW)
    assert result.reason is FailureReason.TYP_INVALID


def test_rfc7515_a2_rs256_signature_verifies() -> None:
    jws = jose.parse_compact(RFC7515_A2_JWS)
    assert jose.verify_signature(jws, "RS256", _public_key(RFC7515_A2_JWK))


def test_rfc7515_a2_does_not_verify_as_rs384() -> None:
    jws = jose.parse_compact(RFC7515_A2_JWS)
    assert not jose.verify_signature(jws, "RS384", _public_key(RFC7515_A2_JWK))


def test_rfc7519_example_is_a_genuine_hs256_mac() -> None:
    signing_input, _, signature = RFC7519_JWT.rpartition(".")
    key = jose.b64url_decode(RFC7515_A1_KEY, "key")
    expected = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    assert jose.b64url_decode(signature, "signature") == expected


def test_rfc7519_hs256_example_is_refused_as_alg_not_allowed(
    fingerprinter: Fingerprinter,
) -> None:
    registry = TrustRegistry(
        [TrustedIssuer("joe", jwks={"keys": [{**RFC7515_A3_JWK, "kid": "a3"}]})]
    )
    verifier = Verifier(registry, base_url="https://cds.example.com", fingerprinter=fingerprinter)
    assert verifier.verify(RFC7519_JWT, "svc", now=RFC_NOW).reason is FailureReason.ALG_NOT_ALLOWED


def test_the_rfc7515_a1_symmetric_key_cannot_be_trusted() -> None:
    # An "oct" key is a shared secret: pinning one is refused, and the error never shows it.
    oct_key = {"kty": "oct", "kid": "hmac", "k": RFC7515_A1_KEY}
    with pytest.raises(ConfigurationError) as caught:
        TrustRegistry([TrustedIssuer("joe", jwks={"keys": [oct_key]})])
    assert "private key material" in str(caught.value)
    assert RFC7515_A1_KEY not in str(caught.value)


def test_rfc7520_3_3_public_key_loads_as_a_verification_key() -> None:
    keys = parse_jwk_set({"keys": [RFC7520_RSA_JWK]})
    assert set(keys) == {"bilbo.baggins@hobbiton.example"}
    assert keys["bilbo.baggins@hobbiton.example"].suits("RS256")
    assert not keys["bilbo.baggins@hobbiton.example"].suits("ES256")


def test_rfc7520_4_1_rs256_signature_verifies() -> None:
    key = parse_jwk_set({"keys": [RFC7520_RSA_JWK]})["bilbo.baggins@hobbiton.example"]
    jws = jose.parse_compact(RFC7520_4_1_JWS)
    assert jws.header == {"alg": "RS256", "kid": "bilbo.baggins@hobbiton.example"}
    assert jose.verify_signature(jws, "RS256", key.public_key)


def test_rfc7520_4_1_is_refused_as_malformed_because_its_payload_is_not_claims(
    fingerprinter: Fingerprinter,
) -> None:
    registry = TrustRegistry([TrustedIssuer("bilbo", jwks={"keys": [RFC7520_RSA_JWK]})])
    verifier = Verifier(registry, base_url="https://cds.example.com", fingerprinter=fingerprinter)
    result = verifier.verify(RFC7520_4_1_JWS, "svc", now=RFC_NOW)
    assert result.reason is FailureReason.MALFORMED
    assert result.detail == "payload is not JSON"


def test_rfc7638_thumbprint() -> None:
    assert jose.jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT

"""Offline JWT triage: decode without verifying, keep only safe facts, no network."""

from __future__ import annotations

import socket

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from auditor.patterns import inspect_jwt
from auditor.patterns.rules import EXAMPLE_JWE


@pytest.fixture(scope="module")
def es384_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _mint(key: ec.EllipticCurvePrivateKey, **claims: object) -> str:
    body = {
        "iss": "https://ehr.example.org",
        "aud": "https://cds.example.com/cds-services/x",
        "jti": "j-1",
    }
    body.update(claims)
    return pyjwt.encode(body, key, algorithm="ES384", headers={"kid": "k-2026"})


def test_a_real_jws_yields_header_and_claim_facts(es384_key) -> None:
    info = inspect_jwt(_mint(es384_key, exp=1764324300, tenant="t1", name="Maria Lopez"))
    assert info is not None
    assert info.form == "jws"
    assert info.facts["alg"] == "ES384"
    assert info.facts["kid"] == "k-2026"
    assert info.facts["exp"] == 1764324300
    assert info.facts["tenant"] == "t1"
    # Claims outside the safe list (a name, here) never become facts.
    assert "name" not in info.facts


def test_an_array_audience_is_kept_as_a_tuple(es384_key) -> None:
    info = inspect_jwt(_mint(es384_key, aud=["https://a.example", "https://b.example"]))
    assert info is not None
    assert info.facts["aud"] == ("https://a.example", "https://b.example")


def test_a_jwe_yields_header_facts_only() -> None:
    info = inspect_jwt(EXAMPLE_JWE)
    assert info is not None
    assert info.form == "jwe"
    assert info.facts == {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "k2"}
    assert not info.claims_readable


def test_alg_none_with_an_empty_signature_is_a_jwt() -> None:
    token = pyjwt.encode({"iss": "x"}, None, algorithm="none")
    info = inspect_jwt(token)
    assert info is not None
    assert info.facts["alg"] == "none"


def test_a_token_cut_after_its_payload_is_still_recognised(es384_key) -> None:
    head, payload, _ = _mint(es384_key).split(".")
    info = inspect_jwt(f"{head}.{payload}")
    assert info is not None
    assert info.facts["jti"] == "j-1"


@pytest.mark.parametrize(
    "text",
    [
        "eyJhbGciOiJub25lIn0",  # a header alone
        "eyJmb28iOiJiYXIifQ.e30.c2ln",  # a header without alg
        "eyJhbGc.e30.c2ln",  # a header that does not decode
        "eyJhbGciOiJFUzM4NCJ9.bm90LWpzb24",  # two segments whose payload is not JSON
        "a.b.c.d",  # four segments
    ],
)
def test_what_is_not_a_jwt_is_refused(text) -> None:
    assert inspect_jwt(text) is None


def test_triage_makes_no_network_call(es384_key, monkeypatch) -> None:
    token = _mint(es384_key, jku="https://attacker.example/jwks.json")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    info = inspect_jwt(token)
    assert info is not None
    assert info.facts.get("jku") is None  # jku is a header member; this one is a claim

"""Helpers for the content detector tests: real keys, real tokens, one fixed clock."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auditor.fingerprints import Fingerprinter
from auditor.models import Finding
from auditor.protocols import ScanContext
from detectors import ContentConfig, ContentScanner

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
"""The event time of every record in these tests (the wall clock never matters)."""
EPOCH_NOW = int(NOW.timestamp())
KEY = Fingerprinter(b"content-tests-key-0123456789")

ES384 = ec.generate_private_key(ec.SECP384R1())
ES256 = ec.generate_private_key(ec.SECP256R1())
RS256 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def context(origin: str | None = "app.log:7", **kw: Any) -> ScanContext:
    """A context at `NOW`."""
    return ScanContext(origin=origin, observed_at=kw.pop("observed_at", NOW), **kw)


def scanner(**config: Any) -> ContentScanner:
    """A scanner of every kind with the test key."""
    return ContentScanner(ContentConfig(fingerprinter=KEY, **config))


def mint(
    alg: str = "ES384",
    *,
    exp: int | None = EPOCH_NOW + 300,
    headers: dict[str, Any] | None = None,
    key: object = None,
    **claims: Any,
) -> str:
    """A CDS Hooks client JWT signed with a real key (HS256 with a shared secret)."""
    body: dict[str, Any] = {
        "iss": "https://ehr.example.org",
        "aud": "https://cds.example.com/cds-services/patient-greeter",
        "iat": EPOCH_NOW - 10,
        "jti": "7c3e0d1a-5b2f-4e41-9c55-0e0f1d2a3b4c",
        **claims,
    }
    if exp is not None:
        body["exp"] = exp
    signing = key or {"ES384": ES384, "ES256": ES256, "RS256": RS256}.get(alg)
    if alg == "HS256":
        signing = b"a-shared-secret-that-is-long-enough!!"
    if alg == "none":
        signing = None
    return pyjwt.encode(
        body,
        signing,
        algorithm=alg,
        headers={"kid": "ehr-2026-01", "typ": "JWT", **(headers or {})},
    )


def pem() -> str:
    """A PKCS#8 PEM of a fresh EC key."""
    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def private_jwk() -> dict[str, Any]:
    """A private EC JWK with ``d``."""
    return json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))


def basic(user: str, password: str) -> str:
    """The credential of ``Authorization: Basic``."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def kinds(findings: Iterable[Finding]) -> set[str]:
    """The kinds of ``findings``."""
    return {f.kind for f in findings}


def dumped(findings: Iterable[Finding]) -> str:
    """Every field of every finding, as the store or an export would see them."""
    return "\n".join(f.model_dump_json() for f in findings)

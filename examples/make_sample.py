"""Write ``examples/service-log.jsonl``: a CDS service's log with planted FAKE secrets.

Every identity, token and key in it is fake: JWTs are minted by PyJWT with keys generated
here and thrown away, names and numbers are invented (SSN area 9xx is never issued, but
the sample uses valid-looking ones so the Redactor has something to find). Run it again to
regenerate the sample (tokens and fingerprints change; the lines keep their shape)::

    .venv/bin/python examples/make_sample.py
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

OUT = Path(__file__).with_name("service-log.jsonl")
NOW = 1_764_324_000
EHR = "https://ehr.example.org"
CDS = "https://cds.example.com/cds-services"
FHIR = "https://fhir.example.org/r4"


def _time(second: int) -> str:
    return f"2026-11-28T10:{second // 60:02d}:{second % 60:02d}.{second * 7919 % 1000000:06d}Z"


def main() -> None:
    """Mint the tokens and write the sample."""
    es384 = ec.generate_private_key(ec.SECP384R1())
    rs256 = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(key: object, alg: str, jti: str, service: str, tenant: str | None = None) -> str:
        claims = {"iss": EHR, "aud": f"{CDS}/{service}", "iat": NOW, "exp": NOW + 300, "jti": jti}
        if tenant:
            claims["tenant"] = tenant
        return jwt.encode(
            claims, key, algorithm=alg, headers={"kid": f"{alg.lower()}-2026-01", "typ": "JWT"}
        )  # type: ignore[arg-type]

    live = token(es384, "ES384", "5b3e0c4a-8d1f-4b7e-9a55-0f6a2c1d9e01", "patient-greeter", "t-07")
    other = token(rs256, "RS256", "7d2f1a9c-3b4e-4c8d-a1f6-2e9b8c7d6a02", "drug-interactions")
    pem = es384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    patient = {
        "resourceType": "Patient",
        "id": "smart-1288992",
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:oid:1.2.36.146.595.217.0.1",
                "value": "A00482913",
            }
        ],
        "name": [{"use": "official", "family": "Lopez", "given": ["Maria", "Elena"]}],
        "telecom": [
            {"system": "phone", "value": "(617) 555-2368"},
            {"system": "email", "value": "maria.lopez@example.net"},
        ],
        "gender": "female",
        "birthDate": "1954-03-07",
        "address": [
            {
                "line": ["1428 Elm Street"],
                "city": "Springfield",
                "state": "MA",
                "postalCode": "01101",
            }
        ],
    }
    request = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": FHIR,
        "fhirAuthorization": {
            "access_token": "some-opaque-fhir-access-token-8f3kQ9zLr2",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/Patient.read patient/Observation.read",
            "subject": "cds-service",
        },
        "context": {"userId": "Practitioner/example", "patientId": "smart-1288992"},
        "prefetch": {"patient": patient},
    }
    basic = base64.b64encode(b"cds-client:s3cr3t-Passw0rd").decode()
    lines: list[object] = [
        {
            "event": "service starting",
            "service": "cds-greeter",
            "version": "2.14.3",
            "git_sha": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        },
        {
            "event": "jwks.fetched",
            "jku": f"{EHR}/.well-known/jwks.json",
            "keys": 2,
            "etag": 'W/"ZGVhZGJlZWYtY2FmZQ=="',
        },
        {
            "event": "cds.request.received",
            "hook": "patient-view",
            "hook_instance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "client_iss": EHR,
            "authorization": f"Bearer {live}",
        },
        {
            "event": "jwt.validated",
            "iss": EHR,
            "kid": "es384-2026-01",
            "alg": "ES384",
            "jti": "5b3e0c4a-8d1f-4b7e-9a55-0f6a2c1d9e01",
            "exp": NOW + 300,
            "duration_ms": 0.84,
        },
        {"event": "cds.request.body", "body": request},
        {
            "event": "prefetch.fetched",
            "service_id": "patient-greeter",
            "resource_types": ["Patient"],
            "count": 1,
            "duration_ms": 41.2,
        },
        {
            "event": f"fhir GET {FHIR}/Observation?patient=smart-1288992&code=http://loinc.org|8867-4&access_token=opaque-8f3kQ9zLr2VxA7mN1pTq",
            "status": 200,
        },
        {
            "event": "cards.returned",
            "hook": "patient-view",
            "cards": 1,
            "status": 200,
            "duration_ms": 88.5,
        },
        {"event": f"token validation failed for {other}", "reason": "aud_mismatch", "status": 401},
        {
            "event": "member lookup",
            "member": {"ssn": "536228714", "phone": "617-555-2368", "plan": "PPO-2"},
            "status": 404,
        },
        {
            "event": "callback requested at (617) 555-2368 by maria.lopez@example.net",
            "service_id": "care-gaps",
        },
        {
            "event": "oauth.callback",
            "url": "https://cds.example.com/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj",
        },
        {
            "event": "token endpoint call",
            "body": "grant_type=client_credentials&client_id=cds-greeter"
            "&client_secret=Xk29-sEcr3t-v4lue",
        },
        {
            "event": "forwarded credential",
            "x_forwarded_token": base64.b64encode(live.encode()).decode(),
        },
        {
            "event": "key load failed",
            "level": "error",
            "exception": f"ValueError: could not parse key material\n{pem}",
        },
        {
            "event": "jwk.loaded",
            "jwk": {
                "kty": "EC",
                "crv": "P-384",
                "kid": "es384-2026-01",
                "x": "public-x",
                "y": "public-y",
                "d": "cHJpdmF0ZS1rZXktZC12YWx1ZS1mYWtl",
            },
        },
        {
            "event": "chart opened",
            "patient_name": "Maria Lopez",
            "dob": "03/07/1954",
            "mrn": "A00482913",
        },
        {
            "event": "rate window 2026-11-28T10:00:00Z .. 2026-11-28T10:05:00Z closed",
            "client_iss": EHR,
            "requests": 412,
            "rejected": 3,
        },
        {
            "event": "http.access",
            "method": "POST",
            "path": "/cds-services/patient-greeter",
            "status": 200,
            "latency_ms": 91.3,
            "request_id": "0b7e2d7c-1f3a-4e5b-9c8d-6a5f4e3d2c1b",
        },
        {
            "event": "service.warning",
            "message": "slow FHIR server response; falling back to cached prefetch",
            "upstream": f"{FHIR}/metadata",
        },
    ]
    texts = [
        (
            f"10:00:12 WARN  urllib3 retrying GET {FHIR}/Patient/smart-1288992"
            f" with header Authorization: Bearer {live}"
        ),
        "10:00:13 INFO  gunicorn worker 4 booted (pid 2213)",
        f"10:00:14 ERROR curl -H 'Authorization: Basic {basic}' {CDS}",
        "10:00:15 INFO  cache hit key=sha1:2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 size=2048",
        '{"event": "truncated json line from a crashed writer, ssn 536-22-8714',
    ]
    with OUT.open("w", encoding="utf-8") as out:
        for second, line in enumerate(lines):
            record = {"timestamp": _time(second), "level": "info", "logger": "cds.greeter", **line}  # type: ignore[dict-item]
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
        for text in texts:
            out.write(text + "\n")
    print(f"wrote {OUT} ({len(lines) + len(texts)} lines)")


if __name__ == "__main__":
    main()

"""A synthetic, labelled corpus of structlog events of a CDS service, for the benchmarks.

Clean events look like what a CDS service logs (requests, JWT validation, prefetch, cards,
JWKS fetches, HTTP access, database and cache lines) and carry look-alikes on purpose:
UUIDs (hookInstance, request ids, jti), hex digests, ISO timestamps, version strings,
base64 that is no token, numeric ids, URLs. Planted events carry one or more secrets or
PHI values: JWTs minted with PyJWT (RS256, ES256, ES384) with throwaway keys, opaque bearer
tokens, URL tokens, PEM private keys, private JWKs, SSNs, e-mail addresses, phone numbers,
names and addresses (in text, under keys, and in FHIR resources). Every planted value is
listed so a benchmark can check that it does not survive.

All identities come from Faker; all keys are generated for the run and thrown away.
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from faker import Faker

HOOKS = ("patient-view", "order-select", "order-sign", "encounter-start", "appointment-book")
SERVICES = ("patient-greeter", "drug-interactions", "sepsis-alert", "prior-auth", "care-gaps")
ISSUERS = (
    "https://ehr.example.org",
    "https://epic.mercy-health.example",
    "https://cerner.stlukes.example",
)
CDS_BASE = "https://cds.example.com/cds-services"
FHIR_BASE = "https://fhir.example.org/r4"
RESOURCE_TYPES = ("Patient", "Condition", "MedicationRequest", "Observation", "Encounter")


@dataclass(slots=True)
class Event:
    """One log call: the event name, its keyword arguments, and what was planted in it."""

    event: str
    kw: dict[str, Any]
    planted: list[tuple[str, str]] = field(default_factory=list)
    """(kind, raw value) pairs that must not appear in the redacted output."""


class Minter:
    """Throwaway signing keys and a JWT factory (PyJWT)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._keys = [
            ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            ("ES256", ec.generate_private_key(ec.SECP256R1())),
            ("ES384", ec.generate_private_key(ec.SECP384R1())),
        ]

    def jwt(self, now: int) -> str:
        """A JWT as a CDS client mints it, signed with one of the throwaway keys."""
        alg, key = self._rng.choice(self._keys)
        iss = self._rng.choice(ISSUERS)
        claims = {
            "iss": iss,
            "aud": f"{CDS_BASE}/{self._rng.choice(SERVICES)}",
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.UUID(int=self._rng.getrandbits(128))),
        }
        if self._rng.random() < 0.5:
            claims["tenant"] = f"t-{self._rng.randint(1, 40):02d}"
        headers = {"kid": f"{alg.lower()}-2026-{self._rng.randint(1, 9):02d}", "typ": "JWT"}
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def pem(self) -> str:
        """A PKCS#8 PEM of one of the throwaway EC keys."""
        _, key = self._rng.choice(self._keys[1:])
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def _opaque(rng: random.Random, n: int = 32) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    while True:
        token = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in token):
            return token


def _ssn(rng: random.Random) -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _phone(rng: random.Random) -> str:
    npa = f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}"
    while npa[1:] == "11":
        npa = f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}"
    nxx = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(2, 9)}"
    line = f"{rng.randint(0, 9999):04d}"
    form = rng.randrange(4)
    if form == 0:
        return f"({npa}) {nxx}-{line}"
    if form == 1:
        return f"{npa}-{nxx}-{line}"
    if form == 2:
        return f"+1{npa}{nxx}{line}"
    return f"{npa}.{nxx}.{line}"


class CorpusBuilder:
    """Builds events; deterministic for a seed (except the keys' own randomness)."""

    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.minter = Minter(self.rng)
        self.now = 1_764_324_000

    # --- clean --------------------------------------------------------------------------

    def clean(self) -> Event:  # noqa: C901, PLR0911 - one template per branch
        """An event with nothing sensitive in it (look-alikes on purpose)."""
        rng = self.rng
        hook = rng.choice(HOOKS)
        service = rng.choice(SERVICES)
        iss = rng.choice(ISSUERS)
        pick = rng.randrange(12)
        if pick == 0:
            return Event(
                "cds.request.received",
                {
                    "hook": hook,
                    "hook_instance": _uuid(rng),
                    "service_id": service,
                    "client_iss": iss,
                    "fhir_server": FHIR_BASE,
                    "request_id": _uuid(rng),
                    "remote_addr": f"10.{rng.randint(0, 255)}.0.{rng.randint(1, 254)}",
                    "user_agent": "Epic-Interconnect/10.2.4 (CDS Hooks client)",
                },
            )
        if pick == 1:
            return Event(
                "jwt.validated",
                {
                    "iss": iss,
                    "kid": f"es384-2026-{rng.randint(1, 9):02d}",
                    "alg": rng.choice(("ES384", "RS384", "ES256", "RS256")),
                    "jti": _uuid(rng),
                    "exp": self.now + rng.randint(0, 300),
                    "aud": f"{CDS_BASE}/{service}",
                    "duration_ms": round(rng.uniform(0.1, 4.0), 3),
                },
            )
        if pick == 2:
            return Event(
                "prefetch.fetched",
                {
                    "service_id": service,
                    "resource_types": rng.sample(RESOURCE_TYPES, 2),
                    "count": rng.randint(0, 40),
                    "duration_ms": round(rng.uniform(5, 400), 1),
                    "fhir_url": f"{FHIR_BASE}/metadata",
                },
            )
        if pick == 3:
            return Event(
                "cards.returned",
                {
                    "hook": hook,
                    "service_id": service,
                    "cards": rng.randint(0, 3),
                    "status": 200,
                    "duration_ms": round(rng.uniform(10, 900), 1),
                    "hook_instance": _uuid(rng),
                },
            )
        if pick == 4:
            return Event(
                "http.access",
                {
                    "method": rng.choice(("GET", "POST")),
                    "path": rng.choice(
                        ("/cds-services", f"/cds-services/{service}", "/health", "/metrics")
                    ),
                    "status": rng.choice((200, 200, 200, 204, 400, 401, 412, 500)),
                    "bytes": rng.randint(0, 60_000),
                    "latency_ms": round(rng.uniform(0.5, 1200), 2),
                    "request_id": _uuid(rng),
                },
            )
        if pick == 5:
            return Event(
                "jwks.fetched",
                {
                    "jku": f"{iss}/.well-known/jwks.json",
                    "keys": rng.randint(1, 4),
                    "etag": f'W/"{base64.b64encode(secrets.token_bytes(9)).decode()}"',
                    "cache_ttl_s": 300,
                    "status": 200,
                },
            )
        if pick == 6:
            return Event(
                "artifact.loaded",
                {
                    "name": "drug-interaction-rules",
                    "version": f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
                    "sha256": _hex(rng, 64),
                    "git_sha": _hex(rng, 40),
                    "build": f"2026.11.{rng.randint(1, 28)}-{rng.randint(1, 99)}",
                },
            )
        if pick == 7:
            return Event(
                "db.query",
                {
                    "statement": "SELECT card_id FROM cards WHERE service_id = $1 AND hook = $2",
                    "rows": rng.randint(0, 50),
                    "elapsed_ms": round(rng.uniform(0.2, 80), 2),
                    "query_id": _uuid(rng),
                },
            )
        if pick == 8:
            start = f"2026-11-28T10:{rng.randint(0, 59):02d}:00Z"
            return Event(
                f"rate window {start} .. 2026-11-28T11:00:00Z closed",
                {
                    "client_iss": iss,
                    "requests": rng.randint(1, 5000),
                    "rejected": rng.randint(0, 9),
                },
            )
        if pick == 9:
            return Event(
                "cache.hit",
                {
                    "key": f"sha1:{_hex(rng, 40)}",
                    "order_id": f"ORD-2026-{rng.randint(0, 999_999):06d}",
                    "encounter_ref": f"Encounter/{rng.randint(1000, 99999)}",
                    "size": rng.randint(100, 10_000),
                },
            )
        if pick == 10:
            return Event(
                "token rejected",
                {
                    "reason": rng.choice(
                        ("expired", "bad_signature", "aud_mismatch", "unknown_kid")
                    ),
                    "client_iss": iss,
                    "jti": _uuid(rng),
                    "kid": f"rs384-2026-{rng.randint(1, 9):02d}",
                    "status": 401,
                },
            )
        return Event(
            "service.warning",
            {
                "message": "slow FHIR server response; falling back to cached prefetch",
                "service_id": service,
                "retry": rng.randint(1, 3),
                "upstream": f"{FHIR_BASE}/Observation?code=http://loinc.org|8867-4&_count=10",
            },
        )

    # --- planted ------------------------------------------------------------------------

    def planted(self) -> Event:  # noqa: C901, PLR0911, PLR0912 - one template per branch
        """An event with planted secrets or PHI, listed in ``Event.planted``."""
        rng, fake = self.rng, self.fake
        pick = rng.randrange(16)
        token = self.minter.jwt(self.now)
        if pick == 0:
            return Event(
                "cds.request.received",
                {
                    "hook": rng.choice(HOOKS),
                    "authorization": f"Bearer {token}",
                    "hook_instance": _uuid(rng),
                },
                [("jwt", token)],
            )
        if pick == 1:
            return Event(
                f"token validation failed for {token}", {"reason": "expired"}, [("jwt", token)]
            )
        if pick == 2:
            opaque = _opaque(rng)
            return Event(
                "fhir.request",
                {
                    "headers": {
                        "Accept": "application/fhir+json",
                        "Authorization": f"Bearer {opaque}",
                    },
                    "status": 200,
                },
                [("bearer_token", opaque)],
            )
        if pick == 3:
            opaque = _opaque(rng, 40)
            url = f"{FHIR_BASE}/Observation?_count=10&access_token={opaque}"
            return Event("fhir.get", {"url": url, "status": 200}, [("url_token", opaque)])
        if pick == 4:
            code = _opaque(rng, 22)
            return Event(
                "oauth.callback",
                {"url": f"https://cds.example.com/callback?code={code}&state={_hex(rng, 12)}"},
                [("url_token", code)],
            )
        if pick == 5:
            opaque = _opaque(rng, 36)
            request = {
                "hook": "patient-view",
                "hookInstance": _uuid(rng),
                "fhirServer": FHIR_BASE,
                "fhirAuthorization": {
                    "access_token": opaque,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "patient/Patient.read",
                    "subject": "cds-service",
                },
                "context": {
                    "userId": "Practitioner/example",
                    "patientId": str(rng.randint(10000, 9999999)),
                },
            }
            return Event(
                "cds.request.body",
                {"body": request},
                [("url_token", opaque), ("patient_id", request["context"]["patientId"])],
            )
        if pick == 6:
            ssn = _ssn(rng)
            return Event(
                f"member lookup failed for ssn {ssn}", {"service_id": "prior-auth"}, [("ssn", ssn)]
            )
        if pick == 7:
            email = fake.email()
            return Event(
                "notification.sent",
                {"to": email, "template": "care-gap-reminder"},
                [("email", email)],
            )
        if pick == 8:
            phone = _phone(rng)
            return Event(
                f"callback requested at {phone}", {"service_id": "care-gaps"}, [("phone", phone)]
            )
        if pick == 9:
            first, last = fake.first_name(), fake.last_name()
            street, city = fake.street_address(), fake.city()
            birth = fake.date_of_birth(minimum_age=1, maximum_age=99).isoformat()
            patient = {
                "resourceType": "Patient",
                "id": str(rng.randint(10000, 9999999)),
                "name": [{"use": "official", "family": last, "given": [first]}],
                "birthDate": birth,
                "address": [
                    {"line": [street], "city": city, "state": "MA", "postalCode": fake.zipcode()}
                ],
                "telecom": [{"system": "phone", "value": _phone(rng)}],
                "gender": rng.choice(("male", "female")),
            }
            return Event(
                "prefetch.patient",
                {"resource": patient},
                [
                    ("person_name", first),
                    ("person_name", last),
                    ("street_address", street),
                    ("dob", birth),
                ],
            )
        if pick == 10:
            name = fake.name()
            return Event(
                "chart opened",
                {"patient_name": name, "hook": "patient-view"},
                [("person_name", name)],
            )
        if pick == 11:
            pem = self.minter.pem()
            return Event(
                "key load failed",
                {"exception": f"ValueError: bad key material\n{pem}"},
                [("private_key", pem.split("\n")[1])],
            )
        if pick == 12:
            secret = _opaque(rng, 24)
            return Event(
                f"token endpoint call grant_type=client_credentials&client_secret={secret}",
                {"status": 400},
                [("client_secret", secret)],
            )
        if pick == 13:
            b64 = base64.b64encode(token.encode()).decode()
            return Event("forwarded credential", {"x_forwarded_token": b64}, [("jwt", b64)])
        if pick == 14:
            ssn, phone = _ssn(rng), _phone(rng)
            return Event(
                "eligibility.request",
                {"member": {"ssn": ssn.replace("-", ""), "phone": phone, "plan": "PPO-2"}},
                [("ssn", ssn.replace("-", "")), ("phone", phone)],
            )
        opaque = _opaque(rng, 32)
        line = f"curl -H 'Authorization: Bearer {opaque}' {CDS_BASE}/patient-greeter"
        return Event("debug.replay", {"command": line}, [("bearer_token", opaque)])

    def build(self, n: int, planted_share: float) -> list[Event]:
        """``n`` events of which about ``planted_share`` carry planted values."""
        return [
            self.planted() if self.rng.random() < planted_share else self.clean() for _ in range(n)
        ]

"""A labelled corpus of CDS Hooks service logs, for measuring the content detectors.

Each line is what a CDS service (or the EHR side calling it) writes: structlog JSON lines
and plain text lines (``<RFC 3339 time> LEVEL logger: message k=v``, access logs, curl
commands in debug output). About ``planted_share`` of the lines carry one planted value
of a chosen kind, in one of several forms; the rest are clean but full of look-alikes on
purpose: UUIDs (hookInstance, jti), hex digests, ISO timestamps, version strings, base64
that is no token (etags, nonces), numeric ids, FHIR search URLs with ``?code=``, lines the
Redactor already redacted, placeholders (``Bearer <token>``, ``password=****``) and
documentation values (the jwt.io token, SSN 078-05-1120, 555-01xx numbers).

Every line is labelled with the kinds it holds and the form each was written in
(``Line.labels``: kind -> forms), so recall and precision can be computed per kind and
per form. A line with a FHIR Patient resource holds several kinds at once (the resource,
the name, the birth date, the address, the phone number, the patient id), and is
labelled with all of them.

Identities come from Faker; JWTs are minted with PyJWT (RS256, ES256, ES384) with keys
generated for the run; JWEs are encrypted for real (RSA-OAEP-256 + A256GCM with
``cryptography``); private keys and JWKs are freshly generated and thrown away.
"""

from __future__ import annotations

import base64
import json
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
from corpus import CDS_BASE, FHIR_BASE, HOOKS, ISSUERS, SERVICES, _hex, _opaque, _phone, _ssn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from faker import Faker

DAY_START = datetime(2026, 11, 28, tzinfo=UTC)
JWT_IO_EXAMPLE = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9l"
    "IiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
TOKEN_KINDS = (
    "jwt",
    "bearer_token",
    "basic_auth",
    "url_token",
    "private_key",
    "private_jwk",
    "client_secret",
)
PHI_KINDS = (
    "ssn",
    "mrn",
    "dob",
    "phone",
    "email",
    "person_name",
    "street_address",
    "fhir_resource",
    "patient_id",
)
KINDS = TOKEN_KINDS + PHI_KINDS
CLEAN_WEIGHTS = {
    # What a CDS service logs all day ...
    "request": 4,
    "jwt_validated": 4,
    "access_log": 4,
    "cache": 3,
    "token_rejected": 3,
    "artifact": 2,
    "fhir_search": 2,
    "jwks": 2,
    "timestamps": 2,
    "resource_types": 2,
    "exception": 1,
    # ... and look-alikes that stress precision: redacted markers, placeholders,
    # documentation values, identifiers and addresses that are not PHI.
    "redacted": 2,
    "placeholders": 1,
    "documentation": 1,
    "ids": 1,
}
"""Relative frequency of each kind of clean line."""


@dataclass(slots=True)
class Line:
    """One log line and what is in it: kind -> the forms it was written in."""

    text: str
    labels: dict[str, set[str]] = field(default_factory=dict)
    values: list[str] = field(default_factory=list)
    """The raw planted values, which no finding may contain."""

    def plant(self, kind: str, form: str, *values: str) -> Line:
        """Label this line with ``kind`` written in ``form``."""
        self.labels.setdefault(kind, set()).add(form)
        self.values.extend(values)
        return self


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """Throwaway keys: JWT signing (RS256, ES256, ES384), JWE encryption, PEM and JWK."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.signing = [
            ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            ("ES256", ec.generate_private_key(ec.SECP256R1())),
            ("ES384", ec.generate_private_key(ec.SECP384R1())),
        ]
        self.encryption = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwt(self, now: int, *, lifetime: int = 300) -> str:
        """A CDS Hooks client JWT (iss, aud, exp, iat, jti; kid and typ in the header)."""
        alg, key = self.rng.choice(self.signing)
        claims: dict[str, Any] = {
            "iss": self.rng.choice(ISSUERS),
            "aud": f"{CDS_BASE}/{self.rng.choice(SERVICES)}",
            "iat": now,
            "exp": now + lifetime,
            "jti": str(uuid.UUID(int=self.rng.getrandbits(128))),
        }
        if self.rng.random() < 0.5:
            claims["tenant"] = f"t-{self.rng.randint(1, 40):02d}"
        headers = {"kid": f"{alg.lower()}-2026-{self.rng.randint(1, 9):02d}", "typ": "JWT"}
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def jwe(self, payload: bytes) -> str:
        """A compact JWE (RSA-OAEP-256, A256GCM) encrypted for the throwaway key."""
        header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "enc-2026-01", "cty": "JWT"}
        protected = _b64url(json.dumps(header, separators=(",", ":")).encode())
        cek = os.urandom(32)
        encrypted_key = self.encryption.public_key().encrypt(
            cek, padding.OAEP(mgf=padding.MGF1(SHA256()), algorithm=SHA256(), label=None)
        )
        iv = os.urandom(12)
        sealed = AESGCM(cek).encrypt(iv, payload, protected.encode())
        ciphertext, tag = sealed[:-16], sealed[-16:]
        return ".".join(
            [protected, _b64url(encrypted_key), _b64url(iv), _b64url(ciphertext), _b64url(tag)]
        )

    def pem(self) -> str:
        """A PKCS#8 PEM of a fresh EC key."""
        key = ec.generate_private_key(self.rng.choice((ec.SECP256R1(), ec.SECP384R1())))
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def private_jwk(self) -> dict[str, Any]:
        """A private EC JWK (with ``d``), as PyJWT exports it."""
        key = ec.generate_private_key(self.rng.choice((ec.SECP256R1(), ec.SECP384R1())))
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
        jwk["kid"] = f"client-{self.rng.randint(1, 99):02d}"
        jwk["alg"] = "ES384" if jwk["crv"] == "P-384" else "ES256"
        return jwk


class LabelledCorpus:
    """Builds labelled lines; deterministic for a seed except the keys' own randomness."""

    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.keys = Keys(self.rng)
        self.clock = DAY_START
        self._planters: list[tuple[str, Callable[[], Line]]] = [
            (kind, getattr(self, f"_plant_{kind}")) for kind in KINDS
        ]
        self._cleaners: list[Callable[[], Line]] = [
            getattr(self, f"_clean_{name}")
            for name, weight in CLEAN_WEIGHTS.items()
            for _ in range(weight)
        ]

    # --- framing ------------------------------------------------------------------------

    def _tick(self) -> datetime:
        self.clock += timedelta(milliseconds=self.rng.randint(1, 400))
        return self.clock

    def _json(self, event: str, **kw: Any) -> str:
        at = self._tick().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        level = kw.pop("level", "info")
        logger = kw.pop("logger", f"cds.{self.rng.choice(SERVICES)}")
        return json.dumps({"timestamp": at, "level": level, "logger": logger, "event": event, **kw})

    def _text(self, message: str, level: str = "INFO") -> str:
        at = self._tick().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"{at} {level:<5} cds.{self.rng.choice(SERVICES)}: {message}"

    def _now(self) -> int:
        return int(self.clock.timestamp())

    def build(self, n: int, planted_share: float) -> list[Line]:
        """``n`` lines, about ``planted_share`` of them planted, kinds in equal shares."""
        lines = []
        for _ in range(n):
            if self.rng.random() < planted_share:
                _, plant = self.rng.choice(self._planters)
                lines.append(plant())
            else:
                lines.append(self.rng.choice(self._cleaners)())
        return lines

    # --- planted: tokens ----------------------------------------------------------------

    def _plant_jwt(self) -> Line:  # noqa: PLR0911 - one return per form
        rng = self.rng
        expired = rng.random() < 0.2
        token = self.keys.jwt(self._now() - (900 if expired else 10))
        form = rng.randrange(8)
        if form == 0:
            line = self._json(
                "cds.request.received",
                hook=rng.choice(HOOKS),
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                hook_instance=str(uuid.uuid4()),
            )
            return Line(line).plant("jwt", "header_dict", token)
        if form == 1:
            line = self._text(f"jwt validation failed token={token} reason=expired", "WARN")
            return Line(line).plant("jwt", "text_keyed", token)
        if form == 2:
            line = self._json(f"token validation failed for {token}", reason="bad_signature")
            return Line(line).plant("jwt", "message", token)
        if form == 3:
            url = f"{CDS_BASE}/{rng.choice(SERVICES)}"
            line = f"curl -sS -X POST -H 'Authorization: Bearer {token}' -d @req.json {url}"
            return Line(line).plant("jwt", "curl", token)
        if form == 4:
            wrapped = base64.b64encode(token.encode()).decode()
            line = self._json("forwarded credential", x_forwarded_token=wrapped)
            return Line(line).plant("jwt", "base64", token, wrapped)
        if form == 5:
            state = quote(json.dumps({"assertion": token}), safe="")
            line = self._text(f"GET /launch?state={state}&iss={quote(ISSUERS[0], safe='')} 302")
            return Line(line).plant("jwt", "url_encoded", token)
        if form == 6:
            jwe = self.keys.jwe(token.encode())
            line = self._json("id token received", id_token=jwe, client_id="cds-client")
            return Line(line).plant("jwt", "jwe", jwe)
        body = self._cds_request(token)
        line = self._json("cds.request.body", body=body)
        return (
            Line(line)
            .plant("jwt", "fhirAuthorization", token)
            .plant("patient_id", "context", body["context"]["patientId"])
        )

    def _cds_request(self, access_token: str) -> dict[str, Any]:
        return {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "fhirServer": FHIR_BASE,
            "fhirAuthorization": {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/Patient.read patient/Observation.read",
                "subject": "cds-service",
            },
            "context": {
                "userId": "Practitioner/example",
                "patientId": str(self.rng.randint(10000, 9999999)),
            },
        }

    def _plant_bearer_token(self) -> Line:
        rng = self.rng
        token = _opaque(rng, rng.randint(24, 48))
        form = rng.randrange(5)
        if form == 0:
            line = self._json(
                "fhir.request", headers={"Authorization": f"Bearer {token}"}, status=200
            )
            return Line(line).plant("bearer_token", "header_dict", token)
        if form == 1:
            line = self._text(f"outgoing request headers: Authorization: Bearer {token}", "DEBUG")
            return Line(line).plant("bearer_token", "text_header", token)
        if form == 2:
            line = f"curl -H 'authorization: bearer {token}' {FHIR_BASE}/Observation?_count=5"
            return Line(line).plant("bearer_token", "curl", token)
        if form == 3:
            line = self._json(
                "http.client",
                headers=[["host", "fhir.example.org"], ["authorization", f"Bearer {token}"]],
            )
            return Line(line).plant("bearer_token", "header_list", token)
        line = self._json("session.refresh", token=token, expires_in=3600)
        return Line(line).plant("bearer_token", "json_key", token)

    def _plant_basic_auth(self) -> Line:
        rng, fake = self.rng, self.fake
        user, password = fake.user_name(), fake.password(length=rng.randint(10, 18))
        cred = base64.b64encode(f"{user}:{password}".encode()).decode()
        form = rng.randrange(3)
        if form == 0:
            line = self._text(f"proxy request Authorization: Basic {cred} -> 401", "WARN")
            return Line(line).plant("basic_auth", "text_header", cred, password)
        if form == 1:
            line = self._json("jwks.fetch", headers={"authorization": f"Basic {cred}"}, status=200)
            return Line(line).plant("basic_auth", "header_dict", cred, password)
        safe_pw = quote(password, safe="")
        url = f"https://{user}:{safe_pw}@fhir.example.org/r4/metadata"
        line = self._json("fhir.connect", url=url, attempt=rng.randint(1, 3))
        return Line(line).plant("basic_auth", "url_userinfo", safe_pw)

    def _plant_url_token(self) -> Line:
        rng = self.rng
        token = _opaque(rng, rng.randint(30, 44))
        form = rng.randrange(5)
        if form == 0:
            url = f"{FHIR_BASE}/Observation?_count=10&access_token={token}"
            line = self._json("fhir.get", url=url, status=200)
            return Line(line).plant("url_token", "query", token)
        if form == 1:
            line = self._text(
                "POST /oauth2/token body=grant_type=refresh_token"
                f"&refresh_token={token}&client_id=ehr"
            )
            return Line(line).plant("url_token", "form_body", token)
        if form == 2:
            line = self._json(
                "token.response", access_token=token, token_type="Bearer", expires_in=300
            )
            return Line(line).plant("url_token", "json_key", token)
        if form == 3:
            body = self._cds_request(token)
            line = self._json("cds.request.body", body=body)
            return (
                Line(line)
                .plant("url_token", "fhirAuthorization", token)
                .plant("patient_id", "context", body["context"]["patientId"])
            )
        code = _opaque(rng, 22)
        line = self._text(f"GET /callback?code={code}&state={_hex(rng, 12)} 302")
        return Line(line).plant("url_token", "oauth_code", code)

    def _plant_private_key(self) -> Line:
        pem = self.keys.pem()
        body = pem.split("\n")[1]
        form = self.rng.randrange(3)
        if form == 0:
            line = self._json("key load failed", exception=f"ValueError: bad key material\n{pem}")
            return Line(line).plant("private_key", "exception", body)
        if form == 1:
            line = self._text(f"loaded signing key {pem!r}", "DEBUG")
            return Line(line).plant("private_key", "repr", body)
        line = self._json("client config", private_key=pem, kid="client-01")
        return Line(line).plant("private_key", "json_key", body)

    def _plant_private_jwk(self) -> Line:
        jwk = self.keys.private_jwk()
        form = self.rng.randrange(3)
        if form == 0:
            line = self._json("jwk.loaded", jwk=jwk)
            return Line(line).plant("private_jwk", "jwk", jwk["d"])
        if form == 1:
            line = self._json("jwks.published", jwks={"keys": [jwk]})
            return Line(line).plant("private_jwk", "jwk_set", jwk["d"])
        line = self._text(f"using key {json.dumps(jwk)}", "DEBUG")
        return Line(line).plant("private_jwk", "text", jwk["d"])

    def _plant_client_secret(self) -> Line:
        rng = self.rng
        secret = _opaque(rng, rng.randint(20, 40))
        form = rng.randrange(4)
        if form == 0:
            line = self._text(
                "token endpoint call grant_type=client_credentials&client_id=cds"
                f"&client_secret={secret}",
                "DEBUG",
            )
            return Line(line).plant("client_secret", "form_body", secret)
        if form == 1:
            line = self._json("oauth.client", client_id="cds-prior-auth", client_secret=secret)
            return Line(line).plant("client_secret", "json_key", secret)
        if form == 2:
            line = self._text(f"db connect failed: postgres user=cds password={secret}", "ERROR")
            return Line(line).plant("client_secret", "password", secret)
        line = self._json("settings.loaded", settings={"password": secret, "smtp_port": 587})
        return Line(line).plant("client_secret", "nested_key", secret)

    # --- planted: PHI -------------------------------------------------------------------

    def _plant_ssn(self) -> Line:
        ssn = _ssn(self.rng)
        form = self.rng.randrange(3)
        if form == 0:
            line = self._text(f"member lookup failed for ssn {ssn}", "WARN")
            return Line(line).plant("ssn", "text_dashed", ssn)
        if form == 1:
            digits = ssn.replace("-", "")
            line = self._json("eligibility.request", member={"ssn": digits, "plan": "PPO-2"})
            return Line(line).plant("ssn", "json_key", digits)
        spaced = ssn.replace("-", " ")
        line = self._text(f"caller verified, social security number is {spaced}")
        return Line(line).plant("ssn", "keyword", spaced)

    def _plant_mrn(self) -> Line:
        rng = self.rng
        mrn = rng.choice(("", "A", "MR")) + str(rng.randint(100000, 99999999))
        form = rng.randrange(4)
        if form == 0:
            line = self._text(f"MRN: {mrn} admitted to ward 4B")
            return Line(line).plant("mrn", "keyword", mrn)
        if form == 1:
            line = self._json("patient.match", mrn=mrn, score=0.97)
            return Line(line).plant("mrn", "json_key", mrn)
        if form == 2:
            ident = {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:oid:1.2.36.146.595.217.0.1",
                "value": mrn,
            }
            line = self._json("identifier.resolved", identifier=ident)
            return Line(line).plant("mrn", "fhir_identifier", mrn)
        line = self._text(f"GET /fhir/Patient?identifier=urn:oid:1.2.36|{mrn}&_count=1 200")
        return Line(line).plant("mrn", "fhir_search", mrn)

    def _plant_dob(self) -> Line:
        birth = self.fake.date_of_birth(minimum_age=1, maximum_age=99)
        form = self.rng.randrange(4)
        if form == 0:
            value = birth.isoformat()
            line = self._json("patient.lookup", dob=value, match="exact")
            return Line(line).plant("dob", "json_key", value)
        if form == 1:
            value = birth.strftime("%m/%d/%Y")
            line = self._text(f"eligibility check DOB: {value} plan PPO")
            return Line(line).plant("dob", "keyword", value)
        if form == 2:
            value = f"{birth.strftime('%B')} {birth.day}, {birth.year}"
            line = self._text(f"note: patient born {value}, verified by phone")
            return Line(line).plant("dob", "written", value)
        value = birth.isoformat()
        line = self._json("demographics", birthDate=value, gender="female")
        return Line(line).plant("dob", "fhir_key", value)

    def _plant_phone(self) -> Line:
        phone = _phone(self.rng)
        form = self.rng.randrange(3)
        if form == 0:
            line = self._text(f"callback requested at {phone}")
            return Line(line).plant("phone", "text", phone)
        if form == 1:
            line = self._json("sms.queued", phone=phone, template="appt-reminder")
            return Line(line).plant("phone", "json_key", phone)
        line = self._json("contact.updated", telecom=[{"system": "phone", "value": phone}])
        return Line(line).plant("phone", "fhir_telecom", phone)

    def _plant_email(self) -> Line:
        email = self.fake.email()
        form = self.rng.randrange(3)
        if form == 0:
            line = self._json("notification.sent", to=email, template="care-gap-reminder")
            return Line(line).plant("email", "json_value", email)
        if form == 1:
            line = self._text(f"portal invite bounced for {email}", "WARN")
            return Line(line).plant("email", "text", email)
        line = self._json("contact.updated", telecom=[{"system": "email", "value": email}])
        return Line(line).plant("email", "fhir_telecom", email)

    def _plant_person_name(self) -> Line:
        fake = self.fake
        first, last = fake.first_name(), fake.last_name()
        form = self.rng.randrange(4)
        if form == 0:
            line = self._json("chart opened", patient_name=f"{first} {last}", hook="patient-view")
            return Line(line).plant("person_name", "json_key", f"{first} {last}")
        if form == 1:
            line = self._text(f"order signed for patient: {first} {last}")
            return Line(line).plant("person_name", "keyword", f"{first} {last}")
        if form == 2:
            name = {"use": "official", "family": last, "given": [first]}
            line = self._json("name.normalized", name=name)
            return Line(line).plant("person_name", "fhir_humanname", first, last)
        line = self._text(f"called {first} {last} about the lab results, left a message")
        return Line(line).plant("person_name", "free_text", f"{first} {last}")

    def _plant_street_address(self) -> Line:
        fake = self.fake
        street = fake.street_address()
        form = self.rng.randrange(3)
        if form == 0:
            address = {
                "line": [street],
                "city": fake.city(),
                "state": "MA",
                "postalCode": fake.zipcode(),
            }
            line = self._json("address.verified", address=address)
            return Line(line).plant("street_address", "fhir_address", street)
        if form == 1:
            line = self._json("shipment.created", home_address=f"{street}, {fake.city()}")
            return Line(line).plant("street_address", "json_key", street)
        line = self._text(f"ship supplies to {street}, {fake.city()} MA")
        return Line(line).plant("street_address", "text", street)

    def _plant_fhir_resource(self) -> Line:
        rng, fake = self.rng, self.fake
        first, last = fake.first_name(), fake.last_name()
        street = fake.street_address()
        birth = fake.date_of_birth(minimum_age=1, maximum_age=99).isoformat()
        phone = _phone(rng)
        patient_id = str(rng.randint(10000, 9999999))
        patient = {
            "resourceType": "Patient",
            "id": patient_id,
            "name": [{"use": "official", "family": last, "given": [first]}],
            "birthDate": birth,
            "gender": rng.choice(("male", "female")),
            "address": [{"line": [street], "city": fake.city(), "state": "MA"}],
            "telecom": [{"system": "phone", "value": phone}],
        }
        line = Line("")
        if rng.random() < 0.5:
            line.text = self._json("prefetch.patient", resource=patient)
            line.plant("fhir_resource", "patient", first)
        else:
            request = {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/example", "patientId": patient_id},
                "prefetch": {"patient": patient},
            }
            line.text = self._json("cds.request.body", body=request)
            line.plant("fhir_resource", "prefetch", first)
        return (
            line.plant("person_name", "fhir_resource", first, last)
            .plant("dob", "fhir_resource", birth)
            .plant("street_address", "fhir_resource", street)
            .plant("phone", "fhir_resource", phone)
            .plant("patient_id", "fhir_resource", patient_id)
        )

    def _plant_patient_id(self) -> Line:
        rng = self.rng
        pid = rng.choice((str(rng.randint(10000, 9999999)), f"smart-{rng.randint(10**6, 10**7)}"))
        form = rng.randrange(3)
        if form == 0:
            line = self._text(f"GET {FHIR_BASE}/Patient/{pid}/$everything 200 812ms")
            return Line(line).plant("patient_id", "reference", pid)
        if form == 1:
            line = self._json(
                "cds.context", context={"patientId": pid, "userId": "Practitioner/example"}
            )
            return Line(line).plant("patient_id", "context", pid)
        line = self._json("prior-auth.check", patient_id=pid, decision="approved")
        return Line(line).plant("patient_id", "json_key", pid)

    # --- clean, with look-alikes --------------------------------------------------------

    def _clean_request(self) -> Line:
        rng = self.rng
        return Line(
            self._json(
                "cds.request.received",
                hook=rng.choice(HOOKS),
                hook_instance=str(uuid.uuid4()),
                service_id=rng.choice(SERVICES),
                client_iss=rng.choice(ISSUERS),
                fhir_server=FHIR_BASE,
                request_id=str(uuid.uuid4()),
            )
        )

    def _clean_jwt_validated(self) -> Line:
        rng = self.rng
        return Line(
            self._json(
                "jwt.validated",
                iss=rng.choice(ISSUERS),
                kid=f"es384-2026-{rng.randint(1, 9):02d}",
                alg=rng.choice(("ES384", "RS384", "ES256")),
                jti=str(uuid.uuid4()),
                exp=self._now() + rng.randint(0, 300),
                aud=f"{CDS_BASE}/{rng.choice(SERVICES)}",
            )
        )

    def _clean_access_log(self) -> Line:
        rng = self.rng
        at = self._tick().strftime("%d/%b/%Y:%H:%M:%S +0000")
        path = rng.choice(("/cds-services", f"/cds-services/{rng.choice(SERVICES)}", "/health"))
        return Line(
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - [{at}] "
            f'"POST {path} HTTP/1.1" {rng.choice((200, 200, 401, 412))} {rng.randint(80, 9000)} '
            f'"-" "Epic-Interconnect/10.2.{rng.randint(0, 9)}"'
        )

    def _clean_artifact(self) -> Line:
        rng = self.rng
        return Line(
            self._json(
                "artifact.loaded",
                name="drug-interaction-rules",
                version=f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
                sha256=_hex(rng, 64),
                git_sha=_hex(rng, 40),
                build=f"2026.11.{rng.randint(1, 28)}-{rng.randint(1, 99)}",
            )
        )

    def _clean_cache(self) -> Line:
        rng = self.rng
        return Line(
            self._text(
                f"cache hit key=sha1:{_hex(rng, 40)} "
                f"order_id=ORD-2026-{rng.randint(0, 999999):06d} "
                f"encounter=Encounter/{rng.randint(1000, 99999)} size={rng.randint(100, 10000)}"
            )
        )

    def _clean_token_rejected(self) -> Line:
        rng = self.rng
        return Line(
            self._json(
                "token rejected",
                reason=rng.choice(("expired", "bad_signature", "aud_mismatch", "unknown_kid")),
                client_iss=rng.choice(ISSUERS),
                jti=str(uuid.uuid4()),
                status=401,
            )
        )

    def _clean_fhir_search(self) -> Line:
        rng = self.rng
        return Line(
            self._json(
                "fhir.search",
                url=(
                    f"{FHIR_BASE}/Observation?code=http://loinc.org|8867-4"
                    f"&_count={rng.randint(1, 50)}"
                ),
                status=200,
                elapsed_ms=round(rng.uniform(5, 900), 1),
            )
        )

    def _clean_jwks(self) -> Line:
        rng = self.rng
        iss = rng.choice(ISSUERS)
        return Line(
            self._json(
                "jwks.fetched",
                jku=f"{iss}/.well-known/jwks.json",
                keys=rng.randint(1, 4),
                etag=f'W/"{base64.b64encode(os.urandom(12)).decode()}"',
                nonce=base64.urlsafe_b64encode(os.urandom(24)).decode(),
            )
        )

    def _clean_redacted(self) -> Line:
        rng = self.rng
        marker = (
            f"[REDACTED:jwt fp={_hex(rng, 8)} iss={rng.choice(ISSUERS)} "
            f"jti={uuid.uuid4()} alg=ES384]"
        )
        return Line(self._json("cds.request.received", authorization=f"Bearer {marker}"))

    def _clean_placeholders(self) -> Line:
        return Line(
            self._text(
                self.rng.choice(
                    (
                        "config: Authorization: Bearer <token> (set CDS_TOKEN)",
                        "retrying with password=******** user=cds",
                        "client_secret=${CLIENT_SECRET} not set, using mTLS",
                        "template access_token={{ access_token }} rendered",
                        "ssn: null, mrn: n/a, dob: unknown",
                    )
                )
            )
        )

    def _clean_documentation(self) -> Line:
        rng = self.rng
        return Line(
            self._text(
                rng.choice(
                    (
                        f"see the jwt.io example {JWT_IO_EXAMPLE} for the token layout",
                        "validator self-test ssn 078-05-1120 rejected as a known example",
                        f"demo patient phone 617-555-01{rng.randint(0, 99):02d} (fictional)",
                    )
                ),
                "DEBUG",
            )
        )

    def _clean_timestamps(self) -> Line:
        rng = self.rng
        start = f"2026-11-28T10:{rng.randint(0, 59):02d}:00Z"
        return Line(
            self._json(
                f"rate window {start} .. 2026-11-28T11:00:00Z closed",
                requests=rng.randint(1, 5000),
                created_at=self._tick().isoformat(),
                appointment_date=f"2026-12-{rng.randint(1, 28):02d}",
                birth_year=rng.randint(1930, 2020),
            )
        )

    def _clean_resource_types(self) -> Line:
        rng = self.rng
        return Line(
            self._json(
                "prefetch.fetched",
                resource_types=rng.sample(["Patient", "Condition", "Observation", "Encounter"], 2),
                count=rng.randint(0, 40),
                practitioner="Practitioner/example",
                fhir_url=f"{FHIR_BASE}/metadata",
            )
        )

    def _clean_ids(self) -> Line:
        rng = self.rng
        return Line(
            self._text(
                f"trace_id={_hex(rng, 32)} span_id={_hex(rng, 16)} "
                f"npi={rng.randint(10**9, 10**10 - 1)} "
                f"oid=urn:oid:2.16.840.1.113883.3.{rng.randint(1, 9999)} asset=icon@2x.png "
                f"build=v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"
            )
        )

    def _clean_exception(self) -> Line:
        rng = self.rng
        return Line(
            self._json(
                "card generation failed",
                level="error",
                exception=(
                    'Traceback (most recent call last):\n  File "cards.py", line '
                    f"{rng.randint(10, 400)}, in render\nKeyError: 'dosage'"
                ),
                hook_instance=str(uuid.uuid4()),
            )
        )

"""Who takes part in a simulation: EHRs (CDS clients), CDS service vendors, patients.

The cast is fixed (so the policy configuration that goes with it is too); only patients
and keys are drawn from the seed. Every name, address and number is invented: domains are
under the reserved ``.example`` TLD, peers are private or documentation addresses
(RFC 5737), and patients are made up by Faker from the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from faker.providers.address.en_US import Provider as AddressProvider
from faker.providers.person.en_US import Provider as PersonProvider


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One CDS service: its id, the hook it answers and what FHIR access it needs."""

    id: str
    hook: str
    title: str
    scopes: tuple[str, ...]
    cards: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VendorSpec:
    """A CDS service vendor: one base URL, one process group, one logger.

    Attributes:
        key: Short name (``rxcheck``), used in instance names.
        base_url: Where its services live (``{base_url}/cds-services/{id}``).
        logger: The structlog logger name its log lines carry.
        version: The release it runs.
        egress_ip: The address its own outgoing calls come from.
        services: Its CDS services.
        strict_fhir_servers: Whether its middleware allowlists the EHRs' FHIR servers.
            ``False`` models a vendor that left the development setting on (any https
            server, internal addresses included): the auditor must catch what it lets in.
        body_sample: Share of requests whose body it logs at debug level (redacted).
    """

    key: str
    base_url: str
    logger: str
    version: str
    egress_ip: str
    services: tuple[ServiceSpec, ...]
    strict_fhir_servers: bool = True
    body_sample: float = 0.0


@dataclass(frozen=True, slots=True)
class EhrSpec:
    """An EHR (CDS client) and how it reaches the services.

    Attributes:
        key: Short name (``mercy``).
        iss: Its issuer.
        alg: Its signing algorithm.
        tenants: ``tenant`` claims it uses.
        fhir_server: Its FHIR base URL (``fhirServer``).
        jwks_url: Where it publishes its JWK Set; ``None`` when services pin its keys.
        send_jku: Whether its tokens carry ``jku`` (the URL above).
        instances: Names of its application servers, each with its own clock and peer.
        peer_prefix: Its servers' addresses are ``{peer_prefix}.{11 + n}``.
        tls_version: The TLS version its servers negotiate.
        weight: Its share of the traffic.
        services: The service ids it calls (its allowlist).
        patient_id_style: How its patient ids look (``opaque``, ``numeric``, ``prefixed``).
    """

    key: str
    iss: str
    alg: str
    tenants: tuple[str, ...]
    fhir_server: str
    jwks_url: str | None
    send_jku: bool
    instances: tuple[str, ...]
    peer_prefix: str
    tls_version: int
    weight: float
    services: tuple[str, ...]
    patient_id_style: str = "opaque"

    def peer(self, instance: int) -> str:
        """The address of application server number ``instance``."""
        return f"{self.peer_prefix}.{11 + instance}"

    @property
    def fhir_host(self) -> str:
        """The host of its FHIR server."""
        return self.fhir_server.split("/")[2]


TLS_1_0: Final = 0x0301
TLS_1_2: Final = 0x0303
TLS_1_3: Final = 0x0304

_READ = ("patient/Patient.read", "patient/Observation.read")

VENDORS: Final = (
    VendorSpec(
        key="greeter",
        base_url="https://cds.greeter.example",
        logger="cds.greeter",
        version="2.14.3",
        egress_ip="10.60.0.21",
        services=(
            ServiceSpec(
                "patient-greeter",
                "patient-view",
                "Patient greeter",
                ("patient/Patient.read",),
                ("Now seeing this patient",),
            ),
        ),
        body_sample=0.05,
    ),
    VendorSpec(
        key="rxcheck",
        base_url="https://cds.rxcheck.example",
        logger="cds.rxcheck",
        version="5.2.0",
        egress_ip="10.60.1.34",
        services=(
            ServiceSpec(
                "drug-interactions",
                "order-select",
                "Drug-drug interactions",
                ("patient/MedicationRequest.read", "patient/AllergyIntolerance.read"),
                ("Interaction: warfarin + aspirin", "No interactions found"),
            ),
            ServiceSpec(
                "dose-range",
                "order-sign",
                "Dose range check",
                ("patient/MedicationRequest.read", "patient/Observation.read"),
                ("Dose within range", "Renal dosing adjustment suggested"),
            ),
        ),
        body_sample=0.03,
    ),
    VendorSpec(
        key="riskcalc",
        base_url="https://cds.riskcalc.example",
        logger="cds.riskcalc",
        version="1.9.7",
        egress_ip="10.60.2.9",
        services=(
            ServiceSpec(
                "sepsis-risk",
                "encounter-start",
                "Sepsis risk",
                _READ,
                ("Sepsis risk: low", "Sepsis risk: elevated, consider lactate"),
            ),
            ServiceSpec(
                "readmission-risk",
                "encounter-discharge",
                "30-day readmission risk",
                (*_READ, "patient/Encounter.read"),
                ("Readmission risk: 12%", "Readmission risk: 31%, schedule follow-up"),
            ),
        ),
        strict_fhir_servers=False,
    ),
)

EHRS: Final = (
    EhrSpec(
        key="mercy",
        iss="https://ehr.mercy-general.example",
        alg="ES256",
        tenants=("mercy-main", "mercy-north"),
        fhir_server="https://fhir.mercy-general.example/r4",
        jwks_url="https://ehr.mercy-general.example/.well-known/jwks.json",
        send_jku=True,
        instances=("mercy-app-01", "mercy-app-02", "mercy-app-03"),
        peer_prefix="10.40.1",
        tls_version=TLS_1_3,
        weight=0.4,
        services=("patient-greeter", "drug-interactions", "dose-range", "sepsis-risk"),
    ),
    EhrSpec(
        key="lakeside",
        iss="https://ehr.lakeside-clinic.example",
        alg="ES256",
        tenants=("lakeside",),
        fhir_server="https://fhir.lakeside-clinic.example/api/FHIR/R4",
        jwks_url="https://ehr.lakeside-clinic.example/cds/jwks.json",
        send_jku=False,
        instances=("lakeside-cds-1", "lakeside-cds-2"),
        peer_prefix="10.41.7",
        tls_version=TLS_1_2,
        weight=0.25,
        services=("patient-greeter", "drug-interactions"),
        patient_id_style="numeric",
    ),
    EhrSpec(
        key="northwind",
        iss="https://ehr.northwind-health.example",
        alg="ES256",
        tenants=("northwind",),
        fhir_server="https://fhir.northwind-health.example/r4",
        jwks_url=None,
        send_jku=False,
        instances=("nw-ehr-a", "nw-ehr-b"),
        peer_prefix="10.42.3",
        tls_version=TLS_1_3,
        weight=0.2,
        services=("drug-interactions", "dose-range", "readmission-risk"),
        patient_id_style="prefixed",
    ),
    EhrSpec(
        key="stolaf",
        iss="https://ehr.st-olaf.example",
        alg="ES384",
        tenants=("st-olaf",),
        fhir_server="https://fhir.st-olaf.example/fhir",
        jwks_url=None,
        send_jku=False,
        instances=("stolaf-ie-1", "stolaf-ie-legacy"),
        peer_prefix="10.43.9",
        tls_version=TLS_1_2,
        weight=0.15,
        services=("patient-greeter", "sepsis-risk", "readmission-risk"),
    ),
)

SERVICES: Final = {service.id: service for vendor in VENDORS for service in vendor.services}
VENDOR_OF: Final = {service.id: vendor for vendor in VENDORS for service in vendor.services}


@dataclass(frozen=True, slots=True)
class Patient:
    """A made-up patient. Every field is PHI as far as the auditor is concerned."""

    id: str
    mrn: str
    ssn: str
    given: str
    family: str
    birth_date: date
    phone: str
    email: str
    street: str
    city: str
    state: str
    postal_code: str

    @property
    def full_name(self) -> str:
        """Given and family name."""
        return f"{self.given} {self.family}"

    def resource(self) -> dict[str, Any]:
        """The FHIR R4 ``Patient`` resource an EHR would prefetch."""
        return {
            "resourceType": "Patient",
            "id": self.id,
            "identifier": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "MR",
                            }
                        ]
                    },
                    "value": self.mrn,
                },
                {"system": "http://hl7.org/fhir/sid/us-ssn", "value": self.ssn},
            ],
            "name": [{"use": "official", "family": self.family, "given": [self.given]}],
            "telecom": [
                {"system": "phone", "value": self.phone},
                {"system": "email", "value": self.email},
            ],
            "birthDate": self.birth_date.isoformat(),
            "address": [
                {
                    "line": [self.street],
                    "city": self.city,
                    "state": self.state,
                    "postalCode": self.postal_code,
                }
            ],
        }


def make_patients(seed: int, count: int, ehr: EhrSpec) -> tuple[Patient, ...]:
    """``count`` made-up patients of one EHR, the same for the same seed.

    Names, streets and towns are drawn from Faker's US name and address lists with the
    seeded generator (Faker's own generator is 50x slower per patient).
    """
    rng = random.Random(f"{seed}:patients:{ehr.key}")
    patients = []
    for _ in range(count):
        given, family = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        patients.append(
            Patient(
                id=_patient_id(rng, ehr.patient_id_style),
                mrn=f"{ehr.key[:2].upper()}{rng.randrange(10**7, 10**8)}",
                ssn=_ssn(rng),
                given=given,
                family=family,
                birth_date=date(1930, 1, 1) + timedelta(days=rng.randrange(0, 34_000)),
                phone=_phone(rng),
                email=f"{given.lower()}.{family.lower()}{rng.randrange(10, 99)}@mail.example.com",
                street=f"{rng.randrange(10, 9999)} {rng.choice(_LAST_NAMES)} "
                f"{rng.choice(_STREET_SUFFIXES)}",
                city=f"{rng.choice(_LAST_NAMES)}{rng.choice(_CITY_SUFFIXES)}",
                state=rng.choice(_STATES),
                postal_code=f"{rng.randrange(1000, 99950):05d}",
            )
        )
    return tuple(patients)


_FIRST_NAMES: Final = tuple(PersonProvider.first_names)
_LAST_NAMES: Final = tuple(PersonProvider.last_names)
_STREET_SUFFIXES: Final = tuple(AddressProvider.street_suffixes)
_CITY_SUFFIXES: Final = tuple(AddressProvider.city_suffixes)
_STATES: Final = tuple(AddressProvider.states_abbr)
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _patient_id(rng: random.Random, style: str) -> str:
    if style == "numeric":
        return str(rng.randrange(10**6, 10**7))
    if style == "prefixed":
        return f"pt-{rng.randrange(10**5, 10**6)}"
    return "e" + "".join(rng.choice(_ID_ALPHABET) for _ in range(22)) + "3"


def _ssn(rng: random.Random) -> str:
    # Areas 001-665 and 667-899 are issuable (never 000, 666 or 9xx): these look real.
    area = rng.randrange(1, 899)
    area += area >= 666  # noqa: PLR2004 - the SSA never issues area 666
    return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


def _phone(rng: random.Random) -> str:
    # Valid NANP area codes and exchanges (2-9 first digit, no N11, no 9 in the middle).
    npa = rng.choice((212, 312, 415, 503, 617, 720, 804, 857))
    nxx = rng.randrange(200, 1000)
    while nxx % 100 == 11:  # noqa: PLR2004 - N11 service codes
        nxx = rng.randrange(200, 1000)
    return f"({npa}) {nxx}-{rng.randrange(0, 10000):04d}"

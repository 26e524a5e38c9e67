"""What a release that forgot the Redactor writes into its log, per leaked kind.

Each plan names the EHR whose calls are affected, the service whose canary release leaks,
how the faulty code logs the call (from the real token and body it received), and which
value of the call is the leaked secret (its keyed fingerprint goes into the label).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pipelines.simulate.services import Leak


@dataclass(frozen=True, slots=True)
class LeakPlan:
    """How one kind of secret leaks.

    Attributes:
        client: The EHR (cast key) whose calls leak.
        service: The service whose release logs them.
        write: The faulty log call.
        secret: The leaked value, for its fingerprint.
    """

    client: str
    service: str
    write: Callable[[Leak], object]
    secret: Callable[[Leak], str]


def _patient(leak: Leak) -> dict[str, Any]:
    patient: dict[str, Any] = leak.body["prefetch"]["patient"]
    return patient


def _ssn(leak: Leak) -> str:
    ids = _patient(leak)["identifier"]
    return str(next(i["value"] for i in ids if i.get("system", "").endswith("us-ssn")))


def _mrn(leak: Leak) -> str:
    return str(_patient(leak)["identifier"][0]["value"])


def _birth_date(leak: Leak) -> str:
    return str(_patient(leak)["birthDate"])


def _phone(leak: Leak) -> str:
    return str(_patient(leak)["telecom"][0]["value"])


def _email(leak: Leak) -> str:
    return str(_patient(leak)["telecom"][1]["value"])


def _full_name(leak: Leak) -> str:
    name = _patient(leak)["name"][0]
    return f"{name['given'][0]} {name['family']}"


def _street(leak: Leak) -> str:
    return str(_patient(leak)["address"][0]["line"][0])


def _resource(leak: Leak) -> str:
    return json.dumps(_patient(leak), sort_keys=True, separators=(",", ":"))


def _patient_id(leak: Leak) -> str:
    return str(leak.body["context"]["patientId"])


def _access_token(leak: Leak) -> str:
    return str(leak.body["fhirAuthorization"]["access_token"])


def _bearer(leak: Leak) -> str:
    return leak.token


TOKEN_LEAKS: Final[dict[str, LeakPlan]] = {
    "jwt": LeakPlan(
        "mercy",
        "dose-range",
        lambda k: k.log.debug("authorization.decoded", jwt=k.token),
        _bearer,
    ),
    "bearer_token": LeakPlan(
        "northwind",
        "drug-interactions",
        lambda k: k.log.info(
            "fhir.request",
            method="GET",
            url=f"{k.body['fhirServer']}/MedicationRequest",
            headers={
                "Authorization": f"Bearer {_access_token(k)}",
                "Accept": "application/fhir+json",
            },
        ),
        _access_token,
    ),
    "url_token": LeakPlan(
        "stolaf",
        "readmission-risk",
        lambda k: k.log.info(
            # The faulty release logs the URL it fetched in the message, query included.
            f"GET {k.body['fhirServer']}/Encounter?_count=20&access_token="  # noqa: G004
            f"{_access_token(k)} 200"
        ),
        _access_token,
    ),
}
"""Token leaks by kind (``private_jwk`` leaks from an EHR gateway, not a service call)."""

PHI_LEAKS: Final[dict[str, LeakPlan]] = {
    "ssn": LeakPlan(
        "mercy", "sepsis-risk", lambda k: k.log.info("identity.match", ssn=_ssn(k)), _ssn
    ),
    "mrn": LeakPlan(
        "lakeside", "patient-greeter", lambda k: k.log.info("chart.open", mrn=_mrn(k)), _mrn
    ),
    "dob": LeakPlan(
        "northwind",
        "dose-range",
        lambda k: k.log.info("dose.age_check", birth_date=_birth_date(k)),
        _birth_date,
    ),
    "phone": LeakPlan(
        "stolaf",
        "patient-greeter",
        lambda k: k.log.info("sms.reminder.queued", phone=_phone(k)),
        _phone,
    ),
    "email": LeakPlan(
        "mercy",
        "patient-greeter",
        lambda k: k.log.info("portal.invite", email=_email(k)),
        _email,
    ),
    "person_name": LeakPlan(
        "lakeside",
        "patient-greeter",
        lambda k: k.log.info("greeting.built", patient_name=_full_name(k)),
        _full_name,
    ),
    "street_address": LeakPlan(
        "northwind",
        "readmission-risk",
        lambda k: k.log.info("home.visit.check", street_address=_street(k)),
        _street,
    ),
    "fhir_resource": LeakPlan(
        "mercy",
        "drug-interactions",
        lambda k: k.log.debug("prefetch.received", prefetch=k.body["prefetch"]),
        _resource,
    ),
    "patient_id": LeakPlan(
        "stolaf",
        "sepsis-risk",
        lambda k: k.log.info("score.cached", patient_id=_patient_id(k)),
        _patient_id,
    ),
}
"""PHI leaks by kind: each a field the faulty release logs from the call's prefetch."""

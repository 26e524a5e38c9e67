"""The shape of normal traffic: when calls arrive, and what a CDS Hooks request carries.

Calls arrive as a Poisson process whose rate follows the working day of the hospitals
(local time UTC-5): about 8 % of the peak at night, the peak early in the afternoon.
Bodies are what EHRs send: the hook's required context, ``fhirServer`` with a short-lived
``fhirAuthorization`` (an opaque access token), and the ``patient`` prefetch.
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from pipelines.simulate.cast import EhrSpec, Patient, ServiceSpec

LOCAL_OFFSET: Final = timedelta(hours=-5)
"""The hospitals' local time zone (US Eastern, standard time)."""

_PEAK_HOUR: Final = 13.0
_SPREAD_HOURS: Final = 4.5
_NIGHT: Final = 0.12
_PEAK: Final = _NIGHT + 1.5
_MEDICATIONS: Final = (
    ("855332", "Warfarin Sodium 5 MG Oral Tablet"),
    ("198211", "Simvastatin 40 MG Oral Tablet"),
    ("197361", "Amlodipine 5 MG Oral Tablet"),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
    ("861007", "Metformin hydrochloride 500 MG Oral Tablet"),
    ("308136", "Amoxicillin 500 MG Oral Capsule"),
)


def diurnal(at: datetime) -> float:
    """The call rate at ``at`` as a share of the peak rate (0.08 at night, 1.0 at the peak)."""
    local = at + LOCAL_OFFSET
    hour = local.hour + local.minute / 60 + local.second / 3600
    return (_NIGHT + 1.5 * math.exp(-(((hour - _PEAK_HOUR) / _SPREAD_HOURS) ** 2))) / _PEAK


def arrivals(
    rng: random.Random, start: datetime, end: datetime, peak_rate: float
) -> Iterator[datetime]:
    """Arrival times of calls between ``start`` and ``end`` (thinning of a Poisson process)."""
    t = start.timestamp()
    stop = end.timestamp()
    while True:
        t += rng.expovariate(peak_rate)
        if t >= stop:
            return
        at = datetime.fromtimestamp(t, start.tzinfo)
        if rng.random() < diurnal(at):
            yield at


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``."""
    return str(UUID(int=rng.getrandbits(128), version=4))


def opaque_token(rng: random.Random) -> str:
    """An opaque OAuth access token (256 random bits, base64url), as FHIR servers issue them."""
    return base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode("ascii")


def hook_body(
    rng: random.Random,
    *,
    service: ServiceSpec,
    ehr: EhrSpec,
    patient: Patient,
    practitioner: str,
    prefetch: bool = True,
) -> dict[str, Any]:
    """A CDS Hooks request body for one call of ``service`` by ``ehr`` about ``patient``."""
    context: dict[str, Any] = {"userId": practitioner, "patientId": patient.id}
    if service.hook in {"encounter-start", "encounter-discharge", "patient-view"}:
        context["encounterId"] = f"enc-{rng.randrange(10**6, 10**7)}"
    if service.hook in {"order-select", "order-sign"}:
        code, display = rng.choice(_MEDICATIONS)
        order_id = f"mr-{rng.randrange(10**5, 10**6)}"
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {
                    "resource": {
                        "resourceType": "MedicationRequest",
                        "id": order_id,
                        "status": "draft",
                        "intent": "order",
                        "subject": {"reference": f"Patient/{patient.id}"},
                        "medicationCodeableConcept": {
                            "coding": [
                                {
                                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                    "code": code,
                                    "display": display,
                                }
                            ]
                        },
                    }
                }
            ],
        }
        if service.hook == "order-select":
            context["selections"] = [f"MedicationRequest/{order_id}"]
    body: dict[str, Any] = {
        "hook": service.hook,
        "hookInstance": new_uuid(rng),
        "fhirServer": ehr.fhir_server,
        "fhirAuthorization": {
            "access_token": opaque_token(rng),
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": " ".join(service.scopes),
            "subject": f"cds-{service.id}",
        },
        "context": context,
    }
    if prefetch:
        body["prefetch"] = {"patient": patient.resource()}
    return body

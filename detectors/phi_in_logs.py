"""The ``phi_in_logs`` detector: protected health information in logs.

Kinds (stable), each with the HIPAA Safe Harbor category (45 CFR 164.514(b)(2)) its
findings carry as ``safeguard``:

- ``ssn`` (G): SSA numbering rules (area, group, serial); FHIR ``us-ssn`` identifiers.
- ``mrn`` (H): next to "MRN" or "medical record"; FHIR ``identifier`` of type ``MR``.
- ``dob`` (C): by key or keyword, FHIR ``birthDate``; a timestamp alone is not a DOB.
- ``phone`` (D; fax E): NANP validity; FHIR ``telecom``.
- ``email`` (F): addresses (file names like ``icon@2x.png`` are not).
- ``person_name`` (A): FHIR ``HumanName``; after "patient", "name:" and name keys.
- ``street_address`` (B): FHIR ``Address``; number, street and suffix.
- ``fhir_resource`` (R; licences K, plans I, accounts J): a Patient, RelatedPerson,
  Person or Practitioner resource; a CDS Hooks ``prefetch``; other identifiers.
- ``patient_id`` (R): CDS Hooks ``context.patientId``, ``fhirAuthorization.patient``,
  ``Patient/<id>`` references, a Patient's ``id``.

Severity (`detectors.triage.phi_severity`): ``high`` for SSNs and whole person
resources or prefetch data; ``medium`` for one direct identifier; ``low`` for a patient's
resource id. Documentation values (SSN 078-05-1120, 555-01xx numbers) are not reported.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from auditor.models import Finding
from auditor.protocols import ScanContext
from auditor.vocabulary import DetectorName, PhiKind
from detectors.content import ContentConfig, ContentScanner


class PhiInLogsDetector:
    """Reports PHI in logs (an `auditor.protocols.ContentDetector`).

    Args:
        config: Shared content-detector configuration; only its PHI kinds are used.
    """

    name: ClassVar[DetectorName] = DetectorName.PHI_IN_LOGS
    __slots__ = ("scanner",)

    def __init__(self, config: ContentConfig | None = None) -> None:
        config = config or ContentConfig()
        self.scanner = ContentScanner(replace(config, kinds=config.kinds & frozenset(PhiKind)))

    def scan(self, content: object, context: ScanContext) -> list[Finding]:
        """Examine a parsed JSON value or a text line (see `ContentScanner.scan`)."""
        return self.scanner.scan(content, context)

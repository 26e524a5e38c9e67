"""The ``phi_in_logs`` detector: protected health information in logs.

Kinds (stable), each with the HIPAA Safe Harbor category (45 CFR 164.514(b)(2)) its
findings carry as ``safeguard``:

| kind | what | Safe Harbor |
|---|---|---|
| ``ssn`` | SSA numbering rules (area, group, serial); FHIR ``us-ssn`` identifiers | G |
| ``mrn`` | next to "MRN"/"medical record"; FHIR ``identifier`` of type ``MR`` | H |
| ``dob`` | by key or keyword, FHIR ``birthDate``; a timestamp alone is not a DOB | C |
| ``phone`` | NANP validity; FHIR ``telecom`` (fax: E) | D |
| ``email`` | addresses (file names like ``icon@2x.png`` are not) | F |
| ``person_name`` | FHIR ``HumanName``; after "patient", "name:" and name keys | A |
| ``street_address`` | FHIR ``Address``; number, street and suffix | B |
| ``fhir_resource`` | a Patient, RelatedPerson, Person or Practitioner resource; CDS Hooks ``prefetch``; other identifiers (licence I/K, account J) | R (or I, J, K) |
| ``patient_id`` | CDS Hooks ``context.patientId``, ``fhirAuthorization.patient``, ``Patient/<id>``, a Patient's ``id`` | R |

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

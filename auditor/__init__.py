"""CDS Hooks Auditor: the kernel that services embed.

The public API is what ``__all__`` lists; everything else is private.
"""

# First: decides whether the compiled modules match their source (auditor/_native.py).
from auditor import _native  # noqa: F401 - imported for that decision
from auditor.errors import (
    AuditorError,
    ConfigurationError,
    InputError,
    MissingExtraError,
    RejectedRecord,
    UnavailableError,
)
from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.models import AuthzEvent, Finding, finding_id
from auditor.redaction import Redactor, RedactorConfig
from auditor.vocabulary import (
    AuthzAction,
    DeadLetterReason,
    DetectorName,
    FailureReason,
    Outcome,
    PhiKind,
    ReviewAction,
    ReviewStatus,
    SafeHarbor,
    Severity,
    TokenKind,
)

__all__ = [
    "AuditorError",
    "AuthzAction",
    "AuthzEvent",
    "ConfigurationError",
    "DeadLetterReason",
    "DetectorName",
    "FailureReason",
    "Finding",
    "Fingerprinter",
    "InputError",
    "MissingExtraError",
    "Outcome",
    "PhiKind",
    "Redactor",
    "RedactorConfig",
    "RejectedRecord",
    "ReviewAction",
    "ReviewStatus",
    "SafeHarbor",
    "Severity",
    "TokenKind",
    "UnavailableError",
    "default_fingerprinter",
    "finding_id",
]

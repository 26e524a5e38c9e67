"""Names that reach storage, topics and other tools.

Every string here is a contract (STYLE.md, rule 6): it is written into DuckDB rows,
Kafka messages, SARIF and OCSF output. Renaming one is a migration, not a refactor.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How urgent a finding is, from informational to must-act-now."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order of the severity: ``info`` is 0, ``critical`` is 4."""
        return _SEVERITY_RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class DetectorName(StrEnum):
    """The stable names of the detectors."""

    LEAKED_TOKEN = "leaked_token"
    PHI_IN_LOGS = "phi_in_logs"
    REPLAY_BURST = "replay_burst"
    VALIDATION_ANOMALY = "validation_anomaly"
    POLICY = "policy"


class TokenKind(StrEnum):
    """Kinds of credential the ``leaked_token`` detector and the Redactor know."""

    JWT = "jwt"
    BEARER_TOKEN = "bearer_token"
    BASIC_AUTH = "basic_auth"
    URL_TOKEN = "url_token"
    PRIVATE_KEY = "private_key"
    PRIVATE_JWK = "private_jwk"
    CLIENT_SECRET = "client_secret"


class PhiKind(StrEnum):
    """Kinds of protected health information the ``phi_in_logs`` detector and the Redactor know."""

    SSN = "ssn"
    MRN = "mrn"
    DOB = "dob"
    PHONE = "phone"
    EMAIL = "email"
    PERSON_NAME = "person_name"
    STREET_ADDRESS = "street_address"
    FHIR_RESOURCE = "fhir_resource"
    PATIENT_ID = "patient_id"


class SafeHarbor(StrEnum):
    """HIPAA Safe Harbor identifier categories, 45 CFR §164.514(b)(2)(i)(A)-(R)."""

    NAMES = "A-names"
    GEOGRAPHIC = "B-geographic-subdivisions"
    DATES = "C-dates"
    PHONE = "D-telephone-numbers"
    FAX = "E-fax-numbers"
    EMAIL = "F-email-addresses"
    SSN = "G-social-security-numbers"
    MRN = "H-medical-record-numbers"
    HEALTH_PLAN = "I-health-plan-beneficiary-numbers"
    ACCOUNT = "J-account-numbers"
    LICENSE = "K-certificate-license-numbers"
    VEHICLE = "L-vehicle-identifiers"
    DEVICE = "M-device-identifiers"
    URL = "N-urls"
    IP = "O-ip-addresses"
    BIOMETRIC = "P-biometric-identifiers"
    PHOTO = "Q-full-face-photographs"
    OTHER_ID = "R-other-unique-identifiers"


class AuthzAction(StrEnum):
    """What an authz event records. Clients emit the first two; services the rest."""

    TOKEN_ISSUED = "token.issued"
    REQUEST_SENT = "request.sent"
    TOKEN_VALIDATED = "token.validated"
    TOKEN_REJECTED = "token.rejected"
    FHIR_ACCESS = "fhir.access"
    JWKS_FETCHED = "jwks.fetched"
    KEY_ROTATED = "key.rotated"
    ALLOWLIST_DENIED = "allowlist.denied"
    RATELIMIT_EXCEEDED = "ratelimit.exceeded"
    TLS_FAILED = "tls.failed"
    PAYLOAD_REJECTED = "payload.rejected"
    RESPONSE_SENT = "response.sent"


class Outcome(StrEnum):
    """Whether the recorded decision or operation succeeded."""

    SUCCESS = "success"
    FAILURE = "failure"


class FailureReason(StrEnum):
    """Why a token, request or fetch was refused. Precise, so detectors can tell attacks apart."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    IAT_IN_FUTURE = "iat_in_future"
    BAD_SIGNATURE = "bad_signature"
    AUD_MISMATCH = "aud_mismatch"
    UNKNOWN_ISSUER = "unknown_issuer"
    UNKNOWN_KID = "unknown_kid"
    ALG_NOT_ALLOWED = "alg_not_allowed"
    JKU_NOT_ALLOWED = "jku_not_allowed"
    TYP_INVALID = "typ_invalid"
    MISSING_CLAIM = "missing_claim"
    REPLAYED_JTI = "replayed_jti"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    MALFORMED = "malformed"
    MISSING_TOKEN = "missing_token"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_REQUEST = "invalid_request"
    FHIR_SERVER_NOT_ALLOWED = "fhir_server_not_allowed"
    SERVICE_NOT_ALLOWED = "service_not_allowed"
    RATE_LIMITED = "rate_limited"
    TLS_ERROR = "tls_error"
    JWKS_UNAVAILABLE = "jwks_unavailable"
    UNREACHABLE = "unreachable"
    INTERNAL_ERROR = "internal_error"
    REPLAY_CACHE_FULL = "replay_cache_full"
    """The replay cache is full of unexpired entries; the token is refused (fail closed)."""
    TIMEOUT = "timeout"
    """The peer accepted the connection but did not answer in time."""
    UNAUTHORIZED = "unauthorized"
    """A CDS client's call was refused by the service with 401 or 403."""
    SERVICE_ERROR = "service_error"
    """A CDS client's call got an error status the other reasons do not name (5xx, 404, 412)."""


class DeadLetterReason(StrEnum):
    """Why an input record was set aside instead of processed."""

    MALFORMED_JSON = "malformed_json"
    INVALID_UTF8 = "invalid_utf8"
    SCHEMA_VIOLATION = "schema_violation"
    OVERSIZED = "oversized"
    TOO_DEEP = "too_deep"
    PROCESSING_ERROR = "processing_error"


class ReviewAction(StrEnum):
    """What a reviewer did to a finding; one row of the append-only ``reviews`` table."""

    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    RESOLVE = "resolve"
    FALSE_POSITIVE = "false_positive"
    REOPEN = "reopen"
    COMMENT = "comment"


class ReviewStatus(StrEnum):
    """Where a finding stands in review, derived from its history (never stored)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


class RunMode(StrEnum):
    """How a pipeline run was fed: from Kafka topics or embedded over files or the simulator."""

    KAFKA = "kafka"
    EMBEDDED = "embedded"


class RunStatus(StrEnum):
    """The state of a pipeline run in the store's ``runs`` table."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class StreamKind(StrEnum):
    """Kinds of finding the stream detectors report (``Finding.kind``)."""

    JWT_REPLAY = "jwt_replay"
    AUDIENCE_MISUSE = "audience_misuse"
    TOKEN_LIFETIME = "token_lifetime"
    DETECTOR_CAPACITY = "detector_capacity"
    FAILURE_SPIKE = "failure_spike"
    NEW_FAILURE_REASON = "new_failure_reason"
    ATTACK_SIGNATURE = "attack_signature"
    CLOCK_SKEW = "clock_skew"
    EXPIRED_TOKEN_USE = "expired_token_use"
    POLICY_VIOLATION = "policy_violation"


class RuleBasis(StrEnum):
    """What a rule rests on: the difference between "the spec forbids it" and "we chose to".

    ``normative`` is a SHALL/MUST of the CDS Hooks specification; ``best_practice`` is the
    CDS Hooks best-practice page or a widely used security guide; ``local_policy`` is a
    rule the site adopts (e.g. SMART Backend Services limits applied to CDS Hooks);
    ``heuristic`` is a statistical detection with tunable thresholds.
    """

    NORMATIVE = "normative"
    BEST_PRACTICE = "best_practice"
    LOCAL_POLICY = "local_policy"
    HEURISTIC = "heuristic"


class ReplayRule(StrEnum):
    """Rule ids of the ``replay_burst`` detector."""

    JTI_REPLAY = "jti_replay"
    WRONG_AUDIENCE = "token_wrong_audience"
    LIFETIME_OVER_SMART_CAP = "lifetime_over_smart_cap"
    LIFETIME_OVER_BEST_PRACTICE = "lifetime_over_best_practice"
    JTI_TABLE_FULL = "jti_table_full"


class AnomalyRule(StrEnum):
    """Rule ids of the ``validation_anomaly`` detector."""

    FAILURE_RATE_SPIKE = "failure_rate_spike"
    NEW_FAILURE_REASON = "new_failure_reason"
    ATTACK_SIGNATURE = "attack_signature"
    CLOCK_SKEW_DRIFT = "clock_skew_drift"
    SUSTAINED_EXPIRED_TOKENS = "sustained_expired_tokens"


class PolicyRule(StrEnum):
    """Rule ids of the ``policy`` detector."""

    ALG_NONE_OR_HMAC = "alg_none_or_hmac"
    REQUIRED_FIELD_MISSING = "required_jwt_field_missing"
    TYP_NOT_JWT = "typ_not_jwt"
    AUD_NOT_ENDPOINT = "aud_not_endpoint"
    FHIR_SERVER_MISSING = "fhir_server_missing"
    FHIR_SERVER_NOT_HTTPS = "fhir_server_not_https"
    ALG_NOT_ALLOWED = "alg_not_allowed"
    ISSUER_NOT_ALLOWLISTED = "issuer_not_allowlisted"
    SERVICE_NOT_ALLOWLISTED = "service_not_allowlisted"
    FHIR_SERVER_NOT_ALLOWLISTED = "fhir_server_not_allowlisted"
    JKU_NOT_APPROVED = "jku_not_approved"
    SCOPE_TOO_BROAD = "scope_too_broad"
    TLS_BELOW_MINIMUM = "tls_below_minimum"
    TLS_FAILURE = "tls_failure"
    PAYLOAD_OVER_CAP = "payload_over_cap"
    RATE_LIMIT_BURST = "rate_limit_burst"
    REQUEST_RATE_EXCEEDED = "request_rate_exceeded"

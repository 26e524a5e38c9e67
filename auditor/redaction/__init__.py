"""Redaction inside services: the structlog processor and its configuration.

The stdlib ``logging`` adapters live in `auditor.redaction.stdlib`; the OpenTelemetry SDK
adapters in `auditor.redaction.otel` (extra ``otel``).
"""

from auditor.redaction.config import DEFAULT_ALLOW_KEYS, SAFE_JWT_FACTS, RedactorConfig
from auditor.redaction.redactor import Redaction, Redactor

__all__ = ["DEFAULT_ALLOW_KEYS", "SAFE_JWT_FACTS", "Redaction", "Redactor", "RedactorConfig"]

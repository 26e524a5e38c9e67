"""One error hierarchy for the whole auditor (STYLE.md, rule 7).

Messages never carry a token, key or PHI value: they name the field, the rule, the file
and line, or a fingerprint. Configuration errors stop start-up; input errors become exit
code 2 in the CLI; rejected records become dead letters with a reason.
"""

from __future__ import annotations

from auditor.vocabulary import DeadLetterReason


class AuditorError(Exception):
    """Base of every error the auditor raises on purpose."""


class ConfigurationError(AuditorError):
    """Bad configuration: stops start-up with a message that says what to fix."""


class InputError(AuditorError):
    """Input that cannot be read at all (missing file, permission, not a directory)."""


class UnavailableError(AuditorError):
    """A service the auditor depends on (a Kafka broker, a webhook) cannot be reached."""


class MissingExtraError(AuditorError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra: pip install 'cds-hooks-auditor[{extra}]'"
        )
        self.extra = extra


class RejectedRecord(AuditorError):
    """A record that cannot be processed; the pipeline turns it into a dead letter.

    Args:
        reason: The machine-readable reason.
        detail: A short description without any value from the record.
    """

    def __init__(self, reason: DeadLetterReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail

"""The Redactor for the standard ``logging`` module.

Two ways in, both with the same rules as the structlog processor:

- Apps that log through structlog and stdlib together: `processor_formatter` builds a
  structlog ``ProcessorFormatter`` whose foreign chain (records from plain ``logging``
  loggers) and final chain both run the Redactor.
- Apps that do not use structlog: `RedactingFilter`, a ``logging.Filter`` that redacts
  the message (after ``%`` formatting), its arguments, the exception and stack text, and
  attributes passed with ``extra=``. Attach it to the *handler*: filters on a logger do
  not see records propagated from its children.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import structlog

from auditor.redaction.redactor import Redactor

_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime"}
_FAILED: Final = "redaction failed"


class RedactingFilter(logging.Filter):
    """A ``logging.Filter`` that redacts records in place and never drops one.

    Args:
        redactor: The Redactor whose rules to apply (default: a default Redactor).
        name: As for ``logging.Filter``.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._redactor = redactor or Redactor()
        self.failures = 0
        """How many records redaction failed on (each was reduced to a bare message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record``; always keep it."""
        try:
            self._redact(record)
        except Exception:  # noqa: BLE001 - never raise into the caller's logging call
            self.failures += 1
            record.msg, record.args = _FAILED, None
            record.exc_info = record.exc_text = record.stack_info = None
            for key in set(vars(record)) - _STANDARD_ATTRS:
                delattr(record, key)
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        redactor = self._redactor
        if isinstance(record.msg, dict):
            # A structlog event dict on its way to a ProcessorFormatter: keep its shape.
            new, _ = redactor.redact(record.msg)
            record.msg = new
        else:
            message = record.getMessage()
            redacted = redactor.redact_text(message)
            if redacted is not message:
                record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact_text(record.stack_info)
        extra = {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS}
        if extra:
            new_extra, _ = redactor.redact(extra)
            if new_extra is not extra:
                vars(record).update(new_extra)  # type: ignore[call-overload]


def processor_formatter(
    redactor: Redactor,
    renderer: Any = None,
    *,
    pre_chain: Sequence[Any] = (),
) -> structlog.stdlib.ProcessorFormatter:
    """A ``ProcessorFormatter`` that redacts both structlog and plain ``logging`` records.

    Foreign records run ``pre_chain`` (e.g. ``add_log_level``, ``TimeStamper``), then
    ``ExtraAdder`` (so ``extra=`` attributes are redacted too), ``format_exc_info`` and the
    Redactor. Every record then runs the Redactor again before ``renderer``: cheap for a
    clean event, and it covers structlog loggers configured without the Redactor.

    Args:
        redactor: The Redactor.
        renderer: The final processor (default: ``JSONRenderer``).
        pre_chain: Processors for foreign records before redaction.
    """
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *pre_chain,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.format_exc_info,
            redactor,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redactor,
            renderer or structlog.processors.JSONRenderer(),
        ],
    )

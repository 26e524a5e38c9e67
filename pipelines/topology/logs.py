"""The pipeline's own logs: through its own Redactor, to stderr.

The auditor reads tokens and PHI all day; its own log must not become the leak it hunts.
Every structlog event of the pipeline, and every record of the libraries under it that log
through the standard ``logging`` module (kafka-python, the emitter), passes the Redactor
before it is rendered.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog

from auditor.redaction import Redactor
from auditor.redaction.stdlib import processor_formatter

LogFormat = Literal["json", "console"]


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is when a line is written (redirects, captures)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    redactor: Redactor,
    *,
    stream: TextIO | None = None,
    log_format: LogFormat = "json",
    level: int = logging.INFO,
) -> None:
    """Send structlog and ``logging`` output to ``stream`` (stderr), redacted.

    Called once by ``auditor run`` before anything logs; library code never calls it.
    """
    out: Any = stream or _CurrentStderr()
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        processor_formatter(
            redactor,
            renderer,
            pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    # kafka-python is chatty at INFO (every connection); its warnings are what matter.
    root.setLevel(logging.WARNING)


__all__ = ["LogFormat", "configure_logging"]

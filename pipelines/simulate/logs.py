"""Service log lines as real CDS services write them: structlog, redacted, JSON.

Each simulated process logs through a real structlog processor chain — log level,
timestamp (simulated), the ``auditor.Redactor``, then a last processor that hands the
event dict to the simulation's output instead of rendering it to stdout. A process whose
log configuration forgot the Redactor (the injected leaks) gets the same chain without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog
from structlog.typing import Processor

from auditor.fingerprints import Fingerprinter
from auditor.redaction import Redactor, RedactorConfig
from pipelines.simulate.clock import SimClock

LogWriter = Callable[[Mapping[str, Any]], None]
"""Where a finished log record goes (the simulation's output)."""


class _Timestamp:
    """structlog processor: the simulated time, in ``TimeStamper(fmt="iso", utc=True)`` form."""

    __slots__ = ("_clock",)

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict["timestamp"] = self._clock.iso()
        return event_dict


class _Deliver:
    """Last processor: hand the record to the output, then stop (nothing renders to stdout)."""

    __slots__ = ("_write",)

    def __init__(self, write: LogWriter) -> None:
        self._write = write

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        self._write(event_dict)
        raise structlog.DropEvent


def redactor(fingerprinter: Fingerprinter) -> Processor:
    """The ``auditor.Redactor`` a well-configured service puts in its chain."""
    return Redactor(RedactorConfig(fingerprinter=fingerprinter))


def process_logger(
    *,
    clock: SimClock,
    write: LogWriter,
    redaction: Processor | None,
    **context: Any,
) -> structlog.typing.FilteringBoundLogger:
    """A bound logger for one simulated process.

    Args:
        clock: Simulated time for the ``timestamp`` field.
        write: Where finished records go.
        redaction: The Redactor, or ``None`` for a process that forgot it.
        **context: Fields every line carries (``logger``, ``service``, ``instance`` ...).
    """
    processors: list[Processor] = [structlog.processors.add_log_level, _Timestamp(clock)]
    if redaction is not None:
        processors.append(redaction)
    processors.append(_Deliver(write))
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        None,
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(0),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    return logger.bind(**context)

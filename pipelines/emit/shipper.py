"""``LogShipper``: a structlog processor that ships each log event to the service-logs topic.

It must run **after** ``auditor.Redactor`` — it ships what it is given, so a token or PHI
value the Redactor has not removed yet would travel to Kafka — and before the renderer,
which turns the event dict into a string::

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        Redactor(...),                  # 1. redact
        LogShipper(emitter),            # 2. ship the redacted event
        structlog.processors.JSONRenderer(),  # 3. render for the local sink
    ])

It returns the event dict unchanged, so local logging goes on as before. Shipping never
blocks nor raises (``KafkaEmitter.emit_log``); events logged by the emitter's own worker
and by the Kafka client's threads are not shipped, so an outage does not feed itself.
"""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from typing import Any, Final

from pipelines.emit.emitter import KafkaEmitter

# Our worker and kafka-python's network thread ("<client_id>-network-thread"): their log
# lines describe the shipping itself.
_WORKER_PREFIX: Final = "auditor-emitter-"
_KAFKA_THREAD_SUFFIX: Final = "-network-thread"


class LogShipper:
    """structlog processor: ship the (redacted) event dict, return it unchanged.

    Args:
        emitter: Where records go (its logs topic).
        key_field: The event-dict key whose value becomes the Kafka key, so one client's
            records stay in order; ``client_iss`` by default. Records without it are
            spread over partitions.
        level_field: Added with the log method's name when the event has no level yet.
    """

    def __init__(
        self,
        emitter: KafkaEmitter,
        *,
        key_field: str = "client_iss",
        level_field: str = "level",
    ) -> None:
        self._emit = emitter.emit_log
        self._key_field = key_field
        self._level_field = level_field
        self._local = threading.local()

    def __call__(
        self, _logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Ship ``event_dict`` as a log record; return it as it was."""
        if getattr(self._local, "busy", False):
            return event_dict  # logged while shipping (the emitter warned): do not loop
        thread = threading.current_thread().name
        if thread.startswith(_WORKER_PREFIX) or thread.endswith(_KAFKA_THREAD_SUFFIX):
            return event_dict
        self._local.busy = True
        try:
            record: dict[str, Any] = dict(event_dict)
            record.setdefault("kind", "log")
            record.setdefault(self._level_field, method_name)
            key = record.get(self._key_field)
            self._emit(record, key=key if isinstance(key, str) else None)
        finally:
            self._local.busy = False
        return event_dict

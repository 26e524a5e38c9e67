"""``KafkaEmitter``: publishes authz events and log records from services without blocking.

The caller's thread only serializes the record (with the current W3C trace context as a
``traceparent`` header) and appends it to a bounded in-memory buffer; a background worker
owns the Kafka producer and everything that can block. The worker is in one of three
states:

``direct``
    Records go to Kafka (idempotent, ``acks=all``, compressed, batched), keyed by
    ``client.iss`` so one client's events stay in order on one partition.
``spooling``
    Kafka is unreachable (a send failed, or a record stayed unacknowledged for
    ``outage_after_s``): the producer is dropped, every unacknowledged record is written
    to the disk spool in the order it was sent, and so is everything after it. The worker
    retries the connection with exponential back-off up to ``reconnect_max_s``.
``draining``
    The broker answers again: the spool is sent in order, a chunk at a time, each
    chunk's acknowledgement committed before the next. New records keep going behind it
    into the spool until it is empty, so order is kept; then back to ``direct``.

Delivery is at-least-once: a record acknowledged just as the outage was declared, or a
chunk acknowledged just before a crash, is sent again. The event's ``event_id`` is the
dedupe key downstream. ``close()`` spools whatever Kafka has not acknowledged by its
deadline, and the next emitter on the same spool directory drains it.

Only the buffer can lose records, and only when it is full (the worker cannot keep up,
e.g. a slow disk while spooling): those are refused, counted (``dropped_buffer_full``) and
reported in the log at most every ``_WARN_EVERY_S`` seconds. The spool's own cap is
counted as ``dropped_spool_full``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from queue import Empty, SimpleQueue
from typing import Any, Final, Self

import orjson
from kafka import codec as kafka_codec
from kafka.errors import (
    InvalidRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from auditor.errors import ConfigurationError, UnavailableError
from auditor.models import AuthzEvent
from pipelines.emit.spool import DiskSpool, FsyncPolicy, OverflowPolicy, Record
from pipelines.kafka.clients import open_producer
from pipelines.settings import AuditorSettings

_log = logging.getLogger(__name__)
_WARN_EVERY_S: Final = 10.0
_DRAIN_CHUNK: Final = 2_000
_CONNECT_PROBE_S: Final = 1.0
_POLL_S: Final = 0.002
_IDLE_WAIT_S: Final = 0.1
_UNSENDABLE: Final = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidRecordError)
"""Errors that retrying cannot fix: the record is dropped and counted, not spooled."""
# W3C trace context only (traceparent, tracestate). Not baggage: it is free-form
# application data, and a secret never travels.
_PROPAGATOR: Final = TraceContextTextMapPropagator()


class EmitterState(StrEnum):
    """Where the worker is sending records (see the module docstring)."""

    STARTING = "starting"
    DIRECT = "direct"
    SPOOLING = "spooling"
    DRAINING = "draining"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """Counters of an emitter since it started, for self-telemetry.

    ``sent`` counts records Kafka acknowledged, directly or from the spool; ``drained`` the
    part of them that came from the spool; ``spooled`` the records written to the spool.
    """

    accepted: int
    sent: int
    spooled: int
    drained: int
    dropped_buffer_full: int
    dropped_spool_full: int
    dropped_unsendable: int
    dropped_unserializable: int
    dropped_closed: int
    buffered: int
    in_flight: int
    spool_records: int
    spool_bytes: int
    state: EmitterState

    @property
    def dropped(self) -> int:
        """Every record lost, whatever the reason."""
        return (
            self.dropped_buffer_full
            + self.dropped_spool_full
            + self.dropped_unsendable
            + self.dropped_unserializable
            + self.dropped_closed
        )


class KafkaEmitter:
    """Publishes ``AuthzEvent``s and log records to Kafka; an ``auditor.protocols.EventSink``.

    Create one per process (after forking, in pre-forking servers: the worker is a
    thread) and ``close()`` it at shutdown.

    Args:
        settings: Connection, topic names and the ``emitter`` section (buffer, spool,
            batching, compression).
        clock: Monotonic seconds, for the worker's timers.
        producer_options: Extra kafka-python producer options (they win over the
            emitter's own).

    Raises:
        ConfigurationError: The spool directory cannot be used.
    """

    def __init__(
        self,
        settings: AuditorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        **producer_options: Any,
    ) -> None:
        cfg = settings.emitter
        check_codec(cfg.compression)
        self.settings = settings
        self._authz_topic = settings.topics.authz.name
        self._logs_topic = settings.topics.logs.name
        self._capacity = cfg.buffer_records
        self._outage_after = cfg.outage_after_s
        self._reconnect_max = cfg.reconnect_max_s
        self._clock = clock
        self._producer_options: dict[str, Any] = {
            "compression_type": None if cfg.compression == "none" else cfg.compression,
            "linger_ms": cfg.linger_ms,
            "batch_size": cfg.batch_size,
            # The worker, not the caller, waits; keep its waits short so an outage is
            # noticed and spooled instead of piling up in the producer.
            "max_block_ms": 5_000,
            # kafka-python requires delivery > linger + request timeout.
            "delivery_timeout_ms": max(
                int(cfg.outage_after_s * 3_000),
                settings.kafka.request_timeout_ms + cfg.linger_ms + 1_000,
            ),
            "bootstrap_timeout_ms": min(settings.kafka.bootstrap_timeout_ms, 10_000),
            **producer_options,
        }
        self.spool_dir = cfg.resolved_spool_dir(settings.kafka.client_id)
        self._spool = DiskSpool(
            self.spool_dir,
            max_bytes=cfg.spool_max_bytes,
            segment_bytes=cfg.spool_segment_bytes,
            fsync=FsyncPolicy(cfg.fsync),
            fsync_interval_s=cfg.fsync_interval_s,
            overflow=OverflowPolicy(cfg.overflow),
            clock=clock,
        )
        self._buffer: deque[Record] = deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._closing = threading.Event()
        self._close_deadline = 0.0
        self._completions: SimpleQueue[tuple[int, BaseException | None]] = SimpleQueue()
        self._in_flight: dict[int, tuple[Record, float]] = {}
        """Records handed to the producer and not yet acknowledged, with the send time."""
        self._sleeping = False
        self._seq = 0
        self._producer: Any = None
        self._state = EmitterState.STARTING
        self._next_attempt = 0.0
        self._backoff = 0.5
        self._accepted = 0
        self._sent = 0
        self._spooled = 0
        self._drained = 0
        self._dropped_buffer = 0
        self._dropped_unsendable = 0
        self._dropped_unserializable = 0
        self._dropped_closed = 0
        self._warned_drops = 0
        self._last_warning = -_WARN_EVERY_S
        self._worker = threading.Thread(
            target=self._run, name=f"auditor-emitter-{settings.kafka.client_id}", daemon=True
        )
        self._worker.start()

    # -- the caller's side: never blocks, never raises --------------------------------

    def __call__(self, event: AuthzEvent) -> None:
        """Publish an authz event to the authz topic, keyed by ``client.iss``."""
        try:
            value = event.model_dump_json(exclude_none=True).encode()
            iss = event.client_iss
            key = iss.encode() if iss else None
        except Exception:  # noqa: BLE001 - the request path must never see our failure
            self._count_unserializable()
            return
        self._enqueue(Record(self._authz_topic, key, value, _trace_headers()))

    emit_event = __call__

    def emit_log(self, record: Mapping[str, Any], *, key: str | None = None) -> None:
        """Publish one (already redacted) log record to the service-logs topic.

        The record is serialized now, so the caller may change its dict afterwards.
        """
        try:
            value = _log_json(record)
        except Exception:  # noqa: BLE001 - as above: count it, never raise into the caller
            self._count_unserializable()
            return
        self._enqueue(
            Record(self._logs_topic, key.encode() if key else None, value, _trace_headers())
        )

    def _enqueue(self, record: Record) -> None:
        with self._lock:
            if self._closing.is_set():
                self._dropped_closed += 1
                return
            if len(self._buffer) >= self._capacity:
                self._dropped_buffer += 1
                return
            self._buffer.append(record)
            self._accepted += 1
            wake = self._sleeping and len(self._buffer) == 1
        # Under steady traffic the worker polls the buffer; only an idle worker needs a
        # signal, so the request path rarely pays for waking a thread.
        if wake:
            self._wakeup.set()

    def _count_unserializable(self) -> None:
        with self._lock:
            self._dropped_unserializable += 1

    # -- control -----------------------------------------------------------------------

    @property
    def state(self) -> EmitterState:
        """The worker's current state."""
        return self._state

    def stats(self) -> EmitterStats:
        """A snapshot of the counters (cheap; safe from any thread)."""
        return EmitterStats(
            accepted=self._accepted,
            sent=self._sent,
            spooled=self._spooled,
            drained=self._drained,
            dropped_buffer_full=self._dropped_buffer,
            dropped_spool_full=self._spool.dropped,
            dropped_unsendable=self._dropped_unsendable,
            dropped_unserializable=self._dropped_unserializable,
            dropped_closed=self._dropped_closed,
            buffered=len(self._buffer),
            in_flight=len(self._in_flight),
            spool_records=len(self._spool),
            spool_bytes=self._spool.pending_bytes,
            state=self._state,
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record accepted so far is acknowledged by Kafka.

        Returns:
            ``True`` when nothing is buffered, in flight or spooled; ``False`` on timeout
            (for example while the broker is down: the records are safe in the spool).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle():
                return True
            self._wakeup.set()
            time.sleep(0.005)
        return self._idle()

    def close(self, timeout: float = 10.0) -> None:
        """Send what can be sent within ``timeout`` seconds, spool the rest, stop the worker.

        Records still unacknowledged at the deadline are in the spool when this returns;
        an emitter opened later on the same spool directory sends them.
        """
        if self._state is EmitterState.CLOSED:
            return
        self._close_deadline = self._clock() + timeout
        with self._lock:  # an emit racing with close is either buffered or counted
            self._closing.set()
        self._wakeup.set()
        self._worker.join(timeout + 5.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _idle(self) -> bool:
        return (
            not self._buffer
            and not self._in_flight
            and len(self._spool) == 0
            and self._state is EmitterState.DIRECT
        )

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._connect()
            while not self._closing.is_set():
                self._pause()
                self._step()
            self._shutdown()
        except Exception:  # noqa: BLE001 - logged; a bug of ours must not lose records
            # Keep what was accepted on disk; the next emitter sends it.
            _log.exception("emitter worker failed; spooling what is buffered")
            self._abandon_producer()
            self._spool_records(self._take_all())
        finally:
            self._spool.close()
            self._state = EmitterState.CLOSED

    def _pause(self) -> None:
        if self._buffer or self._in_flight or self._state is EmitterState.DRAINING:
            time.sleep(_POLL_S)  # busy: poll, letting records accumulate into a batch
            return
        self._sleeping = True
        if not self._buffer:  # re-checked after the flag: a record cannot slip past
            self._wakeup.wait(_IDLE_WAIT_S)
        self._wakeup.clear()
        self._sleeping = False

    def _step(self) -> None:
        self._handle_completions()
        batch = self._take_all()
        if self._state is EmitterState.DIRECT:
            self._send_direct(batch)
            if self._outage_suspected():
                self._enter_spooling("no acknowledgement from Kafka")
        else:
            self._spool_records(batch)
            if self._state is EmitterState.SPOOLING and self._clock() >= self._next_attempt:
                self._connect()
            if self._state is EmitterState.DRAINING:
                self._drain_chunk()
        self._spool.sync_if_due()
        self._warn_drops()

    def _take_all(self) -> list[Record]:
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
        return batch

    def _send_direct(self, batch: list[Record]) -> None:
        for index, record in enumerate(batch):
            if self._state is not EmitterState.DIRECT:
                self._spool_records(batch[index:])
                return
            self._seq += 1
            seq = self._seq
            self._in_flight[seq] = (record, self._clock())
            try:
                future = self._producer.send(
                    record.topic, value=record.value, key=record.key, headers=list(record.headers)
                )
            except _UNSENDABLE:
                self._forget(seq)
                self._dropped_unsendable += 1
                continue
            except KafkaError:
                # Metadata or buffer space did not come within max_block_ms: an outage.
                self._enter_spooling("the producer could not accept a record")
                continue
            future.add_both(self._completed, seq)

    def _completed(self, seq: int, outcome: object) -> None:
        # Runs on kafka-python's network thread: hand over, decide on the worker.
        error = outcome if isinstance(outcome, BaseException) else None
        self._completions.put((seq, error))

    def _handle_completions(self) -> None:
        failure = False
        while True:
            try:
                seq, error = self._completions.get_nowait()
            except Empty:
                break
            if seq not in self._in_flight:
                continue  # settled already (spooled when the outage was declared)
            if error is None:
                self._forget(seq)
                self._sent += 1
            elif isinstance(error, _UNSENDABLE):
                self._forget(seq)
                self._dropped_unsendable += 1
            else:
                failure = True
        if failure and self._state is EmitterState.DIRECT:
            self._enter_spooling("Kafka reported a delivery failure")

    def _forget(self, seq: int) -> None:
        del self._in_flight[seq]

    def _outage_suspected(self) -> bool:
        if not self._in_flight:
            return False
        _record, oldest = next(iter(self._in_flight.values()))  # dicts keep send order
        return self._clock() - oldest > self._outage_after

    def _enter_spooling(self, why: str) -> None:
        self._abandon_producer()
        self._handle_completions_after_abandon()
        unacked = [record for record, _sent in self._in_flight.values()]
        self._in_flight.clear()
        self._state = EmitterState.SPOOLING
        self._spool_records(unacked)
        self._schedule_reconnect()
        _log.warning(
            "Kafka unavailable (%s); spooling records to %s (%d spooled so far)",
            why,
            self.spool_dir,
            len(self._spool),
        )

    def _handle_completions_after_abandon(self) -> None:
        # Acknowledgements that arrived before the producer was dropped still count.
        while True:
            try:
                seq, error = self._completions.get_nowait()
            except Empty:
                return
            if error is None and seq in self._in_flight:
                self._forget(seq)
                self._sent += 1

    def _spool_records(self, records: list[Record]) -> None:
        if records:
            self._spooled += self._spool.append(records)

    def _connect(self) -> None:
        """Open a producer if a bootstrap server answers; otherwise stay spooling."""
        if not self._any_server_listening():
            self._not_connected()
            return
        try:
            self._producer = open_producer(self.settings, **self._producer_options)
        except UnavailableError:
            self._not_connected()
            return
        except ConfigurationError:
            # Records stay safe in the spool until the configuration is fixed.
            _log.exception("the emitter's Kafka producer options are invalid; spooling")
            self._not_connected()
            return
        self._backoff = 0.5
        was = self._state
        self._state = EmitterState.DRAINING if len(self._spool) else EmitterState.DIRECT
        if was is EmitterState.SPOOLING:
            _log.warning("Kafka reachable again; draining %d spooled records", len(self._spool))

    def _not_connected(self) -> None:
        if self._state is EmitterState.STARTING:
            _log.warning("Kafka unreachable at start; spooling records to %s", self.spool_dir)
        self._state = EmitterState.SPOOLING
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self._next_attempt = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self._reconnect_max)

    def _any_server_listening(self) -> bool:
        # A cheap TCP check first: a full bootstrap against a dead address blocks the
        # worker for seconds while the buffer fills.
        for server in self.settings.kafka.bootstrap_servers:
            host, _, port = server.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=_CONNECT_PROBE_S).close()
            except OSError:
                continue
            return True
        return False

    def _drain_chunk(self) -> None:
        records, position = self._spool.read(_DRAIN_CHUNK)
        if position is None:
            self._state = EmitterState.DIRECT
            _log.warning("spool drained; sending directly again")
            return
        futures = []
        unsendable = 0
        try:
            for record in records:
                try:
                    futures.append(
                        self._producer.send(
                            record.topic,
                            value=record.value,
                            key=record.key,
                            headers=list(record.headers),
                        )
                    )
                except _UNSENDABLE:
                    unsendable += 1
            self._producer.flush(timeout=self._outage_after)
        except KafkaError:
            self._enter_spooling("draining the spool failed")
            return
        for future in futures:
            if future.failed() and isinstance(future.exception, _UNSENDABLE):
                unsendable += 1
            elif not future.succeeded():
                self._enter_spooling("draining the spool failed")
                return
        self._spool.commit(position)
        self._dropped_unsendable += unsendable
        self._drained += len(records) - unsendable
        self._sent += len(records) - unsendable

    def _abandon_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=0)
        except KafkaError:
            # kafka-python's close() flushes before it force-closes, and a zero-timeout
            # flush of undeliverable batches raises; force its sender thread down so it
            # stops retrying (its pending batches fail, and those records are spooled).
            producer._sender.force_close()  # noqa: SLF001 - no public force-close

    def _shutdown(self) -> None:
        """Send what the deadline allows; spool everything else."""
        remaining = self._take_all()
        if self._state is EmitterState.DIRECT:
            self._send_direct(remaining)
            while self._in_flight and self._clock() < self._close_deadline:
                time.sleep(0.005)
                self._handle_completions()  # may declare an outage and spool them

        else:
            self._spool_records(remaining)
        self._abandon_producer()
        self._handle_completions_after_abandon()
        leftover = [record for record, _sent in self._in_flight.values()]
        self._in_flight.clear()
        self._spool_records(leftover + self._take_all())
        if len(self._spool):
            _log.warning(
                "emitter closed with %d records spooled in %s; they are sent on next start",
                len(self._spool),
                self.spool_dir,
            )

    def _warn_drops(self) -> None:
        dropped = self._dropped_buffer + self._spool.dropped
        now = self._clock()
        if dropped > self._warned_drops and now - self._last_warning >= _WARN_EVERY_S:
            _log.warning(
                "emitter dropped %d records (buffer full: %d, spool full: %d)",
                dropped - self._warned_drops,
                self._dropped_buffer,
                self._spool.dropped,
            )
            self._warned_drops = dropped
            self._last_warning = now


def check_codec(codec: str) -> None:
    """Fail at start-up when kafka-python cannot use ``codec`` (its package is missing).

    Raises:
        ConfigurationError: Naming the package to install.
    """
    available = {
        "none": True,
        "gzip": kafka_codec.has_gzip(),
        "snappy": kafka_codec.has_snappy(),
        "lz4": kafka_codec.has_lz4(),
        "zstd": kafka_codec.has_zstd(),
    }
    packages = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}
    if not available.get(codec, False):
        raise ConfigurationError(
            f"compression {codec!r} needs the Python package {packages.get(codec, codec)!r}"
        )


def instrument(emitter: KafkaEmitter, meter: Meter) -> None:
    """Report an emitter's counters as OpenTelemetry observable instruments.

    Counters ``auditor.emitter.sent``, ``.spooled``, ``.drained``, ``.dropped`` (attribute
    ``reason``: buffer_full, spool_full, unsendable, unserializable, closed) and gauges
    ``auditor.emitter.buffered``, ``.spool.records``, ``.spool.bytes``. Attributes are a
    fixed small set: never a value from a record.
    """

    def observe(*fields: str, **attributes: str) -> Callable[[CallbackOptions], list[Observation]]:
        def callback(_options: CallbackOptions) -> list[Observation]:
            stats = emitter.stats()
            return [Observation(sum(getattr(stats, f) for f in fields), attributes)]

        return callback

    unit = "{record}"
    for name in ("sent", "spooled", "drained"):
        meter.create_observable_counter(
            f"auditor.emitter.{name}", callbacks=[observe(name)], unit=unit
        )
    meter.create_observable_counter(
        "auditor.emitter.dropped",
        callbacks=[
            observe(f"dropped_{reason}", reason=reason)
            for reason in ("buffer_full", "spool_full", "unsendable", "unserializable", "closed")
        ],
        unit=unit,
        description="Records lost, by reason.",
    )
    meter.create_observable_gauge(
        "auditor.emitter.buffered", callbacks=[observe("buffered")], unit=unit
    )
    meter.create_observable_gauge(
        "auditor.emitter.spool.records", callbacks=[observe("spool_records")], unit=unit
    )
    meter.create_observable_gauge(
        "auditor.emitter.spool.bytes", callbacks=[observe("spool_bytes")], unit="By"
    )


def _trace_headers() -> tuple[tuple[str, bytes], ...]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if not carrier:
        return ()
    return tuple((name, value.encode()) for name, value in carrier.items())


def _log_json(record: Mapping[str, Any]) -> bytes:
    """The record as JSON; integers past 64 bits (orjson refuses them) by the stdlib."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(record, default=str, separators=(",", ":")).encode()

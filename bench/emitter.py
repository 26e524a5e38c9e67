"""The emitter for services, measured against baselines taken in the same run.

Needs a broker: ``scripts/kafka start`` (or ``--kafka HOST:PORT``). Prints:

1. The caller's cost per event (p50/p99 microseconds) of ``emitter(event)`` against the
   bare serialization it must do anyway (``model_dump_json``), and against calling
   kafka-python's ``send`` on the request path; then the same calls while the broker is
   unreachable, where ``send`` blocks for its ``max_block_ms``.
2. Throughput to broker acknowledgement: the emitter against a bare producer sending the
   same pre-serialized records.
3. Compression codecs kafka-python supports here: throughput and compression ratio.
4. The disk spool: append and drain rates.

Usage: ``.venv/bin/python bench/emitter.py [--kafka 127.0.0.1:19092] [--events 20000]``
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditor import AuthzEvent
from pipelines.emit import DiskSpool, FsyncPolicy, KafkaEmitter, Record
from pipelines.kafka import ensure_topics, open_producer
from pipelines.kafka.broker import probe_metadata
from pipelines.settings import AuditorSettings, TopicSpec, TopicsSettings


def make_events(count: int) -> list[AuthzEvent]:
    """Realistic service-side validation events (~600 bytes of JSON each)."""
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    events = []
    for n in range(count):
        iss = f"https://ehr-{n % 12}.hospital.example.org/fhir/auth"
        events.append(
            AuthzEvent.model_validate(
                {
                    "event_id": str(uuid.uuid4()),
                    "time": start + timedelta(milliseconds=7 * n),
                    "source": {"role": "service", "name": "cds-med-check", "instance": "pod-3"},
                    "action": "token.validated",
                    "outcome": "success",
                    "http_status": 200,
                    "client": {"iss": iss, "tenant": f"t{n % 5}"},
                    "service": {
                        "id": "med-check",
                        "url": "https://cds.example.com/cds-services/med-check",
                    },
                    "token": {
                        "jti": str(uuid.uuid4()),
                        "kid": f"key-{n % 3}",
                        "alg": "ES384",
                        "typ": "JWT",
                        "iat": 1_795_000_000 + n,
                        "exp": 1_795_000_300 + n,
                        "aud": "https://cds.example.com/cds-services/med-check",
                        "fingerprint": f"k0a1b2c3d:{uuid.uuid4().hex}",
                    },
                    "hook": "order-sign",
                    "hook_instance": str(uuid.uuid4()),
                    "fhir_server": "https://fhir.hospital.example.org/r4",
                    "scopes": ["user/Patient.read", "user/MedicationRequest.read"],
                    "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"},
                    "peer": {"ip": "10.20.30.40"},
                }
            )
        )
    return events


def settings_for(bootstrap: str, spool: Path, **emitter: object) -> AuditorSettings:
    """Settings with bench-only topics (recreated each run) and a private spool."""
    stem = f"bench.emitter.{uuid.uuid4().hex[:6]}"
    spec = {"partitions": 6, "retention_ms": 600_000}
    topics = TopicsSettings(
        authz=TopicSpec(name=f"{stem}.authz", **spec),
        logs=TopicSpec(name=f"{stem}.logs", **spec),
        findings=TopicSpec(name=f"{stem}.findings", **spec),
        alerts=TopicSpec(name=f"{stem}.alerts", **spec),
        deadletters=TopicSpec(name=f"{stem}.deadletters", **spec),
    )
    return AuditorSettings(
        kafka={"bootstrap_servers": bootstrap},
        topics=topics,
        emitter={"spool_dir": spool, "buffer_records": 100_000, **emitter},
    )


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    ordered = sorted(samples)
    return (
        statistics.median(ordered) * 1e6,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
    )


def caller_cost(settings: AuditorSettings, events: list[AuthzEvent]) -> None:
    """Section 1: what the request path pays per event."""
    sample = events[:5_000]
    serialize = []
    for event in sample:
        t0 = time.perf_counter()
        event.model_dump_json(exclude_none=True).encode()
        serialize.append(time.perf_counter() - t0)

    emit = []
    with KafkaEmitter(settings) as emitter:
        emitter.flush(10)
        for event in sample:
            t0 = time.perf_counter()
            emitter(event)
            emit.append(time.perf_counter() - t0)
            time.sleep(0.0002)  # a request path, not a tight loop
        emitter.flush(30)

    producer = open_producer(settings)
    direct = []
    topic = settings.topics.authz.name
    for event in sample:
        t0 = time.perf_counter()
        producer.send(topic, value=event.model_dump_json().encode(), key=event.client_iss.encode())
        direct.append(time.perf_counter() - t0)
        time.sleep(0.0002)
    producer.flush(30)
    producer.close()

    base50, base99 = percentiles(serialize)
    print("1. caller's cost per event (broker up), microseconds")
    print(f"   serialize only (baseline)      p50 {base50:7.1f}  p99 {base99:8.1f}")
    for name, samples in (("emitter(event)", emit), ("producer.send on request path", direct)):
        p50, p99 = percentiles(samples)
        print(
            f"   {name:30s} p50 {p50:7.1f}  p99 {p99:8.1f}   "
            f"(x{p50 / base50:.1f} / x{p99 / base99:.1f} of baseline)"
        )


def caller_cost_in_outage(tmp: Path, events: list[AuthzEvent]) -> None:
    """Section 1b: the same calls with the broker unreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    settings = settings_for(dead, tmp / "spool-outage")
    sample = events[:2_000]
    emit = []
    with KafkaEmitter(settings) as emitter:
        for event in sample:
            t0 = time.perf_counter()
            emitter(event)
            emit.append(time.perf_counter() - t0)
            time.sleep(0.0002)
        deadline = time.monotonic() + 30
        while emitter.stats().spooled < len(sample) and time.monotonic() < deadline:
            time.sleep(0.05)
        spooled = emitter.stats().spooled
    p50, p99 = percentiles(emit)
    print("   broker unreachable:")
    print(
        f"   {'emitter(event)':30s} p50 {p50:7.1f}  p99 {p99:8.1f}   "
        f"({spooled}/{len(sample)} events spooled to disk)"
    )
    # A producer cannot even be created without a broker: a service that sends on its
    # request path blocks for the bootstrap timeout, then for max_block_ms on each send.
    t0 = time.perf_counter()
    try:
        open_producer(settings, bootstrap_timeout_ms=1_000)
    except Exception:  # noqa: BLE001 - the point is how long it takes to fail
        blocked = time.perf_counter() - t0
    print(
        f"   {'producer (bootstrap 1 s)':30s} one call blocked {blocked * 1e6:,.0f} us "
        "before failing"
    )


def throughput(settings: AuditorSettings, events: list[AuthzEvent]) -> None:
    """Section 2: events per second to broker acknowledgement."""
    values = [
        (e.model_dump_json(exclude_none=True).encode(), e.client_iss.encode()) for e in events
    ]
    producer = open_producer(settings)
    topic = settings.topics.authz.name
    t0 = time.perf_counter()
    for value, key in values:
        producer.send(topic, value=value, key=key)
    producer.flush(60)
    bare = len(values) / (time.perf_counter() - t0)
    producer.close()

    with KafkaEmitter(settings) as emitter:
        emitter.flush(10)
        t0 = time.perf_counter()
        for event in events:
            emitter(event)
        emitter.flush(120)
        rate = len(events) / (time.perf_counter() - t0)
        dropped = emitter.stats().dropped
    print("2. throughput to acknowledgement (acks=all, idempotent, zstd)")
    print(f"   bare producer, pre-serialized (baseline) {bare:9,.0f} events/s")
    print(
        f"   emitter, serializing                     {rate:9,.0f} events/s   "
        f"(x{rate / bare:.2f}; dropped {dropped})"
    )


def compression(settings: AuditorSettings, events: list[AuthzEvent]) -> None:
    """Section 3: codecs, throughput and compression ratio."""
    values = [
        (e.model_dump_json(exclude_none=True).encode(), e.client_iss.encode()) for e in events
    ]
    print("3. compression (bare producer, same records)")
    baseline = None
    for codec in (None, "gzip", "snappy", "lz4", "zstd"):
        try:
            producer = open_producer(settings, compression_type=codec, linger_ms=5)
        except Exception as exc:  # noqa: BLE001 - a codec whose library is missing
            print(f"   {codec!s:7s} unavailable: {type(exc).__name__}")
            continue
        topic = settings.topics.logs.name
        t0 = time.perf_counter()
        for value, key in values:
            producer.send(topic, value=value, key=key)
        producer.flush(60)
        rate = len(values) / (time.perf_counter() - t0)
        metrics = producer.metrics().get("producer-metrics", {})
        ratio = metrics.get("compression-rate-avg", 1.0) or 1.0
        producer.close()
        baseline = baseline or rate
        print(
            f"   {codec!s:7s} {rate:9,.0f} records/s (x{rate / baseline:.2f})   "
            f"compressed/raw {ratio:.2f}"
        )


def codec_speed(events: list[AuthzEvent]) -> None:
    """Section 3b: each codec alone on 64 KiB batches (best of 5 runs; CPU only)."""
    from kafka import codec

    batch = b"".join(e.model_dump_json(exclude_none=True).encode() for e in events[:400])
    batch = batch[: 64 << 10]
    encoders = {
        "gzip": (codec.has_gzip, codec.gzip_encode),
        "snappy": (codec.has_snappy, codec.snappy_encode),
        "lz4": (codec.has_lz4, codec.lz4_encode),
        "zstd": (codec.has_zstd, codec.zstd_encode),
    }
    print("   codec alone on 64 KiB batches (best of 5):")
    for name, (available, encode) in encoders.items():
        if not available():
            print(f"   {name:7s} unavailable (pip install its package to compare)")
            continue
        best = min(_time_encode(encode, batch) for _ in range(5))
        ratio = len(encode(batch)) / len(batch)
        print(f"   {name:7s} {len(batch) * 20 / best / 1e6:8.1f} MB/s   compressed/raw {ratio:.2f}")


def _time_encode(encode: Callable[[bytes], bytes], batch: bytes) -> float:
    t0 = time.perf_counter()
    for _ in range(20):
        encode(batch)
    return time.perf_counter() - t0


def spool_rates(tmp: Path, events: list[AuthzEvent]) -> None:
    """Section 4: the disk spool."""
    records = [
        Record("cds.authz", e.client_iss.encode(), e.model_dump_json(exclude_none=True).encode())
        for e in events
    ]
    print("4. disk spool (batches of 500; fsync every second)")
    spool = DiskSpool(tmp / "spool-bench", fsync=FsyncPolicy.INTERVAL)
    t0 = time.perf_counter()
    for start in range(0, len(records), 500):
        spool.append(records[start : start + 500])
    append = len(records) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    drained = 0
    while True:
        batch, position = spool.read(2_000)
        if position is None:
            break
        drained += len(batch)
        spool.commit(position)
    drain = drained / (time.perf_counter() - t0)
    spool.close()
    print(f"   append {append:9,.0f} records/s   read+commit {drain:9,.0f} records/s")


def main() -> int:
    """Run every section and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    host, _, port = args.kafka.rpartition(":")
    if not probe_metadata(host, int(port)):
        sys.stderr.write(f"no Kafka broker at {args.kafka}: run scripts/kafka start\n")
        return 2
    events = make_events(args.events)
    with tempfile.TemporaryDirectory(prefix="bench-emitter-") as tmp_name:
        tmp = Path(tmp_name)
        settings = settings_for(args.kafka, tmp / "spool")
        ensure_topics(settings)
        caller_cost(settings, events)
        caller_cost_in_outage(tmp, events)
        throughput(settings, events)
        compression(settings, events)
        codec_speed(events)
        spool_rates(tmp, events)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End-to-end speed of ``auditor run``, with baselines measured in the same run.

    .venv/bin/python bench/pipeline.py [--events N] [--kafka HOST:PORT | --skip-kafka]
                                       [--rate R] [--seconds S] [--partitions P]

Corpus: CDS Hooks calls of 20 EHR clients to 8 services (``token.issued``,
``request.sent``, ``token.validated``; ~3% failures, replays and policy violations,
arrival shuffled within a second — bench/stream_detectors.py's mix) as JSON lines with
``"kind": "authz"``, and one structlog record of a CDS service per ten events (bench/
corpus.py's, 2% with a planted token or PHI value).

1. **Embedded** (``run_embedded`` over a file): records/s of wall time, with the store
   stage on a thread of the run (``store_process="never"``) and in a process of its own
   (``"always"``); and with a store stage that drops what it is handed, the ceiling that
   the reader and the detect stage set.
   Baseline: decoding the same lines and nothing else (``AuthzEvent.model_validate_json``
   for events, ``orjson.loads`` for logs), CPU time, best of three.
   Then the reader and the detect stage (the store dropping what it is handed) under two
   policies of the cyclic garbage collector, alternating, best of three: the automatic
   collector with thresholds of 50,000 (the policy before), and ``paced_collector`` (off,
   a full pass every 30 s): the ratio of their main thread's CPU time.
   Also the CPU seconds of each thread of the run (the main thread: reader and detect
   stage; the store thread; the rest: DuckDB's workers, telemetry), of the store process,
   and the cores busy on average — with a store thread, the run is bound by the GIL-held
   work of the first two.
   Then the detect stage alone (no transport) over Kafka-shaped chunks, with its msgspec
   fast path and without it (pydantic validating every event), CPU time, best of three:
   the ratio of the two. And the store stage's work per authz record before DuckDB
   (decode, redact, the JSON it stores), with and without the same fast path.
2. **Through Kafka** (a real broker: ``--kafka``, or one started here on free ports):
   a backlog of ``--events`` records on the authz and logs topics, then
   - baselines: the producer's rate filling the backlog, and a bare consumer reading it;
   - ``auditor run --kafka --stage detect`` as one process, then as two in one group: the
     rate at which the group's committed offsets move (10% to 90% of the backlog);
   - ``--stage store`` alone over the same backlog (and the findings, dead letters and
     alerts the detect runs produced): the rate at which its authz offsets in DuckDB move;
   - latency: ``auditor run --kafka --db`` while a producer sends ``--rate`` events/s
     for ``--seconds``, events stamped with the time they are sent; one in a hundred is
     signed ``none`` by a new client, so the ``policy`` detector opens a finding for it.
     Latency is the finding's ``first_stored_at`` (the DuckDB commit) minus its
     ``observed_at`` (the event's send time); the runtime holds events back by its
     allowed lateness (``--lateness``, 0.5 s here), which is part of the figure.

Times drift by a third between runs on a shared 2-core machine: compare the ratios. The
last lines are ``name value`` pairs.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from corpus import CorpusBuilder  # noqa: E402 - the bench folder is put on the path above
from stream_detectors import realistic_mix  # noqa: E402

from auditor.models import AuthzEvent  # noqa: E402
from pipelines.kafka import ensure_topics, open_admin, open_consumer, open_producer  # noqa: E402
from pipelines.settings import AuditorSettings, PipelineSettings, TopicSpec  # noqa: E402
from pipelines.topology import run_embedded  # noqa: E402
from pipelines.topology.collector import COLLECT_EVERY_S  # noqa: E402

KEY = "bench-pipeline-fingerprint-key-0123"
FIGURES: dict[str, float] = {}


def say(text: str) -> None:
    """Print a line at once (the bench runs for minutes)."""
    print(text, flush=True)


def figure(name: str, value: float, text: str) -> None:
    """Keep a figure for the summary and print its line."""
    FIGURES[name] = value
    say(f"  {text}")


# -- corpus ------------------------------------------------------------------------------


def corpus(records: int, seed: int) -> list[bytes]:
    """Authz events and service log lines, interleaved, ``records`` in all."""
    calls = int(records * 0.91 / 3)
    events = realistic_mix(calls, seed)
    lines = [e.model_dump_json(exclude_none=True).encode() for e in events]
    logs = CorpusBuilder(seed).build(max(records - len(lines), 0), planted_share=0.02)
    rng = random.Random(seed)
    for event in logs:
        record = {"timestamp": "2026-11-28T08:00:00Z", "level": "info", "event": event.event}
        line = orjson.dumps({**record, **event.kw}, default=str)
        lines.insert(rng.randrange(len(lines) + 1), line)
    return lines[:records]


def cpu_best(action: Callable[[], object], repeat: int = 3) -> float:
    """The best CPU time of ``repeat`` runs of ``action``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return best


# -- embedded ----------------------------------------------------------------------------


class ThreadClock:
    """CPU seconds of this process's threads by name while a block runs (Linux ``/proc``).

    A thread's CPU time is only readable while it lives, so a sampler reads every thread's
    ``/proc/self/task/<id>/stat`` ten times a second and keeps the last value of each.
    """

    def __init__(self) -> None:
        self._cpu: dict[int, float] = {}
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._run, name="bench-thread-clock", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __enter__(self) -> Self:
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._sampler.join()
        self._sample()

    def seconds(self, name: str) -> float | None:
        """CPU seconds of the threads called ``name``; ``None`` when none was seen."""
        ids = [tid for tid, seen in self._names.items() if seen == name]
        return sum(self._cpu.get(tid, 0.0) for tid in ids) if ids else None

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def _sample(self) -> None:
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self._names[thread.native_id] = thread.name
        try:
            tasks = list(Path("/proc/self/task").iterdir())
        except OSError:
            return  # not Linux: no figure by thread
        for task in tasks:
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue  # the thread ended meanwhile
            fields = stat[stat.rindex(")") + 2 :].split()
            self._cpu[int(task.name)] = (int(fields[11]) + int(fields[12])) / self._tick


def embedded(lines: list[bytes], scratch: Path) -> None:
    """``run_embedded`` over the corpus, against decoding it alone."""
    say(f"\nembedded: {len(lines):,} records through run_embedded")
    authz = [line for line in lines if b'"kind":"authz"' in line]
    logs = [line for line in lines if b'"kind":"authz"' not in line]

    def decode() -> None:
        for line in authz:
            AuthzEvent.model_validate_json(line)
        for line in logs:
            orjson.loads(line)

    baseline = len(lines) / cpu_best(decode)
    figure(
        "decode_baseline_per_s",
        baseline,
        f"baseline, decoding only: {baseline:,.0f} records/s (CPU)",
    )
    source = scratch / "corpus.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in lines))
    rates: dict[str, float] = {}
    for mode, label in (("never", "store thread"), ("always", "store process")):
        rates[mode] = embedded_run(source, scratch / f"embedded-{mode}.duckdb", mode, label)
    FIGURES["embedded_per_s"] = max(rates.values())
    ceiling = reader_and_detect(source, scratch / "embedded-dropped.duckdb")
    figure(
        "embedded_ceiling_per_s",
        ceiling,
        f"the reader and the detect stage alone (what they hand the store dropped): "
        f"{ceiling:,.0f} records/s of wall time",
    )
    collector(source, scratch)
    figure(
        "embedded_process_ratio",
        rates["always"] / rates["never"],
        f"store process / store thread: {rates['always'] / rates['never']:.2f}",
    )
    figure(
        "embedded_ratio",
        max(rates.values()) / baseline,
        f"ratio to decoding only (the faster): {max(rates.values()) / baseline:.2f}",
    )


class _DroppingStore:
    """A store stage that takes the run's outputs and drops them (``StoreThread``'s API)."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        self.stored = None

    def put(self, item: object) -> None:
        del item

    def close(self) -> None:
        pass


def reader_and_detect(source: Path, db: Path) -> float:
    """``run_embedded`` with a store stage that drops everything: the run's ceiling."""
    return _dropping_store_run(source, db)[0]


def _dropping_store_run(
    source: Path, db: Path, collector: Callable[[], AbstractContextManager[None]] | None = None
) -> tuple[float, float]:
    """Records/s of wall time and of the main thread's CPU time, the store dropping all."""
    from pipelines.topology import embedded as module

    real, real_collector = module.StoreThread, module.paced_collector
    module.StoreThread = _DroppingStore  # type: ignore[misc, assignment]
    if collector is not None:
        module.paced_collector = collector  # type: ignore[assignment]
    try:
        started, main = time.perf_counter(), time.thread_time()
        settings = PipelineSettings(alerts={"log": False}, store_process="never")
        summary = run_embedded([source], db, settings)
        wall, main = time.perf_counter() - started, time.thread_time() - main
        return summary.records / wall, summary.records / main
    finally:
        module.StoreThread, module.paced_collector = real, real_collector  # type: ignore[misc]


@contextmanager
def thresholds_50k() -> Iterator[None]:
    """The collector policy before ``paced_collector``: automatic, thresholds 50,000/20/100."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def collector(source: Path, scratch: Path) -> None:
    """The reader and the detect stage under the two collector policies, alternating.

    The main thread's CPU time (the store dropping what it is handed), best of three each.
    """
    say("\ncollector: the reader and the detect stage, the store dropping what it is handed")
    best = {"paced": 0.0, "thresholds": 0.0}
    for _ in range(3):
        for name, policy in (("thresholds", thresholds_50k), ("paced", None)):
            _, main = _dropping_store_run(source, scratch / f"collector-{name}.duckdb", policy)
            best[name] = max(best[name], main)
    say(
        f"  automatic, thresholds 50,000/20/100 (before): {best['thresholds']:,.0f} records/s "
        f"of the main thread's CPU time"
    )
    say(
        f"  off, a full pass every {COLLECT_EVERY_S:.0f} s (paced_collector): "
        f"{best['paced']:,.0f} records/s"
    )
    figure(
        "collector_ratio",
        best["paced"] / best["thresholds"],
        f"ratio: {best['paced'] / best['thresholds']:.2f}",
    )


def embedded_run(source: Path, db: Path, mode: str, label: str) -> float:
    """One ``run_embedded`` with its store on a thread or in a process; records/s."""
    settings = PipelineSettings(alerts={"log": False}, store_process=mode)
    threads = ThreadClock()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
    with threads:
        summary = run_embedded([source], db, settings)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    main = time.thread_time() - main  # the reader and the detect stage
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    rate = summary.records / wall
    key = "process" if mode == "always" else "thread"
    figure(
        f"embedded_{key}_per_s",
        rate,
        f"run_embedded, {label}: {rate:,.0f} records/s of wall time "
        f"({summary.records / main:,.0f}/s of the main thread's CPU time)",
    )
    FIGURES[f"embedded_{key}_main_thread_per_s"] = summary.records / main
    store = threads.seconds("auditor-store")
    if store is not None:
        others = max(cpu - main - store, 0.0)
        say(
            f"    CPU: main thread (reader + detect) {main:.1f}s, store thread {store:.1f}s, "
            f"others (DuckDB's workers, telemetry) {others:.1f}s, in {wall:.1f}s of wall "
            f"time: {cpu / wall:.2f} cores busy on average"
        )
    else:
        say(
            f"    CPU: main thread (reader + detect) {main:.1f}s, the run's other threads "
            f"{max(cpu - main, 0.0):.1f}s, the store process {child:.1f}s, in {wall:.1f}s "
            f"of wall time: {(cpu + child) / wall:.2f} cores busy on average"
        )
    FIGURES[f"embedded_{key}_cores_busy"] = (cpu + child) / wall
    say(
        f"    findings out: {summary.counters.findings_out:,}; "
        f"events stored: {summary.counters.events_in:,}"
    )
    return rate


# -- the detect stage alone -------------------------------------------------------------


def stage_alone(lines: list[bytes], records: int = 60_000) -> None:
    """The detect stage over Kafka-shaped chunks, with and without its msgspec fast path.

    With it, as a detect process of its own runs (``keep_events=False``); without it
    (``fast_path=False``), every event validated by pydantic and kept, as before the fast
    path. Fresh stages each round, alternating, CPU time, best of three; no transport.
    """
    from pipelines.topology.collector import paced_collector
    from pipelines.topology.components import build_detect_stage
    from pipelines.topology.detection import Chunk
    from pipelines.topology.telemetry import PipelineTelemetry

    part = lines[:records]
    say(f"\ndetect stage alone: {len(part):,} records in Kafka-shaped chunks of 2,000")
    settings = PipelineSettings(alerts={"log": False})
    telemetry = PipelineTelemetry.from_settings(settings.telemetry)
    now = time.time()

    def chunks(kind: str, records: list[bytes]) -> list[Chunk]:
        return [
            Chunk(
                source=kind,
                part=0,
                kind=kind,  # type: ignore[arg-type]
                positions=list(range(i, i + len(records[i : i + 2000]))),
                records=records[i : i + 2000],
                next_position=i + len(records[i : i + 2000]),
                arrived=[now] * len(records[i : i + 2000]),
                kafka=True,
            )
            for i in range(0, len(records), 2000)
        ]

    authz = chunks("authz", [line for line in part if b'"kind":"authz"' in line])
    logs = chunks("logs", [line for line in part if b'"kind":"authz"' not in line])
    best = {True: float("inf"), False: float("inf")}
    for _ in range(3):
        for keep in (False, True):
            stage = build_detect_stage(settings, telemetry, keep_events=keep, fast_path=not keep)
            with paced_collector():  # as the pipeline's processes run
                started = time.process_time()
                for index, chunk in enumerate([*authz, *logs]):
                    stage.process(chunk, index % 6)
                stage.flush()
                best[keep] = min(best[keep], time.process_time() - started)
    fast_and_validating(
        "stage",
        len(part) / best[False],
        len(part) / best[True],
        ("fast path (a detect process of its own)", "without it (pydantic validates every event)"),
        "records",
    )


def fast_and_validating(
    name: str, fast: float, validating: float, labels: tuple[str, str], unit: str
) -> None:
    """The figures of a fast path against pydantic validating every event: rates, ratio."""
    for key, rate, label in (("fast", fast, labels[0]), ("validating", validating, labels[1])):
        figure(
            f"{name}_{key}_per_s",
            rate,
            f"{label}: {rate:,.0f} {unit}/s (CPU), {1e6 / rate:.1f} µs per {unit[:-1]}",
        )
    figure(f"{name}_fast_ratio", fast / validating, f"ratio: {fast / validating:.2f}")


def store_decoding(lines: list[bytes], records: int = 60_000) -> None:
    """The Kafka store stage's work per authz record, with and without the fast path.

    What ``KafkaStore`` does to each record of the authz topic before DuckDB: decode it
    (``authz_view``), redact its free text (``EventScrubber.stored``) and make the JSON it
    stores (``event_json``). With the msgspec fast path (the store stage's decoder) and
    without it (``fast_path=False``: pydantic validates and serialises every event, as the
    store stage did before). Alternating, CPU time, best of three.
    """
    from auditor.fingerprints import Fingerprinter
    from auditor.models import AuthzEvent
    from auditor.redaction import Redactor, RedactorConfig
    from pipelines.topology.authz_mirror import Mirrored
    from pipelines.topology.decoding import RecordDecoder
    from pipelines.topology.scrubbing import EventScrubber
    from pipelines.topology.storing import event_json

    authz = [line for line in lines[:records] if b'"kind":"authz"' in line]
    say(f"\nthe store stage's decoding: {len(authz):,} authz records")
    scrubber = EventScrubber(Redactor(RedactorConfig(fingerprinter=Fingerprinter(KEY.encode()))))

    def decode(decoder: RecordDecoder) -> int:
        stored = 0
        for offset, raw in enumerate(authz):
            event = decoder.authz_view(raw)
            if isinstance(event, AuthzEvent | Mirrored):
                event_json(scrubber.stored(event), f"cds.authz/0@{offset}")
                stored += 1
        return stored

    best = {True: float("inf"), False: float("inf")}
    for _ in range(3):
        for fast in (True, False):
            decoder = RecordDecoder(PipelineSettings().limits, fast_path=fast)
            started = time.process_time()
            assert decode(decoder) == len(authz)
            best[fast] = min(best[fast], time.process_time() - started)
    fast_and_validating(
        "store_decoding",
        len(authz) / best[True],
        len(authz) / best[False],
        ("fast path", "pydantic for every event"),
        "events",
    )


# -- Kafka -------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on, for a broker of our own."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_broker(scratch: Path) -> tuple[str, Callable[[], object]]:
    """A single-node broker on free ports; returns its address and its stop."""
    from pipelines.kafka.broker import BrokerConfig, LocalBroker

    port, controller = free_ports(2)
    broker = LocalBroker(
        BrokerConfig(port=port, controller_port=controller, data_dir=scratch / "kafka")
    )
    broker.start()
    return broker.bootstrap, broker.stop


def bench_settings(bootstrap: str, partitions: int, **pipeline: Any) -> AuditorSettings:
    """Settings with topics of their own (created) on the bench's broker."""
    stem = f"bench.{uuid.uuid4().hex[:8]}"

    def spec(role: str, count: int = partitions) -> TopicSpec:
        return TopicSpec(name=f"{stem}.{role}", partitions=count, retention_ms=3_600_000)

    settings = AuditorSettings(
        kafka={"bootstrap_servers": bootstrap},
        topics={
            "authz": spec("authz"),
            "logs": spec("logs"),
            "findings": spec("findings"),
            "alerts": spec("alerts", 1),
            "deadletters": spec("deadletters"),
            "state": {
                "name": f"{stem}.state",
                "partitions": 1,
                "retention_ms": -1,
                "configs": {"cleanup.policy": "compact"},
            },
        },
        pipeline={"alerts": {"log": False}, **pipeline},
    )
    ensure_topics(settings)
    return settings


def env_for(settings: AuditorSettings, group: str, **pipeline: Any) -> dict[str, str]:
    """Environment variables that point ``auditor run`` at these settings."""
    env = {
        **os.environ,
        "AUDITOR_FINGERPRINT_KEY": KEY,
        "AUDITOR_KAFKA__BOOTSTRAP_SERVERS": ",".join(settings.kafka.bootstrap_servers),
        "AUDITOR_GROUPS__DETECT": group,
        "AUDITOR_PIPELINE__ALERTS__LOG": "false",
    }
    for role in ("authz", "logs", "findings", "alerts", "deadletters", "state"):
        spec = getattr(settings.topics, role)
        env[f"AUDITOR_TOPICS__{role.upper()}__NAME"] = spec.name
        env[f"AUDITOR_TOPICS__{role.upper()}__PARTITIONS"] = str(spec.partitions)
    for name, value in pipeline.items():
        env[f"AUDITOR_PIPELINE__{name.upper()}"] = str(value)
    return env


def key_of(line: bytes) -> bytes | None:
    """The client's ``iss`` of an event line: its Kafka key."""
    start = line.find(b'"iss":"')
    if start < 0:
        return None
    start += 7
    return line[start : line.index(b'"', start)]


def fill(settings: AuditorSettings, lines: list[bytes]) -> float:
    """Produce the corpus to the authz and logs topics; returns records/s."""
    producer = open_producer(settings, linger_ms=20, batch_size=256 << 10)
    authz, logs = settings.topics.authz.name, settings.topics.logs.name
    started = time.perf_counter()
    for line in lines:
        is_event = b'"kind":"authz"' in line
        producer.send(
            authz if is_event else logs, key=key_of(line) if is_event else None, value=line
        )
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(lines) / elapsed


def raw_consume(settings: AuditorSettings, total: int) -> float:
    """A consumer that only reads the backlog; returns records/s."""
    consumer = open_consumer(
        settings,
        [settings.topics.authz.name, settings.topics.logs.name],
        f"raw-{uuid.uuid4().hex[:6]}",
    )
    seen = 0
    started = None
    while seen < total:
        for records in consumer.poll(timeout_ms=500, max_records=5_000).values():
            started = started or time.perf_counter()
            seen += len(records)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return seen / max(elapsed, 1e-9)


def committed(admin: Any, group: str) -> int:
    """The sum of a group's committed offsets (0 before its first commit)."""
    try:
        offsets = admin.list_group_offsets(group)
    except Exception:  # noqa: BLE001 - the group may not exist yet
        return 0
    return sum(meta.offset for meta in (offsets.get(group) or {}).values() if meta.offset > 0)


def detect_rate(settings: AuditorSettings, total: int, processes: int) -> float:
    """Records/s of ``processes`` detect processes over the backlog (10% to 90%)."""
    group = f"bench-detect-{uuid.uuid4().hex[:6]}"
    env = env_for(settings, group, batch_records=2000, poll_ms=100, checkpoint_interval_s=30)
    command = [
        sys.executable,
        "-m",
        "auditor.cli.main",
        "run",
        "--kafka",
        "--stage",
        "detect",
        "--quiet",
    ]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        for _ in range(processes)
    ]
    admin = open_admin(settings)
    marks: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = committed(admin, group)
            marks.append((time.perf_counter(), done))
            if done >= total:
                break
            time.sleep(0.1)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        admin.close()
    low = next((t, n) for t, n in marks if n >= total * 0.1)
    high = next((t, n) for t, n in marks if n >= total * 0.9)
    if high[0] <= low[0]:
        raise SystemExit("the backlog was read between two samples: use more --events")
    return (high[1] - low[1]) / (high[0] - low[0])


def store_rate(settings: AuditorSettings, scratch: Path, total: int) -> float:
    """Authz events/s of ``--stage store`` alone over the backlog (10% to 90% of it).

    Progress is the store's own: the sum of its authz offsets in ``ingest_offsets``, read
    through the writer's endpoint while it runs.
    """
    from pipelines.store import open_store

    db = scratch / f"store-{uuid.uuid4().hex[:6]}.duckdb"
    env = env_for(settings, f"bench-store-{uuid.uuid4().hex[:6]}")
    command = [sys.executable, "-m", "auditor.cli.main", "run", "--kafka", "--quiet"]
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [*command, "--stage", "store", "--db", str(db)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    topic = settings.topics.authz.name
    query = (
        f"SELECT coalesce(sum(next_offset), 0) AS n FROM ingest_offsets WHERE source = '{topic}'"  # noqa: S608 - the bench's own topic name
    )
    marks: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                with open_store(db) as store:
                    done = int(store.query(query).to_pylist()[0]["n"])
            except Exception:  # noqa: BLE001 - the store is not open yet
                done = 0
            marks.append((time.perf_counter(), done))
            if done >= total:
                break
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(60)
    low = next((t, n) for t, n in marks if n >= total * 0.1)
    high = next((t, n) for t, n in marks if n >= total * 0.9)
    if high[0] <= low[0]:
        raise SystemExit("the backlog was stored between two samples: use more --events")
    return (high[1] - low[1]) / (high[0] - low[0])


def _templates(events: list[AuthzEvent], *, judged: bool = False) -> list[tuple[bytes, bytes]]:
    """Events as JSON with ``@TIME@`` and ``@ID@`` to fill in, keyed by client.

    With ``judged``, only events whose token's ``alg`` the ``policy`` detector judges: a
    token issued, or one a service accepted (a ``request.sent`` is judged on other rules).
    """
    out = []
    for event in events:
        if event.token is None or event.token.alg != "ES384" or event.client is None:
            continue
        accepted = event.action.value == "token.validated" and event.outcome.value == "success"
        if judged and not (event.action.value == "token.issued" or accepted):
            continue
        value = event.model_dump_json(exclude_none=True).encode()
        value = value.replace(str(event.event_id).encode(), b"@ID@")
        stamp = event.model_dump(mode="json")["time"].encode()
        out.append((event.client.iss.encode(), value.replace(stamp, b"@TIME@")))
    return out


def start_pipeline(db: Path, env: dict[str, str], *, split: bool) -> list[subprocess.Popen[str]]:
    """``auditor run --kafka`` as one process, or as a store and a detect process.

    Returns once the detect stage holds its partitions.
    """
    run = [sys.executable, "-m", "auditor.cli.main", "run", "--kafka", "--quiet"]
    stages = [[*run, "--db", str(db)]]
    if split:
        stages = [[*run, "--stage", "store", "--db", str(db)], [*run, "--stage", "detect"]]
    procs = [
        subprocess.Popen(  # noqa: S603 - our own command
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if command is stages[-1] else subprocess.DEVNULL,
            text=True,
        )
        for command in stages
    ]
    stream = procs[-1].stderr
    assert stream is not None
    for line in stream:
        if '"detect.assigned"' in line:
            break
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()
    return procs


def stored_latencies(db: Path, expected: int) -> list[dict[str, Any]]:
    """``finding_id``, ``sent`` and ``stored`` (epoch ms) of each ``alg_none_or_hmac`` finding.

    Waits until ``expected`` findings are stored, or nothing new came for 15 s (what is
    missing then is not coming: the bench reports it).
    """
    from pipelines.store import open_store

    query = (
        "SELECT finding_id, epoch_ms(observed_at) AS sent, epoch_ms(first_stored_at) AS stored "
        "FROM findings WHERE rule = 'alg_none_or_hmac'"
    )
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120  # let a pipeline that fell behind catch up
    progress = time.monotonic()
    while time.monotonic() < deadline and len(rows) < expected:
        time.sleep(2.0)
        with open_store(db) as store:
            found = store.query(query).to_pylist()
        if len(found) > len(rows):
            progress = time.monotonic()
        elif time.monotonic() - progress > 15:
            break
        rows = found
    return rows


def produced_at(settings: AuditorSettings) -> dict[str, float]:
    """When the detect stage produced each finding (its record's timestamp, epoch ms)."""
    topic = settings.topics.findings.name
    consumer = open_consumer(settings, [topic], f"bench-findings-{uuid.uuid4().hex[:6]}")
    seen: dict[str, float] = {}
    quiet = 0
    while quiet < 3:  # three empty polls: the topic is read
        polled = consumer.poll(timeout_ms=500)
        quiet = 0 if polled else quiet + 1
        for records in polled.values():
            for record in records:
                body = orjson.loads(record.value)
                seen.setdefault(body["finding_id"], record.timestamp)
    consumer.close()
    return seen


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``values`` (not empty)."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]


def latency(
    settings: AuditorSettings,
    scratch: Path,
    rate: int,
    seconds: float,
    lateness: float,
    *,
    split: bool = False,
) -> None:
    """Produce at ``rate`` for ``seconds`` into a running pipeline; latency to DuckDB."""
    db = scratch / f"latency-{rate}{'-split' if split else ''}.duckdb"  # a database per run
    group = f"bench-latency-{uuid.uuid4().hex[:6]}"
    env = env_for(
        settings,
        group,
        allowed_lateness_s=lateness,
        poll_ms=50,
        store_wait_ms=100,
        batch_records=1000,
        idle_advance_s=0.5,
    )
    procs = start_pipeline(db, env, split=split)
    producer = open_producer(settings, linger_ms=2)
    templates = _templates(realistic_mix(400, 11))
    judged = _templates(realistic_mix(400, 11), judged=True)
    sent = violations = 0
    started = time.perf_counter()
    per_tick = max(rate // 100, 1)
    while time.perf_counter() - started < seconds:
        pause = started + sent / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z").encode()
        for _ in range(per_tick):
            key, template = templates[sent % len(templates)]
            if sent % 100 == 0:
                key, template = judged[violations % len(judged)]
                key = f"https://ehr-lat-{sent}.example.org".encode()
                template = template.replace(b'"alg":"ES384"', b'"alg":"none"').replace(
                    b"https://ehr-", b"https://ehr-lat-" + str(sent).encode() + b"-", 1
                )
                violations += 1
            value = template.replace(b"@TIME@", stamp).replace(b"@ID@", str(uuid.uuid4()).encode())
            producer.send(settings.topics.authz.name, key=key, value=value)
            sent += 1
    producer.flush()
    producer.close()
    achieved = sent / (time.perf_counter() - started)
    rows = stored_latencies(db, violations)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)
    samples = sorted((row["stored"] - row["sent"]) / 1000 for row in rows)
    produced = produced_at(settings)
    hops = [
        (
            (produced[r["finding_id"]] - r["sent"]) / 1000,
            (r["stored"] - produced[r["finding_id"]]) / 1000,
        )
        for r in rows
        if r["finding_id"] in produced
    ]
    tag = (f"{rate // 1000}k" if rate >= 1000 else str(rate)) + ("_split" if split else "")
    figure(
        f"latency_{tag}_sent_per_s",
        achieved,
        f"{'detect and store in 2 processes' if split else 'one process'}, "
        f"{rate:,}/s asked: sent {sent:,} events at {achieved:,.0f}/s for {seconds:.0f}s, "
        f"{violations:,} violations, {len(samples):,} findings stored",
    )
    FIGURES[f"latency_{tag}_missing"] = violations - len(samples)
    if samples:
        p50 = statistics.median(samples)
        p99 = samples[min(int(len(samples) * 0.99), len(samples) - 1)]
        figure(
            f"latency_{tag}_p50_s",
            p50,
            f"produce -> finding committed in DuckDB: p50 {p50:.2f}s, p99 {p99:.2f}s, "
            f"max {samples[-1]:.2f}s (allowed lateness {lateness}s included)",
        )
        FIGURES[f"latency_{tag}_p99_s"] = p99
    if hops:
        detect50, detect99 = percentiles([detect for detect, _ in hops])
        store50, store99 = percentiles([store for _, store in hops])
        say(
            f"  of which send -> finding on the findings topic (lateness included): "
            f"p50 {detect50:.2f}s, p99 {detect99:.2f}s; findings topic -> DuckDB commit: "
            f"p50 {store50:.2f}s, p99 {store99:.2f}s"
        )
        FIGURES[f"latency_{tag}_detect_p99_s"] = detect99
        FIGURES[f"latency_{tag}_store_p99_s"] = store99


def kafka(lines: list[bytes], scratch: Path, args: argparse.Namespace) -> None:
    """The Kafka part: a broker, the throughput figures, the latency runs."""
    stop: Callable[[], object] | None = None
    bootstrap = args.kafka
    if bootstrap is None:
        say("\nstarting a Kafka broker for the bench ...")
        bootstrap, stop = start_broker(scratch)
    try:
        say(f"\nthrough Kafka at {bootstrap}: {args.partitions} partitions per topic")
        if not args.skip_throughput:
            throughput(bench_settings(bootstrap, args.partitions), lines, scratch)
        for rate in args.rate:
            for split in (False, True) if args.split else (False,):
                latency(
                    bench_settings(bootstrap, args.partitions),
                    scratch,
                    rate,
                    args.seconds,
                    args.lateness,
                    split=split,
                )
    finally:
        if stop is not None:
            stop()


def throughput(settings: AuditorSettings, lines: list[bytes], scratch: Path) -> None:
    """The corpus as a backlog; baselines; detect as one process and two; the store alone."""
    produced = fill(settings, lines)
    figure(
        "produce_per_s", produced, f"baseline, producing {len(lines):,} records: {produced:,.0f}/s"
    )
    consumed = raw_consume(settings, len(lines))
    figure(
        "raw_consume_per_s", consumed, f"baseline, a bare consumer reading them: {consumed:,.0f}/s"
    )
    one = detect_rate(settings, len(lines), 1)
    figure(
        "detect_1_per_s",
        one,
        f"detect stage, 1 process: {one:,.0f} records/s "
        f"({one / consumed:.2f} of the bare consumer)",
    )
    two = detect_rate(settings, len(lines), 2)
    figure(
        "detect_2_per_s",
        two,
        f"detect stage, 2 processes: {two:,.0f} records/s ({two / one:.2f}x one process)",
    )
    events = sum(1 for line in lines if b'"kind":"authz"' in line)
    stored = store_rate(settings, scratch, events)
    figure(
        "store_per_s",
        stored,
        f"store stage alone (--stage store), the same backlog: {stored:,.0f} authz events/s "
        "(with the detect stage's findings, dead letters and alerts)",
    )


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="records in the corpus")
    parser.add_argument(
        "--kafka", metavar="HOST:PORT", help="a running broker (default: start one)"
    )
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true", help="Kafka: latency only")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--rate",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[5_000],
        help="events/s of the latency runs, comma-separated (default 5000)",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--split", action="store_true", help="also run detect and store as two processes"
    )
    parser.add_argument("--lateness", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--write-corpus",
        metavar="FILE",
        type=Path,
        help="write the corpus of --events records to FILE as JSON lines and stop "
        "(an input for bench/embedded_ab.py)",
    )
    args = parser.parse_args()
    os.environ["AUDITOR_FINGERPRINT_KEY"] = KEY
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    say(f"corpus: {args.events:,} records (seed {args.seed}) ...")
    lines = corpus(args.events, args.seed)
    if args.write_corpus is not None:
        args.write_corpus.write_bytes(b"".join(line + b"\n" for line in lines))
        say(f"corpus written to {args.write_corpus}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        scratch = Path(tmp)
        if not args.skip_embedded:
            embedded(lines, scratch)
            stage_alone(lines)
            store_decoding(lines)
        if not args.skip_kafka:
            kafka(lines, scratch, args)
    say("")
    for name, value in FIGURES.items():
        say(f"{name} {value:.4g}")


if __name__ == "__main__":
    main()

"""A deterministic input stream for the store's tests, and a writer process to kill.

The stream imitates two Kafka partitions of the authz topic. Every offset is one record:
a dead letter when ``offset % 13 == 0``, otherwise an authz event; events at offsets that
are multiples of 7 also yield a leaked-token finding, and each partition has one incident
finding whose revision is the offset of its latest event (so the stored revision tells
whether the latest batch was kept). Every id derives from (partition, offset), so a
redelivered record is the same record.

Run as a script, this file is the writer process of the crash and concurrency tests:

    python tests/store_support.py --db PATH --per-partition N --batch B
        [--from-zero] [--kill-inside K] [--pause SECONDS]

It resumes from the store's offsets, writes the rest of the stream in batches, prints
``committed <n>`` after each batch and ``done`` at the end; on SIGTERM it finishes the
batch in hand, records the run as interrupted and exits 0.
"""

# ruff: noqa: T201 - as a script, this file talks to the test on stdout
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from auditor import AuthzEvent, Finding, finding_id
from auditor.vocabulary import DeadLetterReason
from pipelines.store import Batch, DeadLetter, IngestedEvent, StoreWriter

TOPIC = "cds.authz"
PARTITIONS = (0, 1)
BASE = datetime(2026, 11, 1, tzinfo=UTC)
NAMESPACE = uuid.UUID("6f0c1d6e-5b1a-4a43-9a56-1f6a0d1c2b3e")
SCRIPT = Path(__file__)


@dataclass(frozen=True, slots=True)
class Record:
    """One position of the stream and what it yields."""

    partition: int
    offset: int
    event: IngestedEvent | None
    findings: tuple[Finding, ...]
    dead_letter: DeadLetter | None


def event_id(partition: int, offset: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{partition}:{offset}")


def incident_id(partition: int) -> str:
    return finding_id("replay_burst", "jti-reuse", f"partition-{partition}")


def record(partition: int, offset: int) -> Record:
    time_ = BASE + timedelta(seconds=offset, milliseconds=partition)
    origin = f"{TOPIC}/{partition}@{offset}"
    if offset % 13 == 0:
        dead = DeadLetter(
            source=TOPIC,
            reason=DeadLetterReason.MALFORMED_JSON,
            size_bytes=100 + offset,
            received_at=time_,
            detail="line 1: expected a JSON object",
            kafka_partition=partition,
            kafka_offset=offset,
        )
        return Record(partition, offset, None, (), dead)
    event = AuthzEvent.model_validate(
        {
            "event_id": str(event_id(partition, offset)),
            "time": time_.isoformat(),
            "source": {"role": "service", "name": "cds-greeter", "instance": f"pod-{partition}"},
            "action": "token.rejected",
            "outcome": "failure",
            "reason": "replayed_jti",
            "http_status": 401,
            "client": {"iss": f"https://ehr-{partition}.example.org", "tenant": "t1"},
            "service": {"id": "patient-greeter", "url": "https://cds.example.com/cds-services/pg"},
            "token": {"jti": f"jti-{offset % 5}", "kid": "k1", "alg": "ES384", "typ": "JWT"},
            "attributes": {"route": "/cds-services/pg", "attempt": offset % 3},
        }
    )
    findings: list[Finding] = [
        Finding(
            finding_id=incident_id(partition),
            detector="replay_burst",
            rule="jti-reuse",
            kind="replay",
            severity="high",
            observed_at=time_,
            title="jti reused within its lifetime",
            client_iss=event.client_iss,
            event_ids=(str(event.event_id),),
            revision=offset,
            count=offset + 1,
        )
    ]
    if offset % 7 == 0:
        findings.append(
            Finding(
                finding_id=finding_id("leaked_token", "jwt", origin, "attributes"),
                detector="leaked_token",
                rule="jwt",
                kind="jwt",
                severity="critical",
                observed_at=time_,
                title="JWT in log attributes",
                location="$.attributes.note",
                origin=origin,
                evidence="note=[REDACTED:jwt]",
            )
        )
    return Record(partition, offset, IngestedEvent(event, origin), tuple(findings), None)


def batches(
    start: dict[int, int], per_partition: int, batch_size: int
) -> Iterator[tuple[Batch, int]]:
    """Batches from ``start`` (next offset per partition) to the end; with their sizes."""
    position = dict(start)
    half = max(1, batch_size // len(PARTITIONS))
    while any(position[p] < per_partition for p in PARTITIONS):
        records = []
        offsets = {}
        for p in PARTITIONS:
            end = min(per_partition, position[p] + half)
            records.extend(record(p, o) for o in range(position[p], end))
            if end > position[p]:
                offsets[(TOPIC, p)] = end
            position[p] = end
        yield (
            Batch(
                events=[r.event for r in records if r.event is not None],
                findings=[f for r in records for f in r.findings],
                dead_letters=[r.dead_letter for r in records if r.dead_letter is not None],
                offsets=offsets,
            ),
            len(records),
        )


def expected(per_partition: int) -> dict[str, object]:
    """What the store holds once the whole stream was delivered exactly once."""
    offsets = range(per_partition)
    events = {str(event_id(p, o)) for p in PARTITIONS for o in offsets if o % 13}
    leaked = sum(1 for p in PARTITIONS for o in offsets if o % 13 and o % 7 == 0)
    last_event = max(o for o in offsets if o % 13)
    return {
        "event_ids": events,
        "findings": leaked + len(PARTITIONS),
        "dead_letters": len(PARTITIONS) * sum(1 for o in offsets if o % 13 == 0),
        "incident_revision": last_event,
        "offsets": {(TOPIC, p): per_partition for p in PARTITIONS},
    }


def snapshot(db: Path) -> dict[str, pa.Table]:
    """Every table's rows in a stable order, for before/after comparisons."""
    from pipelines.store import open_store

    keys = {
        "events": "event_id",
        "findings": "finding_id",
        "dead_letters": "dead_letter_id",
        "alerts": "alert_id",
        "ingest_offsets": "source, part",
        "reviews": "review_id",
        "runs": "run_id",
    }
    with open_store(db) as store:
        return {t: store.query(f"SELECT * FROM {t} ORDER BY {k}") for t, k in keys.items()}  # noqa: S608


class _KillInside(StoreWriter):
    """Dies by SIGKILL inside the transaction of batch number ``kill_at`` of this process."""

    kill_at = -1
    written = 0

    def _advance_offsets(self, table: pa.Table) -> int:
        if self.written == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super()._advance_offsets(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--per-partition", type=int, required=True)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--from-zero", action="store_true")
    parser.add_argument("--kill-inside", type=int, default=-1)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args(argv)

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    writer = _KillInside.open(args.db)
    writer.kill_at = args.kill_inside
    run_id = writer.begin_run(mode="kafka", inputs=[TOPIC])
    stored = writer.resume_offsets()
    start = {p: 0 if args.from_zero else stored.get((TOPIC, p), 0) for p in PARTITIONS}
    print(f"ready {os.getpid()}", flush=True)
    status = "completed"
    for n, (batch, _size) in enumerate(batches(start, args.per_partition, args.batch)):
        writer.write_batch(batch)
        writer.written += 1
        print(f"committed {n}", flush=True)
        if stopping:
            status = "interrupted"
            break
        if args.pause:
            time.sleep(args.pause)
    writer.end_run(run_id, status)
    writer.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

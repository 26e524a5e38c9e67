"""The store's insert cost as its events table grows, by checkpoint threshold.

DuckDB keeps committed rows in its write-ahead log and folds the log into the database
file (a checkpoint) once it passes ``checkpoint_threshold``. With DuckDB's default of
16 MiB the store stage checkpoints after nearly every batch, and a checkpoint costs more
the larger the table is. The writer sets 256 MiB
(``pipelines.store.writer.DEFAULT_CHECKPOINT_MIB``).

This writes the same batches — the pipeline's events as the store stage gets them
(``EventJson``: the redacted event's JSON; ``INSERT OR IGNORE`` on the primary key, the
offsets in the same transaction) — through two ``StoreWriter``s on fresh files, one with
DuckDB's 16 MiB and one with the writer's default, round after round with new event ids,
alternating which writer goes first. It prints the CPU time per event of each round as
the table grows, and the ratio, measured in the same run (the host is shared and noisy).

Then the price of the larger threshold: a child process writes events until its log
holds 90% of ``--recovery-mib`` MiB (just under the checkpoint that would fold it) and dies
without closing; the next ``StoreWriter.open`` replays the log, and the time it takes is
printed.

    .venv/bin/python bench/store_growth.py [--rounds 8] [--batch 5000] [--recovery-mib 256]

The last lines are ``name value`` pairs.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stream_detectors import realistic_mix

from auditor._native import status as native_status
from pipelines.store import Batch, EventJson, StoreWriter
from pipelines.store.writer import DEFAULT_CHECKPOINT_MIB
from pipelines.topology.storing import event_json

DUCKDB_DEFAULT_MIB = 16
SOURCE = "bench.events"


def base_rows(calls: int, seed: int) -> list[EventJson]:
    """The realistic mix's events as the store stage gets them (about three per call)."""
    return [event_json(e, f"{SOURCE}:{i}") for i, e in enumerate(realistic_mix(calls, seed))]


def with_new_ids(rows: list[EventJson], rng: random.Random) -> list[EventJson]:
    """``rows`` again under fresh event ids: another round of distinct events."""
    return [EventJson(rng.randbytes(16), row.json, row.origin) for row in rows]


def write_round(writer: StoreWriter, rows: list[EventJson], batch: int, start: int) -> float:
    """CPU seconds (all threads: DuckDB's too) to write ``rows`` in batches of ``batch``."""
    began = time.process_time()
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        writer.write_batch(Batch(event_json=chunk, offsets={(SOURCE, 0): start + i + len(chunk)}))
    return time.process_time() - began


def growth(rows: list[EventJson], rounds: int, batch: int, scratch: Path, seed: int) -> float:
    """Per-round µs/event of both thresholds; returns the ratio over all rounds."""
    rng = random.Random(seed)
    writers = {
        mib: StoreWriter.open(scratch / f"growth-{mib}.duckdb", serve=False, checkpoint_mib=mib)
        for mib in (DUCKDB_DEFAULT_MIB, DEFAULT_CHECKPOINT_MIB)
    }
    totals = dict.fromkeys(writers, 0.0)
    print(f"{'rows before':>12}  {'16 MiB (DuckDB)':>16}  {'256 MiB (writer)':>17}  ratio")
    try:
        for r in range(rounds):
            round_rows = with_new_ids(rows, rng)
            order = list(writers) if r % 2 == 0 else list(reversed(writers))
            cpu = {}
            for mib in order:
                cpu[mib] = write_round(writers[mib], round_rows, batch, r * len(rows))
                totals[mib] += cpu[mib]
            default, ours = (1e6 * cpu[m] / len(rows) for m in writers)
            ratio = default / ours
            print(f"{r * len(rows):>12,}  {default:>13.1f} µs  {ours:>14.1f} µs  {ratio:5.2f}")
    finally:
        for writer in writers.values():
            writer.close()
    events = rounds * len(rows)
    default, ours = (1e6 * totals[m] / events for m in writers)
    ratio = default / ours
    print(
        f"all {events:,} events: {default:.1f} µs/event with 16 MiB, {ours:.1f} with "
        f"{DEFAULT_CHECKPOINT_MIB} MiB: {ratio:.2f}x less CPU "
        f"({1e6 / default:,.0f} against {1e6 / ours:,.0f} events/s of CPU time)"
    )
    print(f"store_growth_default_us {default:.3f}")
    print(f"store_growth_writer_us {ours:.3f}")
    print(f"store_growth_ratio {ratio:.3f}")
    return ratio


def write_and_die(db: Path, mib: int, batch: int, seed: int) -> None:
    """Fill the log to 90% of ``mib`` MiB, then exit without closing (as a crash would).

    The writer's threshold is ``mib``: at 100% DuckDB would checkpoint and empty the log.
    """
    rows = base_rows(20_000, seed)
    rng = random.Random(seed)
    wal = db.with_name(db.name + ".wal")
    target = int(0.9 * (mib << 20))
    writer = StoreWriter.open(db, serve=False, checkpoint_mib=mib)
    start = 0
    while not wal.exists() or wal.stat().st_size < target:
        round_rows = with_new_ids(rows, rng)
        for i in range(0, len(round_rows), batch):
            chunk = round_rows[i : i + batch]
            start += len(chunk)
            writer.write_batch(Batch(event_json=chunk, offsets={(SOURCE, 0): start}))
            if wal.stat().st_size >= target:
                break
    os._exit(0)


def recovery(scratch: Path, mib: int) -> None:
    """Seconds the next open takes after a crash with ``mib`` MiB of log."""
    db = scratch / "crashed.duckdb"
    subprocess.run(  # noqa: S603 - this script, this interpreter
        [sys.executable, __file__, "--write-and-die", str(db), "--recovery-mib", str(mib)],
        check=True,
    )
    log = db.with_name(db.name + ".wal").stat().st_size
    began = time.perf_counter()
    with StoreWriter.open(db, serve=False, checkpoint_mib=mib) as writer:
        opened = time.perf_counter() - began
        events = writer.resume_offsets().get((SOURCE, 0), 0)
    print(
        f"after a crash with {log / (1 << 20):.0f} MiB of log ({events:,} events): "
        f"the next open took {opened:.2f} s"
    )
    print(f"store_recovery_log_mib {log / (1 << 20):.1f}")
    print(f"store_recovery_open_s {opened:.3f}")


def main() -> None:
    """Measure, print, and print the figures as ``name value`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--calls", type=int, default=60_000, help="calls per round (~3 events each)"
    )
    parser.add_argument("--batch", type=int, default=5_000, help="events per transaction")
    parser.add_argument("--recovery-mib", type=int, default=DEFAULT_CHECKPOINT_MIB)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--write-and-die", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_and_die:
        write_and_die(args.write_and_die, args.recovery_mib, args.batch, args.seed)
    print(native_status().describe())
    rows = base_rows(args.calls, args.seed)
    print(
        f"{len(rows):,} events per round, {args.rounds} rounds, "
        f"{args.batch:,} events per transaction\n"
    )
    with tempfile.TemporaryDirectory(prefix="store-growth-") as tmp:
        scratch = Path(tmp)
        growth(rows, args.rounds, args.batch, scratch, args.seed)
        print()
        recovery(scratch, args.recovery_mib)


if __name__ == "__main__":
    main()

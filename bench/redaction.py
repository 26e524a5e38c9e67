"""Benchmark: what the Redactor catches, what it leaves alone, and what it costs.

Builds a corpus of structlog events of a CDS service (``bench/corpus.py``: clean events
full of look-alikes, and planted events with JWTs minted by PyJWT, bearer and URL tokens,
PEM keys, private JWKs, SSNs, e-mail addresses, phone numbers, names and addresses), then
in one run:

- checks that no planted value survives in the rendered output (recall), running the
  whole corpus in order through one Redactor, so planted values arrive after clean
  look-alikes it has learnt to skip;
- checks that clean events come out of the Redactor untouched (the same object);
- times a structlog pipeline (``add_log_level``, ``TimeStamper(fmt="iso")``,
  ``format_exc_info``, ``JSONRenderer`` with orjson, ``ReturnLogger``: no I/O, so the
  ratio is not diluted by writes) without and with the Redactor;

and prints the overhead ratio last. Targets: recall 100%, clean events changed < 0.1%,
ratio <= 1.5.

Timing is CPU time of this thread (``time.thread_time``), not wall time: the machine is
shared, and other processes' load should not count. Baseline and Redactor runs alternate
chunk by chunk, and each chunk keeps its best of ``--rounds`` runs, so drift hits both
sides alike. A Redactor remembers strings it found clean, so each round runs through a
Redactor of its own that sees every event once, in corpus order, as a service would
(re-running a chunk through one Redactor would make every string a repeat).
``--memory-entries 0`` times a Redactor that remembers nothing (every string is new).
``--warm-up N`` first runs each timed Redactor (untimed) over N events of another corpus
(another seed: the same vocabulary, other ids and values), as a service that has been up
for a while; the timed corpus is unchanged.

    .venv/bin/python bench/redaction.py [--events 50000] [--planted-share 0.02] [--rounds 7]
                                        [--memory-entries N] [--warm-up N]
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
from collections import Counter
from typing import Any

import orjson
import structlog
from corpus import CorpusBuilder, Event

from auditor._native import status as native_status
from auditor.fingerprints import Fingerprinter
from auditor.redaction import Redactor, RedactorConfig

CHUNK = 1000


def _pipeline(redactor: Any) -> Any:
    """The benchmark's structlog pipeline, with ``redactor`` (any processor) if given."""
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if redactor is not None:
        processors.append(redactor)
    processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
    return structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def _redacted(config: RedactorConfig, count: int, earlier: list[Event]) -> list[Any]:
    """``count`` pipelines, each with a Redactor of its own that has logged ``earlier``."""
    pipelines = []
    for _ in range(count):
        log = _pipeline(Redactor(config))
        for event in earlier:
            log.info(event.event, **event.kw)
        pipelines.append(log)
    return pipelines


def _cpu_seconds(log: Any, events: list[Event]) -> float:
    info = log.info
    start = time.thread_time()
    for event in events:
        info(event.event, **event.kw)
    return time.thread_time() - start


def _time(
    baseline: Any, redacted: list[Any], events: list[Event], rounds: int
) -> tuple[float, float]:
    """Seconds per event without and with the Redactor (best round of each chunk).

    Round ``r`` of every chunk runs through ``redacted[r]``: one Redactor per round.
    """
    base = red = 0.0
    chunks = [events[i : i + CHUNK] for i in range(0, len(events), CHUNK)]
    gc.collect()
    gc.disable()
    try:
        for chunk in chunks:
            base_runs, red_runs = [], []
            for round_ in range(rounds):
                base_runs.append(_cpu_seconds(baseline, chunk))
                red_runs.append(_cpu_seconds(redacted[round_], chunk))
            base += min(base_runs)
            red += min(red_runs)
    finally:
        gc.enable()
    return base / len(events), red / len(events)


def _recall(redactor: Redactor, events: list[Event]) -> tuple[Counter[str], Counter[str]]:
    render = _pipeline(redactor).info
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for event in events:
        line = render(event.event, **event.kw).decode()
        for kind, value in event.planted:
            total[kind] += 1
            caught[kind] += value not in line
    return caught, total


def main() -> None:
    """Run the benchmark and print its results, the overhead ratio last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--planted-share", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--memory-entries", type=int, default=RedactorConfig().memory_entries)
    parser.add_argument("--warm-up", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    events = CorpusBuilder(args.seed).build(args.events, args.planted_share)
    planted = [e for e in events if e.planted]
    clean = [e for e in events if not e.planted]
    values = sum(len(e.planted) for e in planted)
    print(
        f"corpus: {len(events)} events: {len(clean)} clean, {len(planted)} planted "
        f"with {values} values (built in {time.perf_counter() - started:.1f}s)"
    )
    print(native_status().describe())
    if args.warm_up:
        print(f"timed Redactors warmed up on {args.warm_up} events of seed {args.seed + 1}")
    if args.memory_entries != RedactorConfig().memory_entries:
        print(f"Redactor memory: {args.memory_entries} entries")

    key = Fingerprinter(b"bench-key-0123456789abcdef")
    config = RedactorConfig(fingerprinter=key, memory_entries=args.memory_entries)
    caught, total = _recall(Redactor(config), events)
    redactor = Redactor(config)

    changed = looked = 0
    segments = redactor.library.prefilter.segments
    for event in clean:
        event_dict = {"event": event.event, **event.kw}
        strings = [v for v in event_dict.values() if isinstance(v, str)]
        looked += bool(segments(strings))
        out, done = redactor.process(event_dict)
        changed += out is not event_dict or done is not None

    earlier = CorpusBuilder(args.seed + 1).build(args.warm_up, args.planted_share)
    baseline = _pipeline(None)
    _time(baseline, _redacted(config, 1, []), events[:CHUNK], 1)  # warm the CPU's caches
    clean_base, clean_red = _time(
        baseline, _redacted(config, args.rounds, earlier), clean[: len(clean) // 5], args.rounds
    )
    base, red = _time(baseline, _redacted(config, args.rounds, earlier), events, args.rounds)

    print("recall on planted values, by kind:")
    for kind in sorted(total):
        share = caught[kind] / total[kind]
        print(f"  {kind:<16} {caught[kind]:>6} / {total[kind]:<6} {share:8.2%}")
    recall = sum(caught.values()) / sum(total.values())
    print(f"recall on planted values:       {recall:.2%}  (target 100%)")
    print(
        f"clean events changed:           {changed / len(clean):.3%}  ({changed} of {len(clean)})"
    )
    print(f"clean events flagged:           {looked / len(clean):.2%}  (exact rules found nothing)")
    print(f"clean events only, ratio:       {clean_red / clean_base:.3f}x")
    print(f"pipeline without Redactor:      {base * 1e6:6.2f} us/event CPU")
    print(f"pipeline with Redactor:         {red * 1e6:6.2f} us/event CPU")
    print(f"Redactor:                       {(red - base) * 1e6:6.2f} us/event CPU")
    print(f"overhead ratio (with/without):  {red / base:.3f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()

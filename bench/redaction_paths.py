"""Diagnostic: where the Redactor's cost goes inside the structlog pipeline of the benchmark.

Two views, both measured in the same pipeline as ``bench/redaction.py`` (CPU time of this
thread, baseline and variants alternating chunk by chunk, best of ``--rounds``):

1. A ladder over the clean events: the bare pipeline, then processors that each do a
   little more of what the Redactor's common path does (be called; test the keys; loop
   over the values; look strings up in the memory; test look-alike shapes), then the
   Redactor itself. Each step's ratio shows what that work costs where it runs, between
   structlog's other processors and the JSON renderer.
2. Paths over the whole corpus, in one pass: how many events leave by each path of the
   Redactor and what each costs on average (timed around the call; it reaches into the
   Redactor's private methods to tell the paths apart, so it is a diagnostic, not a
   benchmark; only with the source modules, ``AUDITOR_NATIVE=0``: compiled methods
   cannot be replaced).

    .venv/bin/python bench/redaction_paths.py [--events 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import Counter, defaultdict
from collections.abc import Callable, MutableMapping
from typing import Any

from corpus import CorpusBuilder, Event
from redaction import CHUNK, _cpu_seconds, _pipeline

from auditor._native import status as native_status
from auditor.fingerprints import Fingerprinter
from auditor.patterns.lookalikes import SKELETON
from auditor.redaction import Redactor, RedactorConfig
from auditor.redaction.gathering import ALLOW, PLAIN, SCALARS, SHAPED

EventDict = MutableMapping[str, Any]
Processor = Callable[[object, str, EventDict], EventDict]


def _ladder(config: RedactorConfig, clean: list[Event]) -> dict[str, Callable[[], Processor]]:  # noqa: C901 - one processor per step
    # A memory and key table as the Redactor's would be: learnt through the pipeline, so
    # they know every key it adds (``timestamp`` too; a table without it sends every
    # event out at the key test, and the steps after it measure nothing).
    seen = Redactor(config)
    learn = _pipeline(seen).info
    for event in clean:
        learn(event.event, **event.kw)
    states = seen._gathering.key_state  # noqa: SLF001 - a diagnostic reads the Redactor's state
    memory = seen.memory
    clean_set, shapes = memory.strings, memory.skeletons

    def called(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
        return event_dict

    def keys_tested(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
        for key in event_dict:
            if states.get(key) not in {PLAIN, SHAPED, ALLOW}:
                break
        return event_dict

    def values_looped(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            state = states.get(key)
            if state not in {PLAIN, SHAPED}:
                if state == ALLOW:
                    continue
                break
            if type(value) is not str and type(value) not in SCALARS:
                break
        return event_dict

    def memory_tested(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            state = states.get(key)
            if state not in {PLAIN, SHAPED}:
                if state == ALLOW:
                    continue
                break
            if type(value) is str:
                if value in clean_set:
                    continue
            elif type(value) not in SCALARS:
                break
        return event_dict

    def shapes_tested(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            state = states.get(key)
            if state not in {PLAIN, SHAPED}:
                if state == ALLOW:
                    continue
                break
            if type(value) is str:
                if value in clean_set:
                    continue
                if value.encode("utf-8", "surrogatepass").translate(SKELETON) in shapes:
                    continue
            elif type(value) not in SCALARS:
                break
        return event_dict

    return {
        "a processor that returns the event": lambda: called,
        "+ the keys tested against known keys": lambda: keys_tested,
        "+ a loop over the values (types)": lambda: values_looped,
        "+ each string looked up in the memory": lambda: memory_tested,
        "+ look-alike tests": lambda: shapes_tested,
        "the Redactor after a pass over these events (every value seen)": lambda: _warm(
            config, clean
        ),
        "the Redactor (fresh, as in the benchmark)": lambda: Redactor(config),
    }


def _warm(config: RedactorConfig, events: list[Event]) -> Processor:
    redactor = Redactor(config)
    learn = _pipeline(redactor).info
    for event in events:
        learn(event.event, **event.kw)
    return redactor


def _compare(
    variants: dict[str, Callable[[], Processor]], events: list[Event], rounds: int
) -> None:
    baseline = _pipeline(None)
    logs = {name: [_pipeline(make()) for _ in range(rounds)] for name, make in variants.items()}
    _cpu_seconds(baseline, events[:CHUNK])
    totals: defaultdict[str, float] = defaultdict(float)
    gc.collect()
    gc.disable()
    try:
        for at in range(0, len(events), CHUNK):
            chunk = events[at : at + CHUNK]
            best: dict[str, float] = {}
            for round_ in range(rounds):
                best["base"] = min(best.get("base", 1e9), _cpu_seconds(baseline, chunk))
                for name in variants:
                    seconds = _cpu_seconds(logs[name][round_], chunk)
                    best[name] = min(best.get(name, 1e9), seconds)
            for name, seconds in best.items():
                totals[name] += seconds
    finally:
        gc.enable()
    print(f"  bare pipeline: {totals['base'] / len(events) * 1e6:.2f} us/event CPU")
    for name in variants:
        print(f"  {totals[name] / totals['base']:.3f}x  {name}")


_PATHS = ("_judge", "_redact_flat", "_redact_event")
_LABELS = {
    "_judge": "loop + scan of new strings",
    "_redact_flat": "flat redaction",
    "_redact_event": "full walk",
}


def _paths(config: RedactorConfig, events: list[Event]) -> None:
    taken: list[str] = []
    originals = {name: getattr(Redactor, name) for name in _PATHS}

    def spy(name: str) -> Callable[..., Any]:
        def method(self: Redactor, *args: Any, **kwargs: Any) -> Any:
            taken.append(name)
            return originals[name](self, *args, **kwargs)

        return method

    for name in _PATHS:
        setattr(Redactor, name, spy(name))
    try:
        redactor = Redactor(config)
        cost, count = Counter[str](), Counter[str]()
        clock = time.thread_time_ns  # CPU time: other processes on the machine do not count

        def timed(logger: object, name: str, event_dict: EventDict) -> EventDict:
            taken.clear()
            start = clock()
            out = redactor(logger, name, event_dict)
            spent = clock() - start
            path = _LABELS.get(taken[-1], taken[-1]) if taken else "loop only"
            cost[path] += spent
            count[path] += 1
            return out

        baseline, log = _pipeline(None), _pipeline(timed)
        base = 0.0
        gc.disable()
        try:
            for at in range(0, len(events), CHUNK):
                base += _cpu_seconds(baseline, events[at : at + CHUNK])
                _cpu_seconds(log, events[at : at + CHUNK])
        finally:
            gc.enable()
    finally:
        for name, method in originals.items():
            setattr(Redactor, name, method)
    per_event = base / len(events) * 1e9
    print(f"  bare pipeline: {per_event / 1000:.2f} us/event CPU")
    for path in sorted(cost, key=cost.__getitem__, reverse=True):
        share = count[path] / len(events)
        each = cost[path] / count[path]
        print(
            f"  {path:<28} {share:7.2%} of events, {each / 1000:7.2f} us each: "
            f"+{cost[path] / len(events) / per_event:.3f}x"
        )


def main() -> None:
    """Print both views."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    events = CorpusBuilder(args.seed).build(args.events, 0.02)
    clean = [e for e in events if not e.planted]
    config = RedactorConfig(fingerprinter=Fingerprinter(b"bench-key-0123456789abcdef"))
    print(native_status().describe())
    print(f"ladder over {len(clean)} clean events (ratio to the bare pipeline):")
    _compare(_ladder(config, clean), clean, args.rounds)
    print(f"paths over all {len(events)} events (one pass, fresh Redactor):")
    if native_status().state == "compiled":
        # A compiled class's methods cannot be replaced, so its paths cannot be spied on.
        print("  skipped: the Redactor runs compiled; AUDITOR_NATIVE=0 shows its source's paths")
        return
    _paths(config, events)


if __name__ == "__main__":
    main()

"""Benchmark: the Redactor here against another revision, in lockstep.

``bench/redaction.py`` measures one version; on a shared machine two of its runs minutes
apart differ by more than most changes do. Here the two versions run side by side, as two
child processes pinned to the same core: this checkout and a revision extracted with
``git archive`` (default ``main``). Both are given the same events (one corpus, built
here and pickled), each runs them through the benchmark's structlog pipeline (the one of
``bench/redaction.py``) with a Redactor of its own per round, in corpus order, and
chunks alternate between the versions (the order alternating too). A chunk's time is its
best CPU time of the child's thread over the rounds; the bare pipeline (no Redactor) is
timed the same way in each child, so each version's overhead ratio is printed as well as
the ratio of the two Redactors' costs, last.

Each child hashes what its pipeline rendered (timestamps left out), so a speed-up that
changed the output shows as two different hashes.

``--source`` runs this checkout twice, its compiled build against its source modules
(``AUDITOR_NATIVE=0``); ``--tree DIR`` compares with the packages under another directory,
with that directory's compiled build (a revision extracted by ``git archive`` has none).

    .venv/bin/python bench/redaction_ab.py [--against main | --source | --tree DIR]
        [--events 50000] [--planted-share 0.02] [--chunk 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from corpus import CorpusBuilder
from lockstep import HERE, PinnedChild, extract

_CHILD = r"""
import gc, hashlib, json, pickle, re, sys, time
from redaction import _pipeline
from auditor.fingerprints import Fingerprinter
from auditor.redaction import Redactor, RedactorConfig
try:
    from auditor._native import status
    native = status().describe()
except ImportError:  # a revision before the compiled build
    native = "native modules: none in this revision"
events = pickle.load(open(sys.argv[1], "rb"))
config = RedactorConfig(fingerprinter=Fingerprinter(b"bench-key-0123456789abcdef"))
baseline = _pipeline(None).info
redacted = None
def run(info, chunk):
    out = []
    started = time.thread_time()
    for event in chunk:
        out.append(info(event.event, **event.kw))
    return time.thread_time() - started, out
for request in sys.stdin:
    what, start, end = request.split()
    chunk = events[int(start):int(end)]
    if what == "round":
        redacted = _pipeline(Redactor(config)).info
        print(json.dumps({"native": native}), flush=True)
        continue
    gc.disable()
    base, _ = run(baseline, chunk)
    red, out = run(redacted, chunk)
    gc.enable()
    stamp = re.compile(rb'"timestamp":"[^"]*"')
    digest = hashlib.sha256(stamp.sub(b"", b"\n".join(out))).hexdigest()
    print(json.dumps({"base": base, "red": red, "digest": digest}), flush=True)
"""


class Timed(NamedTuple):
    """One chunk through one version: bare pipeline and Redactor pipeline CPU seconds."""

    base: float
    red: float
    digest: str


class Version(PinnedChild):
    """One version's pipelines in a child process, asked one chunk at a time."""

    def __init__(
        self, name: str, tree: Path, events: Path, cpu: int | None, *, native: bool = True
    ) -> None:
        # One hash seed for both: set and dict layouts (the memory is a set) alike.
        env = {"PYTHONHASHSEED": "0"} if native else {"PYTHONHASHSEED": "0", "AUDITOR_NATIVE": "0"}
        super().__init__(_CHILD, tree, cpu, args=[str(events)], path=["bench"], env=env)
        self.name = name

    def new_round(self) -> str:
        """A fresh Redactor, as each round of ``bench/redaction.py`` has; says what runs."""
        return str(json.loads(self.ask("round 0 0"))["native"])

    def run(self, start: int, end: int) -> Timed:
        """Time events ``start:end`` through both pipelines."""
        r = json.loads(self.ask(f"chunk {start} {end}"))
        return Timed(float(r["base"]), float(r["red"]), str(r["digest"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus, run both versions in lockstep, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--against", default="main", help="git revision to compare with")
    parser.add_argument(
        "--source", action="store_true", help="compare with this checkout's source modules"
    )
    parser.add_argument(
        "--tree",
        type=Path,
        help="compare with the packages under this directory (with their compiled build)",
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--planted-share", type=float, default=0.02)
    parser.add_argument("--chunk", type=int, default=1000, help="events per chunk")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    events = CorpusBuilder(args.seed).build(args.events, args.planted_share)
    spans = [(i, min(i + args.chunk, len(events))) for i in range(0, len(events), args.chunk)]
    with tempfile.TemporaryDirectory() as tmp:
        pickled = Path(tmp, "events.pickle")
        pickled.write_bytes(pickle.dumps(events))
        if args.tree is not None:
            args.against = str(args.tree)
            base = Version(args.against, args.tree.resolve(), pickled, cpu)
        elif args.source:
            args.against = "source modules"
            base = Version(args.against, HERE, pickled, cpu, native=False)
        else:
            base = Version(args.against, extract(args.against, Path(tmp, "against")), pickled, cpu)
        versions = [base, Version("this checkout", HERE, pickled, cpu)]
        best = {v.name: [Timed(float("inf"), float("inf"), "")] * len(spans) for v in versions}
        digests: dict[str, list[str]] = {v.name: [] for v in versions}
        native: dict[str, str] = {}
        for round_ in range(args.rounds):
            for version in versions:
                native[version.name] = version.new_round()
            for index, (start, end) in enumerate(spans):
                order = versions if (index + round_) % 2 == 0 else versions[::-1]
                for version in order:
                    t = version.run(start, end)
                    old = best[version.name][index]
                    best[version.name][index] = Timed(
                        min(old.base, t.base), min(old.red, t.red), t.digest
                    )
                    if round_ == 0:
                        digests[version.name].append(t.digest)
        for version in versions:
            version.close()
    print(
        f"corpus: {len(events):,} events ({sum(bool(e.planted) for e in events):,} planted) "
        f"in {len(spans)} chunks, {args.rounds} rounds, one core ({cpu})"
    )
    cost: dict[str, float] = {}
    for version in versions:
        base = sum(t.base for t in best[version.name])
        red = sum(t.red for t in best[version.name])
        cost[version.name] = red - base
        digest = hashlib.sha256("".join(digests[version.name]).encode()).hexdigest()
        print(
            f"{version.name}: without {base / len(events) * 1e6:.2f} us/event, with "
            f"{red / len(events) * 1e6:.2f} us/event, Redactor "
            f"{(red - base) / len(events) * 1e6:.2f} us/event, overhead ratio "
            f"{red / base:.3f}x, output {digest[:16]}; {native[version.name]}"
        )
    same = digests[args.against] == digests["this checkout"]
    print(f"rendered output identical: {same}")
    ratio = cost[args.against] / cost["this checkout"]
    print(
        f"\nRedactor cost, {args.against} / this checkout: {ratio:.3f}x "
        "(same events, same core, lockstep)"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the stream detectors here against another revision, in lockstep.

The machine is shared and noisy, so the two versions run side by side as two child
processes pinned to the same core: this checkout and a revision extracted with ``git
archive`` (default ``main``). Each builds ``bench/stream_detectors.py``'s realistic mix
(same generator, same seed) once, then is asked to run the runtime with all three stream
detectors over it, one version after the other (the order alternating), ``--rounds``
times; each version's figure is its best CPU time of a run. Each run's findings are
hashed, so a speed-up that changed what is found shows as two different hashes.

    .venv/bin/python bench/stream_ab.py [--against main] [--calls 50000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lockstep import HERE, PinnedChild, extract

_CHILD = r"""
import gc, hashlib, json, sys, time
import stream_detectors as sd
from detectors import PolicyDetector, ReplayBurstDetector, ValidationAnomalyDetector
from pipelines.runtime import RuntimeConfig, StreamRuntime
events = sd.realistic_mix(int(sys.argv[1]), int(sys.argv[2]))
for _ in sys.stdin:
    runtime = StreamRuntime(
        [ReplayBurstDetector(), ValidationAnomalyDetector(), PolicyDetector()],
        RuntimeConfig(allowed_lateness=2.0),
    )
    found = []
    gc.collect()
    started = time.thread_time()
    for start in range(0, len(events), 1000):
        found.extend(runtime.process(0, events[start : start + 1000]))
    found.extend(runtime.flush())
    cpu = time.thread_time() - started
    digest = hashlib.sha256("\n".join(f.model_dump_json() for f in found).encode())
    print(json.dumps({"cpu": cpu, "events": len(events), "findings": len(found),
                      "digest": digest.hexdigest()}), flush=True)
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run both versions in lockstep; print each one's events/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--against", default="main", help="git revision to compare with")
    parser.add_argument("--calls", type=int, default=50_000, help="CDS Hooks calls in the mix")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.against, Path(tmp, "against"))
        trees = {args.against: base, "this checkout": HERE}
        children = {
            name: PinnedChild(
                _CHILD, tree, cpu, args=[str(args.calls), str(args.seed)], path=["bench"]
            )
            for name, tree in trees.items()
        }
        best = dict.fromkeys(children, float("inf"))
        seen: dict[str, dict[str, object]] = {}
        for round_ in range(args.rounds):
            names = list(children) if round_ % 2 == 0 else list(children)[::-1]
            for name in names:
                result = json.loads(children[name].ask("run"))
                best[name] = min(best[name], float(result["cpu"]))
                seen[name] = result
        for child in children.values():
            child.close()
    print(f"mix: {args.calls:,} calls, {args.rounds} rounds, one core ({cpu})")
    for name, result in seen.items():
        rate = int(result["events"]) / best[name]  # type: ignore[call-overload]
        print(
            f"{name}: {rate:,.0f} events/s ({best[name]:.2f}s CPU), "
            f"{result['findings']} findings, output {str(result['digest'])[:16]}"
        )
    ratio = best[args.against] / best["this checkout"]
    print(f"\nthis checkout / {args.against}: {ratio:.3f}x (same events, same core, lockstep)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

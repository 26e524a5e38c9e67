"""Benchmark: ``auditor scan``'s loop here against another revision, in lockstep.

The machine is shared and noisy: two runs minutes apart can differ by half. So the two
versions run side by side, as two child processes pinned to the same core: this checkout
and a revision extracted with ``git archive`` (default ``main``), or with ``--source``
this checkout's compiled modules against its own source modules (``AUDITOR_NATIVE=0``).
The corpus of ``bench/scan_speed.py`` (same generator, same seed) is cut into chunks, and
each chunk is scanned by one version then the other (the order alternating), ``--rounds``
times; a chunk's time is its best CPU time of the scanning thread over the rounds. Noise that
lasts seconds hits both versions alike, and the ratio of the summed times is printed
last. Each version's JSON Lines output is hashed, so a speed-up that changed what is
reported shows as two different hashes.

    .venv/bin/python bench/scan_ab.py [--against main | --source | --tree DIR] [--lines 200000]
        [--planted-share 0.06] [--chunk 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from lockstep import HERE, PinnedChild, extract
from scan_corpus import LabelledCorpus

_CHILD = r"""
import hashlib, io, json, sys, time
from datetime import UTC, datetime
from auditor.fingerprints import Fingerprinter
from detectors import ContentConfig, ContentScanner
from pipelines.logfiles import LogFiles
from pipelines.scan import JsonlReport, Summary, scan_lines
try:
    from auditor._native import status
    native = status().state
except ImportError:  # a revision from before the compiled build
    native = "absent"
scanner = ContentScanner(ContentConfig(fingerprinter=Fingerprinter(b"bench-scan-ab-key")))
at = datetime(2026, 11, 28, 12, tzinfo=UTC)
for request in sys.stdin:
    summary, out = Summary(), io.StringIO()
    started = time.thread_time()
    scan_lines(scanner, LogFiles([request.strip()]), JsonlReport(out), summary, default_time=at)
    cpu = time.thread_time() - started
    digest = hashlib.sha256(out.getvalue().encode()).hexdigest()
    print(json.dumps({"cpu": cpu, "lines": summary.lines, "findings": summary.findings,
                      "digest": digest, "native": native}), flush=True)
"""


class Scanned(NamedTuple):
    """One chunk scanned by one version."""

    cpu: float
    lines: int
    findings: int
    digest: str
    native: str


class Version(PinnedChild):
    """One version's scanning loop in a child process, asked one chunk at a time."""

    def __init__(
        self, name: str, tree: Path, cpu: int | None, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(_CHILD, tree, cpu, env=env)
        self.name = name

    def scan(self, chunk: Path) -> Scanned:
        """Scan one chunk; its CPU seconds, lines, findings and output digest."""
        r = json.loads(self.ask(str(chunk)))
        return Scanned(
            float(r["cpu"]), int(r["lines"]), int(r["findings"]), str(r["digest"]), str(r["native"])
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus, run both versions in lockstep, print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--against", default="main", help="git revision to compare with")
    parser.add_argument(
        "--tree",
        type=Path,
        help="compare with the packages under this directory (with their compiled build)",
    )
    parser.add_argument(
        "--source",
        action="store_true",
        help="compare with this checkout's source modules (AUDITOR_NATIVE=0), not a revision",
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--planted-share", type=float, default=0.06)
    parser.add_argument("--chunk", type=int, default=10_000, help="lines per chunk")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    lines = LabelledCorpus(args.seed).build(args.lines, args.planted_share)
    with tempfile.TemporaryDirectory() as tmp:
        chunks = []
        for start in range(0, len(lines), args.chunk):
            chunk = Path(tmp, f"chunk{start // args.chunk:05d}.log")
            part = lines[start : start + args.chunk]
            chunk.write_text("".join(x.text.replace("\n", " ") + "\n" for x in part))
            chunks.append(chunk)
        if args.tree is not None:
            args.against = str(args.tree)
            base = Version(args.against, args.tree.resolve(), cpu)
        elif args.source:
            args.against = "source modules"
            base = Version(args.against, HERE, cpu, env={"AUDITOR_NATIVE": "0"})
        else:
            base = Version(args.against, extract(args.against, Path(tmp, "against")), cpu)
        versions = [base, Version("this checkout", HERE, cpu)]
        best = {v.name: [float("inf")] * len(chunks) for v in versions}
        last: dict[str, list[Scanned]] = {v.name: [] for v in versions}
        for round_ in range(args.rounds):
            for index, chunk in enumerate(chunks):
                order = versions if (index + round_) % 2 == 0 else versions[::-1]
                for version in order:
                    result = version.scan(chunk)
                    best[version.name][index] = min(best[version.name][index], result.cpu)
                    if round_ == 0:
                        last[version.name].append(result)
        for version in versions:
            version.close()
    print(
        f"corpus: {len(lines):,} lines in {len(chunks)} chunks, {args.rounds} rounds, "
        f"one core ({cpu})"
    )
    for version in versions:
        cpu_s = sum(best[version.name])
        results = last[version.name]
        findings = sum(r.findings for r in results)
        digest = hashlib.sha256("".join(r.digest for r in results).encode())
        print(
            f"{version.name}: {len(lines) / cpu_s:,.0f} lines/s ({cpu_s:.2f}s CPU), "
            f"{findings:,} findings, output {digest.hexdigest()[:16]}, "
            f"native modules: {results[0].native}"
        )
    ratio = sum(best[args.against]) / sum(best["this checkout"])
    print(f"\nthis checkout / {args.against}: {ratio:.3f}x (same lines, same core, lockstep)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

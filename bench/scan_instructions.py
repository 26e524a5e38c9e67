"""Benchmark: instructions per line of the scan loop, under cachegrind (load-independent).

Timed figures on this shared machine move by more than most changes; instruction counts
do not. The corpus of ``bench/scan_speed.py`` (same generator, same seed) is split into
the lines with planted values and the clean ones, and a child process scans ``--lines``
of one kind (parse, gather, findings, JSON Lines report, as ``scan_lines`` does per line)
after a warm-up on other lines of the same kind, under ``valgrind --tool=cachegrind``
with ``PYTHONHASHSEED=0``. The same child without the measured lines runs too, and the
difference, divided by the lines, is printed: the cost of a line, start-up and warm-up
left out.

    .venv/bin/python bench/scan_instructions.py [--kind planted|clean] [--lines 1000]
        [--tree PATH]

``--tree`` measures another checkout's files (``git worktree`` or ``git archive``) with
this virtual environment.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lockstep import HERE
from scan_corpus import LabelledCorpus

_CHILD = r"""
import io, sys
from datetime import UTC, datetime
from auditor.fingerprints import Fingerprinter
from auditor.protocols import ScanContext
from detectors import ContentConfig, ContentScanner
from detectors.content import parse_line
from pipelines.scan import JsonlReport, record_time
from pipelines.scan.reports import Where
path, warm, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = [line.rstrip(b"\n") for line in open(path, "rb")]
scanner = ContentScanner(ContentConfig(fingerprinter=Fingerprinter(b"bench-scan-ab-key")))
at = datetime(2026, 11, 28, 12, tzinfo=UTC)
def run(lines):
    report = JsonlReport(io.StringIO())
    for number, line in enumerate(lines, 1):
        content = parse_line(line)
        gathered = scanner.gather(content)
        if gathered is None:
            continue
        context = ScanContext(origin=f"f.log:{number}", observed_at=record_time(content) or at)
        outcome = scanner.outcome(gathered, context)
        where = Where("f.log", number, isinstance(content, str))
        for finding in outcome.findings:
            report.add(where, finding)
run(data[-warm:])
run(data[:n])
"""

_REFS = re.compile(rb"I\s+refs:\s+([\d,]+)")


def instructions(tree: Path, path: Path, warm: int, lines: int) -> int:
    """Instructions of one child run under cachegrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
    argv = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-c",
        _CHILD,
        str(path),
        str(warm),
        str(lines),
    ]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, check=True)  # noqa: S603 - valgrind and this interpreter, fixed arguments
    found = _REFS.search(done.stderr)
    if found is None:
        raise SystemExit("cachegrind printed no instruction count")
    return int(found[1].replace(b",", b""))


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus, run the child twice under cachegrind, print the difference."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kind", choices=("planted", "clean"), default="planted")
    parser.add_argument("--lines", type=int, default=1000, help="lines measured")
    parser.add_argument("--warm", type=int, default=1500, help="lines scanned first")
    parser.add_argument("--corpus", type=int, default=60_000, help="corpus lines built")
    parser.add_argument("--tree", type=Path, default=HERE, help="checkout to measure")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    built = LabelledCorpus(args.seed).build(args.corpus, 0.06)
    chosen = [x.text for x in built if bool(x.labels) == (args.kind == "planted")]
    if len(chosen) < args.lines + args.warm:
        raise SystemExit(f"only {len(chosen)} {args.kind} lines; build a larger --corpus")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "lines.log")
        path.write_text("".join(t.replace("\n", " ") + "\n" for t in chosen))
        tree = args.tree.resolve()
        base = instructions(tree, path, args.warm, 0)
        total = instructions(tree, path, args.warm, args.lines)
    print(f"tree: {tree}; {args.lines:,} {args.kind} lines after {args.warm:,} to warm up")
    print(f"{args.kind}: {(total - base) / args.lines:,.0f} instructions/line")
    return 0


if __name__ == "__main__":
    sys.exit(main())

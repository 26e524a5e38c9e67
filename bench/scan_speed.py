"""Benchmark: lines per second of ``auditor scan``, against detect-secrets and Presidio.

Builds the labelled corpus of ``bench/detection_quality.py`` (same generator, same seed),
pins this process to one core, and measures in one run:

- ``auditor scan``'s loop (`pipelines.scan.scan_lines`: read, parse with orjson, both
  content detectors, findings written as JSON Lines to memory) over the whole corpus,
  best of ``--rounds``, in CPU time of this thread;
- ``auditor scan`` as a command (a child process on the same core, reading the corpus
  file, writing JSON Lines to /dev/null): start-up and imports included;
- on the same random sample of lines: our loop again, Yelp's detect-secrets 1.5 in file
  mode (default plugins and filters, its ``SecretsCollection.scan_file``), and
  Microsoft Presidio's pattern recognizers for e-mail, phone, US SSN and dates (no NLP
  model, see ``bench/detection_quality.py``) when ``presidio-analyzer`` is installed.

CPU time, not wall time: the machine is shared, and other processes' load should not
count. The ratios are printed last. Targets: at least 50,000 lines/s, at least 30x
detect-secrets.

    .venv/bin/python bench/scan_speed.py [--lines 200000] [--planted-share 0.06]
        [--sample 3000] [--presidio-sample 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from detection_quality import detect_secrets_found, presidio_found, presidio_recognizers
from scan_corpus import LabelledCorpus, Line

from auditor._native import status as native_status
from auditor.fingerprints import Fingerprinter
from detectors import ContentConfig, ContentScanner
from pipelines.logfiles import LogFiles
from pipelines.scan import JsonlReport, Summary, scan_lines

TARGET_RATE = 50_000
TARGET_RATIO = 30.0
KEY = "bench-scan-speed-fingerprint-key"


def _write(lines: Sequence[Line], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.writelines(line.text.replace("\n", " ") + "\n" for line in lines)


def ours(path: Path, rounds: int) -> tuple[float, int, int]:
    """Best CPU seconds of the scan loop over ``path``; lines and findings."""
    scanner = ContentScanner(ContentConfig(fingerprinter=Fingerprinter(KEY.encode())))
    best, lines, findings = float("inf"), 0, 0
    for _ in range(rounds):
        summary = Summary()
        started = time.thread_time()
        scan_lines(
            scanner,
            LogFiles([str(path)]),
            JsonlReport(io.StringIO()),
            summary,
            default_time=datetime.now(UTC),
        )
        best = min(best, time.thread_time() - started)
        lines, findings = summary.lines, summary.findings
    return best, lines, findings


def command(path: Path, cpu: int | None) -> tuple[float, float]:
    """CPU and wall seconds of ``auditor scan`` as a child process, on the same core."""
    exe = Path(sys.executable).with_name("auditor")
    argv = [str(exe), "scan", str(path), "--format", "jsonl", "-o", os.devnull, "-q", "--exit-zero"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    env = {**os.environ, "AUDITOR_FINGERPRINT_KEY": KEY}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env)  # noqa: S603 - our own command, fixed arguments
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu_s, wall


def main(argv: Sequence[str] | None = None) -> int:
    """Build, measure, print the rates and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--planted-share", type=float, default=0.06)
    parser.add_argument("--sample", type=int, default=3000, help="lines for detect-secrets")
    parser.add_argument("--presidio-sample", type=int, default=1000, help="lines for Presidio")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    lines = LabelledCorpus(args.seed).build(args.lines, args.planted_share)
    rng = random.Random(args.seed)
    sample = [lines[i] for i in sorted(rng.sample(range(len(lines)), min(args.sample, len(lines))))]
    with tempfile.TemporaryDirectory() as tmp:
        corpus_path, sample_path = Path(tmp, "corpus.log"), Path(tmp, "sample.log")
        _write(lines, corpus_path)
        _write(sample, sample_path)
        size = corpus_path.stat().st_size
        print(native_status().describe())
        print(
            f"corpus: {len(lines):,} lines, {size / 1e6:.1f} MB, "
            f"{sum(bool(x.labels) for x in lines):,} with planted values; one core ({cpu})"
        )
        ours_cpu, n, findings = ours(corpus_path, args.rounds)
        rate = n / ours_cpu
        print(
            f"auditor scan loop: {n:,} lines, {findings:,} findings, "
            f"{ours_cpu:.2f}s CPU -> {rate:,.0f} lines/s"
        )
        cmd_cpu, cmd_wall = command(corpus_path, cpu)
        print(
            f"auditor scan command: {cmd_cpu:.2f}s CPU, {cmd_wall:.2f}s wall (start-up included) "
            f"-> {n / cmd_cpu:,.0f} lines/s of CPU"
        )
        sample_cpu, sample_n, _ = ours(sample_path, args.rounds)
        sample_rate = sample_n / sample_cpu
        print(f"auditor scan loop on the {sample_n:,}-line sample: {sample_rate:,.0f} lines/s")
    _, ds_cpu = detect_secrets_found(sample)
    ds_rate = len(sample) / ds_cpu
    print(
        f"detect-secrets 1.5 (file mode) on the sample: {ds_cpu:.2f}s CPU -> {ds_rate:,.0f} lines/s"
    )
    recognizers = presidio_recognizers()
    p_rate = None
    if recognizers is not None:
        p_lines = sample[: args.presidio_sample]
        _, p_cpu = presidio_found(p_lines, recognizers)
        p_rate = len(p_lines) / p_cpu
        print(
            f"Presidio pattern recognizers on {len(p_lines):,} of the sample: {p_rate:,.0f} lines/s"
        )
    else:
        print("Presidio: not installed (pip install -e '.[bench]')")
    print("\nRatios (same lines, same run):")
    ratio = sample_rate / ds_rate
    print(f"  ours / detect-secrets: {ratio:,.0f}x  (target >= {TARGET_RATIO:.0f}x)")
    if p_rate is not None:
        print(f"  ours / Presidio patterns: {sample_rate / p_rate:,.0f}x")
    print(f"  ours, whole corpus: {rate:,.0f} lines/s  (target >= {TARGET_RATE:,})")
    return 0 if rate >= TARGET_RATE and ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())

"""Two checkouts' ``run_embedded`` over the same file, alternating: a before/after ratio.

    .venv/bin/python bench/embedded_ab.py BEFORE AFTER FILE [--rounds 2] [--modes always,never]

``BEFORE`` and ``AFTER`` are checkouts of this repository (``git worktree add /tmp/before
REV``), each with its compiled modules built (``python scripts/native.py`` there: a stale
build falls back to the source modules, which the output shows). ``FILE`` is a JSON-lines
input, e.g. written by ``bench/pipeline.py``'s corpus or ``auditor simulate``.

Each run is a fresh process that imports the package from its checkout and runs
``run_embedded`` over ``FILE`` into a fresh store, with the store on a thread (``never``) or
in a process (``always``). The two checkouts take turns, round after round, so that the
host's drift (other tenants, on a shared 2-core machine) falls on both alike. Printed: each
run's records/s of wall time, the main thread's CPU seconds (reader and detect stage), the
store process's, and then the after/before ratio of each round and mode.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(root: Path, source: Path, mode: str) -> dict[str, object]:
    """In this process: ``run_embedded`` from the checkout at ``root``; its figures."""
    sys.path.insert(0, str(root))
    os.environ.setdefault("AUDITOR_FINGERPRINT_KEY", "bench-embedded-ab-" + "k" * 16)
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from auditor._native import status
    from pipelines.settings import PipelineSettings
    from pipelines.topology import run_embedded

    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        settings = PipelineSettings(alerts={"log": False}, store_process=mode)
        started, main = time.perf_counter(), time.thread_time()
        summary = run_embedded([source], Path(tmp) / "ab.duckdb", settings)
        wall, main = time.perf_counter() - started, time.thread_time() - main
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "records_per_s": summary.records / wall,
        "main_cpu_s": main,
        "store_process_cpu_s": child.ru_utime + child.ru_stime,
        "modules": status().state,
    }


def main() -> None:
    """Alternate the two checkouts and print each run, then the ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("file", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default="always,never")
    parser.add_argument("--one", choices=["always", "never"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child run: one checkout (given as ``before``), one mode
        print(json.dumps(one_run(args.before.resolve(), args.file.resolve(), args.one)))
        return
    for root in (args.before, args.after):
        if not (root / "pipelines").is_dir():
            parser.error(f"{root} is not a checkout of this repository")
    if not args.file.is_file():
        parser.error(f"{args.file} is not a file")
    ratios: list[str] = []
    for round_ in range(1, args.rounds + 1):
        for mode in args.modes.split(","):
            rates = []
            for label, root in (("before", args.before), ("after", args.after)):
                out = subprocess.run(  # noqa: S603 - this script, with its own arguments
                    [sys.executable, __file__, str(root), "-", str(args.file), "--one", mode],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                run = json.loads(out.strip().splitlines()[-1])
                rates.append(run["records_per_s"])
                print(
                    f"round {round_}, store {'process' if mode == 'always' else 'thread'}, "
                    f"{label} ({run['modules']}): {run['records_per_s']:,.0f} records/s, "
                    f"main thread {run['main_cpu_s']:.1f} s CPU, "
                    f"store process {run['store_process_cpu_s']:.1f} s",
                    flush=True,
                )
            ratios.append(f"round {round_} {mode}: {rates[1] / rates[0]:.2f}")
    print("after / before: " + "; ".join(ratios))


if __name__ == "__main__":
    main()

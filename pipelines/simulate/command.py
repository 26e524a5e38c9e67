"""``auditor simulate``: write realistic CDS Hooks traffic with labelled incidents.

auditor simulate [--seed N] [--start TIME] [--duration 10m] [--rate R]
                 [--incidents all|none|TYPE[:VARIANT],...] [--out FILE|-]
                 [--labels FILE] [--policy FILE] [--kafka HOST:PORT] [--http]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditor.errors import InputError
from auditor.fingerprints import ENV_KEY, ENV_KEY_FILE

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``2h``, ``1d``.

    Raises:
        argparse.ArgumentTypeError: Anything else.
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError("a duration like 90s, 10m, 2h or 1d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def parse_start(text: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` allowed).

    Raises:
        argparse.ArgumentTypeError: Not ISO 8601, or no zone.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("an ISO 8601 time such as 2026-11-16T14:00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("the start time needs a zone (Z or +hh:mm)")
    return value.astimezone(UTC)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor simulate``."""
    parser.description = (
        "Simulate EHRs calling CDS services with real signed tokens through the real "
        "verifier and middleware; write the authz events and service logs, optionally "
        "with labelled incidents."
    )
    parser.add_argument("--seed", type=int, default=1, help="same seed, same bytes (default 1)")
    parser.add_argument(
        "--start",
        type=parse_start,
        metavar="TIME",
        help="simulated start, ISO 8601 with zone (default 2026-11-16T14:00:00Z, 09:00 local)",
    )
    parser.add_argument(
        "--duration",
        type=parse_duration,
        default=timedelta(minutes=10),
        metavar="D",
        help="simulated duration: 90s, 10m, 2h, 1d (default 10m)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        metavar="R",
        help="hook calls per second at the busiest hour; nights see ~8%% of it (default 5)",
    )
    parser.add_argument(
        "--incidents",
        default="none",
        metavar="LIST",
        help="'all', 'none' (default), or a comma list of TYPE or TYPE:VARIANT "
        "(see --list-incidents)",
    )
    parser.add_argument(
        "--list-incidents", action="store_true", help="list incident types and variants, exit"
    )
    parser.add_argument(
        "--out", default="-", metavar="FILE", help="JSON lines output (default: stdout)"
    )
    parser.add_argument("--labels", type=Path, metavar="FILE", help="write the ground truth here")
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="write the stream detectors' configuration for the simulated site here",
    )
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help="publish to Kafka (authz and logs topics) instead of writing --out",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings (Kafka, topics)")
    parser.add_argument(
        "--http",
        action="store_true",
        help="serve the CDS services with uvicorn on 127.0.0.1 and call them over real HTTP",
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulation and write its outputs."""
    from pipelines.simulate.labels import VARIANTS, IncidentType, parse_incidents, write_labels

    if args.list_incidents:
        for kind in IncidentType:
            variants = VARIANTS.get(kind)
            sys.stdout.write(kind.value + (f": {', '.join(variants)}" if variants else "") + "\n")
        return 0
    from pipelines.simulate.engine import DEFAULT_START, SimulationConfig
    from pipelines.simulate.incidents import MIN_SPIKE_RUN
    from pipelines.simulate.policy import detector_config

    incidents = parse_incidents(args.incidents)
    if args.incidents.strip() == "all" and args.duration < MIN_SPIKE_RUN:
        incidents = tuple(i for i in incidents if i.type is not IncidentType.FAILURE_SPIKE)
        sys.stderr.write(
            "auditor simulate: failure_spike left out: a rate spike needs a run of at least "
            "20 minutes (the detector learns each client's baseline for 15)\n"
        )
    if args.http and any(i.type is IncidentType.TLS_1_0 for i in incidents):
        incidents = tuple(i for i in incidents if i.type is not IncidentType.TLS_1_0)
        sys.stderr.write(
            "auditor simulate: tls_1_0 left out: over --http the services see loopback HTTP, "
            "not the client's TLS version\n"
        )
    config = SimulationConfig(
        seed=args.seed,
        start=args.start or DEFAULT_START,
        duration=args.duration,
        rate=args.rate,
        incidents=incidents,
        fingerprinter=_fingerprinter(args.seed),
    ).validated()
    began = time.perf_counter()
    result = _simulate(config, args)
    elapsed = time.perf_counter() - began
    if args.labels:
        write_labels(args.labels, result.labels)
    if args.policy:
        args.policy.write_text(json.dumps(detector_config(), indent=2) + "\n", "utf-8")
    records = result.events + result.logs
    sys.stderr.write(
        f"auditor simulate: {result.simulated} of traffic from {config.start:%Y-%m-%dT%H:%M:%SZ}: "
        f"{result.calls:,} hook calls, {result.events:,} authz events, {result.logs:,} log "
        f"lines, {len(result.labels)} incidents; {elapsed:.1f} s "
        f"({records / max(elapsed, 1e-9):,.0f} records/s)\n"
    )
    return 0


def _simulate(config: Any, args: argparse.Namespace) -> Any:
    from pipelines.simulate.engine import Simulation
    from pipelines.simulate.output import JsonLinesOutput, KafkaOutput

    if args.kafka or args.config:
        from pipelines.emit import KafkaEmitter
        from pipelines.kafka.admin import ensure_topics
        from pipelines.kafka.command import settings_from_args

        settings = settings_from_args(args)
        ensure_topics(settings)
        return Simulation(config, KafkaOutput(KafkaEmitter(settings)), http=args.http).run()
    if args.out == "-":
        return Simulation(config, JsonLinesOutput(sys.stdout.buffer), http=args.http).run()
    try:
        stream = Path(args.out).open("wb", buffering=1 << 20)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"cannot write {args.out}: {exc.strerror}") from None
    with stream:
        return Simulation(config, JsonLinesOutput(stream), http=args.http).run()


def _fingerprinter(seed: int) -> Any:
    from auditor.fingerprints import Fingerprinter
    from pipelines.simulate.engine import seed_fingerprinter

    if os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE):
        return Fingerprinter.from_environment()
    sys.stderr.write(
        f"auditor simulate: no {ENV_KEY} set; fingerprints use a key derived from the seed "
        "(set the pipeline's key to make them correlate with its findings)\n"
    )
    return seed_fingerprinter(seed)

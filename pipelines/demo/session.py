"""One run of ``auditor demo``: simulate, detect and store, report, score.

The stages meet at seams another part of the product owns: the embedded pipeline
(:func:`pipelines.demo.embedded.run_embedded`, until ``auditor run --input`` replaces it)
and the HTML report (``dashboards.report.write_report``). The report lives in the
``dashboards`` layer, which ``pipelines`` may not import; the demo names it by module
path and loads it when it runs, as the ``auditor`` command table does for its commands.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from auditor.errors import InputError, MissingExtraError
from auditor.fingerprints import ENV_KEY, ENV_KEY_FILE, Fingerprinter
from auditor.protocols import ContentDetector
from auditor.vocabulary import DetectorName, RunMode
from detectors import StreamDetectorsConfig
from pipelines.demo.embedded import EmbeddedRun, run_chunks, run_embedded
from pipelines.demo.summary import write_summary
from pipelines.simulate import (
    JsonLinesOutput,
    Simulation,
    SimulationConfig,
    SimulationResult,
    all_incidents,
    detector_config,
    seed_fingerprinter,
)
from pipelines.simulate.scoring import score
from pipelines.store import open_store

DEMO_START: Final = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
"""10:00 in the hospitals' time zone: a busy Monday morning."""
DEMO_DURATION: Final = timedelta(minutes=40)
"""Long enough for validation_anomaly to learn each client's baseline (15 minutes) before
the rate spike, and for a key rotation clear of JWK Set refetches."""
STREAM_DETECTORS: Final = frozenset(
    {DetectorName.REPLAY_BURST, DetectorName.VALIDATION_ANOMALY, DetectorName.POLICY}
)

ReportWriter = Callable[..., Path]


def html_report_writer() -> ReportWriter:
    """``dashboards.report.write_report``, loaded by name (see the module docstring).

    Raises:
        MissingExtraError: The ``dashboard`` extra (Jinja2) is not installed.
    """
    try:
        module = importlib.import_module("dashboards.report")
    except ModuleNotFoundError:
        raise MissingExtraError("the HTML report", "dashboard") from None
    writer: ReportWriter = module.write_report
    return writer


def content_detectors(
    fingerprinter: Fingerprinter, jku_allowlist: Iterable[str] = ()
) -> list[ContentDetector]:
    """``leaked_token`` and ``phi_in_logs`` (issue 3), when this build has them.

    Until they land, the demo says so instead of scoring them; they are looked up by
    name so the rest of the demo runs without them.
    """
    package = importlib.import_module("detectors")
    names = ("ContentConfig", "LeakedTokenDetector", "PhiInLogsDetector")
    if not all(hasattr(package, name) for name in names):
        return []
    config = package.ContentConfig(
        fingerprinter=fingerprinter, jku_allowlist=frozenset(jku_allowlist)
    )
    return [package.LeakedTokenDetector(config), package.PhiInLogsDetector(config)]


def approved_jku(settings: Mapping[str, Any]) -> list[str]:
    """Every ``jku`` the site's policy approves (for the leaked-JWT triage)."""
    clients = settings.get("policy", {}).get("clients", {})
    return sorted({jku for client in clients.values() for jku in client["approved_jku"]})


class Demo:
    """The demo's stages and their outputs (see the module docstring).

    Args:
        db: The demo database (replaced if an earlier demo made it).
        report: Where the HTML report goes.
        seed: The simulation's seed.
        rate: Peak hook calls per second of the simulated traffic.
        traffic: Keep the simulated traffic in this file (a temporary file otherwise).
        kafka: Send the traffic through this broker.
        config: TOML settings for Kafka.
        out: Where the summary goes.
    """

    def __init__(
        self,
        *,
        db: Path,
        report: Path,
        seed: int,
        rate: float,
        traffic: Path | None,
        kafka: str | None,
        config: str | None,
        out: TextIO,
    ) -> None:
        self.db = db
        self.report = report
        self.seed = seed
        self.rate = rate
        self.traffic = traffic
        self.kafka = kafka
        self.config = config
        self.out = out
        self.timings: dict[str, float] = {}

    def run(self) -> int:
        """Run every stage; 0 when every incident was detected and nothing else fired."""
        self._start_fresh()
        fingerprinter = self._fingerprinter()
        config = SimulationConfig(
            seed=self.seed,
            start=DEMO_START,
            duration=DEMO_DURATION,
            rate=self.rate,
            incidents=all_incidents(),
            fingerprinter=fingerprinter,
        )
        content = content_detectors(fingerprinter, approved_jku(detector_config()))
        running = STREAM_DETECTORS | {d.name for d in content}
        with tempfile.TemporaryDirectory(prefix="auditor-demo-") as scratch:
            simulation, stored = self._simulate_and_detect(
                config, content, fingerprinter, Path(scratch)
            )
        report = self._stage("report", lambda: self._write_report(config))
        card = score(
            [label for label in simulation.labels if label.expected.detector in running],
            stored.findings,
        )
        unscored = [label for label in simulation.labels if label.expected.detector not in running]
        full = score(simulation.labels, stored.findings) if unscored else card
        write_summary(
            self.out,
            simulation=simulation,
            start=config.start,
            stored_events=stored.events,
            findings=len(stored.findings),
            card=full,
            running=running,
            db=self.db,
            report=report,
            timings=self.timings,
        )
        return 0 if card.perfect else 1

    def _stage(self, name: str, action: Callable[[], Any]) -> Any:
        self.out.write(f"auditor demo: {name} ...\n")
        self.out.flush()
        began = time.perf_counter()
        result = action()
        self.timings[name] = time.perf_counter() - began
        return result

    def _start_fresh(self) -> None:
        """Remove an earlier demo's database; refuse to touch any other."""
        if not self.db.exists():
            return
        try:
            with open_store(self.db) as store:
                configs = store.query("SELECT config_json FROM runs").column(0).to_pylist()
        except Exception as exc:  # noqa: BLE001 - anything unreadable is not ours to delete
            raise InputError(
                f"{self.db} exists and is not a demo database ({type(exc).__name__}); "
                "pass --db with another path"
            ) from None
        if not all(json.loads(c or "{}").get("demo") is True for c in configs):
            raise InputError(
                f"{self.db} holds data that did not come from 'auditor demo'; "
                "pass --db with another path"
            )
        for path in (self.db, self.db.with_name(self.db.name + ".wal")):
            path.unlink(missing_ok=True)

    def _fingerprinter(self) -> Fingerprinter:
        if os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE):
            return Fingerprinter.from_environment()
        return seed_fingerprinter(self.seed)

    def _simulate_and_detect(
        self,
        config: SimulationConfig,
        content: list[ContentDetector],
        fingerprinter: Fingerprinter,
        scratch: Path,
    ) -> tuple[SimulationResult, EmbeddedRun]:
        settings = detector_config()
        common: dict[str, Any] = {
            "db": self.db,
            "detectors": StreamDetectorsConfig.model_validate(settings),
            "content": content,
            "fingerprinter": fingerprinter,
            "config": {"demo": True, "seed": self.seed, "detectors": settings},
        }
        if self.kafka or self.config:
            from pipelines.demo import through_kafka

            kafka = through_kafka.demo_settings(self.kafka, self.config, scratch / "spool")
            simulation, published = self._stage(
                "simulate into Kafka", lambda: through_kafka.publish(config, kafka)
            )
            stored = self._stage(
                "detect and store (reading Kafka)",
                lambda: run_chunks(
                    through_kafka.published_chunks(published),
                    mode=RunMode.KAFKA,
                    inputs=published.topics,
                    **common,
                ),
            )
            return simulation, stored
        traffic = self.traffic or scratch / "traffic.jsonl"

        def simulate() -> SimulationResult:
            with traffic.open("wb", buffering=1 << 20) as stream:
                return Simulation(config, JsonLinesOutput(stream)).run()

        simulation = self._stage("simulate", simulate)
        stored = self._stage(
            "detect and store",
            lambda: run_embedded(traffic, inputs=[f"simulate:seed={self.seed}"], **common),
        )
        return simulation, stored

    def _write_report(self, config: SimulationConfig) -> Path | None:
        try:
            writer = html_report_writer()
        except MissingExtraError as exc:
            self.out.write(f"auditor demo: report skipped: {exc}\n")
            return None
        return writer(
            self.db,
            self.report,
            since=config.start - timedelta(minutes=1),
            until=config.start + config.duration + timedelta(minutes=10),
        )

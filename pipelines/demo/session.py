"""One run of ``auditor demo``: simulate, detect and store, report, score.

Detection and storage are the production pipeline itself: ``run_embedded`` (what
``auditor run --input`` runs) by default, ``run_kafka`` with both stages (what
``auditor run --kafka --db`` runs) with ``--kafka``. The scorecard is read back from the
DuckDB file, so it judges what was committed. The HTML report
(``dashboards.report.write_report``) lives in the ``dashboards`` layer, which ``pipelines``
may not import; the demo names it by module path and loads it when it runs, as the
``auditor`` command table does for its commands.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TextIO, TypeVar

from auditor.errors import InputError, MissingExtraError
from auditor.fingerprints import ENV_KEY, ENV_KEY_FILE, Fingerprinter
from auditor.models import Finding
from pipelines.demo.summary import write_summary
from pipelines.settings import PipelineSettings
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
from pipelines.topology import run_embedded

DEMO_START: Final = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
"""10:00 in the hospitals' time zone: a busy Monday morning."""
DEMO_DURATION: Final = timedelta(minutes=40)
"""Long enough for validation_anomaly to learn each client's baseline (15 minutes) before
the rate spike, and for a key rotation clear of JWK Set refetches."""

ReportWriter = Callable[..., Path]
T = TypeVar("T")

_FINDINGS_QUERY: Final = """
SELECT finding_id, detector, rule, kind, severity, observed_at, title, client_iss,
       service_id, fingerprint, location, origin, event_ids, evidence, safeguard, reference,
       window_start, window_end, count, revision, facts_json
FROM findings
"""


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


def demo_pipeline() -> PipelineSettings:
    """The pipeline settings of the simulated site: its detectors' configuration.

    Alerts are decided and stored as in production, but not written as log lines: the
    demo prints its own summary.
    """
    return PipelineSettings.model_validate(
        {"detectors": detector_config(), "alerts": {"log": False}}
    )


def stored_findings(db: Path) -> list[Finding]:
    """Every finding in the store at ``db``, at its latest stored revision."""
    with open_store(db) as store:
        rows = store.query(_FINDINGS_QUERY).to_pylist()
    findings = []
    for row in rows:
        facts = row.pop("facts_json")
        row["facts"] = json.loads(facts) if facts else {}
        row["event_ids"] = tuple(row["event_ids"] or ())
        findings.append(Finding.model_validate({k: v for k, v in row.items() if v is not None}))
    return findings


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
        with tempfile.TemporaryDirectory(prefix="auditor-demo-") as scratch:
            simulation = self._simulate_and_detect(config, fingerprinter, Path(scratch))
        findings = stored_findings(self.db)
        with open_store(self.db) as store:
            events = store.query("SELECT count(*) FROM events").column(0)[0].as_py()
        report = self._stage("report", lambda: self._write_report(config))
        card = score(simulation.labels, findings)
        write_summary(
            self.out,
            simulation=simulation,
            start=config.start,
            stored_events=events,
            findings=len(findings),
            card=card,
            db=self.db,
            report=report,
            timings=self.timings,
        )
        return 0 if card.perfect else 1

    def _stage(self, name: str, action: Callable[[], T]) -> T:
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
        self, config: SimulationConfig, fingerprinter: Fingerprinter, scratch: Path
    ) -> SimulationResult:
        """Simulate, then run the pipeline over the traffic into the demo database."""
        pipeline = demo_pipeline()
        record = {"demo": True, "seed": self.seed, "detectors": detector_config()}
        if self.kafka or self.config:
            from pipelines.demo import through_kafka

            settings = through_kafka.demo_settings(
                self.kafka, self.config, scratch / "spool", pipeline
            )
            simulation, starts = self._stage(
                "simulate into Kafka", lambda: through_kafka.publish(config, settings)
            )
            self._stage(
                "detect and store (auditor run --kafka)",
                lambda: through_kafka.detect_and_store(
                    settings, starts, self.db, fingerprinter=fingerprinter, record_config=record
                ),
            )
            return simulation
        traffic = self.traffic or scratch / "traffic.jsonl"

        def simulate() -> SimulationResult:
            with traffic.open("wb", buffering=1 << 20) as stream:
                return Simulation(config, JsonLinesOutput(stream)).run()

        simulation = self._stage("simulate", simulate)
        self._stage(
            "detect and store (auditor run --input)",
            lambda: run_embedded(
                [traffic], self.db, pipeline, fingerprinter=fingerprinter, record_config=record
            ),
        )
        return simulation

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

"""Running small simulations for the tests, and reading what they wrote."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from auditor.fingerprints import Fingerprinter
from pipelines.simulate import (
    JsonLinesOutput,
    Label,
    Simulation,
    SimulationConfig,
    SimulationResult,
    parse_incidents,
)

TEST_KEY = Fingerprinter(b"simulation-test-key-0123456789")


@dataclass(frozen=True)
class Run:
    """The bytes a simulation wrote, its result, and the records parsed."""

    data: bytes
    result: SimulationResult

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.data.splitlines()]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "authz"]

    @property
    def logs(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") != "authz"]

    @property
    def labels(self) -> tuple[Label, ...]:
        return self.result.labels

    def label(self, name: str) -> Label:
        return next(label for label in self.labels if label.name == name)


def simulate(
    *,
    minutes: float = 3,
    rate: float = 2.0,
    incidents: str = "none",
    seed: int = 11,
    http: bool = False,
) -> Run:
    stream = io.BytesIO()
    config = SimulationConfig(
        seed=seed,
        duration=timedelta(minutes=minutes),
        rate=rate,
        incidents=parse_incidents(incidents),
        fingerprinter=TEST_KEY,
    )
    result = Simulation(config, JsonLinesOutput(stream), http=http).run()
    return Run(stream.getvalue(), result)

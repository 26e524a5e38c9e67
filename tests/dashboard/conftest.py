"""Fixtures of the dashboard and report tests: the scenario database, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dashboard_scenario import Scenario, build_scenario_db

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
"""Screenshots and reports the tests leave for people to look at (git-ignored)."""


@pytest.fixture(scope="session")
def _pristine_scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario_db(tmp_path_factory.mktemp("scenario") / "audit.duckdb")


@pytest.fixture
def scenario(_pristine_scenario: Scenario, tmp_path: Path) -> Scenario:
    """A fresh copy of the scenario database (tests may record reviews in it)."""
    copy = tmp_path / "audit.duckdb"
    shutil.copyfile(_pristine_scenario.path, copy)
    return Scenario(
        path=copy,
        fingerprinter=_pristine_scenario.fingerprinter,
        events=_pristine_scenario.events,
        findings=_pristine_scenario.findings,
        leak_fingerprint=_pristine_scenario.leak_fingerprint,
        leak_jti=_pristine_scenario.leak_jti,
    )


@pytest.fixture
def shared_scenario(_pristine_scenario: Scenario) -> Scenario:
    """The scenario database itself, for tests that only read it."""
    return _pristine_scenario


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder for test artifacts (screenshots, reports)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

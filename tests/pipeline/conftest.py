"""Fixtures of the pipeline tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from pipeline_support import FINGERPRINT_KEY

from auditor.redaction import Redactor, RedactorConfig
from pipelines.topology import embedded
from pipelines.topology.logs import configure_logging


@pytest.fixture(autouse=True)
def _fingerprint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed key: fingerprints are stable and no ephemeral-key warning is printed.
    monkeypatch.setenv("AUDITOR_FINGERPRINT_KEY", FINGERPRINT_KEY)


@pytest.fixture(params=["store thread", "store process"])
def store_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Embedded runs with the store on a thread, then in a process of its own (every input
    size gets one then; standard input never does)."""
    if request.param == "store process":
        monkeypatch.setattr(embedded, "STORE_PROCESS_FROM_BYTES", 0)
        monkeypatch.setattr(embedded, "STORE_PROCESS_FROM_CORES", 1)
    return str(request.param)


@pytest.fixture
def pipeline_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The pipeline's own logging (redacted, to the captured stderr), undone afterwards."""
    del capsys  # set up first, so the logs go to the stderr it captures
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(Redactor(RedactorConfig()), log_format="json")
    try:
        yield
    finally:
        structlog.reset_defaults()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)

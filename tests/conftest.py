"""Shared fixtures."""

from __future__ import annotations

import pytest

from auditor.fingerprints import Fingerprinter

# The real Kafka broker (started on demand) and per-test topics: tests/fixtures/kafka.py.
pytest_plugins = ["pytester", "tests.fixtures.kafka"]


@pytest.fixture
def fingerprinter() -> Fingerprinter:
    """A fingerprinter with a fixed test key, so fingerprints are stable across runs."""
    return Fingerprinter(b"test-key-0123456789abcdef")

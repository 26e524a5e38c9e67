"""Shared fixtures."""

from __future__ import annotations

import pytest
from hypothesis import settings

from auditor.fingerprints import Fingerprinter

# The real Kafka broker (started on demand) and per-test topics: tests/fixtures/kafka.py.
pytest_plugins = ["pytester", "tests.fixtures.kafka"]

# No per-example deadline: on a shared 2-core machine an example can take seconds for reasons
# that have nothing to do with the code (a deadline is a timing assertion, and speed is the
# benchmarks' business). Properties that set their own settings keep them.
settings.register_profile("auditor", deadline=None)
settings.load_profile("auditor")


@pytest.fixture
def fingerprinter() -> Fingerprinter:
    """A fingerprinter with a fixed test key, so fingerprints are stable across runs."""
    return Fingerprinter(b"test-key-0123456789abcdef")

"""One walk (as the Redactor does it) finds exactly what the batched two-pass walk finds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.patterns import Walker, default_library
from auditor.patterns.memory import CleanMemory
from auditor.patterns.rules import EXAMPLE_JWS
from auditor.patterns.walk import Collector, ScanResult

LIBRARY = default_library()
MEMORY = CleanMemory(LIBRARY.prefilter)
"""Shared across examples: warm, as a long-running Redactor's is."""


def _scan(value: object, *, batch: bool, memory: CleanMemory | None = None) -> ScanResult:
    collector = Collector()
    Walker(LIBRARY, collector, batch=batch, memory=memory).walk(value)
    return collector.result


leaves = st.one_of(
    st.none(),
    st.integers(),
    st.sampled_from(
        [
            "patient-view",
            "ssn 536-22-8714",
            "jane@mercy-health.org",
            f"Bearer {EXAMPLE_JWS}",
            "5497db67-a54b-4b83-b440-cabee0ed4a62",
            "(617) 555-0143",
            "Patient",
            "1980-04-12",
            "MR",
        ]
    ),
    st.text(max_size=20),
)
keys = st.sampled_from(
    ["event", "note", "ssn", "authorization", "resourceType", "birthDate", "name", "value",
     "system", "type", "given", "family", "kty", "d", "patientId", "x"]
)  # fmt: skip
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def _key(result: ScanResult) -> tuple[Any, ...]:
    matches = sorted((m.path, m.rule, m.span, m.value, m.redact) for m in result.matches)
    return (matches, sorted((limit.path, limit.reason) for limit in result.limits))


@settings(max_examples=300, deadline=None)
@given(values)
def test_one_walk_finds_what_two_passes_find(value) -> None:
    assert _key(_scan(value, batch=False)) == _key(_scan(value, batch=True))


@settings(max_examples=300, deadline=None)
@given(values)
def test_a_warm_memory_changes_nothing_that_is_found(value) -> None:
    assert _key(_scan(value, batch=False, memory=MEMORY)) == _key(_scan(value, batch=True))

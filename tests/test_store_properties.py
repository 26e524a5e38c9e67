"""Properties of the store writer, over generated delivery orders and configurations."""

from __future__ import annotations

import functools
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import store_support as support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.store import StoreWriter
from pipelines.store.scrubbing import REMOVED, without_secrets

T0 = datetime(2026, 11, 28, tzinfo=UTC)
BATCHES = [batch for batch, _ in support.batches({0: 0, 1: 0}, 60, 20)]


def _store_after(deliveries: list[int]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "audit.duckdb"
        with StoreWriter.open(db, serve=False, clock=lambda: T0) as writer:
            for index in deliveries:
                writer.write_batch(BATCHES[index])
        return {name: table.to_pylist() for name, table in support.snapshot(db).items()}


@functools.cache
def _once() -> dict[str, object]:
    return _store_after(list(range(len(BATCHES))))


@st.composite
def at_least_once(draw: st.DrawFn) -> list[int]:
    """Each batch in order, with redeliveries of earlier batches mixed in.

    This is what a consumer sees from Kafka after crashes and rebalances: everything at
    least once, in partition order, sometimes again from an earlier position.
    """
    deliveries: list[int] = []
    for index in range(len(BATCHES)):
        deliveries.append(index)
        replays = draw(st.lists(st.integers(0, index), max_size=2))
        deliveries.extend(replays)
    return deliveries


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(at_least_once())
def test_at_least_once_delivery_stores_what_exactly_once_delivery_stores(deliveries):
    assert _store_after(deliveries) == _once()


SECRET_NAMES = st.sampled_from(
    ["password", "sasl_plain_password", "apiKey", "client_secret", "token", "auth", "ssl_key"]
)
PLAIN_NAMES = st.sampled_from(["topic", "partitions", "group_id", "mode", "path"])
SECRET_VALUES = st.text(min_size=8, max_size=30).filter(str.strip)


def _configs(leaves: st.SearchStrategy[dict[str, object]]) -> st.SearchStrategy[object]:
    return st.recursive(
        leaves,
        lambda children: st.dictionaries(PLAIN_NAMES, children, max_size=3),
        max_leaves=6,
    )


SECRET_KEYS = {
    "password",
    "sasl_plain_password",
    "apiKey",
    "client_secret",
    "token",
    "auth",
    "ssl_key",
}


@given(_configs(st.dictionaries(SECRET_NAMES, SECRET_VALUES, min_size=1, max_size=3)))
def test_no_value_under_a_secret_name_survives_at_any_depth(config):
    assert isinstance(config, dict)
    assert all(value == REMOVED for value in _under_secret_names(without_secrets(config)))


def _under_secret_names(config: dict[str, object]):
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _under_secret_names(value)
        elif key in SECRET_KEYS:
            yield value


def test_the_property_compares_against_a_store_that_holds_rows():
    # Guard against a vacuous property: the reference store holds every kind of row.
    once = _once()
    assert len(once["events"]) > 50
    assert len(once["findings"]) > 2
    assert len(once["dead_letters"]) > 2
    assert len(once["ingest_offsets"]) == 2

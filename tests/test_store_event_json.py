"""The store's fast path for events (DuckDB parses the contract JSON) writes the same rows
as the model path, column by column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from authz_events import event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.models import AuthzEvent
from pipelines.store import Batch, EventJson, IngestedEvent, StoreWriter, open_store

GOLDEN = Path(__file__).parent / "golden"

CASES = [
    # Every optional field set, nested objects included.
    event(
        1,
        reason="expired",
        detail="exp in the past",
        fhir_server="https://fhir.example.org/r4",
        fhir_authorization=True,
        scopes=("patient/*.read", "user/Observation.read"),
        payload_bytes=1234,
        tls_version="TLSv1.3",
        tls_error="handshake",
        nbf=1,
        jku="https://ehr.example.org/jwks.json",
        fingerprint="k1:" + "0f" * 16,
        attributes={"path": "/cds-services/x", "n": 3, "nested": {"ok": [1, 2.5, None, True]}},
    ),
    # Unicode and escapes survive both ways.
    event(2, detail='quote " backslash \\ tab \t é 漢字 😀', attributes={"ключ": "значение"}),
    # Integers past 64 bits (JSON has no limit; orjson has) are kept exactly.
    event(5, attributes={"big": -(2**63) - 1, "bigger": 2**70}),
    # Several audiences, no token at all, no client, no service.
    event(3, aud=("https://a.example/x", "https://b.example/y")),
    event(4, token=False, iss=None, service=None, peer=None),
    # A time given with an offset is stored as the same instant.
    AuthzEvent.model_validate(
        {
            "event_id": "7e1c8f2a-3b4d-4e5f-8a6b-1c2d3e4f5a6b",
            "time": "2026-11-28T12:30:00.123456+02:00",
            "source": {"role": "client", "name": "ehr", "instance": "i-1"},
            "action": "token.issued",
            "outcome": "success",
            "client": {"iss": "https://ehr.example.org", "tenant": "t-1"},
            "token": {"aud": "https://cds.example.com/cds-services/x", "jti": "j"},
            "http_status": 201,
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
        }
    ),
]


def _rows(path: Path) -> list[dict[str, Any]]:
    # attributes_json is compared as JSON: the model path sorts its keys, DuckDB keeps them
    # in the order written.
    with open_store(path) as store:
        rows = store.query("SELECT * EXCLUDE (ingested_at) FROM events ORDER BY event_id")
    out = rows.to_pylist()
    for row in out:
        text = row.pop("attributes_json")
        row["attributes"] = json.loads(text) if text is not None else None
    return out


def _both(tmp_path: Path, events: list[AuthzEvent]) -> tuple[list[Any], list[Any]]:
    models, fast = tmp_path / "models.duckdb", tmp_path / "fast.duckdb"
    with StoreWriter.open(models, serve=False) as writer:
        writer.write_batch(
            Batch(events=[IngestedEvent(e, f"o:{i}") for i, e in enumerate(events)], run_id="r")
        )
    with StoreWriter.open(fast, serve=False) as writer:
        writer.write_batch(
            Batch(
                event_json=[
                    EventJson(
                        e.event_id.bytes, e.model_dump_json(exclude_none=True).encode(), f"o:{i}"
                    )
                    for i, e in enumerate(events)
                ],
                run_id="r",
            )
        )
    return _rows(models), _rows(fast)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_a_case_is_stored_the_same_both_ways(tmp_path, index):
    by_models, by_json = _both(tmp_path, [CASES[index]])
    assert by_json == by_models


def test_the_golden_streams_are_stored_the_same_both_ways(tmp_path):
    events = [
        AuthzEvent.model_validate_json(line)
        for path in sorted(GOLDEN.glob("*/events.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    by_models, by_json = _both(tmp_path, events)
    assert len(by_json) == len(events)
    assert by_json == by_models


def test_duplicate_event_ids_in_one_batch_keep_the_first(tmp_path):
    first = event(0, event_id="00000000-0000-4000-8000-000000000001", detail="first")
    second = first.model_copy(update={"detail": "second"})
    with StoreWriter.open(tmp_path / "a.duckdb", serve=False) as writer:
        report = writer.write_batch(
            Batch(
                event_json=[
                    EventJson(e.event_id.bytes, e.model_dump_json(exclude_none=True).encode())
                    for e in (first, second)
                ]
            )
        )
    assert report.events_inserted == 1
    assert [r["detail"] for r in _rows(tmp_path / "a.duckdb")] == ["first"]


_text = st.text(max_size=40)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    detail=st.none() | _text,
    attributes=st.dictionaries(st.text(min_size=1, max_size=10), _text | st.integers(), max_size=4),
    scopes=st.lists(st.text(min_size=1, max_size=20), max_size=3),
    status=st.none() | st.integers(min_value=100, max_value=599),
)
def test_generated_events_are_stored_the_same_both_ways(
    tmp_path_factory, detail, attributes, scopes, status
):
    sample = event(0, detail=detail, attributes=attributes, scopes=tuple(scopes)).model_copy(
        update={"http_status": status}
    )
    by_models, by_json = _both(tmp_path_factory.mktemp("db"), [sample])
    assert by_json == by_models

"""The detect stage's fast path changes nothing that comes out of it.

The detect stage takes authz events through the msgspec mirror and hands the stream
detectors views filled from it, never building the pydantic events
(``pipelines/topology/authz_mirror.py``); a stage with a store in its process
(``keep_events=True``) hands the store the mirror, whose JSON the store writes. The same
records through a stage whose decoder validates every event with pydantic
(``fast_path=False``) must give the very same findings (ids, revisions, facts, evidence),
dead letters, counters and stored JSON. The traffic is the demo's, with every kind of
incident injected, so every detector has work.
"""

from __future__ import annotations

import io
import itertools
import json
from datetime import timedelta

import pytest
from content_support import mint

from pipelines.demo.session import DEMO_START, demo_pipeline
from pipelines.simulate import JsonLinesOutput, Simulation, SimulationConfig, all_incidents
from pipelines.topology.authz_mirror import FAITHFUL, Mirrored
from pipelines.topology.components import build_detect_stage
from pipelines.topology.decoding import RecordDecoder
from pipelines.topology.detection import Chunk, DetectOutput, DetectStage
from pipelines.topology.storing import event_json
from pipelines.topology.telemetry import PipelineTelemetry
from tests.simulate.simulation_support import TEST_KEY

pytestmark = pytest.mark.slow

_CHUNK = 500


@pytest.fixture(scope="module")
def traffic() -> tuple[list[bytes], list[bytes]]:
    """The demo's traffic with every incident: authz records and log records."""
    stream = io.BytesIO()
    config = SimulationConfig(
        seed=21,
        start=DEMO_START,
        duration=timedelta(minutes=30),
        rate=0.5,
        incidents=all_incidents(),
        fingerprinter=TEST_KEY,
    )
    Simulation(config, JsonLinesOutput(stream)).run()
    lines = stream.getvalue().splitlines()
    authz = [line for line in lines if b'"kind":"authz"' in line]
    logs = [line for line in lines if b'"kind":"authz"' not in line]
    return authz, logs


def _chunks(records: list[bytes], kind: str, start: int) -> list[Chunk]:
    arrived = (DEMO_START + timedelta(hours=1)).timestamp()
    return [
        Chunk(
            source=kind,
            part=0,
            kind=kind,  # type: ignore[arg-type]
            positions=list(range(start + i, start + i + len(part))),
            records=part,
            next_position=start + i + len(part),
            arrived=[arrived] * len(part),
            kafka=True,
        )
        for i, part in ((i, records[i : i + _CHUNK]) for i in range(0, len(records), _CHUNK))
    ]


def _run(stage: DetectStage, authz: list[bytes], logs: list[bytes]) -> list[DetectOutput]:
    pairs = itertools.zip_longest(_chunks(authz, "authz", 0), _chunks(logs, "logs", 0))
    chunks = [chunk for chunk in itertools.chain.from_iterable(pairs) if chunk is not None]
    return [*(stage.process(chunk, 0) for chunk in chunks), stage.flush()]


def _run_lines(stage: DetectStage, lines: list[bytes]) -> list[DetectOutput]:
    chunks = _chunks(lines, "lines", 1)
    for chunk in chunks:
        chunk.kafka = False
    return [*(stage.process(chunk, 0) for chunk in chunks), stage.flush()]


def _stored(outputs: list[DetectOutput]) -> list[tuple[object, bytes, str | None]]:
    rows = [event_json(event, origin) for out in outputs for event, origin in out.events]
    return [(row.event_key, row.json, row.origin) for row in rows]


def _summary(outputs: list[DetectOutput]) -> tuple[list[str], list[object], list[object]]:
    findings = [f.model_dump_json() for out in outputs for f in out.findings]
    dead = [d for out in outputs for d in out.dead_letters]  # one wall clock for all
    counters = [(out.counters, out.offset, out.newest) for out in outputs]
    return findings, dead, counters


def _stage(*, keep_events: bool, fast_path: bool = True) -> DetectStage:
    clock = (DEMO_START + timedelta(hours=1)).timestamp()
    settings = demo_pipeline()
    return build_detect_stage(
        settings,
        PipelineTelemetry.from_settings(settings.telemetry),
        fingerprinter=TEST_KEY,
        wall_clock=lambda: clock,
        keep_events=keep_events,
        fast_path=fast_path,
    )


def test_the_mirror_matches_the_contract_in_this_build() -> None:
    assert FAITHFUL  # else the fast path is off and the test below compares a path with itself


def test_the_fast_path_takes_the_demo_traffics_events(traffic) -> None:
    authz, _ = traffic
    decoder = RecordDecoder(demo_pipeline().limits)
    taken = sum(isinstance(decoder.authz_view(record), Mirrored) for record in authz)
    assert len(authz) > 1000
    assert taken == len(authz)


_POISON = [
    b"not json at all",  # malformed
    b'{"kind":"authz","event_id":"nope"}',  # breaks the contract
    b"\xff\xfe{}",  # not UTF-8
    b'{"kind":"authz"' + b',"a":[' * 80 + b"]" * 80 + b"}",  # too deep
]


def test_findings_dead_letters_counters_and_stored_json_are_those_of_pydantic(traffic) -> None:
    authz, logs = traffic
    authz = [
        record for pair in zip(authz, itertools.cycle(_POISON), strict=False) for record in pair
    ]
    alone = _run(_stage(keep_events=False), authz, logs)
    kept = _run(_stage(keep_events=True), authz, logs)
    slow = _run(_stage(keep_events=True, fast_path=False), authz, logs)
    detectors = {f.detector for out in slow for f in out.findings}
    assert len(detectors) >= 4  # the traffic exercises the stream and content detectors
    assert len(_summary(slow)[1]) == len(authz) // 2  # every poison record, dead-lettered
    assert _summary(alone) == _summary(slow)
    assert _summary(kept) == _summary(slow)
    assert all(not out.events for out in alone)  # nothing kept for a store that is not there
    assert any(isinstance(e, Mirrored) for out in kept for e, _ in out.events)
    assert _stored(kept) == _stored(slow)
    assert len(_stored(slow)) == len(authz) // 2


def test_a_file_of_events_and_log_lines_gives_what_pydantic_gives(traffic) -> None:
    authz, logs = traffic
    lines = [line for pair in itertools.zip_longest(authz, logs) for line in pair if line]
    lines += [b"", b"plain text line", b'{"kind":"authz","event_id":"nope"}', b"{not json"]
    fast = _run_lines(_stage(keep_events=True), lines)
    slow = _run_lines(_stage(keep_events=True, fast_path=False), lines)
    assert _summary(fast) == _summary(slow)
    assert _stored(fast) == _stored(slow)
    assert len(_stored(fast)) == len(authz)


def _leaky(records: list[bytes]) -> list[bytes]:
    """Every fifth event with a live JWT where text is free: what redaction must rewrite."""
    token = mint(exp=int((DEMO_START + timedelta(days=1)).timestamp()))
    out = []
    for index, record in enumerate(records):
        event = json.loads(record)
        if index % 5 == 0:
            place = index // 5 % 3
            if place == 0:
                event["attributes"] = {"request": {"headers": f"Authorization: Bearer {token}"}}
            elif place == 1:
                event["detail"] = f"missing claim: jti in {token}"
            elif event.get("service"):
                event["service"]["url"] = f"https://cds.example.com/s?access_token={token}"
        out.append(json.dumps(event).encode())
    return out


def test_events_whose_free_text_is_redacted_give_the_same_findings(traffic) -> None:
    authz = _leaky(traffic[0][:1500])
    fast = _run(_stage(keep_events=False), authz, [])
    slow = _run(_stage(keep_events=True, fast_path=False), authz, [])
    kept = _run(_stage(keep_events=True), authz, [])
    assert _stored(kept) == _stored(slow)  # the redacted ones built, the others mirrored
    fast_findings = [f.model_dump_json() for out in fast for f in out.findings]
    leaks = [f for out in slow for f in out.findings if f.detector == "leaked_token"]
    assert len(leaks) >= 3  # one per place the token was put, at least
    assert fast_findings == [f.model_dump_json() for out in slow for f in out.findings]
    # The redacted events are the ones the fast path had to build: each without the token.
    redacted = [event for out in fast for event, _ in out.events]
    assert len(redacted) == sum(b"eyJ" in record for record in authz) > 0
    assert not any("eyJ" in event.model_dump_json() for event in redacted)

"""An embedded run's items to its store process: clean events as lines, the same JSON stored."""

from __future__ import annotations

import json
import socket
import struct
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from authz_events import event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_support import Canaries, authz_line, log_line

from auditor.models import AuthzEvent
from pipelines.settings import PipelineSettings
from pipelines.store import RunCounters, StoreWriteError
from pipelines.topology import store_wire as wire
from pipelines.topology.authz_mirror import Mirrored
from pipelines.topology.components import build_detect_stage
from pipelines.topology.detection import Chunk, DetectOutput
from pipelines.topology.storing import StoreItem, event_row
from pipelines.topology.telemetry import PipelineTelemetry

GOLDEN = Path(__file__).parents[1] / "golden"
_CANARIES = Canaries.make()


def _detected(lines: list[bytes]) -> DetectOutput:
    stage = build_detect_stage(PipelineSettings(), PipelineTelemetry())
    chunk = Chunk(
        source="in.jsonl",
        part=0,
        kind="line",
        positions=list(range(len(lines))),
        records=lines,
        next_position=len(lines),
        arrived=[0.0] * len(lines),
    )
    return stage.process(chunk, 0)


def _item(out: DetectOutput) -> StoreItem:
    return StoreItem(
        events=out.events,
        findings=out.findings,
        dead_letters=out.dead_letters,
        alerts=[],
        counters=RunCounters(),
        offset=(("file:in.jsonl", 0), 10),
    )


def _crossed(item: StoreItem) -> tuple[bytes, StoreItem]:
    sent = wire.encode(wire.pack_item(item))
    return sent, wire.unpack_item(wire.decode(sent))


def _expected(out: DetectOutput) -> list[tuple[bytes, bytes, str | None]]:
    return [(*event_row(e), origin) for e, origin in out.events]


def _arrived(item: StoreItem) -> list[tuple[bytes, bytes, str | None]]:
    return [(e.event_key, e.json, e.origin) for e in item.event_json]


def test_clean_events_cross_as_lines_and_the_store_gets_the_same_json():
    events = [
        AuthzEvent.model_validate_json(line)
        for path in sorted(GOLDEN.glob("*/events.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    out = _detected([authz_line(e) for e in events])
    assert len(out.events) == len(events)
    assert all(isinstance(e, Mirrored) for e, _ in out.events)  # the common case
    message = wire.pack_item(_item(out))
    rows, joined, origins = message[1], message[2], message[3]
    assert rows == []
    assert len(origins) == len(events)  # type: ignore[arg-type]
    assert isinstance(joined, bytes)
    _, arrived = _crossed(_item(out))
    assert sorted(_arrived(arrived)) == sorted(_expected(out))
    assert arrived.offset == (("file:in.jsonl", 0), 10)


def test_a_redacted_event_crosses_as_its_redacted_json_and_no_canary_crosses():
    clean = event(1)
    leaky = event(2, detail=f"token was {_CANARIES.jwt}", attributes={"ssn": _CANARIES.ssn})
    out = _detected(
        [authz_line(clean), authz_line(leaky), log_line("prefetch", token=_CANARIES.bearer)]
    )
    message = wire.pack_item(_item(out))
    assert len(message[1]) == 1  # type: ignore[arg-type]  # the redacted one, as JSON
    assert len(message[3]) == 1  # type: ignore[arg-type]  # the clean one, as its line
    sent, arrived = _crossed(_item(out))
    for value in (_CANARIES.jwt, _CANARIES.ssn, _CANARIES.bearer):
        assert value.encode() not in sent
    assert sorted(_arrived(arrived)) == sorted(_expected(out))


def test_a_line_that_does_not_decode_again_fails_the_item():
    out = _detected([authz_line(event(1))])
    message = list(wire.pack_item(_item(out)))
    message[2] = b'{"kind":"authz","event_id":"not a uuid"}'
    with pytest.raises(StoreWriteError, match="did not decode again"):
        wire.unpack_item(tuple(message))
    message[2] = b"\n".join([authz_line(event(1)), authz_line(event(2))])
    with pytest.raises(StoreWriteError, match="do not match their origins"):
        wire.unpack_item(tuple(message))


_free_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    details=st.lists(st.none() | _free_text, min_size=1, max_size=6),
    attributes=st.dictionaries(st.text(min_size=1, max_size=8), _free_text | st.integers()),
    offset=st.sampled_from(["Z", "+02:00", "-05:30"]),
)
def test_whatever_crosses_the_store_gets_what_the_detect_side_would_have_stored(
    details, attributes, offset
):
    lines = []
    for index, detail in enumerate(details):
        data = event(index, detail=detail, attributes=attributes).model_dump(
            mode="json", exclude_none=True
        )
        data["time"] = data["time"].replace("Z", offset)  # not as the contract writes it
        lines.append(json.dumps(data).encode())  # spaced, and integers past 64 bits
    out = _detected(lines)
    assert len(out.events) == len(details)
    _, arrived = _crossed(_item(out))
    assert sorted(_arrived(arrived)) == sorted(_expected(out))


# -- the framing the store process reads ---------------------------------------------------


def _pair() -> tuple[Connection, Connection]:
    ours, theirs = socket.socketpair()
    return Connection(ours.detach()), Connection(theirs.detach())


def test_receive_reads_what_send_bytes_sent_whole_and_in_order() -> None:
    sender, receiver = _pair()
    messages = [b"", b"x", bytes(range(256)) * 40_000, wire.encode(("item", b"a\nb", [None]))]
    # Larger than the socket buffers: the reader gets them in pieces while they are written.
    writer = threading.Thread(target=lambda: [sender.send_bytes(m) for m in messages])
    writer.start()
    got = [wire.receive(receiver) for _ in messages]
    writer.join()
    assert got == messages
    assert wire.decode(got[-1]) == ("item", b"a\nb", [None])
    sender.close()
    with pytest.raises(EOFError):
        wire.receive(receiver)
    receiver.close()


def test_receive_reads_the_long_length_form_and_refuses_a_message_cut_short() -> None:
    sender, receiver = _pair()
    raw = socket.socket(fileno=sender.fileno())
    # What send_bytes writes past 2 GiB: -1, then the length in 8 bytes.
    raw.sendall(struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello")
    assert wire.receive(receiver) == b"hello"
    raw.sendall(struct.pack("!i", 10) + b"cut")
    raw.detach()
    sender.close()
    with pytest.raises(EOFError):
        wire.receive(receiver)
    receiver.close()

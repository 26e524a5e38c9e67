"""Decoding records: what is an event, a log record, or a dead letter, and why."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from authz_events import event
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_support import FINGERPRINT_KEY, POISON, Canaries, authz_line
from pydantic_core.core_schema import ErrorType

from auditor.fingerprints import Fingerprinter
from auditor.models import AuthzEvent
from auditor.redaction import Redactor, RedactorConfig
from auditor.vocabulary import DeadLetterReason
from pipelines.settings import RecordLimits
from pipelines.topology.authz_mirror import Mirrored
from pipelines.topology.decoding import _KNOWN_FIELDS, RecordDecoder, Rejected
from pipelines.topology.scrubbing import EventScrubber
from pipelines.topology.storing import event_row

DECODER = RecordDecoder(RecordLimits(max_bytes=1 << 20, max_depth=32))
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVlLWhlcmU"


def test_a_line_with_kind_authz_is_an_event():
    line = authz_line(event(0))
    assert isinstance(DECODER.line(line), AuthzEvent)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Any other JSON object is a structured log record.
        (b'{"event": "request handled", "status": 200}', dict),
        # kind names something else: still a log record.
        (b'{"kind": "log", "event": "x"}', dict),
        # "kind": "authz" nested inside a log record does not make it an event.
        (b'{"event": "x", "copy": {"kind":"authz","event_id":1}}', dict),
        # Plain text is a text log line.
        (b"2026-11-28 GET /cds-services 200", str),
        # A JSON array is no object: read as text, as a log archive would hold it.
        (b"[1, 2, 3]", str),
    ],
)
def test_other_lines_are_log_records(line, expected):
    assert isinstance(DECODER.line(line), expected)


def test_a_blank_line_is_no_record():
    assert DECODER.line(b"   \r\n") is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        # Cut off mid-object (a truncated write).
        ("malformed_json", DeadLetterReason.MALFORMED_JSON),
        # Bytes that are not UTF-8 cannot be scanned as text.
        ("invalid_utf8", DeadLetterReason.INVALID_UTF8),
        # Says it is an authz event but breaks the contract.
        ("schema_violation", DeadLetterReason.SCHEMA_VIOLATION),
        # Nesting past the limit: a walk over it would cost without bound.
        ("too_deep", DeadLetterReason.TOO_DEEP),
        # Past max_bytes: refused before it is parsed at all.
        ("oversized", DeadLetterReason.OVERSIZED),
    ],
)
def test_poison_lines_are_refused_with_their_reason(name, reason):
    refused = DECODER.line(POISON[name])
    assert isinstance(refused, Rejected)
    assert refused.reason is reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        # The authz topic carries events only: text is not one.
        (b"hello", DeadLetterReason.MALFORMED_JSON),
        # A log record on the authz topic breaks the contract.
        (b'{"event": "x"}', DeadLetterReason.SCHEMA_VIOLATION),
        (b"\xc3\x28", DeadLetterReason.INVALID_UTF8),
    ],
)
def test_the_authz_topic_refuses_what_is_not_an_event(record, reason):
    refused = DECODER.authz(record)
    assert isinstance(refused, Rejected)
    assert refused.reason is reason


def test_the_logs_topic_takes_text_and_objects():
    assert DECODER.log(b"plain text") == "plain text"
    assert DECODER.log(b'{"event":"x"}') == {"event": "x"}


def test_an_unknown_field_named_like_a_token_is_not_repeated_in_the_detail():
    record = authz_line(event(0))[:-1] + f', "{TOKEN}": 1}}'.encode()
    refused = DECODER.line(record)
    assert isinstance(refused, Rejected)
    assert refused.reason is DeadLetterReason.SCHEMA_VIOLATION
    assert "<unknown field>" in refused.detail
    assert TOKEN not in refused.detail
    assert "eyJ" not in refused.detail


def test_a_bad_value_is_named_by_its_field_never_shown():
    record = authz_line(event(0)).replace(b'"token.validated"', f'"{TOKEN}"'.encode())
    refused = DECODER.line(record)
    assert isinstance(refused, Rejected)
    assert refused.detail.startswith("invalid authz event: action: ")
    assert TOKEN not in refused.detail


def test_deep_attributes_make_an_event_too_deep():
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    record = authz_line(event(0, attributes=deep))
    refused = DECODER.line(record)
    assert isinstance(refused, Rejected)
    assert refused.reason is DeadLetterReason.TOO_DEEP


# The words of our own messages; a detail may hold these and nothing else.
_MESSAGES = (
    "invalid authz event unknown field record line is not valid JSON over bytes "
    "nested deeper than levels starting with no object UTF"
)
_SAFE_WORDS = (
    set(_KNOWN_FIELDS)
    | set(get_args(ErrorType))  # pydantic's error types: "uuid_parsing", "missing" ...
    | set(_MESSAGES.split())
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_decoding_never_raises_and_details_repeat_no_input(raw):
    for decode in (DECODER.line, DECODER.authz, DECODER.log):
        result = decode(raw)
        if isinstance(result, Rejected):
            words = {w for w in re.split(r"[^A-Za-z_]+", result.detail) if len(w) > 1}
            assert words <= _SAFE_WORDS, result.detail


# -- the Kafka store stage's form of an authz record -----------------------------------------

_CANARIES = Canaries.make()
_SCRUBBER = EventScrubber(
    Redactor(RedactorConfig(fingerprinter=Fingerprinter(FINGERPRINT_KEY.encode())))
)


@pytest.mark.parametrize(
    ("fields", "planted"),
    [
        ({}, None),
        ({"attributes": {"authorization": f"Bearer {_CANARIES.jwt}"}}, _CANARIES.jwt),
        ({"attributes": {"note": f"patient SSN {_CANARIES.ssn}"}}, _CANARIES.ssn),
        ({"detail": f"rejected Bearer {_CANARIES.bearer}"}, _CANARIES.bearer),
        (
            {"service_url": f"https://cds.example.com/cds-services/x?access_token={_CANARIES.jwt}"},
            _CANARIES.jwt,
        ),
        ({"jku": f"https://svc:{_CANARIES.bearer}@keys.example.org/jwks"}, _CANARIES.bearer),
        ({"fhir_server": f"https://fhir.example.org/r4?mrn={_CANARIES.mrn}"}, _CANARIES.mrn),
        ({"tls_error": f"handshake for {_CANARIES.email} failed"}, _CANARIES.email),
    ],
    ids=["clean", "jwt", "ssn", "bearer", "url token", "url password", "mrn", "email"],
)
def test_the_store_stage_stores_what_the_pydantic_path_stores_and_no_planted_value(fields, planted):
    raw = event(0, **fields).model_dump_json(exclude_none=True).encode()
    decoded = DECODER.authz_view(raw)
    assert isinstance(decoded, Mirrored)  # the fast path takes the record
    stored = _SCRUBBER.stored(decoded)
    slow = AuthzEvent.model_validate_json(raw)
    expected = _SCRUBBER.scrub(slow, _SCRUBBER.free_text(slow)) or slow
    assert event_row(stored) == event_row(expected)
    if planted is None:
        assert stored is decoded  # nothing to redact: written from the mirror, no event built
    else:
        assert planted.encode() not in event_row(stored)[1]

"""A flat event with sensitive top-level keys is redacted as the full walk redacts it.

The Redactor judges strings under sensitive top-level keys without walking the event
(`Redactor._redact_keyed`); the walk (`Redactor.redact`) is the reference: the same
values, the same markers, the same records in the same order.
"""

from __future__ import annotations

from typing import Any

import pytest

from auditor.fingerprints import Fingerprinter
from auditor.patterns.rules import EXAMPLE_JWE, EXAMPLE_JWS
from auditor.redaction import Redactor, RedactorConfig

KEY = Fingerprinter(b"flat-keys-test-key-0123456789")
OPAQUE = "8f3kQ9zLr2VxA7mN1pTqZ0"

CASES: list[tuple[str, dict[str, Any]]] = [
    # A JWT under Authorization is named a jwt, with its facts, not a bearer token.
    ("bearer jwt", {"event": "cds.request", "authorization": f"Bearer {EXAMPLE_JWS}"}),
    # A field and a text match in one event: records in the event's key order.
    (
        "field then text",
        {"event": "x", "access_token": OPAQUE, "detail": "call (617) 555-0143"},
    ),
    ("text then field", {"event": f"rejected {EXAMPLE_JWE}", "password": "hunter2-hunter2"}),
    # A placeholder under a sensitive key does not count: it is scanned as text instead.
    ("placeholder", {"event": "x", "authorization": "Bearer <token>"}),
    # A value that is not of the key's shape is scanned as text, where a phone is found.
    ("wrong shape", {"event": "x", "ssn": "n/a, call 617-555-0143"}),
    # PHI keys: a name and an e-mail under their keys, an SSN in the message.
    (
        "phi keys",
        {"event": "lookup for ssn 536-22-8714", "patient_name": "Maria Lopez", "email": "m@x.org"},
    ),
    # A trigger in a nested value: only the walk can replace it there.
    ("nested trigger", {"event": "x", "authorization": OPAQUE, "tags": [f"t {EXAMPLE_JWS}"]}),
    # Nothing sensitive after all: the event comes back as it was.
    ("clean", {"event": "x", "authorization": "Bearer <redacted>", "hook": "patient-view"}),
]


@pytest.mark.parametrize(("event"), [event for _, event in CASES], ids=[n for n, _ in CASES])
def test_a_flat_event_with_sensitive_keys_is_redacted_as_the_walk_redacts_it(
    event: dict[str, Any],
) -> None:
    walked, walk_done = Redactor(RedactorConfig(fingerprinter=KEY)).redact(dict(event))
    out, done = Redactor(RedactorConfig(fingerprinter=KEY)).process(dict(event))
    records = out.pop("redacted", None)
    assert out == walked
    assert (done.records if done else []) == walk_done.records
    assert (records is None) == (not walk_done.records)

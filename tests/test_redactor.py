"""The Redactor: what it replaces, what it leaves alone, and that it never raises."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections import namedtuple
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.patterns.rules import EXAMPLE_JWS
from auditor.redaction import Redactor, RedactorConfig
from auditor.vocabulary import PhiKind, TokenKind

MARKER = re.compile(r"\[REDACTED:[a-z_]+ fp=[0-9a-f]{8}[^\]]*\]")
# For property tests (Hypothesis runs many inputs in one test; fixtures are per test).
SHARED = Redactor(RedactorConfig(fingerprinter=Fingerprinter(b"property-test-key-0123")))


@pytest.fixture
def redactor(fingerprinter: Fingerprinter) -> Redactor:
    return Redactor(RedactorConfig(fingerprinter=fingerprinter))


def _run(redactor: Redactor, **event: Any) -> dict[str, Any]:
    return dict(redactor(None, "info", dict(event)))


def test_a_clean_event_comes_back_as_the_same_object(redactor: Redactor) -> None:
    event = {"event": "cards.returned", "hook": "patient-view", "cards": 2, "duration_ms": 88.5}
    assert redactor(None, "info", event) is event


def test_a_jwt_marker_names_kind_fingerprint_and_safe_claims_only(redactor, fingerprinter) -> None:
    out = _run(redactor, event=f"rejected {EXAMPLE_JWS}")
    short = fingerprinter.short(EXAMPLE_JWS)
    assert out["event"] == (
        f"rejected [REDACTED:jwt fp={short} iss=https://ehr.example.org tenant=t-01 "
        "jti=3f1c6a52-0001 kid=ehr-2026-01 alg=ES384 exp=1764324300]"
    )
    # aud, iat and typ are facts of the match, but not shown in a marker.
    assert "aud=" not in out["event"]
    assert "iat=" not in out["event"]


def test_what_was_redacted_is_recorded_by_path_and_rule(redactor) -> None:
    out = _run(redactor, event="x", headers={"Authorization": "Bearer 8f3kQ9zLr2VxA7mN1pTq"})
    assert out["redacted"] == [{"path": "$.headers.Authorization", "rule": "key.authorization"}]


def test_the_record_key_is_configurable_or_off(fingerprinter) -> None:
    quiet = Redactor(RedactorConfig(fingerprinter=fingerprinter, record_key=None))
    out = _run(quiet, event="ssn 536-22-8714")
    assert "redacted" not in out
    named = Redactor(RedactorConfig(fingerprinter=fingerprinter, record_key="_redactions"))
    assert "_redactions" in _run(named, event="ssn 536-22-8714")


def test_allowlisted_keys_are_never_touched(fingerprinter) -> None:
    redactor = Redactor(
        RedactorConfig(fingerprinter=fingerprinter, allow_keys=frozenset({"debug_token"}))
    )
    out = _run(redactor, event="x", debug_token=f"Bearer {EXAMPLE_JWS}")
    assert out["debug_token"] == f"Bearer {EXAMPLE_JWS}"


def test_default_allowlist_keeps_timestamp_level_and_trace_ids(redactor) -> None:
    event = {
        "event": "ssn 536-22-8714",
        "timestamp": "2026-11-28T10:00:00Z",
        "level": "info",
        "logger": "cds",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    out = _run(redactor, **event)
    for key in ("timestamp", "level", "logger", "trace_id", "span_id"):
        assert out[key] == event[key]


def test_only_the_configured_kinds_are_redacted(fingerprinter) -> None:
    tokens_only = Redactor(RedactorConfig(fingerprinter=fingerprinter, kinds=frozenset(TokenKind)))
    out = _run(tokens_only, event=f"ssn 536-22-8714 token {EXAMPLE_JWS}")
    assert "536-22-8714" in out["event"]
    assert EXAMPLE_JWS not in out["event"]


def test_extra_keys_extend_the_defaults(fingerprinter) -> None:
    redactor = Redactor(
        RedactorConfig(
            fingerprinter=fingerprinter, extra_keys={"x_session": TokenKind.BEARER_TOKEN}
        )
    )
    out = _run(redactor, event="x", x_session="s-8f3kQ9zLr2", patientId="123")
    assert MARKER.fullmatch(out["x_session"])
    assert MARKER.fullmatch(out["patientId"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_facts": ("iss", "sub")}, "may not appear in markers"),  # sub is not safe to show
        ({"max_depth": 0}, "max_depth"),
        ({"fingerprint_digits": 3}, "fingerprint_digits"),
        ({"record_key": ""}, "record_key"),
        ({"kinds": frozenset({"jwt", "ssn", "nonsense"})}, "unknown kinds"),
    ],
)
def test_bad_configuration_stops_start_up(fingerprinter, overrides, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Redactor(RedactorConfig(fingerprinter=fingerprinter, **overrides))


class _Login(BaseModel):
    user: str
    password: str


@dataclasses.dataclass
class _Contact:
    email: str
    note: str


Pair = namedtuple("Pair", "name value")  # noqa: PYI024 - a plain namedtuple on purpose


def test_models_dataclasses_bytes_sets_and_tuples_are_walked(redactor) -> None:
    out = _run(
        redactor,
        event="x",
        login=_Login(user="svc", password="hunter2"),
        contact=_Contact(email="jane@mercy-health.org", note="ok"),
        raw=b"ssn 536-22-8714",
        tags={"ssn 536-22-8714", "fine"},
        pair=Pair("ssn", "536-22-8714"),
    )
    assert MARKER.fullmatch(out["login"]["password"])
    assert out["login"]["user"] == "svc"
    assert MARKER.fullmatch(out["contact"]["email"])
    assert isinstance(out["raw"], bytes)
    assert b"536-22-8714" not in out["raw"]
    assert "fine" in out["tags"]
    assert not any("536-22-8714" in tag for tag in out["tags"])
    assert isinstance(out["pair"], Pair)
    assert "536-22-8714" not in out["pair"].value


def test_clean_models_and_objects_are_passed_through_unchanged(redactor) -> None:
    login = _Contact(email="-", note="ok")
    event = {"event": "x", "contact": login}
    assert redactor(None, "info", event)["contact"] is login


def test_an_objects_repr_is_redacted_when_it_holds_a_secret(redactor) -> None:
    class Request:
        def __repr__(self) -> str:
            return "<Request headers={'authorization': 'Bearer 8f3kQ9zLr2VxA7mN1pTq'}>"

    out = _run(redactor, event="x", request=Request())
    assert isinstance(out["request"], str)
    assert "8f3kQ9zLr2VxA7mN1pTq" not in out["request"]


def test_cycles_and_depth_are_survived(fingerprinter) -> None:
    redactor = Redactor(RedactorConfig(fingerprinter=fingerprinter, max_depth=4))
    loop: dict[str, Any] = {"ssn": "536-22-8714"}
    loop["self"] = loop
    deep: Any = "ssn 536-22-8714"
    for _ in range(10):
        deep = [deep]
    out = _run(redactor, event="x", loop=loop, deep=deep)
    assert out["loop"]["self"] == "[REDACTED:cycle]"
    assert "536-22-8714" not in repr(out)


def test_an_exception_not_yet_formatted_is_formatted_and_redacted(redactor) -> None:
    try:
        raise ValueError(f"bad token {EXAMPLE_JWS}")  # noqa: TRY301 - the point of the test
    except ValueError:
        out = _run(redactor, event="failed", exc_info=True)
    assert "exc_info" not in out
    assert "ValueError: bad token [REDACTED:jwt" in out["exception"]
    assert EXAMPLE_JWS not in out["exception"]


def test_when_redaction_fails_the_event_is_replaced_by_a_minimal_one(redactor) -> None:
    class Exploding(BaseModel):
        def model_dump(self, **_: Any) -> dict[str, Any]:  # type: ignore[override]
            raise RuntimeError("ssn 536-22-8714")

    out = _run(redactor, event="ssn 536-22-8714", level="error", thing=Exploding())
    assert out == {"event": "redaction failed", "redaction_error": "RuntimeError", "level": "error"}
    assert redactor.failures == 1


def test_structlog_processor_formatter_meta_keys_are_left_alone(redactor) -> None:
    record = object()
    out = redactor(
        None, "info", {"event": "ssn 536-22-8714", "_record": record, "_from_structlog": True}
    )
    assert out["_record"] is record
    assert out["_from_structlog"] is True


# --- properties ---------------------------------------------------------------------------

_ALPHABET = "abcdefghijklmnopqrstuvwxyz ,.;:/-_=0123456789"
secrets_st = st.one_of(
    st.builds(
        lambda a, g, s: f"{a:03d}-{g:02d}-{s:04d}",
        st.integers(1, 665) | st.integers(667, 899),
        st.integers(1, 99),
        st.integers(1, 9999),
    ),
    st.builds(
        lambda a, b, c: f"({a}) {b}-{c:04d}",
        st.sampled_from(["617", "212", "415", "303", "786"]),
        st.sampled_from(["555", "234", "867", "492"]),
        st.integers(0, 9999),
    ),
    st.builds(
        lambda u, d: f"{u}@{d}.org",
        st.text(alphabet="abcdefghijklmnop", min_size=2, max_size=10),
        st.text(alphabet="abcdefghijklmnop", min_size=2, max_size=10),
    ),
    st.builds(
        lambda t: f"Bearer {t}9",
        st.text(alphabet="ABCDEFGHIJabcdefghij0123456789-._~", min_size=16, max_size=40),
    ),
    st.just(EXAMPLE_JWS),
)


@settings(max_examples=200, deadline=None)
@given(
    secret=secrets_st,
    before=st.text(alphabet=_ALPHABET, max_size=30),
    after=st.text(alphabet=_ALPHABET, max_size=30),
)
def test_no_generated_token_or_phi_value_survives(secret, before, after) -> None:
    redactor = SHARED
    value = secret.removeprefix("Bearer ")
    out = redactor(
        None, "info", {"event": f"{before} {secret} {after}", "nested": {"note": f"x {secret}"}}
    )
    assert value not in repr(out)


# Text that cannot spell any trigger: no "@", no anchor letters, no separators.
clean = st.text(alphabet="acdefghilorstu 0123456789.,/", max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    event=clean,
    values=st.dictionaries(st.sampled_from(["a", "route", "status", "hook"]), clean, max_size=4),
)
def test_a_value_with_nothing_sensitive_is_unchanged(event, values) -> None:
    redactor = SHARED
    original = {"event": event, **values}
    assert redactor(None, "info", dict(original)) == original


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_the_redactor_never_raises_on_any_json_event(event) -> None:
    out = SHARED(None, "info", dict(event))
    assert isinstance(out, dict)
    assert SHARED.failures == 0


def test_patient_id_and_prefetch_are_redacted_by_key(redactor) -> None:
    out = _run(
        redactor,
        event="x",
        context={"patientId": "123"},
        prefetch={"p": {"resourceType": "Patient"}},
    )
    assert MARKER.fullmatch(out["context"]["patientId"])
    assert MARKER.fullmatch(out["prefetch"])
    assert str(PhiKind.FHIR_RESOURCE) in out["prefetch"]


def _jws(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(bytes(range(64))).rstrip(b"=").decode()
    return f"{part({'alg': 'ES256', 'typ': 'JWT', 'kid': 'k-1'})}.{part(claims)}.{signature}"


@pytest.mark.parametrize(
    ("iss", "shown"),
    [
        # URL characters stay readable (quote leaves them as they are).
        ("https://ehr.example.org/fhir?x=1&y=~a_b", "https://ehr.example.org/fhir?x=1&y=~a_b"),
        # A space or a bracket would break the marker: percent-encoded.
        ("https://ehr example]", "https://ehr%20example%5D"),
        # Non-ASCII is percent-encoded as UTF-8.
        ("https://hôpital.example", "https://h%C3%B4pital.example"),
        # A double quote or backslash too (they would read as JSON syntax to a human).
        ('x"y\\z', "x%22y%5Cz"),
    ],
)
def test_a_jwt_claim_is_shown_percent_encoded_where_it_needs_to_be(
    redactor: Redactor, iss: str, shown: str
) -> None:
    out = _run(redactor, event=f"rejected {_jws({'iss': iss, 'exp': 1764324300})}")
    assert f" iss={shown} " in out["event"]

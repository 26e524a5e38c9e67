"""The contract every stream detector keeps, checked over each one.

Deterministic; pure (same state and event, same result; the event untouched); state
picklable (a snapshot mid-stream changes nothing); no raw value in any finding; findings
that name a catalogued rule and revise monotonically; and the same findings when events
arrive shuffled within the allowed lateness (a Hypothesis property).
"""

from __future__ import annotations

import pickle
import uuid
from typing import Any

import pytest
from authz_events import BASE_TS, ISS, OTHER_ISS, event, url_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.models import AuthzEvent, AuthzView, Finding
from auditor.models.view import FIELDS as VIEW_FIELDS
from auditor.protocols import StreamDetector
from detectors import (
    RULES,
    ClientPolicy,
    PolicyConfig,
    PolicyDetector,
    ReplayBurstDetector,
    ValidationAnomalyConfig,
    ValidationAnomalyDetector,
)
from pipelines.runtime import RuntimeConfig, StreamRuntime, latest_revisions

LATENESS = 30.0

# Thresholds small enough that short generated streams trip every kind of rule.
DETECTORS: list[StreamDetector[Any]] = [
    ReplayBurstDetector(),
    ValidationAnomalyDetector(
        ValidationAnomalyConfig(
            window=30,
            warmup=0,
            min_count=3,
            z_threshold=3,
            new_reason_warmup=60,
            signature={"count": 3, "window": 60},
            clock_skew={"count": 2, "window": 120},
            expired={"count": 3, "duration": 60, "gap": 120},
        )
    ),
    PolicyDetector(
        PolicyConfig(
            clients={ISS: ClientPolicy(allowed_services=frozenset({"patient-greeter"}))},
            rate_limit_burst={"count": 3, "window": 60},
            request_burst={"count": 6, "window": 30},
            incident_gap=300,
        )
    ),
]
IDS = [d.name.value for d in DETECTORS]

JTIS = [str(uuid.UUID(int=n + 1, version=4)) for n in range(4)]
REASONS = [
    *[None] * 4,
    "unknown_kid",
    "expired",
    "expired",
    "replayed_jti",
    "rate_limited",
    "iat_in_future",
    "missing_claim",
]


@st.composite
def event_args(draw: st.DrawFn, span: int) -> dict[str, Any]:
    """One event from a small world: two clients, two services, a handful of jtis."""
    t = draw(st.integers(0, span * 1000)) / 1000
    reason = draw(st.sampled_from(REASONS))
    action = draw(
        st.sampled_from(["token.validated", "token.validated", "token.issued", "request.sent"])
    )
    if reason is not None:
        action = "token.rejected"
    service = draw(st.sampled_from(["patient-greeter", "order-check"]))
    return {
        "t": t,
        "action": action,
        "reason": reason,
        "iss": draw(st.sampled_from([ISS, ISS, OTHER_ISS])),
        "service": service,
        "aud": (url_of(draw(st.sampled_from([service, service, "patient-greeter"]))),),
        "jti": draw(st.sampled_from(JTIS)),
        "hook_instance": draw(st.sampled_from(["h1", "h2"])),
        "peer": draw(st.sampled_from(["10.0.0.5", "10.0.0.6", "203.0.113.9"])),
        "alg": draw(st.sampled_from(["ES384", "ES384", "HS256"])),
        "iat": BASE_TS + int(t) + draw(st.sampled_from([0, 0, 90])),
        "exp": BASE_TS + int(t) + draw(st.sampled_from([300, 300, -30, 900, 7200])),
        "tls_version": draw(st.sampled_from([None, None, "TLSv1.1"])),
        "payload_bytes": draw(st.sampled_from([None, 1000, 5_000_000])),
    }


def _numbered(args: list[dict[str, Any]]) -> list[AuthzEvent]:
    # Event ids are the producers' dedupe key: unique per event, as the contract says.
    return [event(event_id=uuid.UUID(int=n + 1, version=4), **a) for n, a in enumerate(args)]


@st.composite
def _streams(draw: st.DrawFn) -> list[AuthzEvent]:
    # Dense streams (a minute and a half) trip rate rules; sparse ones, windows and gaps.
    span = draw(st.sampled_from([20, 90, 600]))
    return _numbered(draw(st.lists(event_args(span), min_size=1, max_size=40)))


streams = _streams()


def _feed(detector: StreamDetector[Any], batches: list[list[AuthzEvent]]) -> list[Finding]:
    runtime = StreamRuntime([detector], RuntimeConfig(allowed_lateness=LATENESS))
    out: list[Finding] = []
    for batch in batches:
        out.extend(runtime.process(0, batch))
    return out + runtime.flush()


def _in_order(events: list[AuthzEvent]) -> list[AuthzEvent]:
    return sorted(events, key=lambda e: (e.time, e.event_id))


def _canonical(findings: list[Finding]) -> list[str]:
    return sorted(f.model_dump_json() for f in findings)


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams, data=st.data())
def test_shuffling_within_the_lateness_bound_changes_no_finding(
    detector: StreamDetector[Any], events: list[AuthzEvent], data: st.DataObject
) -> None:
    # Each event arrives at most LATENESS after its own time, so it is never behind an
    # event more than LATENESS newer than it: within the bound.
    delays = data.draw(
        st.lists(st.floats(0, LATENESS * 0.999), min_size=len(events), max_size=len(events))
    )
    arrival = [
        e
        for _, e in sorted(
            zip(delays, events, strict=True), key=lambda p: p[1].time.timestamp() + p[0]
        )
    ]
    sizes = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=len(events)))
    batches: list[list[AuthzEvent]] = []
    start = 0
    for size in sizes * len(events):
        if start >= len(arrival):
            break
        batches.append(arrival[start : start + size])
        start += size
    expected = _feed(detector, [[e] for e in _in_order(events)])
    assert _canonical(_feed(detector, batches)) == _canonical(expected)


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(events=streams)
def test_the_same_stream_gives_the_same_findings_in_the_same_order(
    detector: StreamDetector[Any], events: list[AuthzEvent]
) -> None:
    first = [f.model_dump_json() for f in _feed(detector, [events])]
    second = [f.model_dump_json() for f in _feed(detector, [events])]
    assert first == second


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(events=streams)
def test_step_is_pure_and_leaves_the_event_and_its_view_untouched(
    detector: StreamDetector[Any], events: list[AuthzEvent]
) -> None:
    states: dict[str, Any] = {}
    for ev in _in_order(events):
        view = AuthzView(ev)
        key = detector.key(view)
        if key is None:
            continue
        before = pickle.dumps(states.get(key) or detector.initial_state())
        dumped = ev.model_dump_json()
        seen = {name: getattr(view, name) for name in VIEW_FIELDS}
        now = view.time
        state_a, found_a = detector.step(pickle.loads(before), view, now)  # noqa: S301 - our own bytes
        state_b, found_b = detector.step(pickle.loads(before), view, now)  # noqa: S301 - our own bytes
        assert pickle.dumps(state_a) == pickle.dumps(state_b)
        assert [f.model_dump_json() for f in found_a] == [f.model_dump_json() for f in found_b]
        assert ev.model_dump_json() == dumped
        assert {name: getattr(view, name) for name in VIEW_FIELDS} == seen
        states[key] = state_a


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(events=streams, cut=st.integers(0, 40))
def test_a_snapshot_mid_stream_changes_nothing(
    detector: StreamDetector[Any], events: list[AuthzEvent], cut: int
) -> None:
    ordered = _in_order(events)
    whole = _feed(detector, [ordered])
    first = StreamRuntime([detector], RuntimeConfig(allowed_lateness=LATENESS))
    found = first.process(0, ordered[:cut])
    second = StreamRuntime([detector], RuntimeConfig(allowed_lateness=LATENESS))
    second.restore(0, first.snapshot(0))
    found += second.process(0, ordered[cut:]) + second.flush()
    assert [f.model_dump_json() for f in found] == [f.model_dump_json() for f in whole]


CANARIES = {
    "jti": "c4a7a1e5-0000-4000-8000-canary0jti01",
    "hook": "canary-hook-instance-7f3e",
    "attr": "canary-attribute-ssn-123-45-6789",
    "detail": "canary-detail-text",
    "query": "canary-access-token-in-query",
}


def _canary_stream() -> list[AuthzEvent]:
    """Events that trip every detector, each carrying values that must never be copied."""
    kw: dict[str, Any] = {
        "jti": CANARIES["jti"],
        "hook_instance": CANARIES["hook"],
        "attributes": {"note": CANARIES["attr"]},
        "detail": CANARIES["detail"],
        "fhir_server": f"http://fhir.example.org/r4?access_token={CANARIES['query']}",
        "fhir_authorization": True,
        "scopes": ("user/*.*",),
        "alg": "HS256",
        "exp": BASE_TS + 3600 * 5,
        "jku": f"https://evil.example/jwks?token={CANARIES['query']}",
    }
    events = [event(0, **kw), event(1, peer="203.0.113.9", **kw)]
    events += [event(2 + i, reason="unknown_kid", **kw) for i in range(6)]
    events += [event(10 + i, reason="rate_limited", **kw) for i in range(6)]
    events += [event(20 + i, action="request.sent", **kw) for i in range(3)]
    events += [event(30 + i, service="billing", **kw) for i in range(8)]
    return events


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
def test_no_raw_value_reaches_a_finding(detector: StreamDetector[Any]) -> None:
    findings = _feed(detector, [_canary_stream()])
    assert findings, "the canary stream must trip the detector, or the test proves nothing"
    text = "\n".join(f.model_dump_json() for f in findings)
    leaked = [name for name, canary in CANARIES.items() if canary in text]
    assert leaked == []


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(events=streams)
def test_every_finding_is_what_the_model_validates(
    detector: StreamDetector[Any], events: list[AuthzEvent]
) -> None:
    # Findings are built without pydantic's validation when plainly valid
    # (detectors/building.py): validating each one again must give the same finding.
    for finding in _feed(detector, [events]):
        assert Finding.model_validate(finding.model_dump()) == finding


@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(events=streams)
def test_findings_name_their_rule_and_revise_monotonically(
    detector: StreamDetector[Any], events: list[AuthzEvent]
) -> None:
    seen: dict[str, Finding] = {}
    for finding in _feed(detector, [events]):
        spec = RULES[finding.rule]
        assert finding.detector is detector.name is spec.detector
        assert finding.kind == spec.kind.value
        assert (finding.reference, finding.safeguard) == (spec.reference, spec.safeguard)
        assert finding.facts["basis"] == spec.basis.value
        previous = seen.get(finding.finding_id)
        if previous is not None:
            assert finding.revision == previous.revision + 1
            assert finding.count >= previous.count
            assert previous.facts["status"] == "open"
        else:
            assert finding.revision == 0
        seen[finding.finding_id] = finding
    assert all(f.facts["status"] == "closed" for f in latest_revisions(seen.values()))

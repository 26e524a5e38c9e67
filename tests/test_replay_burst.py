"""replay_burst: replays vs benign retries, audience misuse, lifetimes, bounded state."""

from __future__ import annotations

import pytest
from authz_events import BASE_TS, OTHER_ISS, event, url_of
from pydantic import ValidationError

from auditor.models import AuthzEvent, Finding
from detectors import ReplayBurstConfig, ReplayBurstDetector
from detectors._jti_table import JtiTable, small_hash, unpack
from detectors._jti_table import jti_key as _jti_key
from pipelines.runtime import RuntimeConfig, StreamRuntime, latest_revisions, run_stream

J = "3b2f9a8e-1c4d-4e5f-8a6b-7c8d9e0f1a2b"
HOOK = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
PEER, OTHER_PEER = "10.0.0.5", "203.0.113.9"


def _final(findings: list[Finding]) -> dict[str, Finding]:
    """The last revision per rule (each case has at most one incident per rule)."""
    return {f.rule: f for f in latest_revisions(findings)}


def _run(events: list[AuthzEvent], **config: object) -> dict[str, Finding]:
    detector = ReplayBurstDetector(ReplayBurstConfig.model_validate(config))
    return _final(run_stream([detector], events))


def first(t: float = 0, **kw: object) -> AuthzEvent:
    """The first presentation of J: accepted at patient-greeter from PEER."""
    return event(t, jti=J, hook_instance=HOOK, peer=PEER, **kw)  # type: ignore[arg-type]


CASES = [
    # (id, events, expected rule -> severity; "why")
    (
        "another-peer",
        [first(), event(30, jti=J, hook_instance="h2", peer=OTHER_PEER, reason="replayed_jti")],
        {"jti_replay": "high"},
        # The classic stolen token: same jti from somewhere else; the service refused it.
    ),
    (
        "replay-accepted",
        [first(), event(30, jti=J, hook_instance="h2", peer=OTHER_PEER)],
        {"jti_replay": "critical"},
        # The service accepted the replay: it keeps no jti cache. Must act now.
    ),
    (
        "benign-retry",
        [
            first(reason="rate_limited"),
            event(2, jti=J, hook_instance=HOOK, peer=PEER),
        ],
        {},
        # Same hookInstance, service and peer two seconds later, nothing accepted yet:
        # a client retrying a refused call, not an attack.
    ),
    (
        "retry-after-success",
        [first(), event(2, jti=J, hook_instance=HOOK, peer=PEER, reason="replayed_jti")],
        {"jti_replay": "high"},
        # Once a token was accepted, presenting it again is a replay even if it looks
        # like a retry (the issue: "or after success").
    ),
    (
        "slow-retry",
        [first(reason="rate_limited"), event(30, jti=J, hook_instance=HOOK, peer=PEER)],
        {"jti_replay": "critical"},
        # Outside the retry window (10 s) the same hookInstance is no longer a retry.
    ),
    (
        "another-hook-instance",
        [first(reason="rate_limited"), event(1, jti=J, hook_instance="other", peer=PEER)],
        {"jti_replay": "critical"},
        # A new hookInstance is a new call: a client must mint a new token for it.
    ),
    (
        "another-service",
        [
            first(),
            event(
                5,
                jti=J,
                hook_instance=HOOK,
                peer=PEER,
                service="order-check",
                aud=(url_of("patient-greeter"),),
            ),
        ],
        {"jti_replay": "critical", "token_wrong_audience": "high"},
        # The token for patient-greeter shows up at order-check: forwarded or stolen.
    ),
    (
        "after-expiry",
        [first(), event(600, jti=J, hook_instance="h2", peer=OTHER_PEER, reason="expired")],
        {},
        # exp is 300 s after issue; with 60 s skew the jti is forgotten by 600 s — an
        # expired token is validation_anomaly's business, not a replay.
    ),
    (
        "untrusted-claims",
        [first(), event(5, jti=J, hook_instance="h2", peer=OTHER_PEER, reason="bad_signature")],
        {},
        # A bad signature means anyone wrote these claims, jti included.
    ),
    (
        "other-issuer",
        [first(), event(5, jti=J, hook_instance="h2", peer=OTHER_PEER, iss=OTHER_ISS)],
        {},
        # jtis are unique per issuer: another client's equal jti is not a replay.
    ),
    (
        "rate-limited-then-replayed",
        [
            first(action="ratelimit.exceeded", reason="rate_limited"),
            event(30, jti=J, hook_instance="h2", peer=OTHER_PEER),
        ],
        {"jti_replay": "critical"},
        # The middleware verified the token before refusing the call for its rate: the
        # jti was spent, and a later acceptance from elsewhere is a replay.
    ),
    (
        "client-side-events",
        [first(action="request.sent"), first(2, action="request.sent")],
        {},
        # Presentations are what services record; the client's own events are not.
    ),
    (
        "wrong-audience-rejected",
        [event(0, service="order-check", aud=(url_of("patient-greeter"),), reason="aud_mismatch")],
        {"token_wrong_audience": "medium"},
        # Refused, but a token meant for another service was used here.
    ),
    (
        "smart-cap",
        [event(0, exp=BASE_TS + 600)],
        {"lifetime_over_smart_cap": "low"},
        # 10 minutes: over SMART Backend Services' 5 (local policy), within the hour.
    ),
    (
        "best-practice-cap",
        [event(0, exp=BASE_TS + 7200)],
        {"lifetime_over_best_practice": "medium"},
        # Two hours: reported once, by the stricter-sounding best-practice rule.
    ),
    (
        "issued-long-lived",
        [event(0, action="token.issued", exp=BASE_TS + 900)],
        {"lifetime_over_smart_cap": "low"},
        # The client minted it: reported on the client side before any service sees it.
    ),
    (
        "five-minutes",
        [event(0, exp=BASE_TS + 300), event(1, action="token.issued", exp=BASE_TS + 301)],
        {},
        # Exactly five minutes is within the cap.
    ),
]


@pytest.mark.parametrize(
    ("events", "expected"),
    [pytest.param(events, expected, id=name) for name, events, expected in CASES],
)
def test_replay_burst_case(events: list[AuthzEvent], expected: dict[str, str]) -> None:
    found = _run(events)
    assert {rule: f.severity.value for rule, f in found.items()} == expected


def test_lifetime_caps_can_be_switched_off() -> None:
    found = _run(
        [event(0, exp=BASE_TS + 7200)], smart_lifetime_cap=None, best_practice_lifetime_cap=None
    )
    assert found == {}


def test_a_burst_is_one_finding_whose_revisions_grow() -> None:
    replays = [
        event(10 + i, jti=J, hook_instance=f"h{i}", peer=f"203.0.113.{i}", reason="replayed_jti")
        for i in range(20)
    ]
    findings = run_stream([ReplayBurstDetector()], [first(), *replays])
    assert len({f.finding_id for f in findings}) == 1
    revisions = [f.revision for f in findings]
    assert revisions == list(range(len(findings)))
    # Throttled: open, count doublings, peers reaching powers of two, close.
    assert len(findings) <= 8
    final = findings[-1]
    assert final.facts["status"] == "closed"
    assert final.count == 21
    assert final.facts["replays"] == 20
    assert final.facts["first_peer"] == PEER
    assert final.window_start is not None
    assert final.window_end is not None
    assert final.window_end.timestamp() - final.window_start.timestamp() == 29


def test_the_same_event_delivered_twice_is_not_a_replay() -> None:
    once = first()
    assert _run([once, once.model_copy()]) == {}


def test_a_redelivered_replay_is_counted_once() -> None:
    replay = event(30, jti=J, hook_instance="h2", peer=OTHER_PEER)
    late_copy = replay.model_copy()
    runtime = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(allowed_lateness=0))
    findings = runtime.process(0, [first(), replay, event(100)])
    findings += runtime.process(0, [late_copy])  # late: after the watermark passed it
    findings += runtime.flush()
    assert latest_revisions(findings)[0].count == 2


def test_the_finding_carries_the_token_fingerprint_not_the_jti() -> None:
    fp = "k0123abcd:" + "0f" * 16
    found = _run([first(fingerprint=fp), event(9, jti=J, peer=OTHER_PEER, fingerprint=fp)])
    finding = found["jti_replay"]
    assert finding.fingerprint == fp
    assert J not in finding.model_dump_json()


def test_the_finding_id_is_the_same_on_every_run() -> None:
    events = [first(), event(30, jti=J, hook_instance="h2", peer=OTHER_PEER)]
    assert _run(events)["jti_replay"].finding_id == _run(events)["jti_replay"].finding_id


def test_a_full_table_forgets_the_earliest_expiring_jtis_and_says_so() -> None:
    detector = ReplayBurstDetector(ReplayBurstConfig(max_jtis_per_client=100))
    runtime = StreamRuntime([detector], RuntimeConfig(allowed_lateness=0))
    findings = runtime.process(0, [event(i * 0.01, exp=BASE_TS + 50 + i) for i in range(250)])
    assert runtime.stats(0, state_items=True).state_items <= 101
    findings += runtime.flush()
    full = [f for f in latest_revisions(findings) if f.rule == "jti_table_full"]
    assert len(full) == 1
    assert full[0].facts["forgotten"] == full[0].count == 150
    assert full[0].facts["cap"] == 100


def test_jtis_are_forgotten_after_exp_plus_skew_and_the_key_evicted() -> None:
    runtime = StreamRuntime([ReplayBurstDetector()], RuntimeConfig(allowed_lateness=0))
    runtime.process(0, [event(0), event(1)])
    assert runtime.stats(0, state_items=True).state_items == 1
    runtime.advance_watermark(0, BASE_TS + 300 + 60 + 10)  # exp + skew + one bucket
    assert runtime.stats(0, state_items=True).state_items == 0
    runtime.advance_watermark(0, BASE_TS + 2000)
    assert runtime.stats(0).keys == 0
    assert runtime.stats(0).evictions == 1


def test_a_long_lived_token_is_remembered_at_most_max_retention() -> None:
    detector = ReplayBurstDetector(ReplayBurstConfig(max_retention=600))
    runtime = StreamRuntime([detector], RuntimeConfig(allowed_lateness=0))
    runtime.process(0, [event(0, exp=BASE_TS + 86_400), event(1)])
    runtime.advance_watermark(0, BASE_TS + 600 + 60 + 10)
    assert runtime.stats(0, state_items=True).state_items == 1  # only the lifetime incident


def test_a_recorded_presentation_unpacks_to_what_was_recorded() -> None:
    # add() packs inline for speed; unpack() is what the replay logic reads back.
    table = JtiTable()
    table.add(
        7,
        event_id=0xDEADBEEF_12345678,
        hook_instance=HOOK,
        accepted=True,
        service="patient-greeter",
        peer=PEER,
        time=BASE_TS + 12.345,
        horizon=BASE_TS + 360,
    )
    first = unpack(table.seen[7])
    assert first.event_hash == 0x12345678
    assert first.hook_hash == small_hash(HOOK)
    assert first.accepted is True
    assert table.services[first.service] == "patient-greeter"
    assert table.peers[first.peer] == PEER
    assert first.time == pytest.approx(BASE_TS + 12.345)
    assert table.next_expiry is not None
    assert table.next_expiry >= BASE_TS + 360


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (J, J, True),  # the same jti
        (J, J.upper(), False),  # jti comparison is case-sensitive (RFC 7519 StringOrURI)
        (J, J.replace("-", "_"), False),  # int() would read underscores as separators
        ("jti-1", "jti-2", False),  # non-UUID jtis are hashed
        ("jti-1", "jti-1", True),
    ],
)
def test_jti_keys_are_stable_and_case_sensitive(a: str, b: str, same: bool) -> None:
    assert (_jti_key(a) == _jti_key(b)) is same
    assert 0 <= _jti_key(a) < 2**60


@pytest.mark.parametrize(
    "config",
    [
        {"clock_skew": -1},  # negative skew would forget jtis before they expire
        {"max_jtis_per_client": 0},  # a table that holds nothing detects nothing
        {"retry_window": 10**9},  # beyond 30 days: surely a unit mistake
        {"unknown": 1},  # typos in configuration must not pass silently
    ],
)
def test_bad_replay_configuration_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ReplayBurstConfig.model_validate(config)

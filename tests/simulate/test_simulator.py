"""``auditor simulate``: real tokens over the real verify path, reproducible, labelled safely."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime

import jwt
import pytest

from auditor.models import AuthzEvent
from pipelines.simulate import all_incidents
from pipelines.simulate.traffic import arrivals, diurnal
from tests.simulate.simulation_support import TEST_KEY, Run, simulate

LEAKS = "replay_burst,token_leak,phi_leak,alg_attack:none,wrong_service,tls_1_0"
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")


@pytest.fixture(scope="module")
def run() -> Run:
    return simulate(minutes=6, rate=2.0, incidents=LEAKS)


def _leaked_values(run: Run) -> list[str]:
    """The raw values the leaking releases wrote, read back from their own log lines."""
    values = []
    for record in run.logs:
        instance = str(record.get("instance", ""))
        if not instance.endswith("-canary") and record.get("event") != "signing.key.loaded":
            continue
        keys = ("jwt", "ssn", "mrn", "birth_date", "phone", "email", "patient_name")
        values += [str(record[k]) for k in (*keys, "street_address", "patient_id") if k in record]
        if "headers" in record:
            values.append(record["headers"]["Authorization"].partition(" ")[2])
        if "access_token=" in record["event"]:
            values.append(record["event"].split("access_token=")[1].split()[0])
        if "jwk" in record:
            values.append(record["jwk"]["d"])
        if "prefetch" in record:
            patient = record["prefetch"]["patient"]
            values.append(json.dumps(patient, sort_keys=True, separators=(",", ":")))
    return values


def test_the_same_seed_writes_the_same_bytes_and_labels(run):
    again = simulate(minutes=6, rate=2.0, incidents=LEAKS)
    assert again.data == run.data
    assert [label.model_dump_json() for label in again.labels] == [
        label.model_dump_json() for label in run.labels
    ]


def test_another_seed_writes_other_traffic():
    # Same cast and shape, other draws: ids, keys, arrival times and patients all differ.
    assert simulate(minutes=1, seed=12).data != simulate(minutes=1, seed=13).data


def test_every_authz_line_is_a_valid_authz_event_and_every_other_line_a_log_record(run):
    for event in run.events:
        AuthzEvent.model_validate(event)
    assert all({"timestamp", "level", "event", "logger"} <= set(log) for log in run.logs)
    assert run.result.events == len(run.events)
    assert run.result.logs == len(run.logs)


def test_normal_calls_are_minted_sent_and_accepted_by_the_verifier(run):
    by_action = Counter((e["source"]["role"], e["action"], e["outcome"]) for e in run.events)
    assert by_action["client", "token.issued", "success"] > 100
    assert (
        by_action["service", "token.validated", "success"]
        > 0.9 * by_action["client", "token.issued", "success"]
    )
    issued = {e["token"]["jti"]: e["token"]["fingerprint"] for e in run.events
              if e["action"] == "token.issued"}  # fmt: skip
    validated = [e for e in run.events if e["action"] == "token.validated"]
    # The service fingerprinted the very token the client minted.
    assert all(issued[e["token"]["jti"]] == e["token"]["fingerprint"] for e in validated)


def test_the_simulated_tokens_are_real_signed_jwts(run):
    leaked = [r["jwt"] for r in run.logs if "jwt" in r]
    assert leaked
    header = jwt.get_unverified_header(leaked[0])
    assert header["typ"] == "JWT"
    assert header["alg"] == "ES256"
    claims = jwt.decode(leaked[0], options={"verify_signature": False})
    assert set(claims) >= {"iss", "aud", "exp", "iat", "jti"}


def test_labels_carry_fingerprints_of_the_leaked_values_and_never_the_values(run):
    leaked = _leaked_values(run)
    assert len(leaked) >= 20  # every token and PHI variant leaked twice
    text = "".join(label.model_dump_json() for label in run.labels)
    for value in leaked:
        assert value not in text
    assert not JWT_SHAPE.search(text)
    assert not re.search(r"\b\d{3}-\d{2}-\d{4}\b|Bearer |access_token=", text)
    fingerprints = {TEST_KEY(value) for value in leaked}
    for label in run.labels:
        if label.type.value in {"token_leak", "phi_leak"}:
            assert label.fingerprints
            assert set(label.fingerprints) <= fingerprints, label.name


def test_outside_the_leaking_releases_no_log_line_holds_a_token(run):
    clean = [
        line
        for line, record in zip(run.data.splitlines(), run.records, strict=True)
        if record.get("kind") != "authz"
        and not str(record.get("instance", "")).endswith("-canary")
        and record.get("event") != "signing.key.loaded"
    ]
    assert clean
    assert not any(JWT_SHAPE.search(line.decode()) for line in clean)


def test_sampled_request_bodies_are_logged_through_the_redactor():
    sampled = [r for r in simulate(minutes=10, rate=3).logs if r["event"] == "hook.request.sampled"]
    assert sampled
    for record in sampled:
        body = record["body"]
        assert body["fhirAuthorization"]["access_token"].startswith("[REDACTED:")
        # A call without its prefetch (answered 412) has none to redact.
        assert str(body.get("prefetch", "[REDACTED:fhir_resource")).startswith(
            "[REDACTED:fhir_resource"
        )
        assert record["redacted"]


def test_each_label_spans_the_records_its_incident_produced(run):
    for label in run.labels:
        assert label.start <= label.end
        assert label.events + label.logs > 0, label.name
        assert label.client is not None


def test_attacks_reach_the_verifier_and_are_refused_for_the_expected_reason(run):
    def refusals(name: str) -> Counter[str]:
        label = run.label(name)
        return Counter(
            e["reason"]
            for e in run.events
            if e["action"] == "token.rejected"
            and e.get("peer", {}).get("ip") == label.peer
            and label.start <= datetime.fromisoformat(e["time"]) <= label.end
        )

    assert refusals("alg_attack:none") == {"alg_not_allowed": 6}
    assert refusals("replay_burst") == {"replayed_jti": 8}
    assert refusals("wrong_service") == {"aud_mismatch": 2}


def test_the_legacy_client_is_seen_with_tls_1_0_only_during_its_incident(run):
    label = run.label("tls_1_0")
    old = [e for e in run.events if e.get("tls", {}).get("version") == "TLSv1.0"]
    assert len(old) == 12
    assert all(label.start <= datetime.fromisoformat(e["time"]) <= label.end for e in old)


def test_over_real_http_the_services_see_the_same_calls_without_tls():
    in_process = simulate(minutes=1, rate=2.0, seed=5)
    over_http = simulate(minutes=1, rate=2.0, seed=5, http=True)

    def without_tls(run: Run) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "tls"} for r in run.records]

    assert without_tls(over_http) == without_tls(in_process)
    assert not any("tls" in e for e in over_http.events)


def test_calls_follow_the_working_day():
    peak = datetime(2026, 11, 16, 18, 0, tzinfo=UTC)  # 13:00 in the hospitals' time zone
    night = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)  # 03:00
    assert diurnal(peak) == pytest.approx(1.0)
    assert diurnal(night) < 0.1
    import random

    def count(start: datetime) -> int:
        end = start.replace(minute=10)
        return sum(1 for _ in arrivals(random.Random(1), start, end, peak_rate=10.0))

    assert count(peak) > 8 * count(night)


def test_all_names_every_incident_type_and_variant():
    names = {spec.name for spec in all_incidents()}
    assert len(names) == 23
    assert {"token_leak:private_jwk", "phi_leak:street_address", "alg_attack:hs256"} <= names

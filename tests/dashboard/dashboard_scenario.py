"""A month of a hospital's CDS Hooks traffic, for the dashboard and report tests.

Four EHR clients call four CDS services from 29 October to 27 November 2026 (UTC):
a few thousand authz events, mostly accepted, with a background of ordinary failures and
the incidents an officer should find:

- an attack on ``sepsis-alert`` from one peer on 18 Nov (a burst of ``alg_not_allowed``,
  one ``validation_anomaly`` with its baseline), and clock drift at ``riverside`` (a run
  of ``expired``, another anomaly);
- a JWT of ``northside`` leaked in ``patient-greeter``'s log on 20 Nov, then replayed
  (``leaked_token`` + ``replay_burst`` sharing one fingerprint and jti, with the events);
- PHI in logs (SSNs, MRNs, dates of birth, e-mails, names) spread over the month;
- policy violations (TLS below 1.2, long-lived JWTs, ``alg: none``);
- ``st-marys`` goes silent after 16 Nov (a coverage gap).

Every event and finding is a validated ``AuthzEvent`` / ``Finding`` (the contracts), put
into a real DuckDB file with schema v1 through Arrow. About a third of the findings carry
a review history. One finding's evidence still holds an unredacted JWT (``CANARY_JWT``)
and every failed event's ``detail`` and ``attributes`` an SSN (``CANARY_SSN``): the
dashboard must never show either.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from stored_rows import events_rows, findings_rows, insert

from auditor import AuthzEvent, Finding, finding_id
from auditor.fingerprints import Fingerprinter
from pipelines.store import schema

START = datetime(2026, 10, 29, tzinfo=UTC)
END = datetime(2026, 11, 28, tzinfo=UTC)
"""The scenario covers [START, END): 30 days."""
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
"""The moment the tests judge at."""

NORTHSIDE = "https://ehr.northside-health.example"
RIVERSIDE = "https://epic.riverside.example"
LAKEVIEW = "https://cerner.lakeview.example"
STMARYS = "https://ehr.st-marys.example"
CLIENTS = (NORTHSIDE, RIVERSIDE, LAKEVIEW, STMARYS)

GREETER = "patient-greeter"
INTERACTIONS = "med-interactions"
SEPSIS = "sepsis-alert"
ORDERS = "order-sign-check"
SERVICES = (GREETER, INTERACTIONS, SEPSIS, ORDERS)
BASE = "https://cds.hospital.example/cds-services/"

CANARY_JWT = "eyJhbGciOiJFUzM4NCJ9.eyJjYW5hcnkiOiJkYXNoYm9hcmQifQ.c2lnbmF0dXJlLWNhbmFyeS0x"
CANARY_SSN = "219-09-9999"
KEY = b"dashboard-scenario-key-0123456789"
_NS = uuid.UUID("5d0c4a1e-1f2b-4c3d-8e9f-a0b1c2d3e4f5")


@dataclass
class Scenario:
    """What the scenario database holds, for tests to refer to."""

    path: Path
    fingerprinter: Fingerprinter
    events: list[AuthzEvent] = field(default_factory=list)
    findings: dict[str, Finding] = field(default_factory=dict)
    leak_fingerprint: str = ""
    leak_jti: str = ""

    def fid(self, label: str) -> str:
        """The id of the finding labelled ``label``."""
        return self.findings[label].finding_id


class _Events:
    def __init__(self, fp: Fingerprinter) -> None:
        self.fp = fp
        self.events: list[AuthzEvent] = []

    def add(
        self,
        when: datetime,
        client: str,
        service: str,
        *,
        reason: str | None = None,
        action: str | None = None,
        jti: str | None = None,
        fingerprint: str | None = None,
        peer: str = "10.20.0.15",
        lifetime: int = 300,
    ) -> AuthzEvent:
        n = len(self.events)
        failed = reason is not None
        event = AuthzEvent.model_validate(
            {
                "event_id": str(uuid.uuid5(_NS, f"event-{n}")),
                "time": when.isoformat(),
                "source": {"role": "service", "name": service, "instance": f"{service}-7d9f"},
                "action": action or ("token.rejected" if failed else "token.validated"),
                "outcome": "failure" if failed else "success",
                "reason": reason,
                "detail": f"rejected token of patient {CANARY_SSN}" if failed else None,
                "http_status": 401 if failed else 200,
                "client": {"iss": client, "tenant": "main"},
                "service": {"id": service, "url": BASE + service},
                "token": {
                    "jti": jti or f"{uuid.uuid5(_NS, f'jti-{n}')}",
                    "kid": "2026-10",
                    "alg": "ES384",
                    "typ": "JWT",
                    "iat": int(when.timestamp()) - 5,
                    "exp": int(when.timestamp()) - 5 + lifetime,
                    "aud": BASE + service,
                    "fingerprint": fingerprint or self.fp(f"token-{n}"),
                },
                "hook": "patient-view",
                "peer": {"ip": peer},
                "attributes": {"patient_ssn": CANARY_SSN} if failed else {},
            }
        )
        self.events.append(event)
        return event


def _traffic(rng: random.Random, ev: _Events) -> None:
    """Ordinary days: every client calls its services, a few calls fail."""
    calls = {
        NORTHSIDE: {GREETER: 14, INTERACTIONS: 9, ORDERS: 5},
        RIVERSIDE: {GREETER: 10, SEPSIS: 8, INTERACTIONS: 6},
        LAKEVIEW: {SEPSIS: 7, ORDERS: 4},
        STMARYS: {GREETER: 5, INTERACTIONS: 3},
    }
    background = ("expired", "bad_signature", "aud_mismatch", "unknown_kid", "missing_claim")
    for day in range(30):
        midnight = START + timedelta(days=day)
        for client, services in calls.items():
            if client == STMARYS and midnight >= datetime(2026, 11, 17, tzinfo=UTC):
                continue  # the coverage gap
            for service, per_day in services.items():
                for _ in range(per_day + rng.randint(-2, 3)):
                    when = midnight + timedelta(seconds=rng.randint(6 * 3600, 22 * 3600))
                    reason = rng.choice(background) if rng.random() < 0.03 else None
                    ev.add(when, client, service, reason=reason)


def _incidents(ev: _Events, fp: Fingerprinter) -> dict[str, list[AuthzEvent]]:
    """The events behind the incidents, by label."""
    burst_at = datetime(2026, 11, 18, 3, 12, tzinfo=UTC)
    attack = [
        ev.add(
            burst_at + timedelta(seconds=9 * i),
            LAKEVIEW,
            SEPSIS,
            reason="alg_not_allowed",
            peer="203.0.113.77",
        )
        for i in range(42)
    ]
    drift_at = datetime(2026, 11, 9, 14, 0, tzinfo=UTC)
    drift = [
        ev.add(drift_at + timedelta(minutes=2 * i), RIVERSIDE, GREETER, reason="expired")
        for i in range(16)
    ]
    leak_at = datetime(2026, 11, 20, 10, 4, tzinfo=UTC)
    leaked = fp("the-northside-jwt-of-20-nov")
    presented = [
        ev.add(leak_at, NORTHSIDE, GREETER, jti="jti-northside-0042", fingerprint=leaked,
               lifetime=3600),
        *(
            ev.add(leak_at + timedelta(minutes=31 + i), NORTHSIDE, GREETER,
                   reason="replayed_jti", jti="jti-northside-0042", fingerprint=leaked,
                   peer="198.51.100.23", lifetime=3600)
            for i in range(5)
        ),
    ]  # fmt: skip
    tls_at = datetime(2026, 11, 6, 8, 30, tzinfo=UTC)
    tls = [ev.add(tls_at, STMARYS, GREETER, reason="tls_error", action="tls.failed")]
    return {"attack": attack, "drift": drift, "replay": presented, "tls": tls}


def _finding(label: str, **fields: object) -> Finding:
    detector, rule = str(fields["detector"]), str(fields["rule"])
    base: dict[str, object] = {
        "finding_id": finding_id(detector, rule, label),
        "kind": rule,
        "title": f"{detector.replace('_', ' ')}: {rule.replace('_', ' ')}",
    }
    base.update(fields)
    evidence = str(base.pop("evidence", ""))
    # Finding refuses evidence holding a credential; a canary is planted past that check,
    # as if a buggy detector had let one through, to prove the dashboard still hides it.
    return Finding.model_validate(base).model_copy(update={"evidence": evidence})


_PHI = (
    ("ssn", "G-social-security-numbers", "medium", "$.patient.ssn", "SSN in a log field"),
    ("mrn", "H-medical-record-numbers", "medium", "$.context.mrn", "medical record number"),
    ("dob", "C-dates", "low", "$.patient.birthDate", "date of birth"),
    ("email", "F-email-addresses", "low", "$.msg", "e-mail address"),
    ("person_name", "A-names", "medium", "$.prefetch.patient.name", "patient name"),
    ("phone", "D-telephone-numbers", "low", "$.msg", "phone number"),
)


def _findings(
    rng: random.Random, fp: Fingerprinter, incidents: dict[str, list[AuthzEvent]]
) -> dict[str, Finding]:
    out: dict[str, Finding] = {}
    leak = incidents["replay"][0]
    leak_fp = leak.token.fingerprint if leak.token else None
    out["leak"] = _finding(
        "leak", detector="leaked_token", rule="jwt", severity="critical",
        observed_at=datetime(2026, 11, 20, 10, 4, 2, tzinfo=UTC), client_iss=NORTHSIDE,
        service_id=GREETER, fingerprint=leak_fp, location="$.headers.authorization",
        origin="patient-greeter/app.log:88213",
        evidence='{"event": "request", "headers": {"authorization": "Bearer [REDACTED:jwt]"}}',
        safeguard="cds-hooks:never-log-jwts",
        facts={"live": True, "alg": "ES384", "iss": NORTHSIDE, "jti": "jti-northside-0042",
               "exp": int(leak.time.timestamp()) + 3595},
        title="JWT of northside logged in clear by patient-greeter",
    )  # fmt: skip
    out["replay"] = _finding(
        "replay", detector="replay_burst", rule="jti_replayed", kind="jwt", severity="high",
        observed_at=incidents["replay"][-1].time, client_iss=NORTHSIDE, service_id=GREETER,
        fingerprint=leak_fp, window_start=incidents["replay"][1].time,
        window_end=incidents["replay"][-1].time, count=5, revision=3,
        event_ids=tuple(str(e.event_id) for e in incidents["replay"][1:]),
        facts={"jti": "jti-northside-0042", "peers": ("198.51.100.23",)},
        title="jti presented 5 times after first use (northside at patient-greeter)",
    )  # fmt: skip
    attack = incidents["attack"]
    out["attack"] = _finding(
        "attack", detector="validation_anomaly", rule="failure_rate", kind="alg_not_allowed",
        severity="critical", observed_at=attack[-1].time, client_iss=LAKEVIEW, service_id=SEPSIS,
        window_start=attack[0].time, window_end=attack[-1].time, count=len(attack),
        event_ids=tuple(str(e.event_id) for e in attack[:20]),
        facts={"baseline": 0.4, "score": 21.3, "reason": "alg_not_allowed"},
        title="alg_not_allowed failures 100x the baseline (lakeview at sepsis-alert)",
    )  # fmt: skip
    drift = incidents["drift"]
    out["drift"] = _finding(
        "drift", detector="validation_anomaly", rule="failure_rate", kind="expired",
        severity="high", observed_at=drift[-1].time, client_iss=RIVERSIDE, service_id=GREETER,
        window_start=drift[0].time, window_end=drift[-1].time, count=len(drift),
        facts={"baseline": 2.5, "score": 6.1, "reason": "expired"},
        title="expired tokens 6x the baseline: clock drift at riverside?",
    )  # fmt: skip
    out["new-reason"] = _finding(
        "new-reason", detector="validation_anomaly", rule="new_reason", kind="unknown_kid",
        severity="info", observed_at=datetime(2026, 11, 3, 16, 0, tzinfo=UTC),
        client_iss=LAKEVIEW, service_id=ORDERS, count=2,
        title="first unknown_kid failures from lakeview",
    )  # fmt: skip
    out["tls"] = _finding(
        "tls", detector="policy", rule="tls_below_1_2", kind="tls", severity="high",
        observed_at=incidents["tls"][0].time, client_iss=STMARYS, service_id=GREETER,
        event_ids=(str(incidents["tls"][0].event_id),),
        reference="CDS Hooks security: TLS 1.2 or higher", safeguard="cds-hooks:normative",
        title="TLS 1.0 handshake from st-marys",
    )  # fmt: skip
    out["alg-none"] = _finding(
        "alg-none", detector="policy", rule="alg_none", kind="jwt", severity="critical",
        observed_at=datetime(2026, 11, 24, 11, 40, tzinfo=UTC), client_iss=LAKEVIEW,
        service_id=ORDERS, reference="https://cds-hooks.hl7.org/2.0/#trusting-cds-clients",
        safeguard="cds-hooks:normative", title="JWT with alg none presented by lakeview",
    )  # fmt: skip
    out["secret"] = _finding(
        "secret", detector="leaked_token", rule="client_secret", severity="high",
        observed_at=datetime(2026, 11, 12, 7, 15, tzinfo=UTC), service_id=INTERACTIONS,
        fingerprint=fp("interactions-client-secret"), location="chars 40-80",
        origin="med-interactions/boot.log:12",
        evidence=f"loaded config client_secret=[REDACTED] token={CANARY_JWT}",
        facts={"live": None}, title="client secret in med-interactions boot log",
    )  # fmt: skip
    for i in range(6):
        out[f"lifetime-{i}"] = _finding(
            f"lifetime-{i}", detector="policy", rule="jwt_lifetime_over_5_min", kind="jwt",
            severity="low", observed_at=START + timedelta(days=3 + 4 * i, hours=9),
            client_iss=RIVERSIDE, service_id=SEPSIS, facts={"lifetime": 3600},
            reference="SMART Backend Services (local policy)",
            title="JWT lifetime 3600 s exceeds 300 s (riverside)",
        )  # fmt: skip
    for i in range(4):
        out[f"bearer-{i}"] = _finding(
            f"bearer-{i}", detector="leaked_token", rule="bearer_token", severity="high",
            observed_at=START + timedelta(days=5 + 6 * i, hours=13), service_id=ORDERS,
            fingerprint=fp(f"opaque-{i % 2}"), location="$.fhirAuthorization.access_token",
            evidence='"fhirAuthorization": {"access_token": "[REDACTED:bearer_token]"}',
            title="FHIR access token in order-sign-check request log",
        )  # fmt: skip
    for i in range(34):
        kind, harbor, severity, location, what = _PHI[i % len(_PHI)]
        service = (GREETER, INTERACTIONS, SEPSIS)[i % 3]
        out[f"phi-{i}"] = _finding(
            f"phi-{i}", detector="phi_in_logs", rule=kind, severity=severity,
            observed_at=START + timedelta(days=rng.randint(0, 29), hours=rng.randint(7, 20)),
            service_id=service, fingerprint=fp(f"phi-{kind}-{i % 9}"), location=location,
            origin=f"{service}/app.log:{1000 + 37 * i}", safeguard=harbor, count=rng.randint(1, 4),
            evidence=f'... "{location.rsplit(".", 1)[-1]}": "[REDACTED:{kind}]" ...',
            title=f"{what} in {service} log",
        )  # fmt: skip
    return out


# (label, [(action, actor, hours after storage, assignee, note)])
REVIEWS: dict[str, list[tuple[str, str, float, str | None, str | None]]] = {
    "leak": [
        ("assign", "dana.officer", 1.5, "sam.platform", None),
        ("comment", "sam.platform", 3.0, None, "Asked northside to revoke; logger patched."),
    ],
    "replay": [("acknowledge", "dana.officer", 2.0, None, None)],
    "drift": [
        ("acknowledge", "lee.security", 5.0, None, None),
        ("resolve", "lee.security", 30.0, None, "NTP fixed on riverside's token service"),
    ],
    "tls": [("assign", "dana.officer", 20.0, "sam.platform", None)],
    "new-reason": [("false_positive", "lee.security", 4.0, None, "Planned key rotation")],
    "lifetime-0": [("acknowledge", "dana.officer", 240.0, None, None)],
    "lifetime-1": [("resolve", "dana.officer", 30.0, None, "Riverside shortened lifetime")],
    "lifetime-2": [
        ("resolve", "dana.officer", 10.0, None, None),
        ("reopen", "lee.security", 40.0, None, "Seen again on 10 Nov"),
    ],
    "bearer-0": [("resolve", "sam.platform", 12.0, None, "Token revoked at the FHIR server")],
    "bearer-1": [("acknowledge", "sam.platform", 200.0, None, None)],
    **{f"phi-{i}": [("acknowledge", "lee.security", 6.0 + i, None, None)] for i in range(0, 34, 3)},
    **{
        f"phi-{i}": [("resolve", "lee.security", 8.0 + i, None, "Log field removed")]
        for i in range(1, 34, 7)
    },
}


def _run_of(event: AuthzEvent) -> str:
    # The scenario's history spans two pipeline runs, split on 14 November.
    return "run-2026-11-a" if event.time < datetime(2026, 11, 14, tzinfo=UTC) else "run-2026-11-b"


def stored_at(finding: Finding) -> datetime:
    """When the scenario's store first kept a finding: 40 seconds after it was observed."""
    return finding.observed_at + timedelta(seconds=40)


def _runs(fp: Fingerprinter) -> list[dict[str, object]]:
    config = {
        "mode": "kafka",
        "topics": {"authz": "cds.authz", "logs": "cds.logs"},
        "detectors": [
            "leaked_token",
            "phi_in_logs",
            "replay_burst",
            "validation_anomaly",
            "policy",
        ],
        "replay": {"window_seconds": 3600},
        "anomaly": {"window": "5m", "baseline_days": 14, "min_score": 4.0},
        "fingerprint_key_file": "/etc/auditor/fingerprint.key",
        "kafka": {"bootstrap": "kafka-1.internal:9093", "sasl_password": "hunter2-do-not-print"},
    }
    return [
        {
            "run_id": "run-2026-11-a", "started_at": START - timedelta(days=2),
            "ended_at": datetime(2026, 11, 14, 2, 0, tzinfo=UTC), "mode": "kafka",
            "status": "completed", "inputs": ["cds.authz", "cds.logs"],
            "config_json": json.dumps(config), "fingerprint_key_id": fp.key_id,
            "auditor_version": "0.1.0", "events_in": 1800, "logs_in": 420_000,
            "findings_out": 30, "dead_letters": 3, "late_events": 12,
        },
        {
            "run_id": "run-2026-11-b", "started_at": datetime(2026, 11, 14, 2, 5, tzinfo=UTC),
            "ended_at": None, "mode": "kafka", "status": "running",
            "inputs": ["cds.authz", "cds.logs"], "config_json": json.dumps(config),
            "fingerprint_key_id": fp.key_id, "auditor_version": "0.1.0", "events_in": 1900,
            "logs_in": 455_000, "findings_out": 31, "dead_letters": 1, "late_events": 4,
        },
    ]  # fmt: skip


def build_scenario_db(path: Path) -> Scenario:
    """Create schema v1 at ``path`` and fill it with the scenario."""
    rng = random.Random(20261128)
    fp = Fingerprinter(KEY)
    ev = _Events(fp)
    _traffic(rng, ev)
    incidents = _incidents(ev, fp)
    findings = _findings(rng, fp, incidents)
    scenario = Scenario(path=path, fingerprinter=fp, events=ev.events, findings=findings)
    scenario.leak_fingerprint = str(findings["leak"].fingerprint)
    scenario.leak_jti = "jti-northside-0042"
    reviews: list[dict[str, object]] = []
    for label, acts in REVIEWS.items():
        base = stored_at(findings[label])
        for n, (action, actor, hours, assignee, note) in enumerate(acts):
            when = base + timedelta(hours=hours)
            reviews.append(
                {
                    "review_id": f"{int(when.timestamp() * 1e6):014x}{n:04x}{len(reviews):012x}",
                    "finding_id": findings[label].finding_id,
                    "action": action,
                    "actor": actor,
                    "assignee": assignee,
                    "note": note,
                    "reviewed_at": when,
                }
            )
    alerts = [
        {
            "alert_id": f"{f.finding_id}:{f.revision}",
            "finding_id": f.finding_id,
            "revision": f.revision,
            "severity": f.severity.value,
            "sent_at": stored_at(f) + timedelta(seconds=3),
            "channels": ["kafka", "webhook"],
        }
        for f in findings.values()
        if f.severity.value == "critical"
    ]
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        schema.migrate(con, where=str(path))
        insert(con, "runs", _runs(fp))
        insert(
            con,
            "events",
            events_rows(
                ev.events,
                origin="cds.authz/0@1",
                ingested_after=timedelta(seconds=1),
                run_of=_run_of,
            ),
        )
        insert(
            con,
            "findings",
            findings_rows(
                findings.values(),
                stored_after=lambda finding: stored_at(finding) - finding.observed_at,
                updated_after=lambda finding: timedelta(minutes=2 * finding.revision),
                run_id="run-2026-11-b",
            ),
        )
        insert(con, "reviews", reviews)
        insert(con, "alerts", alerts)
    finally:
        con.close()
    return scenario

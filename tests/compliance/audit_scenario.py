"""A realistic audit database for the compliance tests, built from the real contracts.

November 2026, three CDS clients and three services:

- ``ehr-a`` calls patient-greeter 3x a day and order-sign once a day until Nov 9; on
  Nov 20 one of its tokens (``FP_LEAK``) is validated, logged in clear text twice, then
  replayed and rejected. Failures: expired x4 (Nov 20), replayed_jti x1 (Nov 20),
  bad_signature x2 (Nov 21).
- ``ehr-b`` calls med-check 2x a day. Failures: alg_not_allowed x5 from one peer and
  replayed_jti x3 of one token (Nov 22), service_not_allowed at order-sign (Nov 19).
- ``ehr-c`` calls patient-greeter once a day until Nov 14, then goes silent (a coverage
  gap, like order-sign after Nov 19). Failure: unknown_kid (Nov 10).

Nineteen findings of every detector (labels L*, P*, R*, V*, Q* below) and a review history
(acknowledged, assigned, resolved, false positive, commented, reopened, late).

Canary values are planted where upstream redaction is supposed to have happened
(evidence text, event attributes and detail, an unexpected fact, a review note): the
exporters must never carry them out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from stored_rows import events_rows, findings_rows, insert

from auditor import AuthzEvent, Finding, finding_id
from auditor.fingerprints import Fingerprinter
from pipelines.store import schema

A = "https://ehr-a.example.org"
B = "https://ehr-b.example.org"
C = "https://ehr-c.example.org"
GREETER = "patient-greeter"
MEDCHECK = "med-check"
ORDERSIGN = "order-sign"
BASE = "https://cds.example.com/cds-services/"

NOW = datetime(2026, 11, 30, tzinfo=UTC)
"""The moment the tests judge at (``as_of``)."""

CANARY_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJjYW5hcnkiOnRydWV9.c2lnbmF0dXJlLWNhbmFyeQ"
CANARY_SSN = "078-05-1120"
CANARY_MRN = "CANARY-MRN-0042"
CANARIES = (CANARY_JWT, CANARY_SSN, CANARY_MRN)

_NS = uuid.UUID("0b1f6a0e-8a1c-4d5e-9f10-7c2b9d3e4f51")
_KEY = b"compliance-test-key-0123456789"


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A moment in November 2026, UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@dataclass
class AuditFixture:
    """What the fixture database holds, for tests to refer to."""

    path: Path
    fingerprinter: Fingerprinter
    findings: dict[str, Finding] = field(default_factory=dict)
    events: list[AuthzEvent] = field(default_factory=list)
    fp_leak: str = ""
    fp_replay: str = ""

    def fid(self, label: str) -> str:
        """The finding id of the finding labelled ``label``."""
        return self.findings[label].finding_id


class _Builder:
    def __init__(self, fingerprinter: Fingerprinter) -> None:
        self.fp = fingerprinter
        self.events: list[AuthzEvent] = []
        self.n = 0

    def event(
        self,
        when: datetime,
        client: str,
        service: str,
        *,
        outcome: str = "success",
        reason: str | None = None,
        action: str | None = None,
        fingerprint: str | None = None,
        jti: str | None = None,
        peer: str = "198.51.100.7",
    ) -> AuthzEvent:
        self.n += 1
        failed = outcome == "failure"
        event = AuthzEvent.model_validate(
            {
                "event_id": str(uuid.uuid5(_NS, f"event-{self.n}")),
                "time": when.isoformat(),
                "source": {"role": "service", "name": service, "instance": "pod-1"},
                "action": action or ("token.rejected" if failed else "token.validated"),
                "outcome": outcome,
                "reason": reason,
                "detail": f"rejected {CANARY_JWT}" if reason else None,
                "http_status": 401 if failed else 200,
                "client": {"iss": client, "tenant": "t-1"},
                "service": {"id": service, "url": BASE + service},
                "token": {
                    "jti": jti or f"jti-{self.n}",
                    "kid": "k1",
                    "alg": "ES384",
                    "typ": "JWT",
                    "iat": int(when.timestamp()) - 10,
                    "exp": int(when.timestamp()) + 290,
                    "aud": BASE + service,
                    "fingerprint": fingerprint or self.fp(f"token-{self.n}"),
                },
                "hook": "patient-view",
                "peer": {"ip": peer},
                "attributes": {"note": f"caller sent {CANARY_SSN}"} if failed else {},
            }
        )
        self.events.append(event)
        return event


def _finding(label: str, **fields: object) -> Finding:
    detector = str(fields["detector"])
    rule = str(fields["rule"])
    base: dict[str, object] = {
        "finding_id": finding_id(detector, rule, label),
        "kind": rule,
        "title": f"{detector} {rule}",
    }
    base.update(fields)
    facts = dict(base.pop("facts", None) or {})  # type: ignore[call-overload]
    canary_facts = {k: facts.pop(k) for k in list(facts) if facts[k] in CANARIES}
    finding = Finding.model_validate({**base, "facts": facts})
    # Finding refuses free text holding a credential; the canary is planted past that
    # check, as if a buggy detector or an old row had let one through, to prove that the
    # exports would still not show it.
    return finding.model_copy(
        update={
            "evidence": f"... [REDACTED] ... {CANARY_JWT}",
            "facts": {**finding.facts, **canary_facts},
        }
    )


def _findings(fp: Fingerprinter, fp_leak: str, fp_replay: str) -> dict[str, Finding]:
    exp_live = int(at(21, 12).timestamp())
    return {
        # leaked_token: L1 and L5 are the same live token logged twice.
        "L1": _finding(
            "L1",
            detector="leaked_token",
            rule="jwt",
            severity="critical",
            observed_at=at(20, 10, 5),
            client_iss=A,
            service_id=GREETER,
            fingerprint=fp_leak,
            location="$.headers.authorization",
            origin="greeter.log:120",
            safeguard="cds-hooks:never-log-jwts",
            facts={
                "live": True,
                "alg": "ES384",
                "iss": A,
                "exp": exp_live,
                "jti": "jti-leak-1",
                "raw_value": CANARY_JWT,
            },
        ),
        "L2": _finding(
            "L2",
            detector="leaked_token",
            rule="jwt",
            severity="high",
            observed_at=at(20, 11),
            client_iss=A,
            service_id=GREETER,
            fingerprint=fp("old-jwt"),
            facts={"live": False, "alg": "ES384", "iss": A, "exp": int(at(19).timestamp())},
        ),
        "L3": _finding(
            "L3",
            detector="leaked_token",
            rule="bearer_token",
            severity="high",
            observed_at=at(21, 9),
            client_iss=B,
            service_id=MEDCHECK,
            fingerprint=fp("opaque"),
        ),
        "L4": _finding(
            "L4",
            detector="leaked_token",
            rule="jwt",
            severity="critical",
            observed_at=at(21, 10),
            client_iss=B,
            service_id=MEDCHECK,
            fingerprint=fp("jwt-b"),
            facts={"alg": "RS384", "exp": exp_live},
        ),
        "L5": _finding(
            "L5",
            detector="leaked_token",
            rule="jwt",
            severity="critical",
            observed_at=at(20, 12),
            client_iss=A,
            service_id=GREETER,
            fingerprint=fp_leak,
            facts={"live": True, "alg": "ES384", "iss": A, "jti": "jti-leak-1"},
        ),
        # phi_in_logs: P1 and P2 are the same SSN.
        "P1": _finding(
            "P1",
            detector="phi_in_logs",
            rule="ssn",
            severity="medium",
            observed_at=at(21, 8),
            service_id=GREETER,
            fingerprint=fp(CANARY_SSN),
            safeguard="G-social-security-numbers",
        ),
        "P2": _finding(
            "P2",
            detector="phi_in_logs",
            rule="ssn",
            severity="medium",
            observed_at=at(22, 8),
            service_id=GREETER,
            fingerprint=fp(CANARY_SSN),
            safeguard="G-social-security-numbers",
            count=2,
        ),
        "P3": _finding(
            "P3",
            detector="phi_in_logs",
            rule="mrn",
            severity="medium",
            observed_at=at(22, 9),
            service_id=GREETER,
            fingerprint=fp(CANARY_MRN),
            safeguard="H-medical-record-numbers",
        ),
        "P4": _finding(
            "P4",
            detector="phi_in_logs",
            rule="email",
            severity="low",
            observed_at=at(23, 8),
            service_id=MEDCHECK,
            fingerprint=fp("pat@example.org"),
            safeguard="F-email-addresses",
        ),
        # replay_burst
        "R1": _finding(
            "R1",
            detector="replay_burst",
            rule="jti_replayed",
            kind="jwt",
            severity="high",
            observed_at=at(22, 9, 5),
            client_iss=B,
            service_id=MEDCHECK,
            fingerprint=fp_replay,
            window_start=at(22, 9),
            window_end=at(22, 9, 5),
            count=3,
            revision=2,
            event_ids=("e-1", "e-2", "e-3"),
        ),
        "R2": _finding(
            "R2",
            detector="replay_burst",
            rule="jti_replayed",
            kind="jwt",
            severity="high",
            observed_at=at(20, 10, 30),
            client_iss=A,
            service_id=GREETER,
            fingerprint=fp_leak,
            count=2,
            facts={"jti": "jti-leak-1"},
        ),
        "R3": _finding(
            "R3",
            detector="replay_burst",
            rule="jti_replayed",
            kind="jwt",
            severity="high",
            observed_at=at(24, 15),
            client_iss=B,
            service_id=MEDCHECK,
            fingerprint=fp("jwt-r3"),
            count=4,
        ),
        # validation_anomaly
        "V1": _finding(
            "V1",
            detector="validation_anomaly",
            rule="failure_rate",
            kind="alg_not_allowed",
            severity="high",
            observed_at=at(22, 10),
            client_iss=B,
            service_id=MEDCHECK,
            window_start=at(22, 9),
            window_end=at(22, 10),
            count=5,
            facts={"baseline": 0.4, "score": 9.5},
        ),
        "V2": _finding(
            "V2",
            detector="validation_anomaly",
            rule="failure_rate",
            kind="expired",
            severity="medium",
            observed_at=at(20, 13),
            client_iss=A,
            service_id=GREETER,
            count=4,
            facts={"baseline": 1.0, "score": 3.2},
        ),
        "V3": _finding(
            "V3",
            detector="validation_anomaly",
            rule="new_reason",
            kind="bad_signature",
            severity="info",
            observed_at=at(21, 14),
            client_iss=A,
            count=2,
        ),
        # policy
        "Q1": _finding(
            "Q1",
            detector="policy",
            rule="alg_none",
            kind="jwt",
            severity="critical",
            observed_at=at(22, 11),
            client_iss=B,
            service_id=MEDCHECK,
            reference="https://cds-hooks.hl7.org/2.0/#trusting-cds-clients",
            safeguard="cds-hooks:normative",
        ),
        "Q2": _finding(
            "Q2",
            detector="policy",
            rule="tls_below_1_2",
            kind="tls",
            severity="high",
            observed_at=at(10, 9),
            client_iss=C,
            service_id=GREETER,
            count=2,
            reference="cds-hooks security guide: TLS 1.2 or higher",
        ),
        "Q3": _finding(
            "Q3",
            detector="policy",
            rule="tls_below_1_2",
            kind="tls",
            severity="high",
            observed_at=at(12, 9),
            client_iss=C,
            service_id=GREETER,
            reference="cds-hooks security guide: TLS 1.2 or higher",
        ),
        "Q4": _finding(
            "Q4",
            detector="policy",
            rule="jwt_lifetime_over_5_min",
            kind="jwt",
            severity="low",
            observed_at=at(25, 9),
            client_iss=A,
            service_id=GREETER,
            reference="SMART Backend Services (local policy)",
        ),
    }


# Each review: the finding's label, the action, the actor, the time, the assignee, the note.
REVIEWS: list[tuple[str, str, str, datetime, str | None, str | None]] = [
    ("L1", "acknowledge", "alice", at(20, 12), None, None),
    ("L1", "assign", "alice", at(20, 13), "bob", None),
    ("L1", "resolve", "bob", at(21, 9), None, "token revoked at the EHR"),
    ("L2", "acknowledge", "alice", at(29, 9), None, None),
    ("P1", "false_positive", "carol", at(22, 7), None, f"test patient {CANARY_MRN}"),
    ("R1", "comment", "dave", at(23, 10), None, "looking into it"),
    ("V1", "acknowledge", "alice", at(22, 12), None, None),
    ("Q2", "resolve", "carol", at(11, 9), None, "TLS 1.0 disabled"),
    ("Q2", "reopen", "carol", at(12, 10), None, "seen again"),
]


def _events(b: _Builder, fp_leak: str, fp_replay: str) -> None:
    for day in range(2, 30):
        for hour in (8, 12, 16):
            b.event(at(day, hour), A, GREETER)
        for hour in (9, 15):
            b.event(at(day, hour), B, MEDCHECK)
        if day <= 14:
            b.event(at(day, 10), C, GREETER)
        if day <= 9:
            b.event(at(day, 11), A, ORDERSIGN)
    b.event(at(20, 10), A, GREETER, fingerprint=fp_leak, jti="jti-leak-1")
    for minute in range(4):
        b.event(at(20, 14, minute), A, GREETER, outcome="failure", reason="expired")
    b.event(
        at(20, 10, 30),
        A,
        GREETER,
        outcome="failure",
        reason="replayed_jti",
        fingerprint=fp_leak,
        jti="jti-leak-1",
    )
    for minute in range(2):
        b.event(at(21, 14, minute), A, GREETER, outcome="failure", reason="bad_signature")
    for minute in range(5):
        b.event(
            at(22, 9, minute),
            B,
            MEDCHECK,
            outcome="failure",
            reason="alg_not_allowed",
            peer="203.0.113.9",
        )
    for minute in range(3):
        b.event(
            at(22, 9, 10 + minute),
            B,
            MEDCHECK,
            outcome="failure",
            reason="replayed_jti",
            fingerprint=fp_replay,
            jti="jti-replayed",
        )
    b.event(at(10, 10, 30), C, GREETER, outcome="failure", reason="unknown_kid")
    b.event(
        at(19, 9),
        B,
        ORDERSIGN,
        outcome="failure",
        reason="service_not_allowed",
        action="allowlist.denied",
    )


def build_audit_db(path: Path) -> AuditFixture:
    """Create the schema at ``path`` and fill it with the scenario above."""
    fp = Fingerprinter(_KEY)
    fixture = AuditFixture(path=path, fingerprinter=fp)
    fixture.fp_leak = fp("the-leaked-jwt")
    fixture.fp_replay = fp("the-replayed-jwt")
    builder = _Builder(fp)
    _events(builder, fixture.fp_leak, fixture.fp_replay)
    fixture.events = builder.events
    fixture.findings = _findings(fp, fixture.fp_leak, fixture.fp_replay)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        schema.migrate(con, where=str(path))
        insert(
            con,
            "events",
            events_rows(
                fixture.events,
                origin="authz/0@1",
                ingested_after=timedelta(seconds=2),
                run_of=lambda _: "run-2",
            ),
        )
        insert(
            con,
            "findings",
            findings_rows(
                fixture.findings.values(),
                stored_after=lambda _: timedelta(minutes=1),
                updated_after=lambda finding: timedelta(minutes=finding.revision),
                run_id="run-2",
            ),
        )
        insert(
            con,
            "reviews",
            [
                {
                    "review_id": f"{int(when.timestamp() * 1e6):014x}{i:016x}",
                    "finding_id": fixture.fid(label),
                    "action": action,
                    "actor": actor,
                    "assignee": assignee,
                    "note": note,
                    "reviewed_at": when,
                }
                for i, (label, action, actor, when, assignee, note) in enumerate(REVIEWS)
            ],
        )
        insert(
            con,
            "runs",
            [
                {
                    "run_id": "run-1",
                    "started_at": at(1),
                    "ended_at": at(15),
                    "mode": "kafka",
                    "status": "interrupted",
                    "inputs": ["authz", "logs"],
                    "fingerprint_key_id": fp.key_id,
                    "events_in": 120,
                    "logs_in": 4000,
                    "findings_out": 2,
                },
                {
                    "run_id": "run-2",
                    "started_at": at(15, 1),
                    "ended_at": None,
                    "mode": "kafka",
                    "status": "running",
                    "inputs": ["authz", "logs"],
                    "fingerprint_key_id": fp.key_id,
                    "events_in": 300,
                    "logs_in": 9000,
                    "findings_out": 17,
                },
            ],
        )
    finally:
        con.close()
    return fixture

"""Streams, canaries, a content detector and a webhook receiver for the pipeline tests.

``PatternContentDetector`` reports what the shared pattern library finds, through the
``auditor.protocols.ContentDetector`` protocol: a content detector whose behaviour a test
can bend (raise, report partly examined records) to see how the pipeline copes. The
other tests run the real ``leaked_token`` and ``phi_in_logs`` (``detectors.ContentScanner``).
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from auditor.fingerprints import Fingerprinter
from auditor.models import AuthzEvent, Finding, finding_id
from auditor.patterns import default_library
from auditor.patterns.matches import TOKEN_KINDS
from auditor.protocols import ScanContext
from auditor.vocabulary import DetectorName, Severity
from pipelines.settings import AuditorSettings
from pipelines.topology import run_kafka

FINGERPRINT_KEY = "pipeline-test-fingerprint-key-0123"


class PatternContentDetector:
    """Reports tokens (``leaked_token``, high) and PHI (``phi_in_logs``, medium) by location.

    Implements ``auditor.protocols.ContentDetector``; the ids are derived from the origin
    and the location, as a content detector's must be, so a record read twice reports the
    same findings.
    """

    name = DetectorName.LEAKED_TOKEN

    def __init__(self, fingerprinter: Fingerprinter | None = None) -> None:
        self._fp = fingerprinter or Fingerprinter(FINGERPRINT_KEY.encode())
        self._library = default_library()

    def scan(self, content: object, context: ScanContext) -> list[Finding]:
        """Every token and PHI value the library finds in ``content``."""
        if isinstance(content, str):
            found = [
                (f"chars {m.start}-{m.end}", m.kind, m.rule, m.value)
                for m in self._library.find_in_text(content)
            ]
        else:
            found = [
                (m.location, m.kind, m.rule, m.value)
                for m in self._library.scan(content).matches
                if m.redact
            ]
        return [self._finding(context, *item) for item in found]

    def _finding(
        self, context: ScanContext, location: str, kind: Any, rule: str, value: str
    ) -> Finding:
        token = kind in TOKEN_KINDS
        detector = DetectorName.LEAKED_TOKEN if token else DetectorName.PHI_IN_LOGS
        return Finding(
            finding_id=finding_id(detector.value, rule, context.origin, location),
            detector=detector,
            rule=rule.lower().replace(" ", "_"),
            kind=str(kind.value),
            severity=Severity.HIGH if token else Severity.MEDIUM,
            observed_at=context.observed_at,
            title=f"{kind.value} at {location}",
            client_iss=context.client_iss,
            service_id=context.service_id,
            fingerprint=self._fp(value),
            location=location,
            origin=context.origin,
            event_ids=(context.event_id,) if context.event_id else (),
        )


@dataclass
class Canaries:
    """Fake secrets planted in a stream; none may reach storage, alerts or logs."""

    jwt: str
    bearer: str
    ssn: str = "219-09-9999"
    email: str = ""
    mrn: str = ""

    @classmethod
    def make(cls) -> Canaries:
        """Values unique to one test, shaped as the pattern library recognises them."""
        key = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(
            {"iss": "https://ehr.example.org", "sub": "canary", "jti": uuid.uuid4().hex},
            key,
            algorithm="ES256",
            headers={"kid": "canary"},
        )
        tag = secrets.token_hex(4)
        return cls(
            jwt=token,
            bearer="canaryBearer" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y"),
            email=f"patient.{tag}@mail.example.com",
            mrn=f"MRN{secrets.randbelow(10**8):08d}",
        )

    def labelled(self) -> dict[str, str]:
        """For ``assert_no_canaries``: label -> value (the JWT's signature part as well)."""
        return {
            "jwt": self.jwt,
            "jwt signature": self.jwt.rsplit(".", 1)[1],
            "bearer": self.bearer,
            "ssn": self.ssn,
            "email": self.email,
            "mrn": self.mrn,
        }


def authz_line(event: AuthzEvent) -> bytes:
    """An event as producers write it (``kind`` first, no nulls)."""
    return event.model_dump_json(exclude_none=True).encode()


def log_line(message: str, **fields: Any) -> bytes:
    """A structlog-style JSON log record."""
    return orjson.dumps(
        {"timestamp": "2026-11-28T10:00:30Z", "level": "info", "event": message, **fields}
    )


def planted_lines(canaries: Canaries, event: AuthzEvent) -> list[bytes]:
    """Records carrying every canary: in an event's free text and in log records."""
    leaky = event.model_copy(
        update={
            "attributes": {
                "headers": {"authorization": f"Bearer {canaries.bearer}"},
                "note": f"patient ssn {canaries.ssn}",
            },
            "detail": f"token was {canaries.jwt}",
            "fhir_server": f"https://fhir.example.org/r4?access_token={canaries.bearer}",
        }
    )
    return [
        authz_line(leaky),
        log_line("jwt validation failed", token=canaries.jwt, service="patient-greeter"),
        log_line(
            "prefetch",
            patient={
                "resourceType": "Patient",
                "telecom": [{"system": "email", "value": canaries.email}],
                "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": canaries.mrn}],
            },
        ),
        f"GET /cds-services/x Authorization: Bearer {canaries.bearer} ssn={canaries.ssn}".encode(),
    ]


POISON: dict[str, bytes] = {
    # Why each is refused; the reason the pipeline must give.
    "malformed_json": b'{"kind": "authz", "event_id": ',
    "invalid_utf8": b"\xff\xfe\xfd not text",
    "schema_violation": b'{"kind":"authz","event_id":"not-a-uuid","time":"yesterday"}',
    "too_deep": b'{"kind":"log","x":' + b"[" * 100 + b"]" * 100 + b"}",
    "oversized": b'{"event":"' + b"a" * (2 << 20) + b'"}',
}


def write_lines(path: Path, lines: Sequence[bytes]) -> Path:
    """Write records one per line."""
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def stored(db: Path, sql: str) -> list[dict[str, Any]]:
    """Rows of a query on the store (through the writer, if one runs)."""
    from pipelines.store import open_store

    with open_store(db) as store:
        return store.query(sql).to_pylist()


def count(db: Path, table: str) -> int:
    """Rows in a table of the store."""
    return int(stored(db, f"SELECT count(*) AS n FROM {table}")[0]["n"])  # noqa: S608 - our own table names


@dataclass
class Received:
    """What the webhook receiver got: bodies and headers, in order."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0


@contextmanager
def webhook_receiver(
    statuses: Sequence[int] = (), delay: float = 0.0
) -> Iterator[tuple[str, Received]]:
    """A real HTTP server on 127.0.0.1; answers ``statuses`` in turn, then 200."""
    received = Received()
    answers = list(statuses)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if delay:
                threading.Event().wait(delay)
            with lock:
                received.attempts += 1
                status = answers.pop(0) if answers else 200
                if status == 200:
                    received.bodies.append(json.loads(body))
                    received.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def recent(seconds_ago: float) -> datetime:
    """A UTC time ``seconds_ago`` before now."""
    return datetime.now(UTC) - timedelta(seconds=seconds_ago)


def kafka_env(settings: Any, **pipeline: object) -> dict[str, str]:
    """Environment variables that point ``auditor run`` at a test's broker and topics."""
    import os

    env = {
        **os.environ,
        "AUDITOR_FINGERPRINT_KEY": FINGERPRINT_KEY,
        "AUDITOR_KAFKA__BOOTSTRAP_SERVERS": ",".join(settings.kafka.bootstrap_servers),
        "AUDITOR_GROUPS__DETECT": settings.groups.detect,
        "AUDITOR_GROUPS__STORE": settings.groups.store,
    }
    for role in ("authz", "logs", "findings", "alerts", "deadletters", "state"):
        spec = getattr(settings.topics, role)
        env[f"AUDITOR_TOPICS__{role.upper()}__NAME"] = spec.name
        env[f"AUDITOR_TOPICS__{role.upper()}__PARTITIONS"] = str(spec.partitions)
    for name, value in pipeline.items():
        env[f"AUDITOR_PIPELINE__{name.upper()}"] = str(value)
    return env


def call_events(calls: int, clients: int = 4, start: float = 0.0) -> list[AuthzEvent]:
    """A known stream of CDS Hooks calls with incidents, in time order.

    Each call is ``token.issued``, ``request.sent`` and ``token.validated``; every 50th
    token is presented again from another peer (a replay), every 97th is signed ``none``
    (a policy violation), every 131st lives two hours (a lifetime violation).
    """
    from authz_events import event

    out: list[AuthzEvent] = []
    for n in range(calls):
        t = start + n * 0.05
        iss = f"https://ehr-{n % clients}.example.org"
        jti = f"jti-{n}"
        alg = "none" if n % 97 == 0 else "ES384"
        exp = None if n % 131 else int(t) + 7200
        extra: dict[str, Any] = {"alg": alg, "jti": jti, "iss": iss}
        if exp is not None:
            extra["exp"] = 1_795_860_000 + exp
        hook = f"h-{n}"
        out.append(event(t, action="token.issued", hook_instance=hook, **extra))
        out.append(event(t + 0.01, action="request.sent", hook_instance=hook, **extra))
        out.append(event(t + 0.02, hook_instance=hook, **extra))
        if n % 50 == 0:
            out.append(event(t + 0.03, hook_instance=f"r-{n}", peer="203.0.113.7", **extra))
    return out


@contextmanager
def running_pipeline(
    settings: AuditorSettings, db: Path | None, **kwargs: Any
) -> Iterator[threading.Event]:
    """``run_kafka`` on a thread until the block ends (then stopped and joined).

    Yields the stop event; an exception of the pipeline is raised on the test's thread.
    """
    stop = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run_kafka(settings, db, stop=stop, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)
    if failure:
        raise failure[0]

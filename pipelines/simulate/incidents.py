"""Injecting incidents into a simulation, and recording the ground truth of each.

Every incident is made of real calls and real log lines: an attacker's forged tokens go
through the service's middleware like any request, a leaking release logs the very token
or patient data of the call it is serving. Each incident drives its own traffic at a fixed
cadence (so it looks the same whatever the background rate) and counts the events and log
records it caused; its label is written from what actually happened.

Incidents are spread over the run (from 12 % to 90 % of it, one slot each);
``failure_spike`` takes the last slot, because a rate spike can only stand out against
a client's baseline, which ``validation_anomaly`` learns for 15 minutes first.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import httpx

from auditor.cdshooks import service_url
from auditor.cdshooks.adversary import Forger
from auditor.errors import ConfigurationError
from pipelines.simulate.cast import TLS_1_0, TLS_1_2, VENDOR_OF
from pipelines.simulate.labels import IncidentSpec, IncidentType, Label
from pipelines.simulate.leaks import PHI_LEAKS, TOKEN_LEAKS, LeakPlan
from pipelines.simulate.services import Leak
from pipelines.simulate.signing import DeterministicKey
from pipelines.simulate.traffic import new_uuid

if TYPE_CHECKING:
    from pipelines.simulate.engine import Ehr, Node, Simulation

MIN_SPIKE_RUN: Final = timedelta(minutes=20)
_ATTACKER: Final = "203.0.113.77"
_FORGER: Final = "198.51.100.14"
_SCANNER: Final = "198.51.100.15"
_SSRF_TARGET: Final = "https://169.254.169.254/latest/meta-data"
_BROAD_SCOPE: Final = "user/*.* openid fhirUser"


@dataclass(slots=True)
class _Record:
    """What one incident did so far (becomes its label)."""

    spec: IncidentSpec
    incident_id: str
    description: str = ""
    client: str | None = None
    service: str | None = None
    peer: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    fingerprints: list[str] = field(default_factory=list)
    events: int = 0
    logs: int = 0

    def label(self) -> Label | None:
        if self.start is None or self.end is None:
            return None
        return Label(
            incident_id=self.incident_id,
            type=self.spec.type,
            variant=self.spec.variant,
            description=self.description,
            client=self.client,
            service=self.service,
            peer=self.peer,
            start=self.start,
            end=self.end,
            expected=self.spec.expected,
            fingerprints=tuple(dict.fromkeys(self.fingerprints)),
            events=self.events,
            logs=self.logs,
        )


class Injector:
    """Places the chosen incidents in a simulation and writes their labels.

    Args:
        simulation: The simulation to inject into.
        specs: The incidents.

    Raises:
        ConfigurationError: ``failure_spike`` in a run too short for it to be detectable.
    """

    def __init__(self, simulation: Simulation, specs: Sequence[IncidentSpec]) -> None:
        self.sim = simulation
        self.rng = random.Random(f"{simulation.config.seed}:incidents")
        spikes = [s for s in specs if s.type is IncidentType.FAILURE_SPIKE]
        if spikes and simulation.config.duration < MIN_SPIKE_RUN:
            raise ConfigurationError(
                "failure_spike needs a run of at least 20 minutes: validation_anomaly learns "
                "a client's baseline for 15 minutes before it reports rate spikes"
            )
        self.specs = [s for s in specs if s.type is not IncidentType.FAILURE_SPIKE] + spikes
        self._records: list[_Record] = []
        self._attackers: dict[str, httpx.Client] = {}

    def schedule(self, start: datetime, end: datetime) -> None:
        """Give each incident a slot between 12 % and 90 % of the run."""
        if not self.specs:
            return
        duration = end - start
        first = start + duration * 0.12
        slot = duration * 0.78 / len(self.specs)
        for number, spec in enumerate(self.specs):
            record = _Record(spec, f"inc-{number + 1:03d}-{spec.name.replace(':', '-')}")
            self._records.append(record)
            at = first + slot * number + slot * 0.3 * self.rng.random()
            inject = getattr(self, f"_{spec.type.value}")
            self.sim.at(at, _bound(inject, record, at))

    def labels(self) -> tuple[Label, ...]:
        """The labels of every incident that produced records."""
        for client in self._attackers.values():
            client.close()
        labels = (record.label() for record in self._records)
        return tuple(label for label in labels if label is not None)

    # -- helpers --------------------------------------------------------------------------

    def _step(self, record: _Record, action: Callable[[], object]) -> Callable[[], None]:
        """``action`` as a scheduled step whose events and logs count for ``record``."""

        def run() -> None:
            recorder = self.sim.recorder
            events, logs = recorder.events, recorder.logs
            recorder.watch()
            action()
            record.events += recorder.events - events
            record.logs += recorder.logs - logs
            if recorder.span:
                first, last = recorder.span
                record.start = first if record.start is None else min(record.start, first)
                record.end = last if record.end is None else max(record.end, last)

        return run

    def _later(self, record: _Record, at: datetime, action: Callable[[], object]) -> None:
        self.sim.at(at, self._step(record, action))

    def _attacker(self, ip: str) -> httpx.Client:
        if ip not in self._attackers:
            transport = self.sim.network.transport(ip, tls_version=TLS_1_2)
            self._attackers[ip] = httpx.Client(transport=transport)
        return self._attackers[ip]

    def _present(self, ip: str, service_id: str, token: str, body: dict[str, Any]) -> None:
        """Send a hook call with ``token`` from ``ip``, as an attacker's script would."""
        url = service_url(VENDOR_OF[service_id].base_url, service_id)
        self._attacker(ip).post(
            url,
            content=json.dumps(body).encode(),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )

    def _fingerprint(self, record: _Record, value: str) -> None:
        record.fingerprints.append(self.sim.fingerprinter(value))

    def _describe(self, record: _Record, ehr: Ehr, service: str | None, text: str) -> None:
        record.client = ehr.spec.iss
        record.service = service
        record.description = text

    def _forger(self, ehr: Ehr) -> Forger:
        return Forger(
            ehr.spec.iss,
            ehr.keyring.current,
            new_jti=lambda: new_uuid(self.rng),
            stranger=DeterministicKey.derive(self.rng, ehr.spec.alg),
        )

    def _captured_call(self, node: Node, service_id: str) -> tuple[str, dict[str, Any]]:
        """A normal call of ``node``, whose bearer token a wiretap captures."""
        seen: list[str] = []

        def tap(request: httpx.Request) -> None:
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                seen.append(header[7:])

        body = self.sim.body(node.ehr, service_id, rng=self.rng)
        node.transport.tap = tap
        try:
            self.sim.call(node, service_id, body)
        finally:
            node.transport.tap = None
        return seen[-1], body

    def _cadence(
        self,
        record: _Record,
        at: datetime,
        *,
        every: float,
        count: int,
        action: Callable[[int], object],
    ) -> None:
        for n in range(count):
            jitter = self.rng.uniform(-0.2, 0.2) * every
            self._later(record, at + timedelta(seconds=n * every + jitter), _nth(action, n))

    def _node_calls(self, node: Node, services: Sequence[str]) -> Callable[[int], object]:
        def call(_n: int) -> None:
            service_id = self.rng.choice(services)
            self.sim.call(node, service_id, self.sim.body(node.ehr, service_id, rng=self.rng))

        return call

    # -- the incidents --------------------------------------------------------------------

    def _replay_burst(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["stolaf"]
        service = "patient-greeter"
        self._describe(
            record, ehr, service, f"a token st-olaf sent to {service} is replayed 8 times "
            f"from {_ATTACKER} within its lifetime"
        )  # fmt: skip
        record.peer = _ATTACKER
        captured: dict[str, Any] = {}

        def capture() -> None:
            token, body = self._captured_call(ehr.routing[0], service)
            captured.update(token=token, body=body)
            self._fingerprint(record, token)

        self._later(record, at, capture)
        self._cadence(
            record,
            at + timedelta(seconds=25),
            every=3.5,
            count=8,
            action=lambda _n: self._present(
                _ATTACKER, service, captured["token"], captured["body"]
            ),
        )

    def _wrong_service(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["mercy"]
        rxcheck = VENDOR_OF["drug-interactions"]
        self._describe(
            record, ehr, "sepsis-risk", "drug-interactions forwards a token mercy-general "
            "minted for it to sepsis-risk (another vendor), twice"
        )  # fmt: skip
        record.peer = rxcheck.egress_ip
        captured: dict[str, Any] = {}

        def capture() -> None:
            token, _ = self._captured_call(ehr.routing[0], "drug-interactions")
            captured["token"] = token
            self._fingerprint(record, token)

        def forward(_n: int) -> None:
            body = self.sim.body(ehr, "sepsis-risk", rng=self.rng)
            self._present(rxcheck.egress_ip, "sepsis-risk", captured["token"], body)

        self._later(record, at, capture)
        self._cadence(record, at + timedelta(seconds=4), every=7.0, count=2, action=forward)

    def _alg_attack(self, record: _Record, at: datetime) -> None:
        key, service = ("mercy", "patient-greeter") if record.spec.variant == "none" else (
            "lakeside", "drug-interactions"
        )  # fmt: skip
        ehr = self.sim.ehrs[key]
        alg = "alg: none" if record.spec.variant == "none" else "HS256 keyed with the public key"
        self._describe(
            record, ehr, service, f"6 tokens forged in the name of {ehr.spec.iss} with {alg}, "
            f"sent to {service} from {_FORGER}"
        )  # fmt: skip
        record.peer = _FORGER
        forger = self._forger(ehr)
        forge = forger.alg_none if record.spec.variant == "none" else forger.hs256_with_public_key
        url = service_url(VENDOR_OF[service].base_url, service)

        def attempt(_n: int) -> None:
            token = forge(url, self.sim.clock.now())
            self._fingerprint(record, token)
            self._present(_FORGER, service, token, self.sim.body(ehr, service, rng=self.rng))

        self._cadence(record, at, every=8.0, count=6, action=attempt)

    def _unknown_kid_storm(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["northwind"]
        service = "dose-range"
        self._describe(
            record, ehr, service, f"14 tokens claiming {ehr.spec.iss}, each signed by a key no "
            f"JWK Set publishes, sent to {service} from {_SCANNER} within a minute"
        )  # fmt: skip
        record.peer = _SCANNER
        url = service_url(VENDOR_OF[service].base_url, service)

        def attempt(_n: int) -> None:
            token = self._forger(ehr).unknown_kid(url, self.sim.clock.now())
            self._fingerprint(record, token)
            self._present(_SCANNER, service, token, self.sim.body(ehr, service, rng=self.rng))

        self._cadence(record, at, every=4.0, count=14, action=attempt)

    def _clock_skew(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["mercy"]
        node = ehr.nodes[-1]
        self._describe(
            record, ehr, None, f"{node.name}'s clock runs 4 minutes ahead for 5 minutes: its "
            "tokens are issued in the future"
        )  # fmt: skip
        record.peer = node.transport.peer_ip

        def drift() -> None:
            ehr.routing.remove(node)
            node.skew = 240.0

        def recover() -> None:
            node.skew = 0.0
            ehr.routing.append(node)

        self._later(record, at, drift)
        self._cadence(
            record,
            at + timedelta(seconds=2),
            every=12.0,
            count=24,
            action=self._node_calls(node, ehr.spec.services),
        )
        self.sim.at(at + timedelta(minutes=5), recover)

    def _failure_spike(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["lakeside"]
        name = "lakeside-cds-3"
        self._describe(
            record, ehr, None, f"a new release on {name} mints 10-minute tokens: every call it "
            "makes for 3 minutes is refused (lifetime over the services' 5-minute limit)"
        )  # fmt: skip
        node = self.sim.add_node(ehr, name, token_lifetime=timedelta(minutes=10))
        record.peer = node.transport.peer_ip
        self._cadence(
            record, at, every=3.0, count=60, action=self._node_calls(node, ehr.spec.services)
        )

    def _ssrf_fhir_server(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["stolaf"]
        service = "sepsis-risk"
        self._describe(
            record, ehr, service, f"three calls name {_SSRF_TARGET} (cloud metadata) as "
            f"fhirServer; {service}'s vendor left internal addresses allowed"
        )  # fmt: skip
        node = ehr.routing[0]
        record.peer = node.transport.peer_ip

        def call(_n: int) -> None:
            body = self.sim.body(ehr, service, rng=self.rng)
            body["fhirServer"] = _SSRF_TARGET
            self.sim.call(node, service, body)

        self._cadence(record, at, every=20.0, count=3, action=call)

    def _overbroad_scopes(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["lakeside"]
        service = "patient-greeter"
        self._describe(
            record, ehr, service, f"lakeside grants {service} '{_BROAD_SCOPE}' (every "
            "resource, read and write) on three calls; it needs patient/Patient.read"
        )  # fmt: skip
        node = ehr.routing[0]
        record.peer = node.transport.peer_ip

        def call(_n: int) -> None:
            body = self.sim.body(ehr, service, rng=self.rng)
            body["fhirAuthorization"]["scope"] = _BROAD_SCOPE
            self.sim.call(node, service, body)

        self._cadence(record, at, every=15.0, count=3, action=call)

    def _tls_1_0(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["stolaf"]
        node = ehr.nodes[-1]
        self._describe(
            record, ehr, None, f"st-olaf's legacy interface engine ({node.name}) calls with "
            "TLS 1.0 for 4 minutes"
        )  # fmt: skip
        record.peer = node.transport.peer_ip
        node.transport.tls_version = TLS_1_0
        self._cadence(
            record, at, every=20.0, count=12, action=self._node_calls(node, ehr.spec.services)
        )

    def _token_leak(self, record: _Record, at: datetime) -> None:
        if record.spec.variant == "private_jwk":
            self._private_jwk_leak(record, at)
            return
        self._leaking_calls(record, at, TOKEN_LEAKS[str(record.spec.variant)])

    def _phi_leak(self, record: _Record, at: datetime) -> None:
        self._leaking_calls(record, at, PHI_LEAKS[str(record.spec.variant)])

    def _leaking_calls(self, record: _Record, at: datetime, plan: LeakPlan) -> None:
        ehr = self.sim.ehrs[plan.client]
        service = plan.service
        vendor = VENDOR_OF[service]
        self._describe(
            record, ehr, service, f"{vendor.key}'s canary release (no Redactor) logs the "
            f"{record.spec.variant} of two {ehr.spec.key} calls to {service}"
        )  # fmt: skip
        node = ehr.routing[0]
        record.peer = node.transport.peer_ip

        def leak(seen: Leak) -> None:
            self._fingerprint(record, plan.secret(seen))
            plan.write(seen)

        def call(_n: int) -> None:
            body = self.sim.body(ehr, service, rng=self.rng)
            self.sim.call(node, service, body, leak=leak)

        self._cadence(record, at, every=15.0, count=2, action=call)

    def _private_jwk_leak(self, record: _Record, at: datetime) -> None:
        ehr = self.sim.ehrs["lakeside"]
        self._describe(
            record, ehr, None, "two lakeside CDS gateways restart with debug logging and log "
            "their private signing key as a JWK"
        )  # fmt: skip

        def restart(n: int) -> None:
            key = ehr.keyring.current
            jwk = key.private_jwk() if isinstance(key, DeterministicKey) else key.public_jwk()
            self._fingerprint(record, jwk["d"])
            ehr.unredacted.info(
                "signing.key.loaded", instance=ehr.spec.instances[n % 2], jwk=jwk, source="vault"
            )

        self._cadence(record, at, every=30.0, count=2, action=restart)


def _bound(
    inject: Callable[[_Record, datetime], None], record: _Record, at: datetime
) -> Callable[[], None]:
    return lambda: inject(record, at)


def _nth(action: Callable[[int], object], n: int) -> Callable[[], object]:
    return lambda: action(n)


__all__ = ["MIN_SPIKE_RUN", "Injector"]

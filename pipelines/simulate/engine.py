"""The simulation: EHRs calling CDS services over the real token and middleware path.

Every call is real: the EHR's ``CdsClient`` mints a signed JWT (ES256/ES384, RFC 6979
signatures from seeded keys), its ``CdsHttpClient`` sends it with retries and backoff, and
the vendor's ``CdsHooksMiddleware`` verifies it and validates the body before the handler
answers. The events those components emit and the log lines the services write are the
simulation's output; nothing is written by the simulator itself except the labels.

Time is simulated: a heap of timed actions (arrivals, heartbeats, key rotation, the steps
of incidents) is run in time order, and the clock is set to each action's time before it
runs. Calls that overlap in reality are run one after the other, so records can be up to
a few seconds out of order — as they are when many processes log.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from structlog.typing import FilteringBoundLogger

from auditor.cdshooks import (
    CallResult,
    CdsClient,
    CdsHttpClient,
    JwksUrl,
    KeyRing,
    TrustedIssuer,
    TrustRegistry,
)
from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from pipelines.simulate.cast import (
    EHRS,
    SERVICES,
    VENDOR_OF,
    VENDORS,
    EhrSpec,
    Patient,
    VendorSpec,
    make_patients,
)
from pipelines.simulate.clock import SimClock
from pipelines.simulate.incidents import Injector
from pipelines.simulate.labels import IncidentSpec, Label
from pipelines.simulate.logs import process_logger, redactor
from pipelines.simulate.network import JwksHost, Network, SimulatedTransport
from pipelines.simulate.output import Output, Recorder
from pipelines.simulate.services import LeakAction, Vendor
from pipelines.simulate.signing import DeterministicKey
from pipelines.simulate.traffic import arrivals, hook_body, new_uuid

DEFAULT_START: Final = datetime(2026, 11, 16, 14, 0, tzinfo=UTC)
"""A Monday, 09:00 in the hospitals' time zone: the morning ramp."""

_HEARTBEAT_S: Final = 60.0
_BENIGN_EARLY_CALLS: Final = (7, 13, 19)
"""Each EHR's 7th, 13th and 19th calls meet a network blip, a missing prefetch and a service
error: every benign failure reason shows up in a client's first minutes, as in any real
deployment, so the auditor learns them as normal rather than meeting them new later."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate.

    Attributes:
        seed: Fixes every random choice, key and id: the same seed writes the same bytes.
        start: Simulated start time (timezone-aware).
        duration: Simulated duration.
        rate: Hook calls per second at the busiest hour (nights see about 8 % of it).
        incidents: The incidents to inject, spread over the run.
        fingerprinter: Keys fingerprints in events, markers and labels. Use the
            pipeline's key so they correlate; by default one derived from the seed.
        patients_per_ehr: Size of each EHR's patient panel.
        benign_failure_rate: Share of calls that meet a network blip (retried), a missing
            prefetch (412) or a failing dependency (500).
        rotate_keys: Whether Mercy General (whose JWK Set services fetch from its URL)
            rotates its signing key mid-run, in runs of 40 minutes or more.
    """

    seed: int = 1
    start: datetime = DEFAULT_START
    duration: timedelta = timedelta(minutes=10)
    rate: float = 5.0
    incidents: tuple[IncidentSpec, ...] = ()
    fingerprinter: Fingerprinter | None = None
    patients_per_ehr: int = 200
    benign_failure_rate: float = 0.01
    rotate_keys: bool = True

    def validated(self) -> SimulationConfig:
        """Return ``self`` after checking it.

        Raises:
            ConfigurationError: A non-positive rate or duration, or a naive start time.
        """
        if self.rate <= 0:
            raise ConfigurationError("the rate must be positive")
        if self.duration <= timedelta(0):
            raise ConfigurationError("the duration must be positive")
        if self.start.tzinfo is None:
            raise ConfigurationError("the start time needs a time zone")
        if not 0 <= self.benign_failure_rate <= 0.5:  # noqa: PLR2004 - half the calls at most
            raise ConfigurationError("benign_failure_rate must be between 0 and 0.5")
        if self.patients_per_ehr < 1:
            raise ConfigurationError("each EHR needs at least one patient")
        return self


def rotation_time(start: datetime, duration: timedelta) -> datetime | None:
    """When the key rotation happens: near the middle of the run, half an hour from any refetch.

    Services fetch a JWK Set at first use and again when their cache expires (hourly), and
    refetch on an unknown ``kid`` at most once a minute. A client that signs with its new
    key less than a minute after a service's fetch has its tokens refused until that minute
    is over — realistic, but it would be an incident of its own. Rotating at 30 minutes past
    an hour of the run keeps clear of every scheduled fetch.
    """
    if duration < timedelta(minutes=40):
        return None
    hours = max(0, int((duration * 0.45 - timedelta(minutes=30)) / timedelta(hours=1)))
    return start + timedelta(minutes=30) + timedelta(hours=hours)


def seed_fingerprinter(seed: int) -> Fingerprinter:
    """A fingerprint key derived from the seed, for simulations run without a configured one."""
    rng = random.Random(f"{seed}:fingerprint-key")
    return Fingerprinter(rng.randbytes(32))


@dataclass(slots=True)
class Node:
    """One application server of an EHR: its client, network path and clock."""

    ehr: Ehr
    name: str
    client: CdsClient
    transport: SimulatedTransport
    http: CdsHttpClient
    skew: float = 0.0
    calls: int = 0


@dataclass(slots=True)
class Ehr:
    """A running EHR: its keys, application servers, patients and logger."""

    spec: EhrSpec
    keyring: KeyRing
    patients: tuple[Patient, ...]
    practitioners: tuple[str, ...]
    log: FilteringBoundLogger
    unredacted: FilteringBoundLogger
    nodes: list[Node] = field(default_factory=list)
    routing: list[Node] = field(default_factory=list)
    """The servers that currently carry its calls (incidents reroute them)."""
    calls: int = 0


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a run produced."""

    labels: tuple[Label, ...]
    events: int
    logs: int
    calls: int
    simulated: timedelta


class Simulation:
    """One simulation run (see the module docstring).

    Args:
        config: What to simulate.
        output: Where the records go.
        http: Serve the CDS services with uvicorn on 127.0.0.1 and call them over real
            HTTP (slower; peers and TLS versions are then those of loopback HTTP).
    """

    def __init__(self, config: SimulationConfig, output: Output, *, http: bool = False) -> None:
        self.config = config.validated()
        seed = config.seed
        self.fingerprinter = config.fingerprinter or seed_fingerprinter(seed)
        self.clock = SimClock(config.start)
        self.end = config.start + config.duration
        self.recorder = Recorder(output, random.Random(f"{seed}:event-ids"), self.clock)
        self.network = Network(http=http)
        self.traffic = random.Random(f"{seed}:traffic")
        self._keys = random.Random(f"{seed}:keys")
        self._jtis = random.Random(f"{seed}:jti")
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._redaction = redactor(self.fingerprinter)
        self.calls = 0
        self.ehrs = {spec.key: self._start_ehr(spec) for spec in EHRS}
        self.vendors = {spec.key: self._start_vendor(spec) for spec in VENDORS}
        self._ehr_list = list(self.ehrs.values())
        self._ehr_weights = [ehr.spec.weight for ehr in self._ehr_list]
        self.injector = Injector(self, config.incidents)

    # -- assembly -------------------------------------------------------------------------

    def _start_ehr(self, spec: EhrSpec) -> Ehr:
        keyring = KeyRing(DeterministicKey.derive(self._keys, spec.alg))
        practitioner_rng = random.Random(f"{self.config.seed}:practitioners:{spec.key}")
        ehr = Ehr(
            spec=spec,
            keyring=keyring,
            patients=make_patients(self.config.seed, self.config.patients_per_ehr, spec),
            practitioners=tuple(
                f"Practitioner/{practitioner_rng.randrange(10**4, 10**5)}" for _ in range(24)
            ),
            log=process_logger(
                clock=self.clock,
                write=self.recorder.log,
                redaction=self._redaction,
                logger="ehr.cds-gateway",
                ehr=spec.key,
                client_iss=spec.iss,
            ),
            unredacted=process_logger(
                clock=self.clock,
                write=self.recorder.log,
                redaction=None,
                logger="ehr.cds-gateway",
                ehr=spec.key,
                client_iss=spec.iss,
            ),
        )
        for name in spec.instances:
            self.add_node(ehr, name)
        # St. Olaf's legacy interface engine stays idle unless an incident uses it.
        ehr.routing = [node for node in ehr.nodes if not node.name.endswith("-legacy")]
        return ehr

    def add_node(
        self, ehr: Ehr, name: str, *, token_lifetime: timedelta = timedelta(minutes=5)
    ) -> Node:
        """Start one more application server of ``ehr`` (not routed to until told)."""
        spec = ehr.spec
        index = len(ehr.nodes)
        allowed = [f"{VENDOR_OF[s].base_url}/cds-services/{s}" for s in spec.services]
        allowed += sorted({f"{VENDOR_OF[s].base_url}/cds-services" for s in spec.services})
        client = CdsClient(
            issuer=spec.iss,
            keys=ehr.keyring,
            services=allowed,
            sink=self.recorder,
            name=f"ehr-{spec.key}",
            instance=name,
            tenant=spec.tenants[index % len(spec.tenants)],
            jku=spec.jwks_url if spec.send_jku else None,
            token_lifetime=token_lifetime,
            fingerprinter=self.fingerprinter,
            new_jti=self._new_jti,
        )
        transport = self.network.transport(spec.peer(index), tls_version=spec.tls_version)
        node_holder: list[Node] = []

        def node_clock() -> datetime:
            return self.clock.now() + timedelta(seconds=node_holder[0].skew)

        http = CdsHttpClient(
            client,
            http=httpx.Client(transport=transport, follow_redirects=False),
            hook_attempts=3,
            discovery_attempts=3,
            backoff=0.2,
            clock=node_clock,
            sleep=self.clock.advance,
            rng=random.Random(f"{self.config.seed}:backoff:{name}"),
        )
        node = Node(ehr=ehr, name=name, client=client, transport=transport, http=http)
        node_holder.append(node)
        ehr.nodes.append(node)
        return node

    def _new_jti(self) -> str:
        return new_uuid(self._jtis)

    def _start_vendor(self, spec: VendorSpec) -> Vendor:
        callers = [
            ehr
            for ehr in self.ehrs.values()
            if set(ehr.spec.services) & {s.id for s in spec.services}
        ]
        issuers = []
        documents: dict[str, Callable[[], Any]] = {}
        for ehr in callers:
            if ehr.spec.jwks_url is None:
                issuers.append(
                    TrustedIssuer(ehr.spec.iss, jwks=ehr.keyring.jwks(now=self.clock.now()))
                )
            else:
                issuers.append(TrustedIssuer(ehr.spec.iss, jwks_urls=[JwksUrl(ehr.spec.jwks_url)]))
                documents[ehr.spec.jwks_url] = _publisher(ehr, self.clock)
        registry = TrustRegistry(issuers, http=httpx.Client(transport=JwksHost(documents)))
        vendor = Vendor(
            spec,
            registry=registry,
            fhir_servers=sorted({ehr.spec.fhir_server for ehr in callers}),
            clock=self.clock,
            sink=self.recorder,
            write_log=self.recorder.log,
            redaction=self._redaction,
            fingerprinter=self.fingerprinter,
            rng=random.Random(f"{self.config.seed}:vendor:{spec.key}"),
            rate_limit=max(50.0, self.config.rate * 2),
        )
        self.network.serve(spec.base_url, vendor.app)
        return vendor

    # -- scheduling -----------------------------------------------------------------------

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        """Run ``action`` at simulated time ``when``."""
        heapq.heappush(self._heap, (when.timestamp(), next(self._order), action))

    def run(self) -> SimulationResult:
        """Run the simulation to its end; returns the labels and counts."""
        start = self.config.start
        for vendor in self.vendors.values():
            self.at(start, vendor.started)
            self._every(start + timedelta(seconds=_HEARTBEAT_S), _HEARTBEAT_S, _heartbeat(vendor))
        for offset, ehr in enumerate(self.ehrs.values()):
            self.at(start + timedelta(seconds=1 + offset), _starter(self, ehr))
        rotation = rotation_time(start, self.config.duration)
        if self.config.rotate_keys and rotation is not None:
            mercy = self.ehrs["mercy"]
            self.at(rotation, lambda: self._rotate(mercy))
        self._arrivals = arrivals(self.traffic, start, self.end, self.config.rate)
        self._next_arrival()
        self.injector.schedule(start, self.end)
        try:
            while self._heap:
                when, _, action = heapq.heappop(self._heap)
                self.clock.set(datetime.fromtimestamp(when, UTC))
                action()
        finally:
            self.network.close()
            self.recorder.output.close()
        return SimulationResult(
            labels=self.injector.labels(),
            events=self.recorder.events,
            logs=self.recorder.logs,
            calls=self.calls,
            simulated=self.config.duration,
        )

    def _every(self, first: datetime, period: float, action: Callable[[], None]) -> None:
        def tick() -> None:
            action()
            following = self.clock.now() + timedelta(seconds=period)
            if following < self.end:
                self.at(following, tick)

        if first < self.end:
            self.at(first, tick)

    def _next_arrival(self) -> None:
        when = next(self._arrivals, None)
        if when is not None:
            self.at(when, self._arrive)

    def _arrive(self) -> None:
        self._next_arrival()
        ehr = self.traffic.choices(self._ehr_list, self._ehr_weights)[0]
        node = ehr.routing[self.traffic.randrange(len(ehr.routing))]
        service_id = self.traffic.choice(ehr.spec.services)
        ehr.calls += 1
        failure = self._benign_failure(ehr)
        body = self.body(ehr, service_id, prefetch=failure != "prefetch")
        if failure == "blip":
            node.transport.drops = 1
        elif failure == "error":
            self.vendors[VENDOR_OF[service_id].key].fail_next(service_id)
        self.call(node, service_id, body)

    def _benign_failure(self, ehr: Ehr) -> str | None:
        if ehr.calls in _BENIGN_EARLY_CALLS:
            return ("blip", "prefetch", "error")[_BENIGN_EARLY_CALLS.index(ehr.calls)]
        if self.traffic.random() >= self.config.benign_failure_rate:
            return None
        return self.traffic.choice(("blip", "prefetch", "error"))

    def _rotate(self, ehr: Ehr) -> None:
        node = ehr.nodes[0]
        new = DeterministicKey.derive(self._keys, ehr.spec.alg)
        node.client.rotate_key(new, now=self.clock.now())
        ehr.log.info("signing.key.rotated", kid=new.kid, alg=new.alg, published=True)

    # -- calls ----------------------------------------------------------------------------

    def body(
        self, ehr: Ehr, service_id: str, *, prefetch: bool = True, rng: random.Random | None = None
    ) -> dict[str, Any]:
        """A request body for a call of ``service_id`` by ``ehr`` (a random patient)."""
        draw = rng or self.traffic
        return hook_body(
            draw,
            service=SERVICES[service_id],
            ehr=ehr.spec,
            patient=draw.choice(ehr.patients),
            practitioner=draw.choice(ehr.practitioners),
            prefetch=prefetch,
        )

    def call(
        self, node: Node, service_id: str, body: dict[str, Any], *, leak: LeakAction | None = None
    ) -> CallResult:
        """Have ``node`` call ``service_id`` with ``body`` through its real HTTP client."""
        vendor = self.vendors[VENDOR_OF[service_id].key]
        if leak is not None:
            vendor.canaries[body["hookInstance"]] = leak
        self.calls += 1
        node.calls += 1
        return node.http.call(vendor.spec.base_url, service_id, body)

    def discover(self, node: Node) -> None:
        """Have ``node`` fetch the discovery document of every vendor it calls."""
        for base in sorted({VENDOR_OF[s].base_url for s in node.ehr.spec.services}):
            node.http.discover(base)


def _publisher(ehr: Ehr, clock: SimClock) -> Callable[[], Any]:
    def publish() -> Any:
        return ehr.keyring.jwks(now=clock.now())

    return publish


def _heartbeat(vendor: Vendor) -> Callable[[], None]:
    def beat() -> None:
        vendor.heartbeat(inflight=vendor.rng.randrange(0, 6))

    return beat


def _starter(simulation: Simulation, ehr: Ehr) -> Callable[[], None]:
    def start() -> None:
        ehr.log.info(
            "cds.gateway.started",
            instances=list(ehr.spec.instances),
            services=list(ehr.spec.services),
            signing_alg=ehr.spec.alg,
        )
        for node in ehr.routing:
            simulation.discover(node)

    return start

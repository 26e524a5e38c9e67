"""Throughput and memory of the stream detectors, against baselines measured in the same run.

    .venv/bin/python bench/stream_detectors.py [--calls N] [--jtis N] [--seed S]

Throughput: a realistic mix of authz events (several EHR clients calling several CDS
services; each call is ``token.issued`` + ``request.sent`` on the client and
``token.validated`` on the service; ~3% validation failures of various reasons, a few
replays, policy violations, slightly shuffled arrival) is generated in-process, then run
through the stream runtime with all three stream detectors. The baselines are what the
pipeline pays per event anyway: validating the event from JSON (``model_validate_json``),
and merely iterating the events reading their time and client. Times are CPU seconds of
this process (best of ``--repeat``) and ratios are printed, so the result means something
on a shared, noisy machine.

Memory: ``replay_burst`` tracks ``--jtis`` live jtis (default 1,000,000, over 20 clients);
the state it holds is measured by walking it (``sys.getsizeof`` of each distinct object,
what ``tracemalloc`` reports), cross-checked against ``tracemalloc`` on a build a tenth
that size, and reported as bytes per tracked jti (target <= 200).

The last lines are ``name value`` pairs, one per number.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import sys
import time
import tracemalloc
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor._native import status as native_status
from auditor.models import AuthzEvent, AuthzView, ClientRef, Peer, ServiceRef, Source, TokenClaims
from auditor.vocabulary import AuthzAction, Outcome
from detectors import (
    PolicyDetector,
    ReplayBurstDetector,
    ValidationAnomalyDetector,
)
from pipelines.runtime import RuntimeConfig, StreamRuntime

START = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
SERVICES = [f"svc-{i}" for i in range(8)]
CDS = "https://cds.example.com/cds-services"
FAILURES = [
    ("expired", 40),
    ("aud_mismatch", 10),
    ("unknown_kid", 10),
    ("bad_signature", 5),
    ("rate_limited", 15),
    ("iat_in_future", 10),
    ("missing_claim", 5),
    ("unknown_issuer", 5),
]


def _call_events(rng: random.Random, t: float, client: int) -> list[dict[str, Any]]:
    """The three events of one CDS Hooks call, sometimes a failure or a violation."""
    iss = f"https://ehr-{client}.example.org"
    service = rng.choice(SERVICES)
    url = f"{CDS}/{service}"
    jti = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    hook_instance = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    peer = f"10.{client}.0.{rng.randint(1, 2)}"
    iat = int(START.timestamp() + t)
    token = {
        "jti": jti,
        "kid": f"k{client}",
        "alg": "HS256" if client == 7 and rng.random() < 0.01 else "ES384",
        "typ": "JWT",
        "iat": iat,
        "exp": iat + 300,
        "aud": [url],
    }
    when = START + timedelta(seconds=t)
    common = {
        "client": {"iss": iss},
        "service": {"id": service, "url": url},
        "hook": "patient-view",
        "hook_instance": hook_instance,
        "token": token,
    }
    extra: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.005:
        extra = {
            "fhir_server": "https://fhir.example.org/r4",
            "fhir_authorization": True,
            "scopes": ["patient/*.read"],
        }
    elif roll < 0.006:
        extra = {"tls": {"version": "TLSv1.1"}}
    client_events = [
        {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": when.isoformat(),
            "source": {"role": "client", "name": f"ehr-{client}"},
            "action": action,
            "outcome": "success",
            **common,
            **extra,
        }
        for action in ("token.issued", "request.sent")
    ]
    failure = rng.random() < 0.03
    reason = rng.choices([r for r, _ in FAILURES], [w for _, w in FAILURES])[0] if failure else None
    service_event = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "time": (when + timedelta(milliseconds=rng.randint(5, 60))).isoformat(),
        "source": {"role": "service", "name": service},
        "action": "token.rejected" if failure else "token.validated",
        "outcome": "failure" if failure else "success",
        "reason": reason,
        "peer": {"ip": peer},
        "payload_bytes": rng.randint(800, 20_000),
        **common,
        **extra,
    }
    events = [*client_events, service_event]
    if rng.random() < 0.001:
        replay = dict(service_event)
        replay["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        replay["time"] = (when + timedelta(seconds=rng.uniform(5, 120))).isoformat()
        replay["peer"] = {"ip": f"203.0.113.{rng.randint(1, 254)}"}
        replay["hook_instance"] = str(uuid.uuid4())
        events.append(replay)
    return events


def realistic_mix(calls: int, seed: int) -> list[AuthzEvent]:
    """``calls`` CDS Hooks calls (about 3 events each) over 20 clients, arrival shuffled."""
    rng = random.Random(seed)
    raw: list[tuple[float, dict[str, Any]]] = []
    t = 0.0
    for _ in range(calls):
        t += rng.expovariate(200.0)  # ~200 calls per second of event time
        for data in _call_events(rng, t, rng.randrange(20)):
            arrival = datetime.fromisoformat(data["time"]).timestamp() + rng.uniform(0, 1.0)
            raw.append((arrival, data))
    raw.sort(key=lambda pair: pair[0])
    return [AuthzEvent.model_validate(data) for _, data in raw]


def measure(label: str, repeat: int, run: Any) -> float:
    """Best CPU time of ``repeat`` runs of ``run()``.

    CPU time of this process, not wall time: the machine is shared, and another
    process's load should not count against one core's throughput.
    """
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    print(f"  {label}: {best:.3f} s CPU")
    return best


def detector_throughput(events: list[AuthzEvent], batch: int) -> int:
    """Run all stream detectors over ``events``; return the number of findings."""
    runtime = StreamRuntime(
        [ReplayBurstDetector(), ValidationAnomalyDetector(), PolicyDetector()],
        RuntimeConfig(allowed_lateness=2.0),
    )
    found = 0
    for start in range(0, len(events), batch):
        found += len(runtime.process(0, events[start : start + batch]))
    return found + len(runtime.flush())


def _presentations(count: int, seed: int) -> Iterator[AuthzEvent]:
    """``count`` first presentations of distinct jtis over 20 clients, built cheaply."""
    rng = random.Random(seed)
    sources = [Source(role="service", name=s) for s in SERVICES]
    services = [ServiceRef(id=s, url=f"{CDS}/{s}") for s in SERVICES]
    clients = [ClientRef(iss=f"https://ehr-{c}.example.org") for c in range(20)]
    peers = [Peer(ip=f"10.{c}.0.1") for c in range(20)]
    base = START.timestamp()
    for n in range(count):
        c = n % 20
        s = n % len(SERVICES)
        t = base + n * 0.001  # 1,000 calls per second: a million in ~17 minutes
        iat = int(t)
        token = TokenClaims.model_construct(
            jti=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            kid="k",
            alg="ES384",
            typ="JWT",
            iat=iat,
            nbf=None,
            exp=iat + 3600,  # live for the whole run
            aud=(services[s].url,),
            jku=None,
            fingerprint=None,
        )
        yield AuthzEvent.model_construct(
            kind="authz",
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            time=datetime.fromtimestamp(t, UTC),
            source=sources[s],
            action=AuthzAction.TOKEN_VALIDATED,
            outcome=Outcome.SUCCESS,
            reason=None,
            client=clients[c],
            service=services[s],
            token=token,
            hook_instance=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            peer=peers[c],
            tls=None,
            scopes=(),
            fhir_server=None,
            fhir_authorization=None,
            payload_bytes=None,
        )


def deep_size(root: object) -> int:
    """Bytes of every distinct object reachable from ``root`` (``sys.getsizeof`` each).

    The same requested sizes ``tracemalloc`` reports; shared objects (a jti key held by
    the table and by its expiry bucket) are counted once. Walks dicts, lists, tuples,
    sets, slotted classes and mypyc's compiled classes; stops at classes and functions.
    """
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        else:  # a slotted class, or a class compiled by mypyc (its attributes are its own)
            names = getattr(type(obj), "__slots__", None) or getattr(obj, "__mypyc_attrs__", ())
            stack.extend(getattr(obj, name) for name in names if hasattr(obj, name))
    return total


def build_jti_states(count: int, seed: int, *, traced: bool) -> tuple[dict[str, Any], int]:
    """``replay_burst`` states holding ``count`` live jtis; bytes traced while building."""
    detector = ReplayBurstDetector()
    states: dict[str, Any] = {}
    gc.collect()
    gc.disable()  # the table holds ints only: no cycles for the collector to find
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else 0
    for event in _presentations(count, seed):
        view = AuthzView(event)
        key = detector.key(view)
        assert key is not None
        state = states.get(key) or detector.initial_state()
        states[key], _ = detector.step(state, view, view.time)
    held = tracemalloc.get_traced_memory()[0] - before if traced else 0
    if traced:
        tracemalloc.stop()
    gc.enable()
    return states, held


def jti_memory(count: int, seed: int) -> dict[str, float]:
    """Bytes per tracked jti held by ``replay_burst``, measured two ways.

    ``count`` jtis: the state is built untraced (tracing a million live allocations one by
    one takes tens of minutes on this machine) and measured by walking it. Cross-check: a
    tenth of that is built under ``tracemalloc`` and measured both ways.
    """
    detector = ReplayBurstDetector()
    sample = max(count // 10, 1000)
    small, traced = build_jti_states(sample, seed + 1, traced=True)
    small_tracked = sum(detector.size(state) for state in small.values())
    small_walked = deep_size(small)
    del small
    states, _ = build_jti_states(count, seed, traced=False)
    tracked = sum(detector.size(state) for state in states.values())
    walked = deep_size(states)
    snapshot = len(pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL))
    return {
        "tracked": tracked,
        "per_jti": walked / tracked,
        "sample": small_tracked,
        "sample_traced": traced / small_tracked,
        "sample_walked": small_walked / small_tracked,
        "snapshot_per_jti": snapshot / tracked,
    }


def throughput(calls: int, seed: int, repeat: int) -> dict[str, float]:
    """Events/s of the detectors and of the two baselines on the realistic mix."""
    print(f"generating {calls} calls ...")
    events = realistic_mix(calls, seed)
    payloads = [event.model_dump_json().encode() for event in events]
    n = len(events)
    print(f"{n} events; timing (best of {repeat}):")

    def iterate() -> None:
        for event in events:
            event.time.timestamp()
            _ = event.client

    def decode() -> None:
        for payload in payloads:
            AuthzEvent.model_validate_json(payload)

    findings = detector_throughput(events, 1000)
    iterate_s = measure("iterate events (baseline)", repeat, iterate)
    decode_s = measure("model_validate_json (baseline)", repeat, decode)
    detect_s = measure(
        "runtime + replay_burst + validation_anomaly + policy",
        repeat,
        lambda: detector_throughput(events, 1000),
    )
    print(f"  findings (all revisions): {findings}")
    return {"events": n, "detect": n / detect_s, "iterate": n / iterate_s, "decode": n / decode_s}


def main() -> None:
    """Run the benchmark and print the numbers last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100_000, help="CDS Hooks calls to simulate")
    parser.add_argument("--jtis", type=int, default=1_000_000, help="live jtis for memory")
    parser.add_argument("--repeat", type=int, default=3, help="best of N timed runs")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(native_status().describe())
    rates = throughput(args.calls, args.seed, args.repeat)
    print(f"tracking {args.jtis} live jtis ...")
    memory = jti_memory(args.jtis, args.seed)

    print()
    print(f"events {rates['events']:.0f}")
    print(f"events_per_second {rates['detect']:.0f}")
    print(f"baseline_iterate_events_per_second {rates['iterate']:.0f}")
    print(f"baseline_decode_events_per_second {rates['decode']:.0f}")
    print(f"ratio_detect_vs_decode {rates['detect'] / rates['decode']:.2f}")
    print(f"ratio_detect_vs_iterate {rates['detect'] / rates['iterate']:.3f}")
    print(f"crosscheck_jtis {memory['sample']:.0f}")
    print(f"crosscheck_bytes_per_jti_tracemalloc {memory['sample_traced']:.1f}")
    print(f"crosscheck_bytes_per_jti_walked {memory['sample_walked']:.1f}")
    print(f"snapshot_bytes_per_jti {memory['snapshot_per_jti']:.1f}")
    print(f"tracked_jtis {memory['tracked']:.0f}")
    print(f"bytes_per_tracked_jti {memory['per_jti']:.1f}")


if __name__ == "__main__":
    main()

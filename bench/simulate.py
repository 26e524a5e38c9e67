"""How fast ``auditor simulate`` writes traffic, against the cost of its tokens alone.

Each simulated hook call mints a real token (RFC 6979 ECDSA), sends it through httpx and
the service's Starlette stack and ``CdsHooksMiddleware``, verifies it, emits three authz
events and writes two or three log lines through the Redactor. The baseline, measured in
the same run, is what no simulation with real tokens can avoid: PyJWT signing and
verifying one token per call with the cast's mix of algorithms (ES256 for 85 % of the
calls, ES384 for the rest).

    .venv/bin/python bench/simulate.py [--minutes 10] [--rate 20] [--http]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from pipelines.simulate import JsonLinesOutput, Simulation, SimulationConfig, seed_fingerprinter
from pipelines.simulate.cast import EHRS


class _Discard(io.RawIOBase):
    """A binary sink that counts bytes (the cost of writing a file is not the point)."""

    def __init__(self) -> None:
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.bytes += len(data)
        return len(data)


def _baseline(calls: int) -> float:
    """Seconds PyJWT takes to sign and verify ``calls`` tokens with the cast's algorithms."""
    weights = {ehr.alg: 0.0 for ehr in EHRS}
    for ehr in EHRS:
        weights[ehr.alg] += ehr.weight
    keys = {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
    }
    rng = random.Random(1)
    algs = rng.choices(list(weights), list(weights.values()), k=calls)
    claims = {"iss": "https://ehr.example.org", "aud": "https://cds.example.com/cds-services/x",
              "iat": 1_794_837_600, "exp": 1_794_837_900, "jti": "x"}  # fmt: skip
    began = time.perf_counter()
    for alg in algs:
        key = keys[alg]
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": "k", "typ": "JWT"})
        jwt.decode(token, key.public_key(), algorithms=[alg], audience=claims["aud"],
                   options={"verify_exp": False, "verify_iat": False})  # fmt: skip
    return time.perf_counter() - began


def main() -> None:
    """Run the simulation and the baseline; print both and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes")
    parser.add_argument("--rate", type=float, default=20.0, help="peak hook calls per second")
    parser.add_argument("--http", action="store_true", help="over loopback HTTP (uvicorn)")
    args = parser.parse_args()

    sink = _Discard()
    config = SimulationConfig(
        seed=1,
        duration=timedelta(minutes=args.minutes),
        rate=args.rate,
        fingerprinter=seed_fingerprinter(1),
    )
    began, cpu = time.perf_counter(), time.process_time()
    result = Simulation(config, JsonLinesOutput(io.BufferedWriter(sink)), http=args.http).run()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    baseline = _baseline(result.calls)
    records = result.events + result.logs
    mode = "loopback HTTP" if args.http else "in process"
    per_call = wall / result.calls * 1e6
    print(
        f"simulated {result.simulated} at peak {args.rate}/s, {mode}: {result.calls:,} calls, "
        f"{result.events:,} events, {result.logs:,} log lines, {sink.bytes / 1e6:.1f} MB"
    )
    print(
        f"simulation      {wall:7.2f} s wall ({cpu:.2f} s CPU)  {records / wall:9,.0f} "
        f"records/s  {result.calls / wall:7,.0f} calls/s  {per_call:6.0f} us/call"
    )
    print(
        f"PyJWT baseline  {baseline:7.2f} s wall  sign+verify one token per call"
        f"           {baseline / result.calls * 1e6:6.0f} us/call"
    )
    print(f"ratio: a simulated call costs {wall / baseline:.1f}x its token's sign+verify")


if __name__ == "__main__":
    main()

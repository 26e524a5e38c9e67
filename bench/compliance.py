"""Speed of the compliance tools on a synthetic audit database.

    .venv/bin/python bench/compliance.py [--events 500000] [--findings 50000]

Builds a DuckDB file (schema v1) with synthetic authz events and findings, generated in
SQL, then measures in the same run:

1. each named query's latency, against a baseline full scan of the same tables
   (``SELECT count(*)`` over events and findings): the ratio says how much the query
   costs beyond reading the data once;
2. export throughput (records/s) for OCSF and FHIR, against the baseline of only
   reading the records page by page (``iter_findings`` / ``iter_authz``): the ratio is
   the cost of building and serialising the resources.

Absolute numbers drift on a shared machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from dashboards.catalog import catalog, run_query
from dashboards.fhir import Observer, authz_audit_event, finding_audit_event, write_bundle
from dashboards.ocsf import Product, authentication, detection_finding, write_jsonl
from dashboards.records import EventScope, iter_authz, iter_findings
from dashboards.storage import open_store

MIGRATION = Path(__file__).parents[1] / "pipelines" / "store" / "migrations" / "0001_initial.sql"
NOW = datetime(2026, 12, 1, tzinfo=UTC)

EVENTS_SQL = """
INSERT INTO events
SELECT
    uuid() AS event_id,
    TIMESTAMPTZ '2026-09-01 00:00:00+00' + to_seconds(i * 7776000 // $n) AS time,
    'service', 'svc-' || (i % 20), 'pod-' || (i % 3),
    CASE WHEN i % 10 = 0 THEN 'token.rejected' ELSE 'token.validated' END,
    CASE WHEN i % 10 = 0 THEN 'failure' ELSE 'success' END,
    CASE WHEN i % 10 = 0
         THEN ['expired', 'bad_signature', 'unknown_kid', 'replayed_jti'][1 + i % 4] END,
    NULL, CASE WHEN i % 10 = 0 THEN 401 ELSE 200 END,
    'https://ehr-' || (i % 50) || '.example.org', 't-1', 'svc-' || (i % 20),
    'https://cds.example.com/cds-services/svc-' || (i % 20),
    'jti-' || i, 'k1', 'ES384', 'JWT', 0, NULL, 300, ['aud'], NULL,
    'k1:' || md5(i::VARCHAR), 'patient-view', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '10.0.' || (i % 250) || '.1', NULL, NULL, '{}', 'authz/0@' || i, now(), 'run-1'
FROM range($n) AS r(i)
"""

FINDINGS_SQL = """
INSERT INTO findings
SELECT
    md5('f' || i) AS finding_id,
    ['leaked_token', 'phi_in_logs', 'replay_burst', 'validation_anomaly', 'policy'][1 + i % 5],
    'rule-' || (i % 7), ['jwt', 'ssn', 'mrn', 'email', 'bearer_token'][1 + i % 5],
    ['info', 'low', 'medium', 'high', 'critical'][1 + i % 5], i % 5,
    TIMESTAMPTZ '2026-09-01 00:00:00+00' + to_seconds(i * 7776000 // $n),
    'synthetic finding', 'https://ehr-' || (i % 50) || '.example.org', 'svc-' || (i % 20),
    'k1:' || md5(i::VARCHAR), '$.message', 'svc.log:' || i, ['e-1', 'e-2'], '[REDACTED]',
    'G-social-security-numbers', NULL, NULL, NULL, 1 + i % 3, 0,
    '{"live": true, "alg": "ES384", "baseline": 1.5, "score": 4.2}',
    TIMESTAMPTZ '2026-09-01 00:01:00+00' + to_seconds(i * 7776000 // $n),
    TIMESTAMPTZ '2026-09-01 00:01:00+00' + to_seconds(i * 7776000 // $n), 'run-1'
FROM range($n) AS r(i)
"""

REVIEWS_SQL = """
INSERT INTO reviews
SELECT md5('r' || finding_id), finding_id, 'acknowledge', 'alice', NULL, NULL,
       first_stored_at + INTERVAL 2 DAY
FROM findings WHERE hash(finding_id) % 3 = 0
"""


def build(path: Path, events: int, findings: int) -> None:
    """Create the schema and fill it with synthetic rows generated in SQL."""
    con = duckdb.connect(str(path))
    try:
        con.execute(MIGRATION.read_text(encoding="utf-8"))
        con.execute(EVENTS_SQL, {"n": events})
        con.execute(FINDINGS_SQL, {"n": findings})
        con.execute(REVIEWS_SQL)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def best_of(repeat: int, action: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Build, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--findings", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.duckdb"
        started = time.perf_counter()
        build(path, args.events, args.findings)
        print(
            f"built {args.events} events, {args.findings} findings "
            f"in {time.perf_counter() - started:.1f}s"
        )
        required = {
            "iss": "https://ehr-7.example.org",
            "fingerprint": "k1:" + "0" * 32,
            "finding_id": hashlib.md5(b"f0").hexdigest(),  # noqa: S324 - as FINDINGS_SQL names them
        }
        with open_store(path) as store:
            baseline = best_of(
                args.repeat,
                lambda: store.query(
                    "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM findings)"
                ),
            )
            print(f"\nbaseline full count scan: {baseline * 1000:.1f} ms")
            print(f"{'query':<22} {'ms':>9} {'x baseline':>11}")
            for spec in catalog().values():
                params = {p.name: required[p.name] for p in spec.parameters if p.required}
                if "as_of" in {p.name for p in spec.parameters} or spec.name == "coverage_gaps":
                    params["until" if spec.name == "coverage_gaps" else "as_of"] = "2026-12-01"

                def query(name: str = spec.name, given: dict[str, object] = params) -> object:
                    return run_query(store, name, given, now=NOW)

                elapsed = best_of(args.repeat, query)
                print(f"{spec.name:<22} {elapsed * 1000:>9.1f} {elapsed / baseline:>11.1f}")

            failures = args.events // 10
            read_f = best_of(1, lambda: sum(1 for _ in iter_findings(store)))
            read_e = best_of(1, lambda: sum(1 for _ in iter_authz(store, EventScope.FAILURES)))
            product, observer = Product.installed(), Observer()

            def ocsf() -> None:
                out = io.StringIO()
                write_jsonl(out, (detection_finding(f, product) for f in iter_findings(store)))
                write_jsonl(
                    out,
                    (authentication(e, product) for e in iter_authz(store, EventScope.FAILURES)),
                )

            def fhir() -> None:
                out = io.StringIO()
                write_bundle(
                    out,
                    [
                        *(finding_audit_event(f, observer) for f in iter_findings(store)),
                        *(authz_audit_event(e) for e in iter_authz(store, EventScope.FAILURES)),
                    ],
                    generated_at=NOW,
                )

            t_ocsf = best_of(1, ocsf)
            t_fhir = best_of(1, fhir)
        records = args.findings + failures
        read = read_f + read_e
        print(f"\nexport of {args.findings} findings + {failures} refusals ({records} records)")
        print(f"{'step':<22} {'records/s':>11} {'x read':>8}")
        print(f"{'read only (baseline)':<22} {records / read:>11,.0f} {1.0:>8.2f}")
        print(f"{'ocsf json lines':<22} {records / t_ocsf:>11,.0f} {t_ocsf / read:>8.2f}")
        print(f"{'fhir bundle':<22} {records / t_fhir:>11,.0f} {t_fhir / read:>8.2f}")


if __name__ == "__main__":
    main()

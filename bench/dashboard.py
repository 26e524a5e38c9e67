"""Speed of the dashboard's pages and of the report on a synthetic audit database.

    .venv/bin/python bench/dashboard.py [--events 200000] [--findings 20000] [--repeat 3]

Builds the same synthetic DuckDB file as ``bench/compliance.py`` (schema v1, rows
generated in SQL), then measures in the same run, best of ``--repeat``:

1. the baseline: one full ``count(*)`` scan of events and findings through the store
   seam, opened and closed as a page does (the least a page reading the store costs);
2. each page served by the real application (Starlette, templates, SVG charts, the
   security middleware) through its ASGI test client, signed in: the ratio to the
   baseline is what drawing the page costs beyond reading the data once;
3. writing the HTML report for the whole period.

Absolute numbers drift on a shared machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from compliance import best_of, build
from starlette.testclient import TestClient

from dashboards.report import write_report
from dashboards.storage import open_store
from dashboards.web import DashboardConfig, create_app

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TOKEN = "bench-token-0123456789abcdef"


def main() -> None:
    """Build, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--findings", type=int, default=20_000)
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

        def scan() -> None:
            with open_store(path) as store:
                store.query("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM findings)")

        baseline = best_of(args.repeat, scan)
        print(f"\nbaseline: open the store, count(*) both tables, close: {baseline * 1000:.1f} ms")

        config = DashboardConfig(
            db_path=path, token=TOKEN, allowed_hosts=frozenset({"testserver"}), clock=lambda: NOW
        )
        finding = hashlib.md5(b"f7").hexdigest()  # noqa: S324 - as the generator names them
        pages = {
            "overview, 30 days": "/?period=30d",
            "overview, all (92 days)": "/?period=all",
            "findings, filtered": "/findings?period=all&detector=phi_in_logs&status=open",
            "findings, page 100": "/findings?period=all&page=100",
            "incident": f"/findings/{finding}",
            "client": "/client?iss=https%3A%2F%2Fehr-7.example.org&period=all",
            "service": "/service?id=svc-3&period=all",
            "clients list": "/clients?period=all",
        }
        with TestClient(create_app(config), follow_redirects=False) as client:
            client.post("/login", data={"actor": "bench", "token": TOKEN})
            framework = best_of(args.repeat, lambda: client.get("/healthz"))
            print(f"framework only (GET /healthz): {framework * 1000:.1f} ms\n")
            print(f"{'page':<26} {'ms':>9} {'x baseline':>11}")
            for name, url in pages.items():

                def get(target: str = url) -> None:
                    response = client.get(target)
                    if response.status_code != 200:
                        raise SystemExit(f"{target}: HTTP {response.status_code}")

                elapsed = best_of(args.repeat, get)
                print(f"{name:<26} {elapsed * 1000:>9.1f} {elapsed / baseline:>11.1f}")

        out = Path(folder) / "report.html"
        elapsed = best_of(1, lambda: write_report(path, out, until=NOW, now=NOW))
        size = out.stat().st_size
        print(
            f"\nreport, whole period: {elapsed * 1000:.0f} ms "
            f"({elapsed / baseline:.1f}x baseline), {size / 1024:.0f} KiB of HTML"
        )


if __name__ == "__main__":
    main()

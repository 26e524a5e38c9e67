"""The compliance report: one self-contained HTML file for a period, and optionally a PDF.

The report answers what an auditor asks of CDS Hooks integrations for a period: what
was found (summary, charts, incidents by kind), whether it was reviewed and in time
(HIPAA §164.308(a)(1)(ii)(D)), where monitoring had gaps, and how the monitoring ran
(the pipeline's runs, their configuration and fingerprint key ids; §164.312(b)).

Every number comes from a named query, listed in the report's method section so anyone
can re-run it with ``auditor query``. The HTML needs nothing from the network: styles
are inlined (and pinned by a hash in its Content-Security-Policy), charts are inline SVG,
there is no script. The PDF is that same file printed by headless Chromium.

``write_report`` is what ``auditor report`` and ``auditor demo`` call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Final

from auditor.errors import ConfigurationError, InputError
from dashboards import charts, insights
from dashboards.catalog import catalog
from dashboards.storage import StoreHandle, open_store
from dashboards.templating import environment

__all__ = [
    "CHROMIUM_FLAGS",
    "ReportData",
    "build_report",
    "find_chromium",
    "render_report",
    "write_pdf",
    "write_report",
]

CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-pdf-header-footer",
)
"""Headless printing without a display, a sandbox, or any traffic of Chromium's own."""

CHROMIUM_ENV: Final = "AUDITOR_CHROMIUM"
_CHROMIUM_NAMES: Final = ("chromium", "chromium-browser", "google-chrome", "chrome")

QUERIES_USED: Final = (
    "findings_by_day",
    "review_status",
    "findings",
    "leaked_tokens",
    "phi_exposures",
    "replay_incidents",
    "anomalies",
    "policy_violations",
    "validation_failures",
    "review_coverage",
    "unreviewed_findings",
    "coverage_gaps",
    "parties",
    "pipeline_runs",
    "store_extent",
)
"""The named queries behind the report's numbers, as its method section lists them."""

_SECRET_KEY: Final = re.compile(
    r"(?i)(secret|token|password|passwd|credential|private|key)(?!_?id)"
)
_INCIDENT_LIMIT: Final = 200


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the report shows, read from the store."""

    period: insights.Period
    generated_at: datetime
    db_name: str
    version: str
    sla_days: int
    summary: insights.Overview
    incidents: list[dict[str, object]]
    incidents_total: int
    leaked: list[dict[str, object]]
    phi: list[dict[str, object]]
    replay: list[dict[str, object]]
    anomalies: list[dict[str, object]]
    anomaly_rows: tuple[charts.BaselineRow, ...]
    policy: list[dict[str, object]]
    failures: list[dict[str, object]]
    runs: list[dict[str, object]]
    configs: list[tuple[tuple[str, ...], str]]
    key_ids: tuple[str, ...]
    queries: list[tuple[str, str]]
    statements: list[str]


def _int(value: object) -> int:
    return int(str(value)) if value is not None else 0


def _scrub_config(value: object) -> object:
    """A run's configuration with anything named like a secret removed (defence in depth)."""
    if isinstance(value, dict):
        return {
            str(k): "(removed)" if _SECRET_KEY.search(str(k)) else _scrub_config(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_config(v) for v in value]
    return value


def _config_text(config_json: object) -> str | None:
    if config_json is None:
        return None
    try:
        parsed = json.loads(str(config_json))
    except ValueError:
        return "(unreadable configuration)"
    return json.dumps(_scrub_config(parsed), indent=2, sort_keys=True, ensure_ascii=False)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


Rows = list[dict[str, object]]


def _statements(
    data: insights.Overview, *, leaked: Rows, phi: Rows, replay: Rows, anomalies: Rows, policy: Rows
) -> list[str]:
    """The summary in sentences, for a reader who reads nothing else."""
    t = data.totals
    severities = ", ".join(f"{s.total:,} {s.name}" for s in data.by_severity if s.total) or "none"
    tokens = sum(_int(r["tokens"]) for r in leaked)
    live = sum(_int(r["tokens"]) for r in leaked if r["live"] is True)
    identifiers = sum(_int(r["identifiers"]) for r in phi)
    phi_services = len({r["service_id"] for r in phi})
    reviewed_pct = 100.0 * t.reviewed / t.findings if t.findings else 100.0
    lines = [
        f"{_plural(t.findings, 'finding')} in the period ({severities}).",
        (
            f"{_plural(tokens, 'leaked credential')} seen in logs, {live:,} of them still valid "
            "when logged; credentials without an expiry must be treated as live until rotated."
        ),
        (
            f"{_plural(identifiers, 'distinct PHI identifier')} exposed in the logs of "
            f"{_plural(phi_services, 'service')}."
        ),
        (
            f"{_plural(sum(_int(r['incidents']) for r in replay), 'replay incident')}, "
            f"{_plural(len(anomalies), 'anomaly', 'anomalies')} in validation failures"
            f" and {_plural(sum(_int(r['findings']) for r in policy), 'policy violation')}."
        ),
        (
            f"{reviewed_pct:.1f}% of the period's findings have been reviewed; {t.open:,} still "
            f"await a decision and {t.overdue:,} were not reviewed within the deadline."
        ),
        (
            f"{_plural(t.failures, 'token validation failure')} among "
            f"{_plural(t.events, 'authz event')}."
        ),
    ]
    if t.gaps:
        names = ", ".join(str(g["name"]) for g in data.gaps[:5])
        lines.append(f"{_plural(t.gaps, 'client or service', 'clients or services')} went "
                     f"silent (coverage gaps): {names}.")  # fmt: skip
    else:
        lines.append("No coverage gaps: every party active before the period kept reporting.")
    return lines


def build_report(
    store: StoreHandle,
    period: insights.Period,
    *,
    now: datetime,
    db_name: str,
    sla_days: int = insights.DEFAULT_SLA_DAYS,
) -> ReportData:
    """Read everything the report shows for ``period`` (reads the store)."""
    p = period.params()
    summary = insights.overview(store, period, now=now, sla_days=sla_days)
    incidents = insights.rows(
        store, "findings", now, min_severity="high", limit=_INCIDENT_LIMIT, **p
    )
    leaked = insights.rows(store, "leaked_tokens", now, **p)
    phi = insights.rows(store, "phi_exposures", now, **p)
    replay = insights.rows(store, "replay_incidents", now, **p)
    anomalies = insights.rows(store, "anomalies", now, **p)
    policy = insights.rows(store, "policy_violations", now, **p)
    by_client_reason: dict[tuple[str, str], dict[str, object]] = {}
    for r in insights.rows(store, "validation_failures", now, **p):
        key = (str(r["client_iss"]), str(r["reason"]))
        entry = by_client_reason.setdefault(
            key, {"client_iss": key[0], "reason": key[1], "failures": 0, "services": set()}
        )
        entry["failures"] = _int(entry["failures"]) + _int(r["failures"])
        services = entry["services"]
        if isinstance(services, set):
            services.add(str(r["service_id"]))
    failures = sorted(
        (
            {**e, "services": len(e["services"]) if isinstance(e["services"], set) else 0}
            for e in by_client_reason.values()
        ),
        key=lambda e: (-_int(e["failures"]), str(e["client_iss"]), str(e["reason"])),
    )
    runs = [
        {**r, "config": _config_text(r.get("config_json"))}
        for r in insights.rows(store, "pipeline_runs", now, until=period.until)
    ]
    configs: dict[str, list[str]] = {}
    for run in runs:
        if run["config"]:
            configs.setdefault(str(run["config"]), []).append(str(run["run_id"]))
    specs = catalog()
    return ReportData(
        period=period,
        generated_at=now,
        db_name=db_name,
        version=_version(),
        sla_days=sla_days,
        summary=summary,
        incidents=incidents,
        incidents_total=_int(incidents[0]["total"]) if incidents else 0,
        leaked=leaked,
        phi=phi,
        replay=replay,
        anomalies=anomalies,
        anomaly_rows=tuple(
            charts.BaselineRow(
                name=str(a["finding_id"]),
                label=f"{str(a['client_iss']).removeprefix('https://')} · {a['kind']}",
                observed=float(_int(a["count"])),
                baseline=float(str(a["baseline"])) if a["baseline"] is not None else None,
            )
            for a in anomalies[:15]
        ),
        policy=policy,
        failures=failures,
        runs=runs,
        configs=[(tuple(ids), text) for text, ids in configs.items()],
        key_ids=tuple(
            sorted({str(r["fingerprint_key_id"]) for r in runs if r["fingerprint_key_id"]})
        ),
        queries=[(name, specs[name].description) for name in QUERIES_USED],
        statements=_statements(
            summary, leaked=leaked, phi=phi, replay=replay, anomalies=anomalies, policy=policy
        ),
    )


def _first_day(store: StoreHandle, now: datetime) -> datetime | None:
    """Midnight UTC of the day of the store's first event or finding (``None``: empty)."""
    extent = insights.rows(store, "store_extent", now)[0]
    firsts = [
        moment
        for moment in (extent["first_event"], extent["first_finding"])
        if isinstance(moment, datetime)
    ]
    if not firsts:
        return None
    first = min(firsts).astimezone(UTC)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def _version() -> str:
    try:
        return metadata.version("cds-hooks-auditor")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "unknown"


def _stylesheet() -> str:
    folder = resources.files("dashboards") / "static"
    return "\n".join(
        (folder / name).read_text(encoding="utf-8") for name in ("dashboard.css", "report.css")
    )


def render_report(data: ReportData) -> str:
    """The report as one HTML document with everything inline."""
    css = _stylesheet()
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()
    policy = f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; base-uri 'none'; form-action 'none'"  # noqa: E501 - one header value
    return (
        environment()
        .get_template("report.html")
        .render(data=data, css=css, csp=policy, charts=charts)
    )


def write_report(
    db_path: str | Path,
    out_path: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    pdf_path: str | Path | None = None,
    now: datetime | None = None,
    sla_days: int = insights.DEFAULT_SLA_DAYS,
) -> Path:
    """Write the HTML compliance report for ``[since, until)`` (and a PDF of it).

    Args:
        db_path: The audit database.
        out_path: Where the HTML goes (written atomically).
        since: Start of the period; ``None`` means from the first record.
        until: End of the period, exclusive; ``None`` means now.
        pdf_path: Also print the report to this PDF through headless Chromium.
        now: The report's clock (defaults to the wall clock).
        sla_days: The review deadline the report judges against.

    Returns:
        The path of the HTML report.

    Raises:
        InputError: The database cannot be read or the output cannot be written.
        ConfigurationError: A PDF was asked for and no Chromium can be found.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    end = (until or moment).astimezone(UTC)
    with open_store(db_path) as store:
        start = since.astimezone(UTC) if since else _first_day(store, moment)
        if start is not None and end <= start:
            raise InputError("the report's period must end after it starts")
        data = build_report(
            store,
            insights.Period(start, end),
            now=moment,
            db_name=Path(db_path).name,
            sla_days=sla_days,
        )
    target = Path(out_path)
    _write_atomically(target, render_report(data))
    if pdf_path is not None:
        write_pdf(target, Path(pdf_path))
    return target


def _write_atomically(target: Path, text: str) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise InputError(f"cannot write {target}: {exc.strerror}") from None


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium to print with: ``explicit``, ``$AUDITOR_CHROMIUM``, or one on PATH.

    Raises:
        ConfigurationError: None is found.
    """
    for candidate in (explicit, os.environ.get(CHROMIUM_ENV)):
        if candidate:
            if shutil.which(candidate) is None:
                raise ConfigurationError(f"no Chromium at {candidate}")
            return candidate
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigurationError(
        "a PDF needs Chromium: install it (Debian: apt-get install chromium) or set "
        f"${CHROMIUM_ENV}"
    )


def write_pdf(
    html_path: Path, pdf_path: Path, *, chromium: str | None = None, timeout: float = 120.0
) -> Path:
    """Print an HTML file to PDF with headless Chromium (runs a subprocess).

    Chromium runs with a fresh profile and with its background networking off; the
    report itself loads nothing, so printing needs no network.

    Raises:
        ConfigurationError: No Chromium is found.
        InputError: Chromium fails or produces no PDF.
    """
    browser = find_chromium(chromium)
    target = pdf_path.resolve()
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="auditor-chromium-") as profile:
        try:
            done = subprocess.run(  # noqa: S603 - fixed flags, our own file
                [
                    browser,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--print-to-pdf={target}",
                    html_path.resolve().as_uri(),
                ],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(f"Chromium could not print the report: {exc}") from None
    if done.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
        raise InputError(f"Chromium could not print the report (exit status {done.returncode})")
    return target

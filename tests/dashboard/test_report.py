"""The compliance report: self-contained HTML that opens offline, and its PDF."""

from __future__ import annotations

import base64
import hashlib
import html as html_module
import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from browser import browser_context, chromium_path
from dashboard_scenario import CANARY_JWT, CANARY_SSN, END, NOW, START, Scenario

from auditor.cli.main import main
from dashboards.report import write_pdf, write_report


@pytest.fixture(scope="module")
def report(
    _pristine_scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    path = write_report(_pristine_scenario.path, out, since=START, until=END, now=NOW)
    return path, path.read_text(encoding="utf-8")


def count(path: Path, text: str, *params: object) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return int(con.execute(text, list(params)).fetchall()[0][0])
    finally:
        con.close()


def test_the_report_loads_nothing_from_anywhere(report: tuple[Path, str]) -> None:
    _, html = report
    assert "<script" not in html
    assert "<link" not in html
    assert "@import" not in html
    assert "url(" not in html
    assert re.findall(r"\b(?:src|href|action|poster|srcset)\s*=", html) == []
    # The only URL in an attribute is the SVG namespace, which is a name, not a load.
    attributes = re.findall(r'\b[\w:-]+="(https?://[^"]*)"', html)
    assert set(attributes) == {"http://www.w3.org/2000/svg"}


def test_the_inline_styles_are_pinned_by_the_content_security_policy(
    report: tuple[Path, str],
) -> None:
    _, html = report
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert style is not None
    assert policy is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    content = html_module.unescape(policy.group(1))
    assert f"style-src 'sha256-{digest}'" in content
    assert "default-src 'none'" in content


def test_the_summary_counts_what_sql_counts(
    report: tuple[Path, str], shared_scenario: Scenario
) -> None:
    _, html = report
    findings = count(
        shared_scenario.path,
        "SELECT count(*) FROM findings WHERE observed_at >= ? AND observed_at < ?",
        START, END,
    )  # fmt: skip
    failures = count(
        shared_scenario.path,
        "SELECT count(*) FROM events WHERE outcome = 'failure' AND time >= ? AND time < ?",
        START, END,
    )  # fmt: skip
    kpi = re.search(r'data-kpi="findings">.*?k-value">([\d,]+)<', html, re.DOTALL)
    assert kpi is not None
    assert int(kpi.group(1).replace(",", "")) == findings
    assert f'data-chart="findings-by-severity" data-total="{findings}"' in html
    assert f'data-chart="failures-by-reason" data-total="{failures}"' in html
    assert f"{findings} findings in the period" in html


def test_the_report_has_every_section_an_auditor_asks_for(report: tuple[Path, str]) -> None:
    _, html = report
    for section in ("1. Summary", "2. Incidents", "3. Review of activity records",
                    "4. Coverage gaps", "5. Method and configuration"):  # fmt: skip
        assert section in html
    for table in ("incidents", "leaked", "phi", "replay", "policy", "anomalies", "coverage",
                  "overdue", "runs", "config", "queries"):  # fmt: skip
        assert f'data-testid="{table}"' in html
    assert "29 Oct 2026 \N{EN DASH} 28 Nov 2026 UTC" in html


def test_the_method_names_the_runs_key_ids_and_queries(
    report: tuple[Path, str], shared_scenario: Scenario
) -> None:
    _, html = report
    assert shared_scenario.fingerprinter.key_id in html
    assert "run-2026-11-a" in html
    assert "auditor query NAME --db audit.duckdb --since 2026-10-29T00:00:00Z" in html
    assert '<td class="mono">review_coverage</td>' in html


def test_secrets_in_the_recorded_configuration_are_removed(report: tuple[Path, str]) -> None:
    _, html = report
    assert "hunter2-do-not-print" not in html
    assert "&#34;sasl_password&#34;: &#34;(removed)&#34;" in html
    assert "fingerprint_key_file" in html  # the name of the key file is kept as "(removed)"
    assert "/etc/auditor/fingerprint.key" not in html


def test_the_report_carries_no_planted_canary(report: tuple[Path, str]) -> None:
    _, html = report
    assert CANARY_JWT not in html
    assert CANARY_SSN not in html


def test_without_since_the_report_starts_at_the_first_record(
    shared_scenario: Scenario, tmp_path: Path
) -> None:
    html = write_report(shared_scenario.path, tmp_path / "r.html", now=NOW).read_text()
    assert "29 Oct 2026 \N{EN DASH} 28 Nov 2026 09:00 UTC" in html


def test_an_empty_period_still_makes_a_report(shared_scenario: Scenario, tmp_path: Path) -> None:
    since = datetime(2025, 1, 1, tzinfo=UTC)
    html = write_report(
        shared_scenario.path, tmp_path / "r.html", since=since, until=since.replace(month=2),
        now=NOW,
    ).read_text()  # fmt: skip
    assert "0 findings in the period" in html
    assert "No high or critical findings in this period." in html


def test_the_command_writes_the_report(
    shared_scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nov.html"
    code = main(["report", "--db", str(shared_scenario.path), "--since", "2026-11-01",
                 "--until", "2026-12-01", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert "01 Nov 2026 \N{EN DASH} 01 Dec 2026 UTC" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "last tuesday"], "--since must be an ISO 8601 date"),
        (["--since", "2026-11-20", "--until", "2026-11-01"], "must end after it starts"),
        (["--pdf", "x.pdf", "--chromium", "/nonexistent/chromium"], "no Chromium at"),
    ],
)
def test_the_command_explains_bad_options(
    shared_scenario: Scenario,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--db", str(shared_scenario.path), "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.browser
def test_the_report_opens_offline_in_chromium(
    report: tuple[Path, str], tmp_path: Path, artifacts: Path
) -> None:
    path, _ = report
    with browser_context(tmp_path / "profile", width=1200) as context:
        requested: list[str] = []
        context.route("**/*", lambda route: (requested.append(route.request.url),
                                             route.continue_())[1])  # fmt: skip
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(path.as_uri())
        page.screenshot(path=str(artifacts / "report.png"), full_page=True)
        assert page.locator("h1").inner_text() == "Audit of CDS Hooks integrations"
        assert page.locator('svg[data-chart="findings-by-severity"] rect[data-value]').count() > 0
        # The styles applied (a blocked stylesheet would leave the default serif font).
        font = page.evaluate("getComputedStyle(document.body).fontFamily")
        assert "Liberation Sans" in font
    assert requested == [path.as_uri()]  # the page itself, nothing else
    assert errors == []


@pytest.mark.browser
def test_the_pdf_is_printed_by_chromium(
    report: tuple[Path, str], tmp_path: Path, artifacts: Path
) -> None:
    from pypdf import PdfReader

    path, _ = report
    pdf = write_pdf(path, tmp_path / "report.pdf", chromium=chromium_path())
    (artifacts / "report.pdf").write_bytes(pdf.read_bytes())
    reader = PdfReader(pdf)
    assert len(reader.pages) >= 3
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Audit of CDS Hooks integrations" in text
    assert "Method and configuration" in text
    assert CANARY_JWT not in text

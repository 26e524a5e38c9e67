"""End to end in real headless Chromium: sign in, read the overview, open an incident,
acknowledge it, and see the review in the page and in the database.

Counts on the pages are compared with counts taken in SQL. Screenshots go to
``test-artifacts/`` for people to look at. Console errors fail the test: a violation of
the Content-Security-Policy (an inline style or script slipping in) shows up there.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import duckdb
import pytest
from browser import browser_context
from dashboard_scenario import END, LAKEVIEW, START, Scenario
from dashboard_server import RunningDashboard, running_dashboard

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.browser

TOKEN = "browser-test-token-4b9e2c"
OPEN = (
    "coalesce((SELECT arg_max(action, reviewed_at) FROM reviews AS r WHERE r.finding_id = "
    "f.finding_id AND action <> 'comment'), 'reopen') = 'reopen'"
)
"""Open: no decision recorded, or the last one reopened the finding."""
MONTH = "period=custom&since=2026-10-29&until=2026-11-27"  # inclusive end: [START, END)


def sql(path: Path, text: str, *params: object) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(text, list(params)).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def scenario(_pristine_scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """One copy of the scenario for this module: its tests share a server and a browser."""
    copy = tmp_path_factory.mktemp("browser") / "audit.duckdb"
    shutil.copyfile(_pristine_scenario.path, copy)
    return dataclasses.replace(_pristine_scenario, path=copy)


@pytest.fixture(scope="module")
def server(scenario: Scenario) -> Iterator[RunningDashboard]:
    with running_dashboard(scenario.path, token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with browser_context(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


@pytest.fixture
def page(server: RunningDashboard, context: BrowserContext) -> Iterator[Page]:
    context.clear_cookies()
    page = context.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "request",
        lambda r: None if r.url.startswith(server.base_url) else foreign.append(r.url),
    )
    yield page
    page.close()
    assert errors == []  # CSP violations and failed loads are console errors
    assert foreign == []  # no CDN, no fonts, nothing but the dashboard itself


def sign_in(page: Page, base: str, actor: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=actor]", actor)
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def drawn(page: Page, chart: str) -> dict[str, int]:
    """What a chart draws, summed per series, read from the rendered SVG."""
    totals: dict[str, int] = {}
    for rect in page.locator(f'svg[data-chart="{chart}"] [data-series]').all():
        name = str(rect.get_attribute("data-series"))
        totals[name] = totals.get(name, 0) + int(float(str(rect.get_attribute("data-value"))))
    return totals


def legend(page: Page, chart: str) -> dict[str, int]:
    """The totals a chart's legend shows, as text a person reads."""
    return {
        str(item.get_attribute("data-series")): int(
            item.locator(".legend-total").inner_text().replace(",", "")
        )
        for item in page.locator(f'ul[data-legend-for="{chart}"] li').all()
    }


def test_overview_shows_the_counts_sql_gives(
    page: Page, server: RunningDashboard, scenario: Scenario, artifacts: Path
) -> None:
    page.goto(f"{server.base_url}/login")
    page.screenshot(path=str(artifacts / "dashboard-login.png"))
    sign_in(page, server.base_url, "dana.officer")
    page.goto(f"{server.base_url}/?{MONTH}")
    page.screenshot(path=str(artifacts / "dashboard-overview.png"), full_page=True)

    window = "observed_at >= ? AND observed_at < ?"
    by_severity = dict(
        sql(
            scenario.path,
            f"SELECT severity, count(*) FROM findings WHERE {window} GROUP BY 1",  # noqa: S608
            START,
            END,
        )
    )
    by_detector = dict(
        sql(
            scenario.path,
            f"SELECT detector, count(*) FROM findings WHERE {window} GROUP BY 1",  # noqa: S608
            START,
            END,
        )
    )
    [(undecided,)] = sql(
        scenario.path,
        f"SELECT count(*) FROM findings AS f WHERE {window} AND {OPEN}",  # noqa: S608
        START, END,
    )  # fmt: skip
    failures = dict(
        sql(
            scenario.path,
            "SELECT reason, count(*) FROM events WHERE outcome = 'failure' "
            "AND time >= ? AND time < ? GROUP BY 1",
            START,
            END,
        )
    )
    total = sum(by_severity.values())

    kpi = page.locator('[data-kpi="findings"] .k-value').inner_text()
    assert int(kpi.replace(",", "")) == total
    assert int(page.locator('[data-kpi="open"] .k-value').inner_text()) == undecided
    assert drawn(page, "findings-by-severity") == by_severity
    assert {k: v for k, v in legend(page, "findings-by-severity").items() if v} == by_severity
    assert drawn(page, "findings-by-detector") == by_detector
    assert legend(page, "review-status")["open"] == undecided
    assert drawn(page, "failures-by-reason") == failures
    svg_total = page.locator('svg[data-chart="findings-by-severity"]').get_attribute("data-total")
    assert int(str(svg_total)) == total


def test_findings_table_filters_like_sql(
    page: Page, server: RunningDashboard, scenario: Scenario, artifacts: Path
) -> None:
    sign_in(page, server.base_url, "dana.officer")
    page.goto(f"{server.base_url}/findings")
    page.select_option("select[name=period]", "all")
    page.select_option("select[name=detector]", "phi_in_logs")
    page.select_option("select[name=status]", "open")
    page.click("form[data-testid=filters] button[type=submit]")
    page.wait_for_load_state()
    [(expected,)] = sql(
        scenario.path,
        f"SELECT count(*) FROM findings AS f WHERE detector = 'phi_in_logs' AND {OPEN}",  # noqa: S608
    )
    assert int(page.get_by_test_id("findings-total").inner_text()) == expected
    rows = page.locator("table[data-testid=findings-table] tbody tr")
    assert rows.count() == expected
    assert set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"phi in logs"}
    assert "detector=phi_in_logs" in page.url
    page.screenshot(path=str(artifacts / "dashboard-findings.png"), full_page=True)


def test_open_an_incident_and_acknowledge_it(
    page: Page, server: RunningDashboard, scenario: Scenario, artifacts: Path
) -> None:
    attack = scenario.findings["attack"]
    sign_in(page, server.base_url, "dana.officer")
    page.goto(f"{server.base_url}/findings?period=all&detector=validation_anomaly")
    page.get_by_role("link", name=attack.title).click()
    page.wait_for_url(f"{server.base_url}/findings/{attack.finding_id}")
    assert page.get_by_test_id("incident-title").inner_text() == attack.title
    assert page.get_by_test_id("no-review").is_visible()
    linked = page.locator('ol[data-testid=timeline] li[data-record="event"]')
    counts = [int(str(li.get_attribute("data-count"))) for li in linked.all()]
    assert sum(counts) == len(attack.event_ids)  # linked by the finding's event ids
    assert counts == [20]  # alike events read as one line
    page.screenshot(path=str(artifacts / "dashboard-incident.png"), full_page=True)

    page.fill("textarea[name=note]", "Blocked 203.0.113.77 at the gateway; asked lakeview why.")
    page.click('button[data-action="acknowledge"]')
    page.wait_for_url(re.compile(rf".*/findings/{attack.finding_id}(#review)?$"))
    assert page.get_by_test_id("flash").inner_text() == ("Recorded: acknowledge by dana.officer.")
    assert page.locator(".current-status [data-status]").inner_text() == "acknowledged"
    history = page.locator("table[data-testid=review-history] tbody tr")
    assert history.count() == 1
    assert "dana.officer" in history.first.inner_text()
    assert not page.locator('button[data-action="acknowledge"]').count()  # done once
    page.screenshot(path=str(artifacts / "dashboard-incident-acknowledged.png"), full_page=True)

    assert sql(
        scenario.path,
        "SELECT action, actor, note FROM reviews WHERE finding_id = ?",
        attack.finding_id,
    ) == [
        ("acknowledge", "dana.officer", "Blocked 203.0.113.77 at the gateway; asked lakeview why.")
    ]


def test_client_and_service_pages(
    page: Page, server: RunningDashboard, scenario: Scenario, artifacts: Path
) -> None:
    sign_in(page, server.base_url, "dana.officer")
    page.goto(f"{server.base_url}/clients?period=all")
    page.get_by_role("link", name=LAKEVIEW).first.click()
    page.wait_for_load_state()
    assert page.get_by_test_id("party-name").inner_text() == LAKEVIEW
    [(failures,)] = sql(
        scenario.path,
        "SELECT count(*) FROM events WHERE client_iss = ? AND outcome = 'failure' "
        "AND time >= now() - INTERVAL 30 DAY",
        LAKEVIEW,
    )
    shown = int(page.locator('[data-kpi="failures"] .k-value').inner_text().replace(",", ""))
    assert shown == failures
    page.goto(f"{server.base_url}/client?iss={quote(LAKEVIEW)}&period=all")
    baseline = page.locator('svg[data-chart="anomalies"] [data-baseline]').first
    assert baseline.get_attribute("data-baseline") == "0.4"
    page.screenshot(path=str(artifacts / "dashboard-client.png"), full_page=True)
    page.goto(f"{server.base_url}/service?id=patient-greeter&period=all")
    assert page.locator("table[data-testid=replay] tbody tr").count() == 1
    page.screenshot(path=str(artifacts / "dashboard-service.png"), full_page=True)

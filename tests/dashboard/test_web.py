"""The dashboard over HTTP (Starlette's test client): access, hardening, pages, reviews."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
from dashboard_scenario import CANARY_JWT, CANARY_SSN, LAKEVIEW, NOW, Scenario
from starlette.testclient import TestClient

from auditor.errors import ConfigurationError
from dashboards.web import DashboardConfig, create_app
from dashboards.web.security import CONTENT_SECURITY_POLICY, SessionStore, TokenGuard

TOKEN = "scenario-token-5f0e9a7c21"
HOSTS = frozenset({"testserver", "127.0.0.1:8765"})


def make_client(path: Path) -> TestClient:
    config = DashboardConfig(db_path=path, token=TOKEN, allowed_hosts=HOSTS, clock=lambda: NOW)
    return TestClient(create_app(config), follow_redirects=False)


@pytest.fixture
def client(scenario: Scenario) -> Iterator[TestClient]:
    with make_client(scenario.path) as c:
        yield c


@pytest.fixture
def reader(shared_scenario: Scenario) -> Iterator[TestClient]:
    """A signed-in client on the shared database (tests that only read)."""
    with make_client(shared_scenario.path) as c:
        sign_in(c)
        yield c


def sign_in(client: TestClient, actor: str = "alice") -> None:
    response = client.post("/login", data={"actor": actor, "token": TOKEN})
    assert response.status_code == 303


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def reviews_of(path: Path, finding_id: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT action, actor, note FROM reviews WHERE finding_id = ? ORDER BY reviewed_at",
            [finding_id],
        ).fetchall()
    finally:
        con.close()


# -- signing in -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/findings", "/clients", "/findings/" + "a" * 32])
def test_pages_send_a_stranger_to_the_login(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert (response.status_code, response.headers["location"]) == (303, "/login")


def test_a_post_without_a_session_is_refused(client: TestClient, scenario: Scenario) -> None:
    response = client.post(f"/findings/{scenario.fid('leak')}/review", data={"action": "resolve"})
    assert response.status_code == 403


def test_the_token_link_becomes_a_strict_httponly_cookie_and_leaves_the_url(
    client: TestClient,
) -> None:
    response = client.get(f"/login?token={TOKEN}")
    assert (response.status_code, response.headers["location"]) == (303, "/")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("auditor_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert TOKEN not in cookie
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        TOKEN[:-1],  # one character short
        TOKEN + "x",  # one too many
        TOKEN.upper(),  # case matters
        "",
    ],
)
def test_a_wrong_token_is_refused(client: TestClient, token: str) -> None:
    by_link = client.get(f"/login?token={quote(token)}")
    assert by_link.headers["location"] == "/login?failed=1"
    by_form = client.post("/login", data={"actor": "mallory", "token": token})
    assert by_form.status_code == 401
    assert "That token is not valid" in by_form.text
    assert "set-cookie" not in by_form.headers
    assert client.get("/").status_code == 303


def test_signing_in_with_the_form_remembers_the_name(client: TestClient) -> None:
    sign_in(client, "dana.officer")
    assert 'data-testid="actor">dana.officer<' in client.get("/").text


def test_signing_out_ends_the_session(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/")
    response = client.post("/logout", data={"csrf": csrf_of(page.text)})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    client.cookies.clear()
    client.cookies.set("auditor_session", page.request.headers["cookie"].split("=", 1)[1])
    assert client.get("/").status_code == 303  # the old cookie no longer works


def test_a_cross_site_sign_in_is_refused(client: TestClient) -> None:
    response = client.post(
        "/login", data={"actor": "x", "token": TOKEN}, headers={"sec-fetch-site": "cross-site"}
    )
    assert response.status_code == 403


# -- hardening ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/findings", "/clients", "/services", f"/client?iss={quote(LAKEVIEW)}", "/nowhere"],
)
def test_every_page_carries_the_security_headers(reader: TestClient, path: str) -> None:
    headers = reader.get(path).headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY  # default-src 'none': no script at all
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert "server" not in headers


def test_the_login_page_is_hardened_too(client: TestClient) -> None:
    headers = client.get("/login").headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["cache-control"] == "no-store"


def test_static_assets_may_be_cached_and_are_hardened(client: TestClient) -> None:
    response = client.get("/static/dashboard.css")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_an_unknown_host_is_refused(client: TestClient) -> None:
    # A DNS-rebinding page reaches the loopback address under its own name.
    assert client.get("/login", headers={"host": "attacker.example"}).status_code == 421


def test_the_access_log_never_holds_the_token_or_a_query_string(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dashboards.access"):
        client.get(f"/login?token={TOKEN}")
        client.get("/findings?client=https%3A%2F%2Fehr.example&severity=high")
    lines = [r.getMessage() for r in caplog.records if r.name == "dashboards.access"]
    assert len(lines) == 2
    assert '"GET /login" 303' in lines[0]
    assert '"GET /findings" 200' in lines[1]
    assert all(TOKEN not in line and "?" not in line for line in lines)


def test_no_page_links_to_a_fingerprint(reader: TestClient, shared_scenario: Scenario) -> None:
    pages = [
        reader.get(path).text
        for path in (
            "/?period=all",
            "/findings?period=all",
            f"/findings/{shared_scenario.fid('leak')}",
            f"/findings/{shared_scenario.fid('replay')}",
            f"/client?iss={quote(LAKEVIEW)}&period=all",
        )
    ]
    hrefs = [h for page in pages for h in re.findall(r'(?:href|action)="([^"]*)"', page)]
    assert hrefs
    key_id = shared_scenario.fingerprinter.key_id
    assert not [h for h in hrefs if key_id in h or re.search(r"[0-9a-f]{32}%3A|:[0-9a-f]{32}", h)]
    # ... though the incident page does show it, as text.
    assert shared_scenario.leak_fingerprint in pages[2]


def test_no_page_shows_what_redaction_missed(reader: TestClient, shared_scenario: Scenario) -> None:
    for path in (
        "/?period=all",
        "/findings?period=all",
        f"/findings/{shared_scenario.fid('secret')}",
        f"/findings/{shared_scenario.fid('attack')}",
        f"/client?iss={quote(LAKEVIEW)}&period=all",
    ):
        page = reader.get(path).text
        assert CANARY_JWT not in page
        assert CANARY_SSN not in page  # in every failed event's detail and attributes


def test_filters_are_bound_not_pasted(reader: TestClient) -> None:
    response = reader.get("/findings", params={"client": "' OR 1=1 --", "period": "all"})
    assert response.status_code == 200
    assert 'data-testid="findings-total">0<' in response.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"severity": "urgent"}, "parameter &#39;severity&#39;"),
        ({"period": "fortnight"}, "the period is one of"),
        ({"period": "custom", "since": "yesterday-ish"}, "ISO 8601 dates"),
        ({"period": "custom", "since": "2026-11-20", "until": "2026-11-01"}, "end after it starts"),
    ],
)
def test_bad_filters_get_a_clear_400(
    reader: TestClient, query: dict[str, str], message: str
) -> None:
    response = reader.get("/findings", params=query)
    assert response.status_code == 400
    assert message in response.text


def test_the_findings_total_matches_sql(reader: TestClient, shared_scenario: Scenario) -> None:
    response = reader.get(
        "/findings", params={"period": "all", "detector": "phi_in_logs", "status": "open"}
    )
    con = duckdb.connect(str(shared_scenario.path), read_only=True)
    try:
        [(expected,)] = con.execute(
            "SELECT count(*) FROM findings WHERE detector = 'phi_in_logs' AND finding_id NOT IN "
            "(SELECT finding_id FROM reviews WHERE action <> 'comment')"
        ).fetchall()
    finally:
        con.close()
    assert f'data-testid="findings-total">{expected}<' in response.text


def test_an_unknown_finding_is_404(reader: TestClient) -> None:
    assert reader.get("/findings/" + "0" * 32).status_code == 404
    assert reader.get("/findings/..%2f..%2fetc").status_code == 404


# -- review actions -------------------------------------------------------------------


def test_a_review_is_recorded_with_the_signed_in_actor(
    client: TestClient, scenario: Scenario
) -> None:
    sign_in(client, "dana.officer")
    fid = scenario.fid("attack")
    page = client.get(f"/findings/{fid}")
    response = client.post(
        f"/findings/{fid}/review", data={"csrf": csrf_of(page.text), "action": "acknowledge"}
    )
    assert (response.status_code, response.headers["location"]) == (303, f"/findings/{fid}#review")
    after = client.get(f"/findings/{fid}").text
    assert "Recorded: acknowledge by dana.officer." in after
    assert 'data-review-action="acknowledge"' in after
    assert reviews_of(scenario.path, fid) == [("acknowledge", "dana.officer", None)]


def test_a_review_without_the_csrf_token_is_refused(client: TestClient, scenario: Scenario) -> None:
    sign_in(client)
    fid = scenario.fid("attack")
    for form in ({"action": "acknowledge"}, {"action": "acknowledge", "csrf": "forged"}):
        assert client.post(f"/findings/{fid}/review", data=form).status_code == 403
    assert reviews_of(scenario.path, fid) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://attacker.example"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # a sibling subdomain is not this server
    ],
)
def test_a_review_from_another_site_is_refused(
    client: TestClient, scenario: Scenario, headers: dict[str, str]
) -> None:
    sign_in(client)
    fid = scenario.fid("attack")
    csrf = csrf_of(client.get(f"/findings/{fid}").text)
    response = client.post(
        f"/findings/{fid}/review", data={"csrf": csrf, "action": "acknowledge"}, headers=headers
    )
    assert response.status_code == 403
    assert reviews_of(scenario.path, fid) == []


def test_a_same_origin_post_with_a_null_origin_is_accepted(
    client: TestClient, scenario: Scenario
) -> None:
    # Under Referrer-Policy: no-referrer, Chromium sends "Origin: null" on its own forms.
    sign_in(client)
    fid = scenario.fid("attack")
    csrf = csrf_of(client.get(f"/findings/{fid}").text)
    response = client.post(
        f"/findings/{fid}/review",
        data={"csrf": csrf, "action": "acknowledge"},
        headers={"origin": "null", "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 303
    assert len(reviews_of(scenario.path, fid)) == 1


def test_review_actions_are_post_only(client: TestClient, scenario: Scenario) -> None:
    sign_in(client)
    response = client.get(f"/findings/{scenario.fid('attack')}/review?action=resolve")
    assert response.status_code == 405
    assert reviews_of(scenario.path, scenario.fid("attack")) == []


def test_a_refused_transition_is_explained_and_records_nothing(
    client: TestClient, scenario: Scenario
) -> None:
    sign_in(client)
    fid = scenario.fid("drift")  # resolved
    csrf = csrf_of(client.get(f"/findings/{fid}").text)
    client.post(f"/findings/{fid}/review", data={"csrf": csrf, "action": "acknowledge"})
    page = client.get(f"/findings/{fid}").text
    assert "is resolved: &#39;acknowledge&#39; is not allowed" in page
    assert len(reviews_of(scenario.path, fid)) == 2


def test_a_false_positive_needs_a_note(client: TestClient, scenario: Scenario) -> None:
    sign_in(client)
    fid = scenario.fid("alg-none")
    csrf = csrf_of(client.get(f"/findings/{fid}").text)
    client.post(f"/findings/{fid}/review", data={"csrf": csrf, "action": "false_positive"})
    assert "needs a note saying why" in client.get(f"/findings/{fid}").text
    client.post(
        f"/findings/{fid}/review",
        data={"csrf": csrf, "action": "false_positive", "note": "Test client in staging"},
    )
    assert reviews_of(scenario.path, fid) == [("false_positive", "alice", "Test client in staging")]


def test_assigning_records_the_assignee(client: TestClient, scenario: Scenario) -> None:
    sign_in(client)
    fid = scenario.fid("alg-none")
    csrf = csrf_of(client.get(f"/findings/{fid}").text)
    client.post(
        f"/findings/{fid}/review", data={"csrf": csrf, "action": "assign", "assignee": "bob"}
    )
    assert "assigned to <b>bob</b>" in client.get(f"/findings/{fid}").text


def test_a_session_without_a_name_asks_for_one_before_a_review(
    client: TestClient, scenario: Scenario
) -> None:
    client.get(f"/login?token={TOKEN}")
    fid = scenario.fid("attack")
    page = client.get(f"/findings/{fid}").text
    assert 'name="actor"' in page
    client.post(f"/findings/{fid}/review", data={"csrf": csrf_of(page), "action": "acknowledge"})
    assert "a review is recorded with your name" in client.get(f"/findings/{fid}").text
    client.post(
        f"/findings/{fid}/review",
        data={"csrf": csrf_of(page), "action": "comment", "note": "on it", "actor": "lee"},
    )
    assert reviews_of(scenario.path, fid) == [("comment", "lee", "on it")]
    assert 'data-testid="actor">lee<' in client.get("/").text  # remembered


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (
            "action=resolve&csrf=x" + "&note=" + "n" * 20000,
            "application/x-www-form-urlencoded",
            413,
        ),
        ('{"action": "resolve"}', "application/json", 415),
        ("action=resolve&action=comment", "application/x-www-form-urlencoded", 400),
    ],
)
def test_malformed_review_forms_are_refused(
    client: TestClient, scenario: Scenario, body: str, content_type: str, status: int
) -> None:
    sign_in(client)
    response = client.post(
        f"/findings/{scenario.fid('attack')}/review",
        content=body,
        headers={"content-type": content_type},
    )
    assert response.status_code == status


# -- sessions and tokens --------------------------------------------------------------


def test_a_short_configured_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 characters"):
        TokenGuard("short")


def test_the_token_guard_does_not_show_the_token() -> None:
    assert TOKEN not in repr(TokenGuard(TOKEN))
    assert TOKEN not in repr(DashboardConfig(db_path=Path("x"), token=TOKEN, allowed_hosts=None))


def test_sessions_end_when_idle_and_when_old() -> None:
    now = [0.0]
    store = SessionStore(idle_seconds=60, max_seconds=300, clock=lambda: now[0])
    idle, busy = store.create("a"), store.create("b")
    for _ in range(5):
        now[0] += 50
        assert store.get(busy.sid) is busy
    assert store.get(idle.sid) is None  # unused for 250 s
    now[0] += 60
    assert store.get(busy.sid) is None  # 310 s old, however busy


def test_each_session_has_its_own_unguessable_ids() -> None:
    store = SessionStore()
    a, b = store.create(), store.create()
    assert len({a.sid, b.sid, a.csrf, b.csrf}) == 4
    assert min(len(a.sid), len(a.csrf)) >= 40
    store.drop(a.sid)
    assert store.get(a.sid) is None


def test_review_times_come_from_the_clock(client: TestClient, scenario: Scenario) -> None:
    sign_in(client)
    fid = scenario.fid("attack")
    csrf = csrf_of(client.get(f"/findings/{fid}").text)
    client.post(f"/findings/{fid}/review", data={"csrf": csrf, "action": "acknowledge"})
    con = duckdb.connect(str(scenario.path), read_only=True)
    try:
        [(when,)] = con.execute(
            "SELECT reviewed_at FROM reviews WHERE finding_id = ?", [fid]
        ).fetchall()
    finally:
        con.close()
    assert when.astimezone(UTC) == NOW

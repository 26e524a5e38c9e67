"""``auditor dashboard`` as a process: binding, the token it prints, its access log."""

from __future__ import annotations

import httpx
import pytest
from dashboard_scenario import Scenario
from dashboard_server import running_dashboard

from auditor.cli.main import main
from dashboards.cli.dashboard import allowed_hosts, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),  # the whole 127/8 block is loopback
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),  # noqa: S104 - every interface, which is the point
        ("10.1.2.3", False),
        ("dashboard.hospital.example", False),  # a name could resolve anywhere
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_non_loopback_bind_needs_an_explicit_flag(
    shared_scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dashboard", "--db", str(shared_scenario.path), "--host", "0.0.0.0"])  # noqa: S104
    assert code == 2
    assert "refusing to bind to 0.0.0.0" in capsys.readouterr().err


def test_a_missing_database_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--db", "/nonexistent/audit.duckdb"]) == 2
    assert "no audit database" in capsys.readouterr().err


def test_allowed_hosts_name_the_loopback_forms_and_the_bind() -> None:
    assert allowed_hosts("127.0.0.1", 8765, [], remote=False) == {
        "127.0.0.1:8765",
        "localhost:8765",
        "[::1]:8765",
    }
    assert "audit.hospital.example:443" in (
        allowed_hosts("0.0.0.0", 8765, ["audit.hospital.example:443"], remote=True) or set()  # noqa: S104
    )
    assert allowed_hosts("0.0.0.0", 8765, [], remote=True) is None  # noqa: S104


@pytest.mark.slow
def test_a_random_token_is_printed_once_and_kept_out_of_the_access_log(
    shared_scenario: Scenario,
) -> None:
    with running_dashboard(shared_scenario.path, start_lines=3) as server:
        printed = server.stdout_lines
        token = printed[1].removeprefix("auditor dashboard: access token ")
        assert printed[2] == f"auditor dashboard: sign in at {server.base_url}/login?token={token}"
        assert len(token) >= 32
        with httpx.Client(base_url=server.base_url) as client:
            assert client.get("/").headers["location"] == "/login"
            signed = client.get(f"/login?token={token}")
            assert signed.status_code == 303
            assert client.get("/findings?period=all&severity=critical").status_code == 200
    log = server.stderr_text()
    assert '"GET /login" 303' in log
    assert '"GET /findings" 200' in log
    assert token not in log
    assert "severity=critical" not in log


@pytest.mark.slow
def test_a_configured_token_is_never_printed(shared_scenario: Scenario) -> None:
    token = "configured-token-8d1f0b2e"
    with (
        running_dashboard(shared_scenario.path, token=token) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        assert client.get(f"/login?token={token}").headers["location"] == "/"
    assert server.stdout_lines[1] == "auditor dashboard: using the configured access token"
    assert token not in "\n".join(server.stdout_lines) + server.stderr_text()

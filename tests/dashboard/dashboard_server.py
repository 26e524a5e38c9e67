"""Run ``auditor dashboard`` as a real process on a free loopback port, for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port nothing listens on right now (bind to port 0, read it, let it go)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningDashboard:
    """A dashboard process: where it listens and what it printed."""

    process: subprocess.Popen[str]
    base_url: str
    stdout_lines: list[str] = field(default_factory=list)
    stderr: str = ""
    """Everything the process wrote to stderr, once it has stopped."""

    def stderr_text(self) -> str:
        """Everything the process wrote to stderr (only after it stopped)."""
        return self.stderr


@contextmanager
def running_dashboard(
    db: Path, *, token: str | None = None, extra: tuple[str, ...] = (), start_lines: int = 2
) -> Iterator[RunningDashboard]:
    """Start ``auditor dashboard`` on a free port; stop it (SIGTERM) at the end.

    Args:
        db: The audit database.
        token: Passed in ``$AUDITOR_DASHBOARD_TOKEN``; ``None`` lets it pick and print one.
        extra: More command-line options.
        start_lines: How many lines it prints on stdout before it serves.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AUDITOR_DASHBOARD_TOKEN"}
    if token is not None:
        env["AUDITOR_DASHBOARD_TOKEN"] = token
    process = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "auditor.cli.main", "dashboard", "--db", str(db),
         "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    running = RunningDashboard(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{running.base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.1)
        # It prints its start lines before it serves, so they are in the pipe by now.
        assert process.stdout is not None
        running.stdout_lines.extend(
            process.stdout.readline().rstrip("\n") for _ in range(start_lines)
        )
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            running.stderr = process.stderr.read()
            process.stderr.close()
        if process.stdout is not None:
            process.stdout.close()

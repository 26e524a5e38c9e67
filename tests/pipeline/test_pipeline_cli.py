"""``auditor run --input``: the command, its exit status, its summary, SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from authz_events import event
from pipeline_support import (
    FINGERPRINT_KEY,
    Canaries,
    authz_line,
    count,
    planted_lines,
    write_lines,
)

from auditor.cli.main import main

AUDITOR = [sys.executable, "-m", "auditor.cli.main"]


def _many_events(n: int) -> list[bytes]:
    """``n`` distinct events, cheaply: one template, new ids."""
    template = authz_line(event(0, event_id=uuid.UUID(int=0), jti="JTI"))
    zero = str(uuid.UUID(int=0)).encode()
    return [
        template.replace(zero, str(uuid.UUID(int=i + 1)).encode()).replace(
            b'"JTI"', f'"jti-{i}"'.encode()
        )
        for i in range(n)
    ]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "AUDITOR_FINGERPRINT_KEY": FINGERPRINT_KEY, **extra}


def test_a_run_prints_its_summary_and_exits_0(tmp_path, capsys):
    source = write_lines(tmp_path / "in.jsonl", _many_events(50))
    assert main(["run", "--input", str(source), "--db", str(tmp_path / "a.duckdb"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(embedded): completed" in out
    assert "authz events 50" in out


def test_a_missing_input_exits_2_naming_it(tmp_path, capsys):
    code = main(
        ["run", "--input", str(tmp_path / "gone.jsonl"), "--db", str(tmp_path / "a.duckdb")]
    )
    assert code == 2
    assert "gone.jsonl" in capsys.readouterr().err


def test_input_without_a_database_exits_2(tmp_path, capsys):
    source = write_lines(tmp_path / "in.jsonl", _many_events(1))
    assert main(["run", "--input", str(source)]) == 2
    assert "--db" in capsys.readouterr().err


def test_the_command_logs_as_json_on_stderr_and_never_a_planted_secret(tmp_path):
    canaries = Canaries.make()
    source = write_lines(tmp_path / "in.jsonl", planted_lines(canaries, event(0)))
    result = subprocess.run(  # noqa: S603 - our own command
        [
            *AUDITOR,
            "run",
            "--input",
            str(source),
            "--db",
            str(tmp_path / "a.duckdb"),
            "--min-severity",
            "info",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"event": "store.opened"' in result.stderr
    for label, value in canaries.labelled().items():
        assert value not in result.stderr + result.stdout, label


@pytest.mark.slow
@pytest.mark.parametrize(
    ("store_process", "sig"),
    [("never", signal.SIGTERM), ("always", signal.SIGTERM), ("always", signal.SIGINT)],
)
def test_a_stop_signal_finishes_the_batch_and_a_second_run_completes_exactly_once(
    store_process, sig, tmp_path
):
    # Sent to the run's whole process group, as a terminal's Ctrl-C or a supervisor does:
    # a store process (in a session of its own, ignoring both) is stopped by the run.
    lines, db, command = _long_run(tmp_path)
    env = _env(
        AUDITOR_PIPELINE__BATCH_RECORDS="100",
        AUDITOR_PIPELINE__CHECKPOINT_INTERVAL_S="0.2",
        AUDITOR_PIPELINE__PROGRESS_INTERVAL_S="0.2",
        AUDITOR_PIPELINE__STORE_PROCESS=store_process,
    )
    proc = _under_way(command, env, start_new_session=True)
    os.killpg(proc.pid, sig)
    started = time.monotonic()
    out, _err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert time.monotonic() - started < 30
    assert "(embedded): interrupted" in out
    assert _store_processes(db) == []
    stored_first = count(db, "events")
    assert 0 < stored_first < len(lines)

    _the_next_run_completes_exactly_once(command, env, db, len(lines))
    assert _store_processes(db) == []


def test_a_killed_run_leaves_no_store_process_and_the_next_run_ends_exactly_once(tmp_path):
    lines, db, command = _long_run(tmp_path)
    env = _env(
        AUDITOR_PIPELINE__BATCH_RECORDS="100",
        AUDITOR_PIPELINE__PROGRESS_INTERVAL_S="0.2",
        AUDITOR_PIPELINE__STORE_PROCESS="always",
    )
    proc = _under_way(command, env)
    assert _store_processes(db)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while _store_processes(db) and time.monotonic() < deadline:
        time.sleep(0.1)  # the store process sees its socket close and exits
    assert _store_processes(db) == []

    _the_next_run_completes_exactly_once(command, env, db, len(lines))


def _long_run(tmp_path: Path) -> tuple[list[bytes], Path, list[str]]:
    """24,000 events in a file, the store beside it, and the command that runs them.

    Enough that the run is still well under way for seconds after its first progress line
    (8,000 once left it half a second, and a loaded CI host saw the run end first).
    """
    lines = _many_events(24_000)
    source = write_lines(tmp_path / "in.jsonl", lines)
    db = tmp_path / "a.duckdb"
    return lines, db, [*AUDITOR, "run", "--input", str(source), "--db", str(db)]


def _the_next_run_completes_exactly_once(
    command: list[str], env: dict[str, str], db: Path, events: int
) -> None:
    """After an interrupted run: the same command completes, every event stored once."""
    again = subprocess.run(  # noqa: S603 - our own command
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert again.returncode == 0, again.stderr
    assert count(db, "events") == events
    assert _statuses(db) == ["interrupted", "completed"]


def _under_way(
    command: list[str], env: dict[str, str], *, start_new_session: bool = False
) -> subprocess.Popen[str]:
    """``command`` started, once its first progress line says it is well under way."""
    proc = subprocess.Popen(  # noqa: S603 - our own command
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=start_new_session,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("auditor run:"):
            break
    return proc


def _store_processes(db: Path) -> list[int]:
    """The store processes of ``db`` still running (a run leaves none behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"pipelines.topology.store_server" in cmdline and str(db).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _statuses(db: Path) -> list[str]:
    from pipeline_support import stored

    return [r["status"] for r in stored(db, "SELECT status FROM runs ORDER BY started_at")]

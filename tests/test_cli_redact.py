"""``auditor redact``: line for line, JSON structurally, text as text, golden outputs."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from pathlib import Path

import pytest

from auditor.cli import redact as redact_cli
from auditor.cli.main import main

GOLDEN = Path(__file__).parent / "golden" / "redaction"
KEY = "golden-test-key-0123456789"


@pytest.fixture(autouse=True)
def _fixed_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_FINGERPRINT_KEY", KEY)
    monkeypatch.delenv("AUDITOR_FINGERPRINT_KEY_FILE", raising=False)


def _run(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, str]:
    code = main(["redact", *args])
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


def test_every_line_comes_out_once_in_order(tmp_path, capsysbinary) -> None:
    source = tmp_path / "app.log"
    lines = [
        '{"event":"hook","hook":"patient-view"}',
        '{"event":"x","authorization":"Bearer 8f3kQ9zLr2VxA7mN1pTq"}',
        "plain ssn 536-22-8714 line",
        '{"broken": "json ssn 536-22-8714',
        "",
        '["a json array", "ssn 536-22-8714"]',
    ]
    source.write_text("\n".join(lines) + "\n")
    code, out, _ = _run(capsysbinary, str(source))
    assert code == 0
    got = out.decode().split("\n")
    assert len(got) == len(lines) + 1
    assert got[0] == lines[0]  # a clean JSON line is byte for byte as read
    assert json.loads(got[1])["authorization"].startswith("[REDACTED:bearer_token fp=")
    assert got[2].startswith("plain ssn [REDACTED:ssn fp=")
    assert got[3].startswith('{"broken": "json ssn [REDACTED:ssn fp=')  # redacted as text
    assert got[4] == ""
    assert "536-22-8714" not in got[5]
    assert "8f3kQ9zLr2VxA7mN1pTq" not in out.decode()


def test_stats_count_rules_on_stderr(tmp_path, capsysbinary) -> None:
    source = tmp_path / "app.log"
    source.write_text("ssn 536-22-8714\nssn 536-22-8715\nclean\n")
    code, out, err = _run(capsysbinary, "--stats", str(source))
    assert code == 0
    assert "3 lines, 2 redacted" in err
    assert re.search(r"ssn\.dashed\s+2", err)
    assert b"ssn.dashed" not in out


def test_stdin_is_read_when_no_file_is_given(monkeypatch, capsysbinary) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"ssn 536-22-8714\n")))
    code, out, _ = _run(capsysbinary)
    assert code == 0
    assert out.startswith(b"ssn [REDACTED:ssn fp=")


def test_gzip_files_are_read_transparently(tmp_path, capsysbinary) -> None:
    source = tmp_path / "app.log.gz"
    source.write_bytes(gzip.compress(b"ssn 536-22-8714\n"))
    _, out, _ = _run(capsysbinary, str(source))
    assert out.startswith(b"ssn [REDACTED:ssn")


def test_invalid_utf8_passes_through_around_redactions(tmp_path, capsysbinary) -> None:
    source = tmp_path / "app.log"
    source.write_bytes(b"\xff\xfe ssn 536-22-8714 \xc3\n")
    _, out, _ = _run(capsysbinary, str(source))
    assert out.startswith(b"\xff\xfe ssn [REDACTED:ssn")
    assert out.endswith(b" \xc3\n")


@pytest.mark.parametrize("name", ["missing.log", "a-directory"])
def test_unreadable_input_exits_2_with_a_clear_message(tmp_path, capsysbinary, name) -> None:
    (tmp_path / "a-directory").mkdir()
    code, out, err = _run(capsysbinary, str(tmp_path / name))
    assert code == 2
    assert out == b""
    assert f"cannot read {tmp_path / name}" in err


def test_an_over_long_line_is_replaced_without_being_held(
    tmp_path, capsysbinary, monkeypatch
) -> None:
    monkeypatch.setattr(redact_cli, "MAX_LINE_BYTES", 64)
    monkeypatch.setattr(redact_cli, "_CHUNK", 16)
    source = tmp_path / "app.log"
    source.write_bytes(b"short\n" + b"x" * 1000 + b"\nafter\n")
    _, out, _ = _run(capsysbinary, str(source))
    assert out.split(b"\n") == [b"short", b"[REDACTED:oversized line over 64 bytes]", b"after", b""]


def _planted(text: str) -> set[str]:
    """The raw secrets planted in the golden inputs (they must all be gone)."""
    secrets = set(re.findall(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", text))
    secrets |= set(re.findall(r"ZXlK[\w+/=]+", text))
    secrets |= set(re.findall(r"^[A-Za-z0-9+/]{64}$", text.replace("\\n", "\n"), re.MULTILINE))
    secrets |= {
        "536-22-8714",
        "536228714",
        "(617) 555-2368",
        "617-555-2368",
        "maria.lopez@example.net",
        "Maria Lopez",
        "Lopez",
        "A00482913",
        "smart-1288992",
        "SplxlOBeZQQYbYS6WxSbIA",
        "Xk29-sEcr3t-v4lue",
        "Xk29-pass",
        "03/07/1954",
        "1954-03-07",
        "1428 Elm Street",
        "some-opaque-fhir-access-token-8f3kQ9zLr2",
        "opaque-8f3kQ9zLr2VxA7mN1pTq",
        "ya29.a0AfH6SMBx-opaque-credential-7Q",
        "Y2RzLWNsaWVudDpzM2NyM3QtUGFzc3cwcmQ=",
        "cHJpdmF0ZS1rZXktZC12YWx1ZS1mYWtl",
    }
    return {s for s in secrets if s in text}


@pytest.mark.parametrize("name", ["service.input.jsonl", "text.input.log"])
def test_golden_outputs_match_and_hold_no_planted_secret(capsysbinary, name) -> None:
    source = GOLDEN / name
    expected_path = GOLDEN / name.replace(".input.", ".expected.")
    code, out, _ = _run(capsysbinary, str(source))
    assert code == 0
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_bytes(out)
    expected = expected_path.read_bytes()
    assert out == expected
    planted = _planted(source.read_text())
    assert len(planted) >= 10
    leaked = [s for s in planted if s in expected.decode()]
    assert leaked == []
    assert expected.count(b"\n") == source.read_bytes().count(b"\n")

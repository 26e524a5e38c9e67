"""``auditor query``, ``auditor review`` and ``auditor export`` end to end, in process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from audit_scenario import AuditFixture

from auditor.cli.main import main
from dashboards.catalog import QueryError, catalog
from dashboards.cli.query import parse_params


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_prints_one_query_per_line_name_first(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "query", "--list")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == list(catalog())
    assert all(line.split(None, 1)[1] == catalog()[line.split()[0]].description for line in lines)


def test_describe_shows_parameters_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "query", "unreviewed_findings", "--describe")
    assert code == 0
    assert "min_severity  choice(info|low|medium|high|critical), default 'low'" in out
    assert "first_stored_at" in out


def test_table_output_is_aligned_and_counted(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture
) -> None:
    code, out, _ = run(capsys, "query", "leaked_tokens", "--db", str(shared_audit_db.path))
    assert code == 0
    header, rule, *body = out.splitlines()
    assert header.startswith("day         service_id       kind")
    assert set(rule) == {"-", " "}
    assert body[-1] == "(4 rows)"


def test_csv_output(capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture) -> None:
    code, out, _ = run(
        capsys, "query", "phi_exposures", "--db", str(shared_audit_db.path), "--format", "csv"
    )
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 3
    assert table[0]["first_seen"] == "2026-11-21T08:00:00Z"


def test_json_output_with_parameters(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture
) -> None:
    code, out, _ = run(
        capsys, "query", "validation-failures", "--db", str(shared_audit_db.path),
        "--format", "json", "--since", "2026-11-22", "--param", "reason=replayed_jti",
    )  # fmt: skip
    assert code == 0
    assert [(r["reason"], r["failures"]) for r in json.loads(out)] == [("replayed_jti", 3)]


def test_parquet_output_to_a_file(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture, tmp_path: Path
) -> None:
    target = tmp_path / "gaps.parquet"
    code, _, _ = run(
        capsys, "query", "coverage_gaps", "--db", str(shared_audit_db.path), "--format", "parquet",
        "--since", "2026-11-23", "--until", "2026-11-30", "--out", str(target),
    )  # fmt: skip
    assert code == 0
    assert pq.read_table(target).num_rows == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Unknown query.
        (["query", "nope"], "no query named 'nope'"),
        # Unknown parameter name.
        (["query", "anomalies", "--param", "score=3"], "has no parameter 'score'"),
        # Wrong type.
        (
            ["query", "unreviewed_findings", "--param", "days=soon"],
            "'days' of query 'unreviewed_findings' must be an integer",
        ),
        # Missing required parameter.
        (["query", "client_activity"], "needs the parameter 'iss'"),
        # Malformed pair.
        (["query", "anomalies", "--param", "min_score"], "written NAME=VALUE"),
        # Same parameter twice.
        (["query", "anomalies", "--since", "7d", "--param", "since=1d"], "'since' is given twice"),
        # Bad time.
        (["query", "anomalies", "--until", "tomorrowish"], "must be an ISO 8601 date or time"),
    ],
)
def test_bad_query_invocations_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture, argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv, "--db", str(shared_audit_db.path))
    assert code == 2
    assert message in err
    assert out == ""


def test_a_missing_database_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "query", "anomalies", "--db", str(tmp_path / "none.duckdb"))
    assert code == 2
    assert "no audit database at" in err


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        # A value may contain '=' (only the first one splits).
        (["iss=https://x.example/a=b"], {"iss": "https://x.example/a=b"}),
        # An empty value is a value (the empty string).
        (["service="], {"service": ""}),
        # Several parameters.
        (["days=3", "min_severity=high"], {"days": "3", "min_severity": "high"}),
    ],
)
def test_param_pairs_are_split_at_the_first_equals(
    pairs: list[str], expected: dict[str, str]
) -> None:
    assert parse_params(pairs, None, None) == expected


@pytest.mark.parametrize(
    "pair",
    [
        "=value",  # no name
        "Days=3",  # names are lowercase
        "days",  # no value
        "drop table=1",  # not a name
    ],
)
def test_malformed_param_pairs_are_refused(pair: str) -> None:
    with pytest.raises(QueryError, match="NAME=VALUE"):
        parse_params([pair], None, None)


def test_review_ack_then_history(
    capsys: pytest.CaptureFixture[str], audit_db: AuditFixture
) -> None:
    fid = audit_db.fid("L3")
    db = str(audit_db.path)
    code, out, _ = run(
        capsys, "review", "ack", fid, "--actor", "alice", "--note", "on it", "--db", db
    )
    assert code == 0
    assert out.startswith(f"finding {fid}: acknowledge by alice at ")
    assert out.rstrip().endswith("status open -> acknowledged")
    code, out, _ = run(
        capsys, "review", "assign", fid, "--actor", "alice", "--assignee", "bob", "--db", db
    )
    assert code == 0
    code, out, _ = run(capsys, "review", "history", fid, "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"finding {fid}: assigned, assigned to bob"
    assert lines[1].split()[2:] == ["acknowledge", "alice:", "on", "it"]
    assert lines[2].split()[2:] == ["assign", "alice", "->", "bob"]


def test_review_history_as_json(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture
) -> None:
    fid = shared_audit_db.fid("Q2")
    code, out, _ = run(
        capsys, "review", "history", fid, "--db", str(shared_audit_db.path), "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["status"] == "open"
    assert [h["action"] for h in doc["history"]] == ["resolve", "reopen"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Resolving twice.
        (["resolve", "L1"], "is resolved: 'resolve' is not allowed"),
        # A false positive needs its reason.
        (["false-positive", "L3"], "needs a note"),
        # No such finding.
        (["ack", "0" * 32], "no finding"),
        # Not a finding id at all.
        (["ack", "../../etc/passwd"], "32 lowercase hex"),
    ],
)
def test_refused_review_acts_exit_2(
    capsys: pytest.CaptureFixture[str], audit_db: AuditFixture, argv: list[str], message: str
) -> None:
    act, label = argv
    fid = audit_db.fid(label) if label in audit_db.findings else label
    code, _, err = run(capsys, "review", act, fid, "--actor", "alice", "--db", str(audit_db.path))
    assert code == 2
    assert message in err


def test_review_coverage_command(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture
) -> None:
    code, out, _ = run(
        capsys,
        "review",
        "coverage",
        "--db",
        str(shared_audit_db.path),
        "--period",
        "month",
        "--format",
        "json",
    )
    assert code == 0
    assert [(r["period_start"], r["findings"], r["reviewed"]) for r in json.loads(out)] == [
        ("2026-11-01", 19, 6)
    ]


def test_export_fhir_to_stdout(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture
) -> None:
    code, out, err = run(capsys, "export", "--format", "fhir", "--db", str(shared_audit_db.path))
    assert code == 0
    bundle = json.loads(out)
    assert bundle["resourceType"] == "Bundle"
    assert len(bundle["entry"]) == 36
    assert "19 findings and 17 authz events to stdout (fhir)" in err


def test_export_ocsf_to_a_file_leaves_no_temporary_behind(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    code, out, _ = run(
        capsys, "export", "--format", "ocsf", "--db", str(shared_audit_db.path),
        "--out", str(target), "--events", "none", "--since", "2026-11-20", "--until", "2026-11-21",
    )  # fmt: skip
    assert (code, out) == (0, "")
    lines = target.read_text().splitlines()
    assert len(lines) == 5  # findings observed on Nov 20 (L1, L2, L5, R2, V2), no events
    assert list(tmp_path.iterdir()) == [target]


def test_export_rejects_an_empty_range(
    capsys: pytest.CaptureFixture[str], shared_audit_db: AuditFixture
) -> None:
    code, _, err = run(
        capsys, "export", "--format", "ocsf", "--db", str(shared_audit_db.path),
        "--since", "2026-11-21", "--until", "2026-11-20",
    )  # fmt: skip
    assert code == 2
    assert "--since must be before --until" in err


def test_the_commands_load_without_duckdb_or_arrow() -> None:
    # `auditor` imports every command module to build its help: they must stay light.
    code = (
        "import sys, dashboards, dashboards.cli.query, dashboards.cli.review, "
        "dashboards.cli.export; "
        "print(sorted(m for m in ('duckdb', 'pyarrow') if m in sys.modules))"
    )
    argv = [sys.executable, "-c", code]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)  # noqa: S603 - fixed argv
    assert result.stdout.strip() == "[]"

"""``auditor retention``: the command line of the retention policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import store_support as support
from test_store_retention import fill

from auditor.cli.main import main

# The command reads the wall clock; the store is filled relative to it.
NOW = datetime.now(UTC)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "audit.duckdb"
    fill(path, now=NOW)
    return path


def test_a_dry_run_says_what_it_would_do_per_table_and_changes_nothing(db, capsys):
    before = support.snapshot(db)
    assert main(["retention", "--db", str(db), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was changed" in out
    assert "events        would delete                   3 rows   time before" in out
    assert "findings      would blank evidence           2 rows" in out
    assert "reviews       would delete                   1 rows" in out
    after = support.snapshot(db)
    for table, rows in before.items():
        assert after[table].equals(rows), table


def test_a_real_run_prints_its_ledger_id_and_archive(db, tmp_path, capsys):
    archive = tmp_path / "archive"
    assert main(["retention", "--db", str(db), "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "applied:" in out
    assert "recorded in retention_runs as " in out
    assert f"archive: {archive}" in out
    assert any(archive.glob("events/day=*/*.parquet"))


def test_the_json_report_carries_counts_cutoffs_and_route(db, capsys):
    assert main(["retention", "--db", str(db), "--dry-run", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["route"] == "file"
    assert report["dry_run"] is True
    assert report["rows"]["events"] == 3
    assert set(report["cutoffs"]) == {
        "events_before",
        "dead_letters_before",
        "evidence_before",
        "findings_before",
    }


def test_a_findings_horizon_shorter_than_six_years_is_warned_about(db, capsys):
    assert main(["retention", "--db", str(db), "--findings", "5y", "--dry-run"]) == 0
    assert "shorter than the 6 years HIPAA asks" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "400"], "'400' is not a horizon"),
        (["--evidence", "3m"], "'3m' is not a horizon"),
    ],
)
def test_a_bad_horizon_is_a_usage_error(db, capsys, args, message):
    assert main(["retention", "--db", str(db), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_store_is_a_usage_error(tmp_path, capsys):
    assert main(["retention", "--db", str(tmp_path / "nope.duckdb")]) == 2
    assert "no audit database at" in capsys.readouterr().err

"""No export carries a value that upstream redaction should have removed.

The fixture database holds canaries where redaction is supposed to have happened already
(findings' evidence text, events' attributes and detail, an unexpected fact, a review
note), standing for a detector or a service that failed to redact. The exporters and
the named queries must not carry them out: they read only structured columns and
fingerprints, and only the facts known to be safe.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from audit_scenario import CANARIES, CANARY_JWT, CANARY_MRN, CANARY_SSN, NOW, AuditFixture

from auditor.cli.main import main
from dashboards.catalog import catalog, run_query
from dashboards.output import write_csv
from dashboards.storage import open_store


def test_the_fixture_really_holds_the_canaries(shared_audit_db: AuditFixture) -> None:
    # Without this the tests below could pass for the wrong reason.
    con = duckdb.connect(str(shared_audit_db.path), read_only=True)
    try:
        found = con.sql(
            """
            SELECT
                (SELECT count(*) FROM findings WHERE contains(evidence, $jwt)),
                (SELECT count(*) FROM findings WHERE contains(facts_json, $jwt)),
                (SELECT count(*) FROM events WHERE contains(attributes_json, $ssn)),
                (SELECT count(*) FROM events WHERE contains(detail, $jwt)),
                (SELECT count(*) FROM reviews WHERE contains(note, $mrn))
            """,
            params={"jwt": CANARY_JWT, "ssn": CANARY_SSN, "mrn": CANARY_MRN},
        ).fetchall()[0]
    finally:
        con.close()
    assert found == (19, 1, 17, 17, 1)


@pytest.mark.parametrize("fmt", ["fhir", "ocsf"])
def test_no_export_contains_a_planted_canary(
    shared_audit_db: AuditFixture, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / f"export.{fmt}"
    code = main(
        [
            "export",
            "--format",
            fmt,
            "--events",
            "all",
            "--db",
            str(shared_audit_db.path),
            "--out",
            str(target),
        ]
    )
    capsys.readouterr()
    assert code == 0
    text = target.read_text(encoding="utf-8")
    assert shared_audit_db.fp_leak in text  # the export did carry the leak, by fingerprint
    for canary in CANARIES:
        assert canary not in text


def test_no_named_query_returns_a_planted_canary(
    shared_audit_db: AuditFixture, tmp_path: Path
) -> None:
    required = {
        "iss": "https://ehr-a.example.org",
        "fingerprint": shared_audit_db.fp_leak,
        "finding_id": shared_audit_db.fid("L1"),  # its evidence holds the JWT canary
    }
    out = tmp_path / "all.csv"
    with open_store(shared_audit_db.path) as store, out.open("w", encoding="utf-8") as handle:
        for spec in catalog().values():
            params = {p.name: required[p.name] for p in spec.parameters if p.required}
            write_csv(run_query(store, spec.name, params, now=NOW), handle)
    text = out.read_text(encoding="utf-8")
    for canary in CANARIES:
        assert canary not in text

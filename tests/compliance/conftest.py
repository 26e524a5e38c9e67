"""Fixtures of the compliance tests: the database of ``audit_scenario``, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from audit_scenario import AuditFixture, build_audit_db


@pytest.fixture(scope="session")
def _pristine_audit_db(tmp_path_factory: pytest.TempPathFactory) -> AuditFixture:
    return build_audit_db(tmp_path_factory.mktemp("auditdb") / "audit.duckdb")


@pytest.fixture
def audit_db(_pristine_audit_db: AuditFixture, tmp_path: Path) -> AuditFixture:
    """A fresh copy of the fixture database for one test (tests may append reviews)."""
    copy = tmp_path / "audit.duckdb"
    shutil.copyfile(_pristine_audit_db.path, copy)
    return AuditFixture(
        path=copy,
        fingerprinter=_pristine_audit_db.fingerprinter,
        findings=_pristine_audit_db.findings,
        events=_pristine_audit_db.events,
        fp_leak=_pristine_audit_db.fp_leak,
        fp_replay=_pristine_audit_db.fp_replay,
    )


@pytest.fixture
def shared_audit_db(_pristine_audit_db: AuditFixture) -> AuditFixture:
    """The fixture database itself, for tests that only read it."""
    return _pristine_audit_db

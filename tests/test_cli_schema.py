"""`auditor schema` prints JSON Schema that accepts good events and rejects bad ones."""

from __future__ import annotations

import json

import pytest

from auditor.cli.main import main


def test_schema_prints_both_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"authz-event", "finding"}
    authz = doc["authz-event"]
    assert authz["additionalProperties"] is False
    assert {"event_id", "time", "source", "action", "outcome"} <= set(authz["required"])
    assert "token" in authz["properties"]


def test_schema_of_one_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "finding"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["title"] == "Finding"
    assert doc["$schema"].endswith("2020-12/schema")


def test_unknown_contract_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["schema", "nonsense"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err

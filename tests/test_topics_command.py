"""`auditor topics create|list` against the real broker."""

from __future__ import annotations

import pytest

from auditor.cli.main import main
from tests.fixtures.kafka import unique_topics

pytestmark = pytest.mark.kafka


@pytest.fixture
def config(tmp_path, request):
    topics = unique_topics(request.node.name.replace("_", "-"))
    lines = []
    for role, spec in zip(
        ("authz", "logs", "findings", "alerts", "deadletters", "state"), topics.all(), strict=True
    ):
        lines += [f"[topics.{role}]", f'name = "{spec.name}"', "partitions = 2", ""]
    path = tmp_path / "auditor.toml"
    path.write_text("\n".join(lines))
    return path, topics


def test_create_makes_the_topics_then_reports_them_as_existing(kafka_broker, config, capsys):
    path, topics = config
    names = sorted(spec.name for spec in topics.all())

    assert main(["topics", "create", "--kafka", kafka_broker.bootstrap, "--config", str(path)]) == 0
    first = capsys.readouterr().out
    assert (
        sorted(line.split()[1] for line in first.splitlines() if line.startswith("created"))
        == names
    )

    assert main(["topics", "create", "--kafka", kafka_broker.bootstrap, "--config", str(path)]) == 0
    second = capsys.readouterr().out
    assert (
        sorted(line.split()[1] for line in second.splitlines() if line.startswith("exists"))
        == names
    )


def test_list_marks_the_configured_topics_and_their_partitions(kafka_broker, config, capsys):
    path, topics = config
    main(["topics", "create", "--kafka", kafka_broker.bootstrap, "--config", str(path)])
    capsys.readouterr()
    assert main(["topics", "list", "--kafka", kafka_broker.bootstrap, "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"* {topics.authz.name}  partitions=2 replication=1" in out.splitlines()


def test_an_unreachable_cluster_exits_2_with_a_message(capsys, monkeypatch):
    monkeypatch.setenv("AUDITOR_KAFKA__BOOTSTRAP_TIMEOUT_MS", "300")
    assert main(["topics", "create", "--kafka", "127.0.0.1:9"]) == 2
    assert "no Kafka broker answered at 127.0.0.1:9" in capsys.readouterr().err

"""The embedded topology: files in, exactly once into DuckDB, resumable, nothing leaked."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from authz_events import event
from pipeline_support import (
    POISON,
    Canaries,
    PatternContentDetector,
    authz_line,
    count,
    log_line,
    planted_lines,
    stored,
    write_lines,
)

from auditor.fingerprints import Fingerprinter
from auditor.models import AuthzEvent
from detectors import StreamDetectorsConfig
from pipelines.settings import PipelineSettings
from pipelines.store import assert_no_canaries
from pipelines.topology import run_embedded
from pipelines.topology.progress import Progress

GOLDEN = Path(__file__).parents[1] / "golden"

pytestmark = pytest.mark.usefixtures("store_mode")
FOLDERS = sorted(p.parent.name for p in GOLDEN.glob("*/events.jsonl"))


def _golden_lines(folder: Path) -> list[bytes]:
    lines = (folder / "events.jsonl").read_text().splitlines()
    return [authz_line(AuthzEvent.model_validate_json(line)) for line in lines if line.strip()]


def _golden_settings(folder: Path, **extra: Any) -> PipelineSettings:
    path = folder / "config.json"
    detectors = json.loads(path.read_text()) if path.exists() else {}
    return PipelineSettings(
        detectors=StreamDetectorsConfig.model_validate(detectors),
        alerts={"log": False},
        **extra,
    )


@pytest.mark.parametrize("incident", FOLDERS)
def test_a_golden_stream_stores_exactly_its_golden_findings(incident, tmp_path):
    folder = GOLDEN / incident
    source = write_lines(tmp_path / "events.jsonl", _golden_lines(folder))
    db = tmp_path / "audit.duckdb"
    summary = run_embedded([source], db, _golden_settings(folder), content=())
    expected = json.loads((folder / "expected_findings.json").read_text())
    rows = stored(db, "SELECT finding_id, revision, rule, count FROM findings ORDER BY finding_id")
    assert rows == [
        {k: f[k] for k in ("finding_id", "revision", "rule", "count")}
        for f in sorted(expected, key=lambda f: f["finding_id"])
    ]
    assert count(db, "events") == summary.counters.events_in == len(_golden_lines(folder))


def test_running_again_over_the_same_files_adds_nothing(tmp_path):
    folder = GOLDEN / "jti_replay_burst"
    source = write_lines(tmp_path / "events.jsonl", [*_golden_lines(folder), *POISON.values()])
    db = tmp_path / "audit.duckdb"
    settings = _golden_settings(folder)
    run_embedded([source], db, settings)
    before = {t: count(db, t) for t in ("events", "findings", "dead_letters", "alerts")}
    again = run_embedded([source], db, settings)
    assert again.records == 0
    assert {t: count(db, t) for t in before} == before
    assert count(db, "runs") == 2


def test_several_files_are_one_stream_so_a_replay_across_them_is_found(tmp_path):
    first = event(0, jti="jti-across-files", hook_instance="h1", peer="10.0.0.5")
    second = event(30, jti="jti-across-files", hook_instance="h2", peer="203.0.113.9")
    a = write_lines(tmp_path / "day1.jsonl", [authz_line(first)])
    b = write_lines(tmp_path / "day2.jsonl", [authz_line(second)])
    summary = run_embedded(
        [a, b], tmp_path / "audit.duckdb", PipelineSettings(alerts={"log": False}), content=()
    )
    assert {f.rule for f in summary.findings or ()} == set()  # not collected
    rules = stored(tmp_path / "audit.duckdb", "SELECT rule FROM findings")
    assert {"rule": "jti_replay"} in rules


def test_gzip_files_are_read_whatever_their_name(tmp_path):
    lines = _golden_lines(GOLDEN / "jti_replay_burst")
    packed = tmp_path / "archive.log"  # no .gz suffix: the magic bytes decide
    packed.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    db = tmp_path / "audit.duckdb"
    run_embedded([packed], db, PipelineSettings(alerts={"log": False}), content=())
    assert count(db, "events") == len(lines)


def test_standard_input_is_read_and_stores_no_resume_position(tmp_path, monkeypatch):
    import io
    import sys

    lines = _golden_lines(GOLDEN / "jti_replay_burst")
    stdin = io.TextIOWrapper(io.BytesIO(b"".join(line + b"\n" for line in lines)))
    monkeypatch.setattr(sys, "stdin", stdin)
    db = tmp_path / "audit.duckdb"
    run_embedded(["-"], db, PipelineSettings(alerts={"log": False}), content=())
    assert count(db, "events") == len(lines)
    assert count(db, "ingest_offsets") == 0
    assert count(db, "detector_checkpoints") == 0


def test_poison_lines_become_dead_letters_with_reasons_and_good_lines_are_stored(tmp_path):
    good = _golden_lines(GOLDEN / "jti_replay_burst")
    lines = [good[0], *POISON.values(), *good[1:]]
    db = tmp_path / "audit.duckdb"
    summary = run_embedded(
        [write_lines(tmp_path / "in.jsonl", lines)],
        db,
        PipelineSettings(alerts={"log": False}),
        content=(),
    )
    rows = stored(db, "SELECT reason, line, size_bytes, detail FROM dead_letters ORDER BY line")
    assert [(r["reason"], r["line"]) for r in rows] == [
        (name, line) for line, name in enumerate(POISON, start=2)
    ]
    assert [r["size_bytes"] for r in rows] == [len(raw) for raw in POISON.values()]
    assert count(db, "events") == len(good)
    assert summary.dead_letter_reasons == dict.fromkeys(POISON, 1)


def test_a_content_detector_that_raises_dead_letters_the_record_and_the_run_goes_on(tmp_path):
    class Broken:
        name = PatternContentDetector.name

        def scan(self, _content: object, _context: object) -> list[Any]:
            raise RuntimeError("bug")

    lines = [log_line("a"), log_line("b")]
    db = tmp_path / "audit.duckdb"
    run_embedded(
        [write_lines(tmp_path / "in.jsonl", lines)],
        db,
        PipelineSettings(alerts={"log": False}),
        content=[Broken()],
    )
    rows = stored(db, "SELECT reason, detail FROM dead_letters ORDER BY line")
    assert (
        rows == [{"reason": "processing_error", "detail": "leaked_token failed (RuntimeError)"}] * 2
    )


def test_a_record_examined_only_in_part_is_dead_lettered_and_its_findings_kept(tmp_path):
    from auditor.errors import RejectedRecord
    from auditor.vocabulary import DeadLetterReason

    class Capped(PatternContentDetector):
        """Finds what the library finds, then says the rest was past its depth cap."""

        def scan(self, content: object, context: Any) -> list[Any]:
            refusal = RejectedRecord(DeadLetterReason.TOO_DEEP, "values past depth 8")
            refusal.findings = super().scan(content, context)  # type: ignore[attr-defined]
            raise refusal

    line = log_line("auth", authorization="Bearer abcdefghijklmnopqrstuvwxyz012345")
    db = tmp_path / "audit.duckdb"
    run_embedded(
        [write_lines(tmp_path / "in.jsonl", [line])],
        db,
        PipelineSettings(alerts={"log": False}),
        content=[Capped()],
    )
    assert stored(db, "SELECT reason, detail, line FROM dead_letters") == [
        {"reason": "too_deep", "detail": "values past depth 8", "line": 1}
    ]
    assert stored(db, "SELECT detector, origin FROM findings") == [
        {"detector": "leaked_token", "origin": f"{tmp_path / 'in.jsonl'}:1"}
    ]


def test_an_interrupted_run_resumes_from_its_checkpoint_and_ends_exactly_once(tmp_path):
    folder = GOLDEN / "failure_rate_spike"
    lines = _golden_lines(folder)
    source = write_lines(tmp_path / "in.jsonl", lines)
    reference = tmp_path / "reference.duckdb"
    run_embedded([source], reference, _golden_settings(folder), content=())

    db = tmp_path / "audit.duckdb"
    stop = threading.Event()

    class StopAfter(Progress):
        """Sets the stop event after the first few batches, as SIGTERM would."""

        def __init__(self) -> None:
            super().__init__(None)
            self.batches = 0

        def update(self, _summary: Any, *, lag: int | None = None) -> None:
            del lag
            self.batches += 1
            if self.batches == 3:
                stop.set()

    settings = _golden_settings(folder, batch_records=7, checkpoint_interval_s=0.001)
    first = run_embedded([source], db, settings, content=(), stop=stop, progress=StopAfter())
    assert first.status == "interrupted"
    assert 0 < count(db, "events") < len(lines)
    second = run_embedded([source], db, settings, content=())
    assert second.status == "completed"
    assert first.counters.events_in + second.counters.events_in == len(lines)

    def table(path: Path, sql: str) -> list[dict[str, Any]]:
        return stored(path, sql)

    findings = "SELECT finding_id, revision, count, facts_json FROM findings ORDER BY finding_id"
    assert table(db, findings) == table(reference, findings)
    events = "SELECT CAST(event_id AS VARCHAR) AS id FROM events ORDER BY id"
    assert table(db, events) == table(reference, events)


def test_a_run_killed_before_any_checkpoint_replays_from_the_start(tmp_path):
    # No checkpoint but stored positions: the state is rebuilt from line 1, and what was
    # stored is not stored or counted again.
    folder = GOLDEN / "jti_replay_burst"
    lines = _golden_lines(folder)
    source = write_lines(tmp_path / "in.jsonl", lines)
    db = tmp_path / "audit.duckdb"
    run_embedded([source], db, _golden_settings(folder), content=())
    with __import__("duckdb").connect(str(db)) as conn:
        conn.execute("DELETE FROM detector_checkpoints")
        conn.execute("UPDATE ingest_offsets SET next_offset = 3")
    again = run_embedded([source], db, _golden_settings(folder), content=())
    assert again.replayed == 2
    assert count(db, "events") == len(lines)


@pytest.mark.usefixtures("pipeline_logging")
def test_planted_secrets_reach_no_table_file_checkpoint_or_log(tmp_path, capsys):
    canaries = Canaries.make()
    base = event(5, jti="j-canary", hook_instance="h-canary")
    lines = [*_golden_lines(GOLDEN / "jti_replay_burst"), *planted_lines(canaries, base)]
    db = tmp_path / "audit.duckdb"
    summary = run_embedded(
        [write_lines(tmp_path / "in.jsonl", lines)],
        db,
        PipelineSettings(alerts={"min_severity": "low"}, checkpoint_interval_s=0.001),
        collect_findings=True,
    )
    detectors = {f.detector.value for f in summary.findings or ()}
    assert {"leaked_token", "phi_in_logs"} <= detectors  # the canaries were seen ...
    assert_no_canaries(db, canaries.labelled())  # ... and stored nowhere
    (state,) = stored(db, "SELECT state FROM detector_checkpoints")
    for label, value in canaries.labelled().items():
        assert value.encode() not in state["state"], label
    logged = capsys.readouterr()
    assert "alert.raised" in logged.err
    for label, value in canaries.labelled().items():
        assert value not in logged.err + logged.out, label


def test_the_stored_event_keeps_its_free_text_redacted(tmp_path):
    canaries = Canaries.make()
    (leaky, *_) = planted_lines(canaries, event(0))
    db = tmp_path / "audit.duckdb"
    run_embedded(
        [write_lines(tmp_path / "in.jsonl", [leaky])],
        db,
        PipelineSettings(alerts={"log": False}),
        content=(),
    )
    (row,) = stored(db, "SELECT detail, fhir_server, attributes_json FROM events")
    assert row["detail"].startswith("token was [REDACTED:jwt")
    assert "access_token=[REDACTED:" in row["fhir_server"]
    assert "[REDACTED:bearer_token" in row["attributes_json"]


def test_a_missing_input_fails_before_anything_is_written(tmp_path):
    from auditor.errors import InputError

    with pytest.raises(InputError, match="not a file"):
        run_embedded([tmp_path / "nope.jsonl"], tmp_path / "audit.duckdb")
    assert not (tmp_path / "audit.duckdb").exists()


@pytest.mark.parametrize(
    "secret", [b"run-key-one-0123456789abcdef", b"run-key-two-0123456789abcdef"]
)
def test_a_run_keyed_with_its_own_fingerprinter_uses_that_key_throughout(secret, tmp_path):
    # Library callers (the demo, a simulation) key a run without touching the process's key:
    # the run records that key's id, and content findings are fingerprinted with it.
    key = Fingerprinter(secret)
    bearer = "canaryBearer" + "x7Qk2" * 8
    line = log_line("upstream call", headers={"authorization": f"Bearer {bearer}"})
    source = write_lines(tmp_path / "app.jsonl", [line])
    db = tmp_path / "audit.duckdb"
    run_embedded([source], db, PipelineSettings(alerts={"log": False}), fingerprinter=key)
    [run] = stored(db, "SELECT fingerprint_key_id FROM runs")
    assert run["fingerprint_key_id"] == key.key_id
    fingerprints = [r["fingerprint"] for r in stored(db, "SELECT fingerprint FROM findings")]
    assert fingerprints
    assert all(f.startswith(f"{key.key_id}:") for f in fingerprints)


def test_a_leak_after_free_text_already_found_clean_is_still_found(tmp_path):
    # The stage remembers events' free text found clean (the same URLs event after event)
    # and skips scanning it again; an event that adds a leak to that text is new content.
    canaries = Canaries.make()
    url = "https://fhir.example.org/r4"
    clean = [event(t, fhir_server=url) for t in range(3)]
    leaky = event(3, fhir_server=url, detail=f"token was {canaries.jwt}")
    summary = run_embedded(
        [write_lines(tmp_path / "in.jsonl", [authz_line(e) for e in [*clean, leaky]])],
        tmp_path / "audit.duckdb",
        PipelineSettings(alerts={"log": False}),
        collect_findings=True,
    )
    leaks = [f for f in summary.findings or () if f.detector.value == "leaked_token"]
    assert {e for f in leaks for e in f.event_ids} == {str(leaky.event_id)}


def test_a_leaking_url_repeated_is_found_in_every_event_that_carries_it(tmp_path):
    # Only clean text is remembered: a leak is reported for each event, not once.
    canaries = Canaries.make()
    url = f"https://fhir.example.org/r4?access_token={canaries.bearer}"
    events = [event(t, fhir_server=url) for t in range(3)]
    summary = run_embedded(
        [write_lines(tmp_path / "in.jsonl", [authz_line(e) for e in events])],
        tmp_path / "audit.duckdb",
        PipelineSettings(alerts={"log": False}),
        collect_findings=True,
    )
    leaks = [f for f in summary.findings or () if f.detector.value == "leaked_token"]
    assert {e for f in leaks for e in f.event_ids} == {str(e.event_id) for e in events}

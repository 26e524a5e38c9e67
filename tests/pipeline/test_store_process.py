"""An embedded run's store in a process of its own stores what the store thread stores.

``store_process="always"`` moves the DuckDB writer to a child (``store_process``,
``store_server``): the same rows must come out, its failures must reach the run, a run
that loses its store must fail and the next run end exactly once, and the signals that
stop a run must go through the run.
"""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from authz_events import event
from pipeline_support import (
    POISON,
    Canaries,
    authz_line,
    call_events,
    log_line,
    planted_lines,
    stored,
    write_lines,
)

from auditor.errors import InputError
from pipelines.settings import PipelineSettings
from pipelines.store import StoreBusyError, StoreError, StoreWriteError, StoreWriter
from pipelines.topology import embedded, run_embedded
from pipelines.topology import store_wire as wire
from pipelines.topology.progress import Progress
from pipelines.topology.store_process import StoreProcess

_EVENT_COLUMNS = "SELECT * EXCLUDE (ingested_at, run_id) FROM events ORDER BY event_id"
_TABLES = {
    "events": _EVENT_COLUMNS,
    # Wall-clock columns aside: a log record's finding is observed when it is read.
    "findings": "SELECT * EXCLUDE (observed_at, first_stored_at, last_stored_at, run_id) "
    "FROM findings ORDER BY finding_id",
    "dead_letters": "SELECT * EXCLUDE (received_at, run_id) FROM dead_letters "
    "ORDER BY dead_letter_id",
    "alerts": "SELECT finding_id, revision, severity FROM alerts ORDER BY alert_id",
    "offsets": "SELECT source, part, next_offset FROM ingest_offsets ORDER BY source",
    "runs": "SELECT mode, status, events_in, logs_in, findings_out, dead_letters, late_events "
    "FROM runs",
}


def _traffic(tmp_path: Path) -> Path:
    canaries = Canaries.make()
    lines = [authz_line(e) for e in call_events(400)]
    lines[100:100] = planted_lines(canaries, event(3, jti="j-canary"))
    lines[500:500] = list(POISON.values())
    lines[700:700] = [log_line("call", patient="Jane Doe", mrn="MRN-00123456")]
    return write_lines(tmp_path / "in.jsonl", lines)


def _settings(mode: str, **extra: Any) -> PipelineSettings:
    return PipelineSettings(
        store_process=mode,
        batch_records=97,
        store_batch_records=300,
        alerts={"log": False, "min_severity": "low"},
        **extra,
    )


def _tables(db: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: stored(db, sql) for name, sql in _TABLES.items()}


class _Children:
    """The store processes the runs start (the real ones, watched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started: list[StoreProcess] = []
        real = StoreProcess.open.__func__  # type: ignore[attr-defined]

        def spy(cls: type[StoreProcess], *args: Any, **kwargs: Any) -> StoreProcess:
            store = real(cls, *args, **kwargs)
            self.started.append(store)
            return store

        monkeypatch.setattr(StoreProcess, "open", classmethod(spy))

    @property
    def pid(self) -> int:
        return self.started[-1]._child.pid


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> _Children:
    return _Children(monkeypatch)


class _After(Progress):
    """Calls ``action`` once, after ``batches`` batches of the run."""

    def __init__(self, batches: int, action: Any) -> None:
        super().__init__(None)
        self.batches, self.action, self.seen = batches, action, 0

    def update(self, _summary: Any, *, lag: int | None = None) -> None:
        del lag
        self.seen += 1
        if self.seen == self.batches:
            self.action()


def test_the_store_process_stores_the_rows_the_store_thread_stores(tmp_path, children):
    source = _traffic(tmp_path)
    threaded = run_embedded([source], tmp_path / "thread.duckdb", _settings("never"))
    assert children.started == []
    separate = run_embedded([source], tmp_path / "process.duckdb", _settings("always"))
    (store,) = children.started
    assert store._child.pid != os.getpid()
    assert store._child.poll() == 0
    ours, theirs = _tables(tmp_path / "thread.duckdb"), _tables(tmp_path / "process.duckdb")
    assert {name: len(rows) for name, rows in theirs.items()} == {
        name: len(rows) for name, rows in ours.items()
    }
    assert theirs == ours
    assert len(ours["events"]) > 1000
    assert {row["detector"] for row in ours["findings"]} >= {
        "leaked_token",
        "phi_in_logs",
        "policy",
        "replay_burst",
    }
    assert len(ours["dead_letters"]) == len(POISON)
    assert separate.counters == threaded.counters
    assert separate.status == threaded.status == "completed"


def test_a_second_run_through_a_store_process_adds_nothing(tmp_path):
    source = _traffic(tmp_path)
    db = tmp_path / "audit.duckdb"
    run_embedded([source], db, _settings("always"))
    before = _tables(db)
    again = run_embedded([source], db, _settings("always"))
    assert again.counters.events_in == 0
    after = _tables(db)
    assert after.pop("runs")[-1]["status"] == "completed"
    before.pop("runs")
    assert after == before


def test_a_run_whose_store_process_dies_fails_and_the_next_run_ends_exactly_once(
    tmp_path, children
):
    source = _traffic(tmp_path)
    reference = tmp_path / "reference.duckdb"
    run_embedded([source], reference, _settings("never"))
    db = tmp_path / "audit.duckdb"
    StoreWriter.open(db).close()  # a store to resume: the run waits for it to be open
    settings = _settings("always", checkpoint_interval_s=0.001)
    kill = _After(4, lambda: os.kill(children.pid, signal.SIGKILL))
    with pytest.raises(StoreError, match=r"store process stopped"):
        run_embedded([source], db, settings, progress=kill)
    assert children.started[-1]._child.returncode == -signal.SIGKILL
    run_embedded([source], db, settings)
    ours, theirs = _tables(reference), _tables(db)
    statuses = [row["status"] for row in theirs.pop("runs")]
    assert statuses == ["interrupted", "completed"]  # the lost run, marked on next open
    ours.pop("runs")
    assert theirs == ours


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_store_process_alone_does_not_stop_it(sig, tmp_path, children):
    source = _traffic(tmp_path)
    db = tmp_path / "audit.duckdb"
    poke = _After(2, lambda: os.kill(children.pid, sig))
    summary = run_embedded([source], db, _settings("always"), progress=poke)
    assert summary.status == "completed"
    assert stored(db, "SELECT status FROM runs") == [{"status": "completed"}]


def test_a_package_of_the_same_name_in_the_working_directory_is_not_imported(tmp_path, monkeypatch):
    # As when a run starts from another checkout's folder: its store process must still run
    # the run's own code.
    other = tmp_path / "elsewhere"
    for package in ("pipelines", "pipelines/topology"):
        (other / package).mkdir(parents=True)
        (other / package / "__init__.py").write_text("raise ImportError('not this one')\n")
    (other / "pipelines/topology/store_server.py").write_text("raise SystemExit(3)\n")
    source = _traffic(tmp_path)
    monkeypatch.chdir(other)
    summary = run_embedded([source], tmp_path / "audit.duckdb", _settings("always"))
    assert summary.status == "completed"
    assert summary.counters.events_in > 0


def test_the_store_process_refuses_a_store_that_has_a_writer(tmp_path):
    db = tmp_path / "audit.duckdb"
    source = _traffic(tmp_path)
    with StoreWriter.open(db, serve=False), pytest.raises(StoreBusyError):
        run_embedded([source], db, _settings("always"))


def test_a_missing_folder_is_the_same_input_error_from_the_store_process(tmp_path):
    source = _traffic(tmp_path)
    with pytest.raises(InputError, match="is not a folder"):
        run_embedded([source], tmp_path / "nowhere" / "audit.duckdb", _settings("always"))


def test_a_new_store_is_opened_while_the_run_goes_on_and_its_failure_still_stops_the_run(
    tmp_path, children
):
    # A new file: nothing to resume, so the run detects while its store process starts.
    # Here the name is a link into a missing folder (it looks new and its folder writable),
    # so the open fails in the store process, after the run went on: with the same error.
    source = _traffic(tmp_path)
    db = tmp_path / "audit.duckdb"
    db.symlink_to(tmp_path / "nowhere" / "audit.duckdb")
    progress = _After(10**9, None)
    with pytest.raises(InputError, match="is not a folder"):
        run_embedded([source], db, _settings("always"), progress=progress)
    assert progress.seen >= 1  # batches were detected before the store's answer came
    assert children.started[-1]._child.returncode is not None  # and the process is gone
    # The same run on a new file in a real folder stores what the store thread stores.
    reference, fresh = tmp_path / "reference.duckdb", tmp_path / "fresh.duckdb"
    run_embedded([source], reference, _settings("never"))
    run_embedded([source], fresh, _settings("always"))
    ours, theirs = _tables(reference), _tables(fresh)
    assert theirs == ours


@pytest.mark.parametrize(
    "case",
    [
        (0, 0, False, True),  # the inputs just large enough, the cores just enough
        (1, 0, False, False),  # one byte short
        (0, 1, False, False),  # one core short
        (0, 0, True, False),  # standard input: its size is not known
    ],
)
def test_auto_gives_large_inputs_on_enough_cores_a_store_process(
    case, tmp_path, children, monkeypatch
):
    extra_bytes, extra_cores, stdin, separate = case
    source = _traffic(tmp_path)
    size = source.stat().st_size
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(embedded, "STORE_PROCESS_FROM_BYTES", size + extra_bytes)
    monkeypatch.setattr(embedded, "STORE_PROCESS_FROM_CORES", cores + extra_cores)
    inputs: list[str | Path] = [source]
    if stdin:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
        inputs.append("-")
    summary = run_embedded(inputs, tmp_path / "audit.duckdb", _settings("auto"))
    assert summary.status == "completed"
    assert bool(children.started) is separate


@pytest.mark.usefixtures("pipeline_logging")
def test_the_store_process_logs_through_the_run(tmp_path, capsys):
    source = _traffic(tmp_path)
    run_embedded([source], tmp_path / "audit.duckdb", _settings("always"))
    logged = capsys.readouterr().err
    assert '"event": "store.opened"' in logged
    assert '"event": "store.run_begun"' in logged


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (StoreWriteError("the batch could not be written (events)"), StoreWriteError, True),
        (StoreBusyError("/x.duckdb is held by PID 7"), StoreBusyError, True),
        (InputError("cannot create the store"), InputError, True),
        (duckdb.ConversionException("Could not convert 'Bearer eyJ.secret'"), StoreError, False),
        (ValueError("MRN-00123456"), StoreError, False),
        (MemoryError("MRN-00123456"), StoreError, False),
    ],
)
def test_errors_cross_with_their_kind_and_only_our_own_text(error, kind, text):
    crossed = wire.raised(wire.decode(wire.encode(wire.error_message(error))))
    assert type(crossed) is kind
    assert (str(error) in str(crossed)) is text
    assert type(error).__name__ in str(crossed) or type(crossed) is type(error)
    for secret in ("Bearer", "MRN-00123456"):
        assert secret not in str(crossed)


@pytest.mark.parametrize("mode", ["always", "never"])
def test_the_run_gives_its_store_the_configured_checkpoint_threshold(tmp_path, mode):
    source = _traffic(tmp_path)
    db = tmp_path / "audit.duckdb"
    seen: list[list[dict[str, Any]]] = []
    sql = "SELECT value FROM duckdb_settings() WHERE name = 'checkpoint_threshold'"
    # A store to resume: the run waits for it to be open before its first batch (a new
    # file is opened while the run goes on, and a query could come before it exists).
    StoreWriter.open(db).close()
    # Asked while the run writes: through the writer's endpoint, in whichever process.
    poke = _After(1, lambda: seen.append(stored(db, sql)))
    run_embedded([source], db, _settings(mode, store_checkpoint_mib=5), progress=poke)
    assert seen == [[{"value": "5.0 MiB"}]]

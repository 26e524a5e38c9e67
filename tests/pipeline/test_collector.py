"""The cyclic collector while a run goes: off, a full pass on a timer, restored after."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest
from pipeline_support import log_line, write_lines

from pipelines.settings import PipelineSettings
from pipelines.topology import embedded, run_embedded
from pipelines.topology.collector import paced_collector
from pipelines.topology.storing import StoreItem, StoreThread


class _Node:
    """An object that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _dropped_cycle() -> weakref.ref[_Node]:
    """A two-object cycle, no longer referenced from outside: only a collection frees it."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def _timers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "auditor-gc"]


@pytest.fixture(autouse=True)
def _collector_on():
    gc.enable()
    gc.collect()
    yield
    gc.enable()


def test_the_automatic_collector_is_off_inside_and_on_again_after():
    with paced_collector(every_s=3600):
        assert not gc.isenabled()
        watched = _dropped_cycle()
        # Far more allocations than any automatic threshold: nothing collects the cycle.
        keep = [[index] for index in range(200_000)]
        assert watched() is not None
        del keep
    assert gc.isenabled()
    assert not _timers()
    gc.collect()
    assert watched() is None


def test_a_cycle_made_inside_is_freed_by_the_timed_pass():
    with paced_collector(every_s=0.05):
        watched = _dropped_cycle()
        deadline = time.monotonic() + 10
        while watched() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watched() is None


def test_a_collector_off_before_stays_off_and_nesting_keeps_it_off():
    gc.disable()
    with paced_collector(every_s=3600):
        with paced_collector(every_s=3600):
            pass
        assert not gc.isenabled()
    assert not gc.isenabled()
    assert not _timers()


def test_objects_alive_at_the_start_are_out_of_sight_only_while_it_runs():
    with paced_collector(every_s=3600):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_an_embedded_run_runs_with_it_and_leaves_the_collector_as_it_found_it(
    tmp_path, monkeypatch
):
    seen: list[bool] = []

    class Watching(StoreThread):
        def put(self, item: StoreItem) -> None:
            seen.append(gc.isenabled())
            super().put(item)

    monkeypatch.setattr(embedded, "StoreThread", Watching)
    source = write_lines(tmp_path / "in.log", [log_line(f"request {n}") for n in range(3)])
    summary = run_embedded([source], tmp_path / "a.duckdb", PipelineSettings(store_process="never"))
    assert summary.records == 3
    assert seen
    assert not any(seen)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert not _timers()

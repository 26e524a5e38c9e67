"""The cyclic garbage collector while a run goes: off, and a full pass on a timer.

The pipeline frees nearly everything it allocates by reference counting: a whole
``bench/pipeline.py`` embedded run (200,000 records) leaves about twenty objects in
reference cycles. But it keeps a great deal alive for a while — detector state, the
reorder buffer, the outputs on their way to the store — and CPython's collector, which
runs after every so many net allocations, walks those survivors again and again. With
thresholds of 50,000 that was still 15-17% of the reader and detect stage's CPU
(``bench/pipeline.py``, "collector": the two policies in the same run).

So while a run goes the automatic collector is off and a thread collects in full every
``COLLECT_EVERY_S`` seconds: the cycles a run does make (an exception's traceback, a
library's internals) are freed within that time, and the cost of a pass is paid once a
period instead of once per 50,000 survivors. Objects alive when the run starts (modules,
compiled patterns, settings) are frozen out of the collector's sight for the run.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

COLLECT_EVERY_S: Final = 30.0
"""Seconds between the full collections of a run (the automatic collector is off)."""


@contextmanager
def paced_collector(every_s: float = COLLECT_EVERY_S) -> Iterator[None]:
    """Run the block with the automatic collector off and a full collection every ``every_s``.

    On exit the collector is as it was (on, unless it was off before) and the frozen
    objects are back in its sight. Nested blocks are harmless: the inner one leaves the
    collector off for the outer one.
    """
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    stop = threading.Event()
    timer = threading.Thread(
        target=_collect_every, args=(every_s, stop), name="auditor-gc", daemon=True
    )
    timer.start()
    try:
        yield
    finally:
        stop.set()
        timer.join()
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _collect_every(every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        gc.collect()


__all__ = ["COLLECT_EVERY_S", "paced_collector"]

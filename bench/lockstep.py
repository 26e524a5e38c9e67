"""What the lockstep A/B benchmarks share: a revision's files, and a pinned child to ask.

``bench/scan_ab.py`` and ``bench/redaction_ab.py`` run this checkout and another revision
side by side, each version in a child process pinned to the same core, asked one chunk
at a time over a line protocol (one request line in, one answer line out).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent.parent
"""This checkout."""


def extract(revision: str, into: Path) -> Path:
    """The files of ``revision`` of this repository, under ``into``."""
    archive = subprocess.run(  # noqa: S603 - git with a revision we were given
        ["git", "-C", str(HERE), "archive", revision],  # noqa: S607 - git from PATH
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


class PinnedChild:
    """``python -c code args...`` run in ``tree`` (on its path), pinned to ``cpu``.

    Args:
        code: The child's program: it reads request lines and answers each with one line.
        tree: The version's files; its working directory and ``PYTHONPATH``.
        cpu: The core to pin it to (``taskset``); ``None`` leaves it free.
        args: Arguments after the code.
        path: More ``PYTHONPATH`` entries, relative to ``tree``.
        env: More environment variables.
    """

    def __init__(
        self,
        code: str,
        tree: Path,
        cpu: int | None,
        *,
        args: Sequence[str] = (),
        path: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        argv = [sys.executable, "-c", code, *args]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        pythonpath = ":".join([str(tree), *(str(tree / p) for p in path)])
        environment = {**os.environ, "PYTHONPATH": pythonpath, **(env or {})}
        self._child = subprocess.Popen(  # noqa: S603 - our own code, fixed arguments
            argv,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tree,
        )

    def ask(self, request: str) -> str:
        """Send one request line; return the child's answer line."""
        stdin, stdout = self._streams()
        stdin.write(f"{request}\n")
        stdin.flush()
        return stdout.readline()

    def close(self) -> None:
        """Let the child finish."""
        stdin, _ = self._streams()
        stdin.close()
        self._child.wait()

    def _streams(self) -> tuple[IO[str], IO[str]]:
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        return self._child.stdin, self._child.stdout

"""File input of embedded runs: JSON lines, plain or gzip, or standard input.

The inputs are read in the order given, as one stream (an archive split by day is one
stream: the stream detectors' state carries from one file to the next). Positions are line
numbers from 1. A file is gzip when it starts with gzip's magic bytes, whatever its name.
A line longer than the record limit is not read into memory: it becomes one oversized
record (its first ``limit + 1`` bytes) and the rest of it is skipped.

Reading resumes: ``chunks(start, stored)`` starts each file at ``start[key]`` and marks the
chunks below ``stored[key]`` as replay (their rows are in the store already; they only
rebuild detector state), splitting a chunk at that boundary.
"""

from __future__ import annotations

import gzip
import io
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from auditor.errors import InputError
from pipelines.topology.detection import Chunk

STDIN: Final = "-"
_GZIP_MAGIC: Final = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input: a file path, or ``-`` for standard input."""

    name: str

    @property
    def is_stdin(self) -> bool:
        """Whether this input is standard input (which cannot be re-read)."""
        return self.name == STDIN

    @property
    def source(self) -> str:
        """The path as recorded in origins and dead letters (absolute), or ``-``."""
        return STDIN if self.is_stdin else str(Path(self.name).resolve())

    @property
    def key(self) -> str:
        """The ``ingest_offsets`` / checkpoint key of this input."""
        return f"file:{self.source}"

    def open(self) -> IO[bytes]:
        """Open for binary reading, decompressing gzip.

        Raises:
            InputError: The file cannot be opened; the message names the path.
        """
        if self.is_stdin:
            stdin: Any = sys.stdin.buffer
            if not hasattr(stdin, "peek"):  # a pipe is buffered; a replaced stdin may not be
                stdin = io.BufferedReader(stdin)
            if stdin.peek(2)[:2] == _GZIP_MAGIC:
                return gzip.GzipFile(fileobj=stdin, mode="rb")  # type: ignore[return-value]
            opened: IO[bytes] = stdin
            return opened
        path = Path(self.name)
        try:
            with path.open("rb") as probe:
                compressed = probe.read(2) == _GZIP_MAGIC
            return gzip.open(path, "rb") if compressed else path.open("rb")  # type: ignore[return-value]
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None


def check_inputs(names: Sequence[str]) -> list[InputFile]:
    """The inputs, checked to exist and be readable before anything starts.

    Raises:
        InputError: No input, stdin given twice, or a file missing or unreadable.
    """
    if not names:
        raise InputError("no input given")
    if list(names).count(STDIN) > 1:
        raise InputError("standard input (-) can be read only once")
    inputs = [InputFile(name) for name in names]
    for item in inputs:
        if item.is_stdin:
            continue
        path = Path(item.name)
        if not path.is_file():
            raise InputError(f"cannot read {path}: not a file")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return inputs


def _lines(stream: IO[bytes], limit: int) -> Iterator[tuple[bytes, int]]:
    """``(line, size)``: lines without their newline, cut after ``limit + 1`` bytes.

    ``size`` is the whole line's length, read past the cut (and dropped) for a longer one.
    """
    readline = stream.readline
    while True:
        line = readline(limit + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            line = line[:-1]
            yield line, len(line)
            continue
        size = len(line)
        if size > limit:
            while True:
                rest = readline(1 << 20)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    size -= rest.endswith(b"\n")
                    break
        yield line, size


class FileReader:
    """Reads inputs as chunks of lines for the detect stage.

    Args:
        inputs: The files (and at most one ``-``), in order.
        chunk_lines: Lines per chunk.
        max_bytes: The record limit (longer lines are cut and set aside).
    """

    def __init__(self, inputs: Sequence[InputFile], *, chunk_lines: int, max_bytes: int) -> None:
        self.inputs = list(inputs)
        self._size = chunk_lines
        self._limit = max_bytes

    def chunks(
        self, start: Mapping[str, int] | None = None, stored: Mapping[str, int] | None = None
    ) -> Iterator[tuple[Chunk, bool]]:
        """``(chunk, replay)`` for every input in order, resuming as the module says.

        Raises:
            InputError: A file cannot be read or decompressed.
        """
        start = start or {}
        stored = stored or {}
        for item in self.inputs:
            first = 1 if item.is_stdin else max(start.get(item.key, 1), 1)
            replay_until = 0 if item.is_stdin else stored.get(item.key, 0)
            try:
                yield from self._read(item, first, replay_until)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                # gzip reports truncation and corruption this way: the input is unreadable.
                what = getattr(exc, "strerror", None) or type(exc).__name__
                raise InputError(f"cannot read {item.name}: {what}") from None

    def _read(self, item: InputFile, first: int, replay_until: int) -> Iterator[tuple[Chunk, bool]]:
        with item.open() as stream:
            line_no = 0
            last_end = first
            positions: list[int] = []
            records: list[bytes] = []
            sizes: dict[int, int] = {}
            replaying = first < replay_until
            for raw, size in _lines(stream, self._limit):
                line_no += 1
                if line_no < first:
                    continue
                if replaying and line_no >= replay_until:
                    if records:
                        yield self._chunk(item, positions, records, line_no, sizes), True
                        last_end = line_no
                        positions, records, sizes = [], [], {}
                    replaying = False
                positions.append(line_no)
                records.append(raw)
                if size != len(raw):
                    sizes[len(records) - 1] = size
                if len(records) >= self._size:
                    yield self._chunk(item, positions, records, line_no + 1, sizes), replaying
                    last_end = line_no + 1
                    positions, records, sizes = [], [], {}
                    replaying = replaying and line_no + 1 < replay_until
            end = max(line_no + 1, first)
            if records or (end != last_end and not item.is_stdin):
                # An empty tail still moves the position (blank lines at the end).
                yield self._chunk(item, positions, records, end, sizes), replaying

    @staticmethod
    def _chunk(
        item: InputFile,
        positions: list[int],
        records: list[bytes],
        after: int,
        sizes: dict[int, int],
    ) -> Chunk:
        return Chunk(
            sizes=sizes,
            source=item.source,
            part=0,
            kind="lines",
            positions=positions,
            records=records,
            next_position=after,
            arrived=time.time(),
        )


__all__ = ["STDIN", "FileReader", "InputFile", "check_inputs"]

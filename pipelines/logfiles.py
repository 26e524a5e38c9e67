"""`LogFiles`: the lines of log files, directories and stdin, one at a time, as bytes.

A source for anything that reads logs line by line (``auditor scan``, ``auditor run
--input``): it yields each line's raw bytes with where it came from (path and 1-based line
number), in constant memory whatever the file size. Directories are read recursively in
name order; gzip files (told by their magic bytes, whatever their name: ``app.log.1.gz``,
rotated logs without the suffix) are decompressed on the fly, stdin included. Bytes are
passed on as read — invalid UTF-8 included — so the caller decides what to do with them
(``auditor scan`` examines such a line as text; the pipeline dead-letters it). A line
longer than ``max_line_bytes`` is cut: its first part is yielded, marked ``truncated``, and
the rest is skipped without being held.

Unreadable inputs (a missing path, a permission error, a corrupt gzip stream) go to the
``on_error`` callback with a message naming the path, and reading goes on with the next
input; without a callback they raise `auditor.errors.InputError`.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from itertools import count, repeat
from pathlib import Path
from typing import IO, Final, NamedTuple

from auditor.errors import InputError

STDIN: Final = "-"
"""The path that means standard input (also used when no path is given)."""
STDIN_NAME: Final = "<stdin>"
MAX_LINE_BYTES: Final = 16 << 20
_GZIP_MAGIC: Final = b"\x1f\x8b"
BLOCK_BYTES: Final = 1 << 20
_BUFFER: Final = 1 << 16

ErrorHandler = Callable[[str, str], None]
"""Called with (path, message) for an input that cannot be read."""


class SourceLine(NamedTuple):
    r"""One line as read (a tuple: one is made per line, so it is made cheaply).

    Attributes:
        path: The file it came from (``<stdin>`` for standard input).
        number: 1-based line number within that file.
        data: The line's bytes without its ending (``\n`` or ``\r\n``).
        truncated: The line was longer than the source's limit; ``data`` is its start.
    """

    path: str
    number: int
    data: bytes
    truncated: bool = False

    @property
    def origin(self) -> str:
        """``path:line``, as findings and dead letters name it."""
        return f"{self.path}:{self.number}"


class LogFiles:
    """The lines of ``paths`` (files, directories, ``-`` for stdin; stdin when empty).

    Args:
        paths: What to read, in order.
        stdin: The stream standing for ``-`` (default: this process's stdin).
        max_line_bytes: Longer lines are cut (see `SourceLine.truncated`).
        block_bytes: How much is read at a time (lines are split a block at a time).
        on_error: Receives unreadable inputs; without it they raise `InputError`.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        stdin: IO[bytes] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        block_bytes: int = BLOCK_BYTES,
        on_error: ErrorHandler | None = None,
    ) -> None:
        if max_line_bytes < 1 or block_bytes < 1:
            raise ValueError("max_line_bytes and block_bytes must be at least 1")
        self._block = block_bytes
        self._paths = list(paths) or [STDIN]
        self._stdin = stdin
        self._max = max_line_bytes
        self._on_error = on_error
        self.files_read = 0
        self.bytes_read = 0
        """Uncompressed bytes read so far (for progress reports)."""

    def _error(self, path: str, message: str) -> None:
        if self._on_error is None:
            raise InputError(f"cannot read {path}: {message}")
        self._on_error(path, message)

    def files(self) -> Iterator[str]:
        """The files to read: directories expanded recursively, in name order.

        Symbolic links to directories are not followed (no cycles); links to files are.
        """
        for path in self._paths:
            if path == STDIN:
                yield path
                continue
            if Path(path).is_dir():
                for root, dirs, names in os.walk(path, onerror=self._walk_error):
                    dirs.sort()
                    for name in sorted(names):
                        full = Path(root, name)
                        if full.is_file():
                            yield str(full)
            elif Path(path).exists():
                yield path
            else:
                self._error(path, "no such file or directory")

    def _walk_error(self, exc: OSError) -> None:
        self._error(str(exc.filename), exc.strerror or str(exc))

    def __iter__(self) -> Iterator[SourceLine]:
        for path in self.files():
            yield from self._read(path)

    def _read(self, path: str) -> Iterator[SourceLine]:
        name = STDIN_NAME if path == STDIN else path
        try:
            with ExitStack() as stack:
                stream = self._open(path, stack)
                self.files_read += 1
                yield from self._lines(stream, name)
        except (OSError, EOFError, zlib.error) as exc:
            self._error(name, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)

    def _open(self, path: str, stack: ExitStack) -> IO[bytes]:
        """The file as a buffered byte stream, decompressed when it is gzip.

        Everything opened here is closed by ``stack``, except stdin, which is not ours.
        """
        buffered: io.BufferedReader
        if path == STDIN:
            raw = self._stdin if self._stdin is not None else sys.stdin.buffer
            if isinstance(raw, io.BufferedReader):
                buffered = raw
            else:
                buffered = io.BufferedReader(raw, _BUFFER)  # type: ignore[arg-type]
        else:
            buffered = stack.enter_context(io.BufferedReader(io.FileIO(Path(path), "rb"), _BUFFER))
        if buffered.peek(2)[:2] == _GZIP_MAGIC:
            unzipped = stack.enter_context(gzip.GzipFile(fileobj=buffered, mode="rb"))
            return stack.enter_context(io.BufferedReader(unzipped, _BUFFER))
        return buffered

    def _lines(self, stream: IO[bytes], name: str) -> Iterator[SourceLine]:
        """The lines of ``stream``, read a block at a time and split in C.

        ``read1`` returns what one read gives (a pipe's lines as they come, not a full
        block). A line's start is held until its end is read, at most ``limit`` bytes of
        it: a longer one is yielded cut, then skipped to its end.
        """
        limit, block = self._max, self._block
        number = 0
        read = stream.read1  # type: ignore[attr-defined]
        rest = b""
        skipping = False
        while chunk := read(block):
            self.bytes_read += len(chunk)
            if skipping:
                end = chunk.find(b"\n")
                if end < 0:
                    continue
                chunk = chunk[end + 1 :]
                skipping = False
            data = rest + chunk if rest else chunk
            lines = data.split(b"\n")
            rest = lines.pop()
            if len(data) <= limit and b"\r" not in data:
                # The common block: no line can be too long, none ends with \r.
                yield from map(SourceLine, repeat(name), count(number + 1), lines)
                number += len(lines)
            else:
                for line in lines:
                    number += 1
                    if len(line) > limit:
                        yield SourceLine(name, number, line[:limit], truncated=True)
                    else:
                        yield SourceLine(name, number, line[:-1] if line[-1:] == b"\r" else line)
            if len(rest) > limit:
                number += 1
                yield SourceLine(name, number, rest[:limit], truncated=True)
                rest = b""
                skipping = True
        if rest:
            # A last line without its newline: as read (a \r there ends no line).
            yield SourceLine(name, number + 1, rest)

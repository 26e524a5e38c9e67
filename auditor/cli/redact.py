"""``auditor redact [FILE ...]``: redact log files (or stdin) line by line.

A line holding a JSON object is redacted structurally and written back as one JSON line
(byte for byte as read when nothing in it was sensitive); any other line, malformed JSON
included, is redacted as text. Same number of lines out as in, same order; memory stays
constant whatever the file size (a line longer than `MAX_LINE_BYTES` is replaced whole).
``.gz`` files are read transparently.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Final, cast

from auditor.errors import InputError
from auditor.fingerprints import Fingerprinter
from auditor.redaction import Redaction, Redactor, RedactorConfig

MAX_LINE_BYTES: Final = 16 << 20
"""A line longer than this (16 MiB) is replaced by a marker instead of being held."""
_CHUNK: Final = 1 << 20

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # the fast extra is optional

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogateescape"
        )


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor redact``."""
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="log files to redact (default: stdin)"
    )
    parser.add_argument(
        "--stats", action="store_true", help="print counts per rule to stderr at the end"
    )
    parser.add_argument(
        "--record-key",
        default="redacted",
        metavar="KEY",
        help="key under which a redacted JSON line lists what was replaced (default: %(default)s)",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not add the record key to JSON lines"
    )


def _open(path: str, stack: ExitStack) -> IO[bytes]:
    try:
        raw = stack.enter_context(Path(path).open("rb"))  # noqa: SIM115 - the exit stack closes it
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.endswith(".gz"):
        return cast("IO[bytes]", stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
    return raw


def _lines(stream: IO[bytes], name: str) -> Iterator[tuple[bytes, bytes]]:
    """Yield (content, line ending) pairs; over-long lines as (b"", ending) with a flag."""
    try:
        while True:
            line = stream.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                # Skip the rest of this line without holding it.
                while (rest := stream.readline(_CHUNK)) and not rest.endswith(b"\n"):
                    pass
                yield b"\x00oversized", b"\n"
                continue
            if line.endswith(b"\r\n"):
                yield line[:-2], b"\r\n"
            elif line.endswith(b"\n"):
                yield line[:-1], b"\n"
            else:
                yield line, b""
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None


class LineRedactor:
    """Redacts one line at a time and counts rules."""

    def __init__(self, redactor: Redactor, *, record_key: str | None) -> None:
        self._redactor = redactor
        self._record_key = record_key
        self.rules: Counter[str] = Counter()
        self.lines = 0
        self.changed = 0

    def redact(self, content: bytes) -> bytes:
        """The redacted line (without its ending); ``content`` itself when clean."""
        self.lines += 1
        if content == b"\x00oversized":
            self._count_rule("limit.oversized")
            return f"[REDACTED:oversized line over {MAX_LINE_BYTES} bytes]".encode()
        if content[:1] == b"{" or content.lstrip()[:1] == b"{":
            out = self._json(content)
            if out is not None:
                return out
        text = content.decode("utf-8", "surrogateescape")
        new, done = self._redactor.redact_line(text)
        if new is text:
            return content
        self._count(done)
        return new.encode("utf-8", "surrogateescape")

    def _json(self, content: bytes) -> bytes | None:
        try:
            value = _loads(content)
        except (ValueError, RecursionError):
            return None
        if not isinstance(value, dict):
            return None
        try:
            new, done = self._redactor.process(value)
        except Exception:  # noqa: BLE001 - fall back to redacting the line as text
            return None
        if done is None or not done.records:
            return content
        self._count(done)
        if self._record_key is None:
            new.pop(self._redactor.config.record_key or "", None)
        return _dumps(new)

    def _count(self, done: Redaction) -> None:
        self.changed += 1
        for _, rule in done.records:
            self.rules[rule] += 1

    def _count_rule(self, rule: str) -> None:
        self.changed += 1
        self.rules[rule] += 1


def run(args: argparse.Namespace) -> int:
    """Redact the files (or stdin) to stdout."""
    record_key = None if args.no_record else args.record_key
    # Not the process-wide singleton: each run reads the key from the environment afresh.
    fingerprinter = Fingerprinter.from_environment()
    config = RedactorConfig(record_key=record_key or "redacted", fingerprinter=fingerprinter)
    lines = LineRedactor(Redactor(config), record_key=record_key)
    out = sys.stdout.buffer
    for path in args.files:
        candidate = Path(path)
        if not candidate.exists() or candidate.is_dir():
            raise InputError(
                f"cannot read {path}: {'is a directory' if candidate.is_dir() else 'no such file'}"
            )
    with ExitStack() as stack:
        sources = [(_open(p, stack), p) for p in args.files] or [(sys.stdin.buffer, "<stdin>")]
        for stream, name in sources:
            for content, ending in _lines(stream, name):
                out.write(lines.redact(content))
                out.write(ending)
    out.flush()
    if args.stats:
        _print_stats(lines)
    return 0


def _print_stats(lines: LineRedactor) -> None:
    err = sys.stderr
    err.write(f"auditor redact: {lines.lines} lines, {lines.changed} redacted\n")
    width = max((len(rule) for rule in lines.rules), default=4)
    for rule, count in sorted(lines.rules.items(), key=lambda item: (-item[1], item[0])):
        err.write(f"  {rule:<{width}}  {count}\n")

"""`LogFiles`: lines of files, directories, gzip and stdin, as bytes, in constant memory."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from auditor.errors import InputError
from pipelines.logfiles import LogFiles, SourceLine


def _lines(source: LogFiles) -> list[tuple[str, int, bytes, bool]]:
    return [(line.path, line.number, line.data, line.truncated) for line in source]


def test_lines_come_with_their_file_and_one_based_number(tmp_path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\r\ntwo\nthree")  # CRLF, LF, and no final newline
    assert _lines(LogFiles([str(path)])) == [
        (str(path), 1, b"one", False),
        (str(path), 2, b"two", False),
        (str(path), 3, b"three", False),
    ]


def test_the_origin_is_path_and_line() -> None:
    assert SourceLine("app.log", 12, b"x").origin == "app.log:12"


def test_directories_are_read_recursively_in_name_order(tmp_path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.log").write_bytes(b"z\n")
    (tmp_path / "a.log").write_bytes(b"a\n")
    (tmp_path / "b" / "c.log").write_bytes(b"c\n")
    assert [line.data for line in LogFiles([str(tmp_path)])] == [b"a", b"c", b"z"]


def test_gzip_is_recognised_by_its_bytes_not_its_name(tmp_path) -> None:
    rotated = tmp_path / "app.log.1"  # no .gz suffix, as some rotations name them
    rotated.write_bytes(gzip.compress(b"first\nsecond\n"))
    named = tmp_path / "app.log.2.gz"
    named.write_bytes(gzip.compress(b"third\n"))
    assert [line.data for line in LogFiles([str(rotated), str(named)])] == [
        b"first",
        b"second",
        b"third",
    ]


def test_stdin_is_read_when_no_path_is_given_and_gzip_there_too() -> None:
    stdin = io.BytesIO(gzip.compress(b"from a pipe\n"))
    assert _lines(LogFiles([], stdin=stdin)) == [("<stdin>", 1, b"from a pipe", False)]


def test_invalid_utf8_is_passed_on_as_read(tmp_path) -> None:
    path = tmp_path / "bin.log"
    path.write_bytes(b"ok \xff\xfe bytes\n")
    assert [line.data for line in LogFiles([str(path)])] == [b"ok \xff\xfe bytes"]


def test_an_over_long_line_is_cut_and_the_rest_skipped(tmp_path) -> None:
    path = tmp_path / "long.log"
    path.write_bytes(b"x" * 100 + b"\nnext\n")
    assert _lines(LogFiles([str(path)], max_line_bytes=10)) == [
        (str(path), 1, b"x" * 10, True),
        (str(path), 2, b"next", False),
    ]


def test_a_missing_path_raises_without_a_handler(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(LogFiles([str(tmp_path / "missing.log")]))


def test_unreadable_inputs_go_to_the_handler_and_reading_goes_on(tmp_path) -> None:
    good = tmp_path / "good.log"
    good.write_bytes(b"fine\n")
    corrupt = tmp_path / "bad.gz"
    corrupt.write_bytes(gzip.compress(b"readable\n" * 10)[:-12])  # cut before its end
    errors: list[tuple[str, str]] = []
    source = LogFiles(
        [str(tmp_path / "missing.log"), str(corrupt), str(good)],
        on_error=lambda path, message: errors.append((path, message)),
    )
    # What could be read before the cut is read; then the error, then the next file.
    assert [line.data for line in source][-1] == b"fine"
    assert [path for path, _ in errors] == [str(tmp_path / "missing.log"), str(corrupt)]
    assert source.files_read == 2


def _reference(data: bytes, limit: int) -> list[tuple[bytes, bool]]:
    """What the lines of ``data`` are, said plainly: split at newlines, a terminated
    line loses one CR before its newline, a line longer than ``limit`` is cut."""
    pieces = data.split(b"\n")
    last = pieces.pop()
    out = []
    for piece in pieces:
        if len(piece) > limit:
            out.append((piece[:limit], True))
        else:
            out.append((piece.removesuffix(b"\r"), False))
    if last:
        out.append((last[:limit], len(last) > limit))
    return out


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.one_of(st.binary(max_size=12), st.sampled_from([b"\n", b"\r\n", b"\r", b"\xff"]))
    ).map(b"".join),
    limit=st.integers(1, 16),
    block=st.integers(1, 20),
)
def test_lines_do_not_depend_on_where_blocks_end(data: bytes, limit: int, block: int) -> None:
    # Lines are split a block at a time: a line, a CRLF or an over-long line may straddle
    # any number of blocks, and a tiny block puts every boundary everywhere.
    assume(not data.startswith(b"\x1f\x8b"))  # gzip's magic: read as gzip (tested above)
    source = LogFiles(["-"], stdin=io.BytesIO(data), max_line_bytes=limit, block_bytes=block)
    assert [(line.data, line.truncated) for line in source] == _reference(data, limit)

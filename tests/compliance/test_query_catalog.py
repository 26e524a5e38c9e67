"""The query catalog: headers, parameter types and binding, relative times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.catalog import (
    QueryError,
    bind,
    catalog,
    get_query,
    parse_query_file,
    parse_timestamp,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

SPEC = parse_query_file(
    "sample",
    """-- A sample query.
--
-- @param since   timestamp            null      Start.
-- @param days    int                  7         Deadline.
-- @param score   float                null      Minimum score.
-- @param live    bool                 false     Live only.
-- @param iss     text                 null      A client.
-- @param period  choice(day|week)     week      Bucket.
-- @param fp      text                 required  A fingerprint.
--
-- Notes about the query.
SELECT $since, $days, $score, $live, $iss, $period, $fp
""",
)


def test_every_shipped_query_loads_with_a_description() -> None:
    specs = catalog()
    assert len(specs) >= 13
    for spec in specs.values():
        assert spec.description.endswith(".")
        assert spec.sql


def test_every_shipped_query_documents_its_parameters() -> None:
    for spec in catalog().values():
        for param in spec.parameters:
            assert param.description, (spec.name, param.name)


def test_since_and_until_are_timestamps_wherever_a_query_takes_them() -> None:
    for spec in catalog().values():
        for name in ("since", "until"):
            param = spec.parameter(name)
            if param is not None:
                assert param.type == "timestamp", spec.name


def test_a_query_is_found_by_a_dashed_name() -> None:
    assert get_query("leaked-tokens").name == "leaked_tokens"


def test_an_unknown_query_is_an_error_that_points_to_the_list() -> None:
    with pytest.raises(QueryError, match="auditor query --list"):
        get_query("drop_tables")


def test_header_is_read_into_typed_parameters() -> None:
    assert SPEC.description == "A sample query."
    assert SPEC.notes == "Notes about the query."
    by_name = {p.name: p for p in SPEC.parameters}
    assert by_name["days"].default == 7
    assert by_name["live"].default is False
    assert by_name["period"].choices == ("day", "week")
    assert by_name["fp"].required


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # No description: the first line is what `--list` prints.
        ("-- @param a int 1 x\nSELECT $a", "description"),
        # A parameter used in SQL but not declared would be an unbound placeholder.
        ("-- Q.\nSELECT $a", "undeclared parameters \\['a'\\]"),
        # A declared parameter the SQL never uses is a typo somewhere.
        ("-- Q.\n-- @param a int 1 x\nSELECT 1", "unused parameters \\['a'\\]"),
        # Types are a closed set.
        ("-- Q.\n-- @param a money 1 x\nSELECT $a", "unknown type"),
        # A default must have the declared type.
        ("-- Q.\n-- @param a int many x\nSELECT $a", "default of 'a'"),
        # A choice default must be one of the choices.
        ("-- Q.\n-- @param a choice(x|y) z d\nSELECT $a", "default of 'a'"),
        # Each name once.
        ("-- Q.\n-- @param a int 1 x\n-- @param a int 2 y\nSELECT $a", "twice"),
        # A @param line needs a type, a default and a description.
        ("-- Q.\n-- @param a int\nSELECT $a", "cannot read"),
    ],
)
def test_malformed_query_files_are_refused(text: str, error: str) -> None:
    with pytest.raises(QueryError, match=error):
        parse_query_file("broken", text)


@pytest.mark.parametrize(
    ("given", "name", "expected"),
    [
        # Text from the command line becomes the declared type.
        ({"days": "30"}, "days", 30),
        ({"score": "2.5"}, "score", 2.5),
        ({"live": "yes"}, "live", True),
        ({"live": "0"}, "live", False),
        ({"period": "day"}, "period", "day"),
        # Python values from the dashboard are accepted as they are.
        ({"days": 3}, "days", 3),
        ({"live": True}, "live", True),
        # Timestamps are bound as ISO 8601 text in UTC (the SQL casts them).
        ({"since": "2026-11-01"}, "since", "2026-11-01T00:00:00+00:00"),
        ({"since": "2026-11-01T10:00:00+02:00"}, "since", "2026-11-01T08:00:00+00:00"),
        ({"since": "2026-11-01T10:00:00"}, "since", "2026-11-01T10:00:00+00:00"),
        ({"since": "7d"}, "since", "2026-11-23T12:00:00+00:00"),
        ({"since": datetime(2026, 1, 1, tzinfo=UTC)}, "since", "2026-01-01T00:00:00+00:00"),
        # Defaults fill what is not given; null stays None.
        ({}, "days", 7),
        ({}, "score", None),
        ({}, "period", "week"),
    ],
)
def test_parameters_are_coerced_to_their_types(
    given: dict[str, object], name: str, expected: object
) -> None:
    bound = bind(SPEC, {"fp": "k1:ab", **given}, now=NOW)
    assert bound[name] == expected


@pytest.mark.parametrize(
    ("given", "error"),
    [
        # Not an integer.
        ({"days": "seven"}, "'days' of query 'sample' must be an integer"),
        # A bool is not an integer, even though Python thinks so.
        ({"days": True}, "must be an integer"),
        # Integers beyond 2^53 do not survive JSON transports.
        ({"days": str(2**60)}, "must be an integer"),
        # NaN and infinity are not scores.
        ({"score": "nan"}, "must be a number"),
        ({"live": "maybe"}, "must be true or false"),
        ({"period": "fortnight"}, "must be one of day, week"),
        ({"since": "last tuesday"}, "must be an ISO 8601 date or time"),
        # Control characters have no business in a filter value.
        ({"iss": "a\x1b[2Jb"}, "printable text"),
        ({"iss": "x" * 600}, "printable text of at most 512"),
        # Unknown names are refused and the known ones listed.
        ({"sql": "1; DROP TABLE findings"}, "has no parameter 'sql' \\(its parameters: since"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(
    given: dict[str, object], error: str
) -> None:
    with pytest.raises(QueryError, match=error):
        bind(SPEC, {"fp": "k1:ab", **given}, now=NOW)


def test_a_refused_value_is_not_repeated_in_the_message() -> None:
    secret = "eyJhbGciOiJFUzM4NCJ9.e30.c2ln"
    with pytest.raises(QueryError) as caught:
        bind(SPEC, {"fp": "k1:ab", "days": secret}, now=NOW)
    assert secret not in str(caught.value)


def test_a_required_parameter_must_be_given() -> None:
    with pytest.raises(QueryError, match="needs the parameter 'fp'"):
        bind(SPEC, {}, now=NOW)


def test_a_required_parameter_cannot_be_null() -> None:
    with pytest.raises(QueryError, match="needs the parameter 'fp'"):
        bind(SPEC, {"fp": None}, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("15m", datetime(2026, 11, 30, 11, 45, tzinfo=UTC)),
        ("24h", datetime(2026, 11, 29, 12, tzinfo=UTC)),
        ("2w", datetime(2026, 11, 16, 12, tzinfo=UTC)),
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28T10:00:00Z", datetime(2026, 11, 28, 10, tzinfo=UTC)),
    ],
)
def test_timestamps_read_iso_dates_and_ages(text: str, expected: datetime) -> None:
    assert parse_timestamp(text, now=NOW) == expected

"""Look-alike shapes: recognised whole, and used only where no trigger can occur in them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.patterns import default_library
from auditor.patterns.lookalikes import SHAPES, Lookalikes, shape_admits, shape_pattern

LIBRARY = default_library()
LOOKALIKES = Lookalikes(LIBRARY.prefilter.triggers)


def test_every_shape_holds_no_trigger_of_the_default_rules() -> None:
    assert LOOKALIKES.names == tuple(SHAPES)


@pytest.mark.parametrize(
    ("shape", "trigger", "admits"),
    [
        # A hex word fits wherever hex digits run long enough.
        ("uuid", b"deadbeef", True),
        ("hex", b"deadbeef", True),
        # UUID groups are 8-4-4-4-12: no group of two or three digits between dashes.
        ("uuid", b"000-00-0000", False),
        ("uuid", b"000-000-0000", False),
        # At most three digits a part: a phone number's four-digit tail cannot fit.
        ("dotted", b"000.000.0000", False),
        ("dotted", b"000.000.000", True),
        # A date is 4-2-2: an SSN's 3-2-4 cannot fit, nor can a keyword.
        ("timestamp", b"000-00-0000", False),
        ("timestamp", b"dob:", False),
        ("timestamp", b"00t00", True),
        # One optional minus sign, then digits: no E.164 phone (it needs a plus).
        ("number", b"+00000000000", False),
        ("number", b"-000", True),
        # Letters of a keyword are not in any shape's alphabet.
        ("hex", b"eyj", False),
    ],
)
def test_the_proof_says_which_triggers_fit_which_shape(shape, trigger, admits) -> None:
    assert shape_admits(shape, trigger) is admits


def test_a_trigger_that_fits_a_shape_switches_that_shape_off() -> None:
    # Eight hex digits in a row fit a UUID, a digest, a number and a timestamp's fraction
    # of a second; only the dotted shape (at most three a part) keeps out "deadbeef".
    lookalikes = Lookalikes([b"deadbeef", b"kty"])
    assert lookalikes.names == ("dotted",)
    assert not lookalikes.match("deadbeef-0000-4000-8000-000000000000")


def test_no_shape_in_use_matches_nothing() -> None:
    lookalikes = Lookalikes([b"0"])  # a digit trigger fits every shape
    assert lookalikes.names == ()
    assert lookalikes.skeletons == frozenset()
    assert not lookalikes.match("12")


def test_shapes_whose_values_may_be_longer_than_the_limit_are_not_used() -> None:
    # The Redactor replaces a value longer than its limit whole, whatever its shape.
    assert Lookalikes(LIBRARY.prefilter.triggers, max_length=40).names == (
        "uuid",
        "dotted",
        "timestamp",
    )


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ("5497db67-a54b-4b83-b440-cabee0ed4a62", True),  # hookInstance, request ids
        ("5497DB67-A54B-4B83-B440-CABEE0ED4A62", True),  # upper case is the same UUID
        ("4bf92f3577b34da6a3ce929d0e0e4736", True),  # a trace id
        ("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", True),  # sha256
        ("10.23.0.17", True),  # an IPv4 address
        ("v1.2.3", True),  # a version
        ("2026-11-28T10:00:00.123456Z", True),  # structlog's ISO timestamp
        ("2026-11-28 10:00:00+01:00", True),
        ("2026-11-28", True),  # a date alone is no birth date
        ("-12.5", True),
        ("beef", True),  # skeletons are over hex digits: a hex word is a number's twin
        ("\udc80", False),  # a lone surrogate is no shape (and does not raise)
        ("5497db67-a54b-4b83-b440-cabee0ed4a6g", False),  # not hex
        ("555.123.4567", False),  # a phone number
        ("536-22-8714", False),  # an SSN
        ("1.2.3\n", False),  # a trailing newline is not part of a shape
        ("1.2.3 ssn", False),  # the whole value, not a prefix
        ("+15551234567", False),
        ("", False),
    ],
)
def test_look_alikes_are_matched_whole_and_near_misses_are_not(text, whole) -> None:
    assert bool(LOOKALIKES.match(text)) is whole


shaped = st.sampled_from(sorted(SHAPES)).flatmap(
    lambda name: st.from_regex(re.compile(shape_pattern(name)), fullmatch=True)
)


@settings(max_examples=150, deadline=None)
@given(shaped)
def test_no_rule_finds_anything_in_a_value_of_a_shape(value) -> None:
    assert LOOKALIKES.match(value)
    assert LIBRARY.prefilter.rules(value) == frozenset()
    assert LIBRARY.find_in_text(value) == []
    for rule in LIBRARY.rules.values():
        assert not list(rule.find(value)), rule.name

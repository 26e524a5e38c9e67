"""Checks that turn a shape into a finding: SSN and NANP numbering rules, e-mail, dates.

Each check is a pure function of the candidate text. They exist to keep look-alikes out:
a 3-2-4 digit group whose area is 000 is no SSN, a 3-3-4 group whose area code starts
with 1 is no US phone number, a file name like ``icon@2x.png`` is no e-mail address.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

EXAMPLE_SSNS: Final = frozenset({"078051120", "219099999", "123456789"})
"""SSNs printed in advertising and documentation; matched with lower confidence."""


def ssn_is_valid(area: str, group: str, serial: str) -> bool:
    """Whether three digit groups can form an issued SSN (SSA numbering rules).

    Area 000, 666 and 900-999 are never issued; nor are group 00 and serial 0000.
    """
    if len(area) != 3 or len(group) != 2 or len(serial) != 4:  # noqa: PLR2004 - SSN layout
        return False
    if area in {"000", "666"} or area[0] == "9":
        return False
    return group != "00" and serial != "0000"


def ssn_digits_are_valid(digits: str) -> bool:
    """`ssn_is_valid` for nine digits written without separators."""
    if len(digits) != 9 or not digits.isdigit():  # noqa: PLR2004 - SSN layout
        return False
    return ssn_is_valid(digits[:3], digits[3:5], digits[5:])


def nanp_is_valid(npa: str, nxx: str) -> bool:
    """Whether an area code and exchange can form a North American number.

    Both start with 2-9; neither is an N11 service code; area codes with 9 in the middle
    are reserved for expansion.
    """
    if len(npa) != 3 or len(nxx) != 3 or npa[0] in "01" or nxx[0] in "01":  # noqa: PLR2004
        return False
    if npa[1] == "9":
        return False
    return npa[1:] != "11" and nxx[1:] != "11"


def nanp_digits_are_valid(digits: str) -> bool:
    """`nanp_is_valid` for 10 digits, or 11 starting with the country code 1."""
    if len(digits) == 11 and digits[0] == "1":  # noqa: PLR2004 - +1 country code
        digits = digits[1:]
    return len(digits) == 10 and digits.isdigit() and nanp_is_valid(digits[:3], digits[3:6])  # noqa: PLR2004


def nanp_is_fictional(nxx: str, line: str) -> bool:
    """555-0100 through 555-0199 are reserved for fiction (matched with lower confidence)."""
    return nxx == "555" and line.startswith("01")


_FILE_SUFFIXES: Final = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "pdf", "map"}
)


def email_domain_is_valid(domain: str) -> bool:
    """Whether ``domain`` can be the domain of a real address.

    Labels of letters, digits and inner hyphens; a final label of at least two letters
    that is not a file suffix (``icon@2x.png`` is an asset name, not an address).
    """
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253:  # noqa: PLR2004 - DNS limits
        return False
    tld = labels[-1]
    if not (tld.isalpha() and tld.isascii() and len(tld) >= 2) or tld.lower() in _FILE_SUFFIXES:  # noqa: PLR2004
        return False
    return all(0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" for label in labels)  # noqa: PLR2004


_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
MONTH_NAMES: Final = "|".join(sorted(_MONTHS, key=len, reverse=True))
"""Month names and abbreviations, longest first, for building date patterns."""

_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_YMD_SLASH = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")
_MDY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})")
_MONTH_DAY_YEAR = re.compile(rf"(?i:({MONTH_NAMES}))\.?\s+(\d{{1,2}}),?\s+(\d{{4}})")
_DAY_MONTH_YEAR = re.compile(rf"(\d{{1,2}})\s+(?i:({MONTH_NAMES}))\.?,?\s+(\d{{4}})")

MIN_BIRTH_YEAR: Final = 1880
MAX_BIRTH_YEAR: Final = 2100


def _plausible(year: int, month: int, day: int) -> bool:
    if not MIN_BIRTH_YEAR <= year <= MAX_BIRTH_YEAR:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def parse_birth_date(text: str) -> bool:
    """Whether ``text`` starts with a plausible calendar date in a common written form.

    ISO (1954-03-07), year first with slashes, US month/day/year with ``/``, ``-`` or
    ``.``, and written months (March 7, 1954; 7 Mar 1954). A bare year is not a date of
    birth (Safe Harbor keeps years).
    """
    if m := _ISO.match(text) or _YMD_SLASH.match(text):
        return _plausible(int(m[1]), int(m[2]), int(m[3]))
    if m := _MDY.match(text):
        year = int(m[3])
        if len(m[3]) == 2:  # noqa: PLR2004 - two-digit years
            year += 1900 if year > 30 else 2000  # noqa: PLR2004 - pivot for birth years
        return _plausible(year, int(m[1]), int(m[2])) or _plausible(year, int(m[2]), int(m[1]))
    if m := _MONTH_DAY_YEAR.match(text):
        return _plausible(int(m[3]), _MONTHS[m[1].lower()], int(m[2]))
    if m := _DAY_MONTH_YEAR.match(text):
        return _plausible(int(m[3]), _MONTHS[m[2].lower()], int(m[1]))
    return False


_PLACEHOLDERS: Final = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "true",
        "false",
        "redacted",
        "filtered",
        "hidden",
        "masked",
        "n/a",
        "na",
        "unknown",
        "...",
        "-",
    }
)
_PLACEHOLDER_SHAPE = re.compile(
    r"""[*x•#._-]+                 # ****, xxxx, ----
      | <[\w .:-]{1,64}>            # <token>
      | \{\{?[\w .:-]{1,64}\}\}?    # {token}, {{ token }}
      | \$\{[\w .:-]{1,64}\}?        # ${SECRET} (its brace may end a bare value)
      | %(?:\(\w{1,64}\))?s          # %s, %(token)s
      | \[(?:redacted|filtered)\b.*  # our own markers and other tools'
    """,
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


_LONGEST_PLACEHOLDER: Final = max(map(len, _PLACEHOLDERS))
_SHAPE_FIRST: Final = frozenset("*xX\u2022#._-<{$%[")
"""The characters a `_PLACEHOLDER_SHAPE` match can start with (case-insensitive)."""


def is_placeholder(value: str) -> bool:
    """Whether a value in a sensitive place is a placeholder rather than a secret.

    ``null``, ``***``, ``<token>``, ``${SECRET}`` and redaction markers are what code and
    documentation write where a secret would go; redacting them again is noise.
    """
    stripped = value.strip().strip("\"'")
    return stripped.lower() in _PLACEHOLDERS or _PLACEHOLDER_SHAPE.fullmatch(stripped) is not None


MIN_CREDENTIAL_CHARS: Final = 8
LONG_CREDENTIAL_CHARS: Final = 20


def looks_like_credential(value: str) -> bool:
    """Whether an opaque string is shaped like a credential rather than a word.

    At least 8 characters, and a digit or punctuation in it, or at least 20 characters:
    random tokens nearly always have one; the words that follow ``Bearer`` or ``token:``
    in prose ("Bearer authentication", "token: expired") do not.
    """
    if len(value) < MIN_CREDENTIAL_CHARS or is_placeholder(value):
        return False
    if len(value) >= LONG_CREDENTIAL_CHARS:
        return True
    return not value.isalpha()

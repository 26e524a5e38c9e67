"""The named compliance queries: one ``.sql`` file per question, shipped as package data.

Each file in ``dashboards/queries/`` starts with a header of ``--`` comment lines:

.. code-block:: sql

    -- Leaked tokens by service and day, live-at-leak-time ones first.
    --
    -- @param since    timestamp  null      Start of the period (inclusive).
    -- @param iss      text       required  The client's iss.
    -- @param period   choice(day|week|month)  week  Length of one period.
    --
    -- Free lines: what the rows mean, what the query assumes.

The first line is the description; ``@param NAME TYPE DEFAULT DESCRIPTION`` declares a
parameter. Types: ``text``, ``int``, ``float``, ``bool``, ``timestamp``,
``choice(a|b|c)``; the default is a literal of that type, ``null`` or ``required``. The
SQL names parameters as ``$name`` and every declared name must be used (and vice versa):
the catalog checks this when it loads, so a typo fails in the test suite, not at 3 a.m.

Values are always bound, never pasted into SQL. Timestamps are bound as ISO 8601 text in
UTC and cast in the SQL (``$since::TIMESTAMPTZ``), so the same query runs unchanged
whether the store is opened directly or reached through the pipeline's writer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Final

from auditor.errors import AuditorError

if TYPE_CHECKING:
    import pyarrow as pa

    from dashboards.storage import StoreHandle

__all__ = [
    "Parameter",
    "QueryError",
    "QuerySpec",
    "bind",
    "catalog",
    "get_query",
    "parse_query_file",
    "parse_timestamp",
    "run_query",
]

SCALAR_TYPES: Final = frozenset({"text", "int", "float", "bool", "timestamp"})
MAX_TEXT: Final = 512

_NAME = r"[a-z][a-z0-9_]{0,63}"
_PARAM_LINE = re.compile(rf"^@param\s+({_NAME})\s+(\S+)\s+(\S+)\s+(\S.*)$")
_CHOICE = re.compile(r"^choice\(([a-z0-9_]+(?:\|[a-z0-9_]+)*)\)$")
_PLACEHOLDER = re.compile(rf"\$({_NAME})\b")
_RELATIVE = re.compile(r"^(\d{1,6})([mhdw])$")
_RELATIVE_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MAX_INT: Final = 2**53
_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})


class QueryError(AuditorError):
    """An unknown query, a bad parameter, or a malformed query file.

    Messages name the query and the parameter and say what was expected; they never
    repeat the value given (it may be something that should not be echoed).
    """


@dataclass(frozen=True, slots=True)
class Parameter:
    """One declared parameter of a named query."""

    name: str
    type: str
    required: bool
    default: object
    description: str
    choices: tuple[str, ...] = ()

    @property
    def type_label(self) -> str:
        """The type as the header writes it."""
        return f"choice({'|'.join(self.choices)})" if self.choices else self.type


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A named query: its SQL and the parameters its header declares."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    notes: str
    sql: str

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, if the query declares it."""
        return next((p for p in self.parameters if p.name == name), None)


def parse_timestamp(text: str, *, now: datetime) -> datetime:
    """Read a point in time: ISO 8601, ``now``, or an age such as ``7d``.

    A date means midnight UTC and a time without a zone is UTC; an age (``15m``, ``24h``,
    ``7d``, ``2w``) means that long before ``now``.

    Raises:
        ValueError: ``text`` is none of these.
    """
    value = text.strip()
    if value == "now":
        return now.astimezone(UTC)
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = int(relative.group(1)), _RELATIVE_UNITS[relative.group(2)]
        return (now - timedelta(**{unit: amount})).astimezone(UTC)
    if len(value) == len("2026-11-28"):
        day = date.fromisoformat(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _as_text(value: object, _now: datetime) -> object:
    if not isinstance(value, str):
        raise TypeError(value)
    if len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(value)
    return value


def _as_int(value: object, _now: datetime) -> object:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(value)
    number = int(value)
    if abs(number) > _MAX_INT:
        raise ValueError(value)
    return number


def _as_float(value: object, _now: datetime) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _as_bool(value: object, _now: datetime) -> object:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError(value)
    return lowered in _TRUE


def _as_timestamp(value: object, now: datetime) -> object:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        moment = parse_timestamp(value, now=now)
    else:
        raise TypeError(value)
    return moment.astimezone(UTC).isoformat()


_COERCE: Final = {
    "text": _as_text,
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "timestamp": _as_timestamp,
}


def _coerce(param: Parameter, value: object, *, now: datetime) -> object:
    """Turn a given value (text from the command line, or a Python value) into a bound one.

    Raises:
        ValueError, TypeError: The value has not the declared form.
    """
    if value is None:
        return None
    if param.choices:
        if value not in param.choices:
            raise ValueError(value)
        return value
    return _COERCE[param.type](value, now)


def _expected_form(param: Parameter) -> str:
    if param.choices:
        return f"one of {', '.join(param.choices)}"
    return {
        "text": f"printable text of at most {MAX_TEXT} characters",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "timestamp": "an ISO 8601 date or time, 'now', or an age like 24h, 7d, 2w",
    }[param.type]


def bind(spec: QuerySpec, given: Mapping[str, object], *, now: datetime) -> dict[str, object]:
    """Check and convert parameters for ``spec``; defaults fill what is not given.

    Args:
        spec: The query.
        given: Values by parameter name: text as typed on a command line, or Python
            values (``int``, ``float``, ``bool``, ``datetime``, ``str``); ``None`` is NULL.
        now: The time that relative timestamps (``7d``) count back from.

    Raises:
        QueryError: An unknown name, a missing required parameter, or a value of the
            wrong form. The message says what is expected, not what was given.
    """
    unknown = sorted(set(given) - {p.name for p in spec.parameters})
    if unknown:
        known = ", ".join(p.name for p in spec.parameters) or "none"
        raise QueryError(
            f"query '{spec.name}' has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {known})"
        )
    bound: dict[str, object] = {}
    for param in spec.parameters:
        if param.name not in given:
            if param.required:
                raise QueryError(f"query '{spec.name}' needs the parameter '{param.name}'")
            bound[param.name] = param.default
            continue
        try:
            bound[param.name] = _coerce(param, given[param.name], now=now)
        except (ValueError, TypeError, OverflowError):
            raise QueryError(
                f"parameter '{param.name}' of query '{spec.name}' must be {_expected_form(param)}"
            ) from None
        if bound[param.name] is None and param.required:
            raise QueryError(f"query '{spec.name}' needs the parameter '{param.name}'")
    return bound


def _parse_param(query: str, line: str) -> Parameter:
    match = _PARAM_LINE.match(line)
    if match is None:
        raise QueryError(f"query file '{query}': cannot read the line '{line}'")
    name, type_text, default_text, description = match.groups()
    choice = _CHOICE.match(type_text)
    choices = tuple(choice.group(1).split("|")) if choice else ()
    if not choices and type_text not in SCALAR_TYPES:
        raise QueryError(f"query file '{query}': parameter '{name}' has an unknown type")
    kind = "text" if choices else type_text
    param = Parameter(
        name, kind, required=False, default=None, description=description, choices=choices
    )
    if default_text == "required":
        return Parameter(
            name, kind, required=True, default=None, description=description, choices=choices
        )
    if default_text == "null":
        return param
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    try:
        default = _coerce(param, default_text, now=epoch)
    except ValueError:
        raise QueryError(
            f"query file '{query}': the default of '{name}' is not {_expected_form(param)}"
        ) from None
    return Parameter(
        name, kind, required=False, default=default, description=description, choices=choices
    )


def parse_query_file(name: str, text: str) -> QuerySpec:
    """Read one query file: its header and its SQL.

    Raises:
        QueryError: The header is malformed or the parameters do not match the SQL.
    """
    lines = text.splitlines()
    header: list[str] = []
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line[2:].strip())
    sql = "\n".join(lines[len(header) :]).strip()
    description = next((h for h in header if h), "")
    if not description or description.startswith("@"):
        raise QueryError(f"query file '{name}' must start with a one-line description")
    params: list[Parameter] = []
    notes: list[str] = []
    for line in header[header.index(description) + 1 :]:
        if line.startswith("@param"):
            params.append(_parse_param(name, line))
        else:
            notes.append(line)
    declared = [p.name for p in params]
    if len(set(declared)) != len(declared):
        raise QueryError(f"query file '{name}' declares a parameter twice")
    used = set(_PLACEHOLDER.findall(sql))
    if used != set(declared):
        missing = sorted(used - set(declared))
        unused = sorted(set(declared) - used)
        raise QueryError(
            f"query file '{name}': undeclared parameters {missing}, unused parameters {unused}"
        )
    if not sql:
        raise QueryError(f"query file '{name}' has no SQL")
    return QuerySpec(name, description, tuple(params), "\n".join(notes).strip(), sql)


@cache
def catalog() -> Mapping[str, QuerySpec]:
    """Every named query shipped with the package, by name."""
    folder = resources.files("dashboards") / "queries"
    specs = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            name = entry.name.removesuffix(".sql")
            specs[name] = parse_query_file(name, entry.read_text(encoding="utf-8"))
    return specs


def get_query(name: str) -> QuerySpec:
    """The query called ``name`` (dashes may stand for underscores).

    Raises:
        QueryError: No query has that name.
    """
    spec = catalog().get(name.replace("-", "_"))
    if spec is None:
        raise QueryError(f"no query named '{name}'; 'auditor query --list' shows them")
    return spec


def run_query(
    store: StoreHandle,
    name: str,
    params: Mapping[str, object] | None = None,
    *,
    now: datetime | None = None,
) -> pa.Table:
    """Run the named query against ``store`` with checked, bound parameters.

    Args:
        store: An open store handle.
        name: The query's name.
        params: Parameter values by name (see :func:`bind`).
        now: The reference time for relative timestamps; defaults to the wall clock.

    Raises:
        QueryError: Unknown query or bad parameter.
    """
    spec = get_query(name)
    bound = bind(spec, params or {}, now=now or datetime.now(UTC))
    return store.query(spec.sql, bound)

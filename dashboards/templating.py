"""The Jinja2 environment shared by the web dashboard and the HTML report.

Autoescaping is on for every template and undefined names are errors, so a typo in a
template fails in the tests rather than printing nothing. Filters format what the
queries return (UTC times, counts, labels) the same way on every page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Final

from auditor.errors import MissingExtraError

try:
    import jinja2
except ModuleNotFoundError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("the dashboard and the report", "dashboard") from None

from dashboards.charts import fmt_count

__all__ = ["environment", "fact", "label", "when"]

_SEVERITIES: Final = frozenset({"info", "low", "medium", "high", "critical"})


def when(value: object, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time in UTC as ``2026-11-20 10:05``; dates as ``2026-11-20``; nothing as a dash."""
    if value is None:
        return "\N{EM DASH}"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime(fmt)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def label(value: object) -> str:
    """A vocabulary name for people: ``false_positive`` becomes ``false positive``."""
    return "\N{EM DASH}" if value is None else str(value).replace("_", " ")


def severity_class(value: object) -> str:
    """The CSS class of a severity badge (unknown values get a neutral one)."""
    text = str(value)
    return f"sev sev-{text}" if text in _SEVERITIES else "sev"


def count(value: object) -> str:
    """A count with thousands separators; nothing as a dash."""
    if value is None:
        return "\N{EM DASH}"
    if isinstance(value, int | float):
        return fmt_count(value)
    return str(value)


def percent(value: object) -> str:
    """A percentage with one decimal; nothing as a dash."""
    if value is None:
        return "\N{EM DASH}"
    return f"{float(str(value)):.1f}%"


_TIME_FACTS: Final = frozenset({"exp", "iat", "nbf"})
_MAX_NUMERIC_DATE: Final = 253_402_300_799


def fact(name: str, value: object) -> str:
    """A detector's fact for people: yes/no, lists joined, JWT times also as UTC."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "unknown"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if name in _TIME_FACTS and isinstance(value, int) and 0 <= value <= _MAX_NUMERIC_DATE:
        moment = datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{moment} ({value})"
    return str(value)


@cache
def environment() -> jinja2.Environment:
    """The template environment (templates ship in ``dashboards/templates``)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dashboards", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        {
            "when": when,
            "label": label,
            "sevclass": severity_class,
            "count": count,
            "percent": percent,
        }
    )
    env.globals.update(
        {
            "fact": fact,
        }
    )
    return env

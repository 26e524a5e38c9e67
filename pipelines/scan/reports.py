"""How ``auditor scan`` writes findings: text for people, JSON Lines, or SARIF 2.1.0.

Every format is written as findings arrive, so memory does not grow with the input (SARIF
too: its results are streamed, and the rules they refer to, a bounded set, are written
after them — member order carries no meaning in JSON). No format ever holds a value: a
finding carries its keyed fingerprint, location and redacted evidence only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import PurePath
from typing import IO, Any, Final, Protocol
from urllib.parse import quote

from auditor.models import Finding
from auditor.vocabulary import Severity
from pipelines.logfiles import STDIN_NAME

TOOL_NAME: Final = "cds-hooks-auditor"
SARIF_SCHEMA: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_VERSION: Final = "2.1.0"

SARIF_LEVELS: Final[Mapping[Severity, str]] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
SECURITY_SEVERITY: Final[Mapping[Severity, float]] = {
    Severity.CRITICAL: 9.5,
    Severity.HIGH: 8.0,
    Severity.MEDIUM: 5.5,
    Severity.LOW: 3.0,
    Severity.INFO: 0.0,
}
"""GitHub code scanning reads ``security-severity`` (0-10) from a rule's properties."""

_COLOURS: Final[Mapping[Severity, str]] = {
    Severity.CRITICAL: "\x1b[1;37;41m",
    Severity.HIGH: "\x1b[1;31m",
    Severity.MEDIUM: "\x1b[33m",
    Severity.LOW: "\x1b[36m",
    Severity.INFO: "\x1b[2m",
}
_DIM: Final = "\x1b[2m"
_RESET: Final = "\x1b[0m"


def _json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_line(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def _orjson_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _orjson_line(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE).decode()


# One definition per function (mypyc compiles this module): the pair in use is chosen here.
try:
    import orjson
except ModuleNotFoundError:  # pragma: no cover - orjson comes with the pipeline extra
    _dumps, _line = _json_dumps, _json_line
else:
    _dumps, _line = _orjson_dumps, _orjson_line


def tool_version() -> str:
    """The installed version of this package."""
    try:
        return metadata.version(TOOL_NAME)
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0.0.0"


@dataclass(frozen=True, slots=True)
class Where:
    """The line a finding is on: file, 1-based line number, and whether it was text."""

    path: str
    line: int
    text_record: bool


@dataclass(slots=True)
class Summary:
    """Counts for the closing line and the SARIF invocation."""

    lines: int = 0
    files: int = 0
    findings: int = 0
    suppressed: int = 0
    by_severity: dict[Severity, int] = field(default_factory=dict)
    partial: list[tuple[str, int, str]] = field(default_factory=list)
    """Lines not examined in full: (path, line, reasons), the first few."""
    partial_count: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


class Report(Protocol):
    """A format: receives findings as they come, then the summary once."""

    def add(self, where: Where, finding: Finding) -> None:
        """Write one finding."""
        ...

    def close(self, summary: Summary) -> None:
        """Finish the output."""
        ...


def _column_span(where: Where, finding: Finding) -> tuple[int, int] | None:
    """1-based columns of a text record's match (``chars a-b``), if it has them."""
    location = finding.location or ""
    if not where.text_record or not location.startswith("chars "):
        return None
    start, _, end = location[6:].partition("-")
    if not (start.isdigit() and end.isdigit()):
        return None
    return int(start) + 1, int(end) + 1


class TextReport:
    """For people: one block per finding, coloured by severity on a terminal."""

    def __init__(self, out: IO[str], *, colour: bool) -> None:
        self._out = out
        self._colour = colour

    def add(self, where: Where, finding: Finding) -> None:
        """Write one finding."""
        sev = finding.severity.value.upper()
        if self._colour:
            sev = f"{_COLOURS[finding.severity]}{sev}{_RESET}"
        columns = _column_span(where, finding)
        at = f"{where.path}:{where.line}" + (f":{columns[0]}" if columns else "")
        lines = [
            f"{at}: {sev} {finding.detector.value}/{finding.kind}: {finding.title}",
            f"    location {finding.location}  rule {finding.rule}",
            f"    fingerprint {finding.fingerprint}"
            + (f"  safeguard {finding.safeguard}" if finding.safeguard else ""),
        ]
        if finding.evidence:
            lines.append(f"    {finding.evidence}")
        block = "\n".join(lines)
        if self._colour:
            head, _, rest = block.partition("\n")
            block = f"{head}\n{_DIM}{rest}{_RESET}"
        self._out.write(block + "\n")

    def close(self, summary: Summary) -> None:  # noqa: ARG002 - the summary goes to stderr
        """Nothing to close: the summary is written to stderr by the command."""
        self._out.flush()


def finding_record(where: Where, finding: Finding) -> dict[str, Any]:
    """One finding as a JSON Lines record.

    The vocabulary members (detector, severity, Safe Harbor category) are string enums:
    they serialise as their values, so they are put in as they are (reading ``.value``
    is a property call on each).
    """
    safeguard = finding.safeguard
    return {
        "path": where.path,
        "line": where.line,
        "detector": finding.detector,
        "rule": finding.rule,
        "kind": finding.kind,
        "severity": finding.severity,
        "title": finding.title,
        "fingerprint": finding.fingerprint,
        "location": finding.location,
        "evidence": finding.evidence,
        "safeguard": safeguard if safeguard is None or type(safeguard) is str else str(safeguard),
        "observed_at": _iso(finding.observed_at),
        "finding_id": finding.finding_id,
        "facts": finding.facts,
    }


_last_iso: list[tuple[datetime | None, str]] = [(None, "")]


def _iso(at: datetime) -> str:
    """RFC 3339 with ``Z``; the findings of one line share their time, so the last is kept."""
    last, text = _last_iso[0]
    if at is not last:
        text = at.isoformat().replace("+00:00", "Z")
        _last_iso[0] = (at, text)
    return text


class JsonlReport:
    """One JSON object per finding, one per line."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def add(self, where: Where, finding: Finding) -> None:
        """Write one finding."""
        self._out.write(_line(finding_record(where, finding)))

    def close(self, summary: Summary) -> None:  # noqa: ARG002 - JSON Lines has no trailer
        """Flush."""
        self._out.flush()


def artifact_uri(path: str) -> str:
    """A SARIF artifact URI for a path as given: relative stays relative."""
    if path == STDIN_NAME:
        return "stdin"
    pure = PurePath(path)
    if pure.is_absolute():
        return pure.as_uri()
    return quote(pure.as_posix(), safe="/")


class SarifReport:
    """SARIF 2.1.0, so CI systems (GitHub code scanning and others) show the findings."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._rules: dict[str, tuple[int, Finding, Severity]] = {}
        self._first = True
        out.write(
            "{"
            f'"$schema": {json.dumps(SARIF_SCHEMA)}, "version": "{SARIF_VERSION}", '
            '"runs": [{"columnKind": "unicodeCodePoints", "results": [\n'
        )

    def add(self, where: Where, finding: Finding) -> None:
        """Write one result."""
        rule_id = f"{finding.detector.value}/{finding.rule}"
        known = self._rules.get(rule_id)
        if known is None:
            known = (len(self._rules), finding, finding.severity)
        elif finding.severity > known[2]:
            known = (known[0], known[1], finding.severity)
        self._rules[rule_id] = known
        region: dict[str, Any] = {"startLine": where.line}
        columns = _column_span(where, finding)
        if columns is not None:
            region["startColumn"], region["endColumn"] = columns
        if finding.evidence:
            region["snippet"] = {"text": finding.evidence}
        location: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {"uri": artifact_uri(where.path)},
                "region": region,
            }
        }
        if finding.location and finding.location.startswith("$"):
            location["logicalLocations"] = [
                {"fullyQualifiedName": finding.location, "kind": "member"}
            ]
        result = {
            "ruleId": rule_id,
            "ruleIndex": known[0],
            "kind": "fail",
            "level": SARIF_LEVELS[finding.severity],
            "message": {"text": finding.title},
            "locations": [location],
            "partialFingerprints": {
                "auditorValueFingerprint/v1": f"{finding.fingerprint}|{finding.location}"
            },
            "properties": {
                "detector": finding.detector.value,
                "kind": finding.kind,
                "severity": finding.severity.value,
                "fingerprint": finding.fingerprint,
                "findingId": finding.finding_id,
                "safeguard": str(finding.safeguard) if finding.safeguard is not None else None,
                "facts": finding.facts,
            },
        }
        self._out.write(("" if self._first else ",\n") + _dumps(result))
        self._first = False

    def _rule(self, rule_id: str, example: Finding, worst: Severity) -> dict[str, Any]:
        return {
            "id": rule_id,
            "name": rule_id.replace("/", ".").replace(".", "_"),
            "shortDescription": {"text": f"{example.kind} ({example.rule})"},
            "fullDescription": {
                "text": (
                    f"The {example.detector.value} detector found a {example.kind} value "
                    f"(rule {example.rule}) in a log record."
                )
            },
            "defaultConfiguration": {"level": SARIF_LEVELS[worst]},
            "properties": {
                "tags": ["security", example.detector.value, example.kind],
                "security-severity": f"{SECURITY_SEVERITY[worst]:.1f}",
            },
        }

    def close(self, summary: Summary) -> None:
        """Write the rules, the invocation, and close the document."""
        rules = [
            self._rule(rule_id, example, worst)
            for rule_id, (_, example, worst) in sorted(self._rules.items(), key=lambda i: i[1][0])
        ]
        notifications: list[dict[str, Any]] = [
            {
                "level": "warning",
                "message": {"text": f"line not examined in full ({reasons})"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": artifact_uri(path)},
                            "region": {"startLine": line},
                        }
                    }
                ],
            }
            for path, line, reasons in summary.partial
        ]
        notifications.extend(
            {"level": "error", "message": {"text": f"cannot read {path}: {message}"}}
            for path, message in summary.errors
        )
        invocation: dict[str, Any] = {
            "executionSuccessful": not summary.errors,
            "properties": {
                "lines": summary.lines,
                "files": summary.files,
                "suppressed": summary.suppressed,
                "partlyExaminedLines": summary.partial_count,
            },
        }
        if notifications:
            invocation["toolExecutionNotifications"] = notifications
        driver = {
            "name": TOOL_NAME,
            "version": tool_version(),
            "semanticVersion": tool_version(),
            "rules": rules,
        }
        tail = {"tool": {"driver": driver}, "invocations": [invocation]}
        self._out.write("\n], " + json.dumps(tail, ensure_ascii=False)[1:-1] + "}]}\n")
        self._out.flush()

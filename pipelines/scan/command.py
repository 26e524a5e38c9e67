"""``auditor scan [PATH ...]``: find leaked tokens and PHI in log files, like gitleaks.

Reads files, directories (recursively) and gzip files, or stdin when no path is given;
examines each line (a JSON object or array structurally, anything else as text) with the
``leaked_token`` and ``phi_in_logs`` detectors in one pass, and writes what it finds as
text, JSON Lines or SARIF. Streaming: memory does not grow with the input.

Exit status (the gitleaks convention): 1 when findings were reported, 0 when none (or with
``--exit-zero``, or after ``--write-baseline``), 2 on a usage error or an input that
could not be read (the others are still scanned).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.protocols import ScanContext
from auditor.vocabulary import DetectorName, PhiKind, Severity, TokenKind
from detectors import (
    Baseline,
    BaselineBuilder,
    ContentConfig,
    ContentScanner,
    ScanOutcome,
    parse_allowlist,
)
from detectors.content import parse_line
from pipelines.logfiles import LogFiles
from pipelines.scan.records import record_time
from pipelines.scan.reports import JsonlReport, Report, SarifReport, Summary, TextReport, Where

EXIT_OK: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_ERROR: Final = 2
_PROGRESS_EVERY: Final = 0.25
_MAX_LISTED_PARTIAL: Final = 100


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor scan``."""
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="log files or directories (recursively; .gz read transparently); "
        "stdin when none, or '-'",
    )
    parser.add_argument(
        "--format", choices=("text", "jsonl", "sarif"), default="text", help="output format"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report here, not stdout")
    parser.add_argument(
        "--detector",
        action="append",
        choices=[DetectorName.LEAKED_TOKEN.value, DetectorName.PHI_IN_LOGS.value],
        help="run only this detector (repeatable; default: both)",
    )
    parser.add_argument(
        "--min-severity",
        choices=[s.value for s in Severity],
        default=Severity.INFO.value,
        help="report only findings at least this severe",
    )
    parser.add_argument(
        "--baseline", metavar="FILE", help="suppress the findings listed in this baseline"
    )
    parser.add_argument(
        "--write-baseline",
        metavar="FILE",
        help="write every finding (and those of --baseline) to this baseline file; exits 0",
    )
    parser.add_argument(
        "--allowlist", metavar="FILE", help="fingerprints never reported, one a line (# comments)"
    )
    parser.add_argument(
        "--allow", action="append", default=[], metavar="FINGERPRINT", help="never report this"
    )
    parser.add_argument(
        "--jku-allow",
        action="append",
        default=[],
        metavar="URL",
        help="a JWT 'jku' that is expected (exact URL, or a prefix ending in /); repeatable",
    )
    parser.add_argument(
        "--default-time",
        metavar="TIME",
        help="event time (RFC 3339) of lines without one of their own (default: now)",
    )
    parser.add_argument(
        "--context",
        type=int,
        default=32,
        metavar="N",
        help="characters of redacted context around each match in the evidence",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text format (auto: on a terminal, unless NO_COLOR is set)",
    )
    parser.add_argument(
        "--exit-zero", action="store_true", help="exit 0 even when findings are reported"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no summary on stderr"
    )


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigurationError(f"cannot read the {what} {path}: {reason}") from None


def _write_text(path: str, text: str, what: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise ConfigurationError(f"cannot write the {what} {path}: {exc.strerror}") from None


def _default_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"--default-time is not an RFC 3339 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _config(args: argparse.Namespace, fingerprinter: Fingerprinter) -> ContentConfig:
    kinds: set[TokenKind | PhiKind] = set()
    for name in args.detector or [DetectorName.LEAKED_TOKEN, DetectorName.PHI_IN_LOGS]:
        kinds |= set(TokenKind) if name == DetectorName.LEAKED_TOKEN else set(PhiKind)
    allow = set(args.allow)
    if args.allowlist:
        allow |= parse_allowlist(_read_text(args.allowlist, "allowlist"), args.allowlist)
    baseline = None
    if args.baseline:
        baseline = Baseline.parse(_read_text(args.baseline, "baseline"), args.baseline)
    if args.context < 0:
        raise ConfigurationError("--context must not be negative")
    return ContentConfig(
        kinds=frozenset(kinds),
        fingerprinter=fingerprinter,
        jku_allowlist=frozenset(args.jku_allow),
        allow_fingerprints=frozenset(allow),
        baseline=baseline,
        context_chars=args.context,
    )


def _colour(args: argparse.Namespace, out: IO[str]) -> bool:
    if args.color == "always":
        return True
    if args.color == "never" or os.environ.get("NO_COLOR"):
        return False
    return out.isatty()


def _report(args: argparse.Namespace, out: IO[str]) -> Report:
    if args.format == "jsonl":
        return JsonlReport(out)
    if args.format == "sarif":
        return SarifReport(out)
    return TextReport(out, colour=_colour(args, out))


class _Progress:
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._next = time.monotonic() + _PROGRESS_EVERY
        self._shown = False

    def update(self, source: LogFiles, summary: Summary) -> None:
        now = time.monotonic()
        if not self._enabled or now < self._next:
            return
        self._next = now + _PROGRESS_EVERY
        self._shown = True
        sys.stderr.write(
            f"\rscanning: {summary.lines:,} lines, {source.bytes_read / 1e6:,.1f} MB, "
            f"{summary.findings:,} findings\x1b[K"
        )
        sys.stderr.flush()

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")


def scan_lines(
    scanner: ContentScanner,
    source: LogFiles,
    report: Report,
    summary: Summary,
    *,
    default_time: datetime,
    min_severity: Severity = Severity.INFO,
    baseline: BaselineBuilder | None = None,
    progress: _Progress | None = None,
) -> None:
    """Examine every line of ``source``, writing findings to ``report`` as they come."""
    # Severity's ordering is a Python method per comparison; a set answers per finding.
    admitted = frozenset(s for s in Severity if s >= min_severity)
    count = 0
    for line in source:
        count += 1
        content = parse_line(line.data)
        gathered = scanner.gather(content)
        if gathered is not None:
            at = record_time(content) or default_time
            outcome = scanner.outcome(gathered, ScanContext(origin=line.origin, observed_at=at))
            where = Where(line.path, line.number, isinstance(content, str))
            _record(where, outcome, report, summary, admitted=admitted, baseline=baseline)
        if line.truncated and (gathered is None or not gathered.limits):
            _partial(summary, line.path, line.number, "oversized")
        if progress is not None and count & 0xFFF == 0:
            summary.lines = count
            progress.update(source, summary)
    summary.lines = count
    summary.files = source.files_read


def _record(
    where: Where,
    outcome: ScanOutcome,
    report: Report,
    summary: Summary,
    *,
    admitted: frozenset[Severity],
    baseline: BaselineBuilder | None,
) -> None:
    summary.suppressed += outcome.suppressed
    if outcome.limits:
        _partial(summary, where.path, where.line, ", ".join(outcome.limits))
    for finding in outcome.findings:
        if baseline is not None:
            baseline.add(finding)
        if finding.severity not in admitted:
            continue
        summary.findings += 1
        summary.by_severity[finding.severity] = summary.by_severity.get(finding.severity, 0) + 1
        report.add(where, finding)


def _partial(summary: Summary, path: str, number: int, reasons: str) -> None:
    summary.partial_count += 1
    if len(summary.partial) < _MAX_LISTED_PARTIAL:
        summary.partial.append((path, number, reasons))


def _print_summary(summary: Summary, elapsed: float) -> None:
    severities = ", ".join(
        f"{summary.by_severity[s]} {s.value}"
        for s in reversed(Severity)
        if s in summary.by_severity
    )
    parts = [
        f"auditor scan: {summary.lines:,} lines in {summary.files:,} files, "
        f"{summary.findings:,} findings" + (f" ({severities})" if severities else ""),
    ]
    if summary.suppressed:
        parts.append(f"{summary.suppressed:,} suppressed by the baseline or allowlist")
    if summary.partial_count:
        first = summary.partial[0]
        parts.append(
            f"{summary.partial_count:,} lines not examined in full "
            f"(first: {first[0]}:{first[1]}, {first[2]})"
        )
    if summary.errors:
        parts.append(f"{len(summary.errors)} inputs could not be read")
    rate = summary.lines / elapsed if elapsed > 0 else 0.0
    sys.stderr.write("; ".join(parts) + f"; {elapsed:.1f}s, {rate:,.0f} lines/s\n")


def _fingerprinter(args: argparse.Namespace) -> Fingerprinter:
    fingerprinter = Fingerprinter.from_environment(warn=not args.quiet)
    if args.write_baseline and fingerprinter.ephemeral:
        raise ConfigurationError(
            "--write-baseline needs a persistent fingerprint key: a baseline made with an "
            "ephemeral key can never match a later run; set AUDITOR_FINGERPRINT_KEY or "
            "AUDITOR_FINGERPRINT_KEY_FILE"
        )
    return fingerprinter


def _output(args: argparse.Namespace) -> IO[str]:
    if not args.output:
        return sys.stdout
    try:
        return Path(args.output).open("w", encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {args.output}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    """Scan the paths (or stdin) and report."""
    fingerprinter = _fingerprinter(args)
    config = _config(args, fingerprinter)
    scanner = ContentScanner(config)
    default_time = _default_time(args.default_time)
    builder = (
        BaselineBuilder(fingerprinter.key_id, config.baseline) if args.write_baseline else None
    )
    summary = Summary()

    def on_error(path: str, message: str) -> None:
        summary.errors.append((path, message))
        sys.stderr.write(f"auditor scan: error: cannot read {path}: {message}\n")

    source = LogFiles(args.paths, on_error=on_error)
    out = _output(args)
    started = time.perf_counter()
    progress = _Progress(enabled=not args.quiet and sys.stderr.isatty())
    try:
        report = _report(args, out)
        scan_lines(
            scanner,
            source,
            report,
            summary,
            default_time=default_time,
            min_severity=Severity(args.min_severity),
            baseline=builder,
            progress=progress,
        )
        progress.clear()
        report.close(summary)
    finally:
        if out is not sys.stdout:
            out.close()
    if builder is not None:
        baseline = builder.build(datetime.now(UTC))
        _write_text(args.write_baseline, baseline.render(), "baseline")
        if not args.quiet:
            sys.stderr.write(
                f"auditor scan: wrote {len(baseline)} entries to {args.write_baseline}\n"
            )
    if not args.quiet:
        _print_summary(summary, time.perf_counter() - started)
    if summary.errors:
        return EXIT_ERROR
    if summary.findings and not args.exit_zero and builder is None:
        return EXIT_FINDINGS
    return EXIT_OK

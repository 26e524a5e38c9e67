"""``auditor scan``: the content detectors over log files, with text, JSON Lines and SARIF.

`pipelines.logfiles.LogFiles` reads the lines; `detectors.content.parse_line` and `record_time`
turn each into content and an event time; `scan_lines` runs a `detectors.ContentScanner` over them
and writes a report.
"""

from pipelines.scan.command import scan_lines
from pipelines.scan.records import record_time
from pipelines.scan.reports import (
    JsonlReport,
    Report,
    SarifReport,
    Summary,
    TextReport,
    Where,
    finding_record,
)

__all__ = [
    "JsonlReport",
    "Report",
    "SarifReport",
    "Summary",
    "TextReport",
    "Where",
    "finding_record",
    "record_time",
    "scan_lines",
]

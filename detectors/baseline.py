"""Baselines and allowlists: suppress findings that are known, by keyed fingerprint.

Like a detect-secrets baseline or a ``.gitleaksignore``, a baseline lists what a scan
already found and someone accepted (a test token in a fixture log, a rotated key in an
old archive), so that later scans report only what is new. It never holds a value: an
entry is the keyed fingerprint of the value, with the detector, rule, kind, location,
origin and first time it was seen, for the reviewer.

Format (JSON, version 1)::

    {
      "version": 1,
      "tool": "cds-hooks-auditor",
      "fingerprint_key_id": "k1a2b3c4d",
      "generated_at": "2026-11-28T10:00:00Z",
      "matching": "detector+fingerprint",
      "entries": [
        {"detector": "leaked_token", "fingerprint": "k1a2b3c4d:<32 hex>",
         "rule": "jwt.jws", "kind": "jwt", "location": "$.headers.authorization",
         "origin": "app.log:12", "first_seen": "2026-11-28T09:59:58Z"}
      ]
    }

An entry suppresses its value for its detector wherever it appears again (another line,
another file, another JSON path): the fingerprint names the value, not the place.
Fingerprints are keyed, so a baseline only works under the key it was made with; its
``fingerprint_key_id`` is checked against the running key and a mismatch is an error that
says so, rather than a baseline that silently suppresses nothing.

Reading and writing the file is I/O and lives in ``pipelines.scan``; this module only
parses and renders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from auditor.errors import ConfigurationError
from auditor.models import Finding

BASELINE_VERSION: Final = 1
TOOL: Final = "cds-hooks-auditor"
MATCHING: Final = "detector+fingerprint"
_FINGERPRINT: Final = re.compile(r"^[A-Za-z0-9_-]{1,32}:[0-9a-f]{32}$")


def key_id_of(fingerprint: str) -> str:
    """The key id part of ``<key id>:<hex>``."""
    return fingerprint.partition(":")[0]


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def key_mismatch_message(what: str, theirs: str, ours: str) -> str:
    """Say clearly that fingerprints made under another key can never match."""
    return (
        f"{what} was made with fingerprint key {theirs!r}, but this run uses key {ours!r}: "
        "fingerprints are keyed, so none of its entries can match. Run with the key it was "
        "made with (AUDITOR_FINGERPRINT_KEY or AUDITOR_FINGERPRINT_KEY_FILE), or write a "
        "new one under this key"
    )


@dataclass(frozen=True, slots=True)
class BaselineEntry:
    """One known finding: its value's fingerprint, and where and when it was first seen."""

    detector: str
    fingerprint: str
    rule: str
    kind: str
    location: str | None
    origin: str | None
    first_seen: datetime

    def as_json(self) -> dict[str, Any]:
        """The entry as written in the file."""
        return {
            "detector": self.detector,
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "kind": self.kind,
            "location": self.location,
            "origin": self.origin,
            "first_seen": _time(self.first_seen),
        }


@dataclass(frozen=True, slots=True)
class Baseline:
    """A parsed baseline: the fingerprint key it was made with and its entries.

    Attributes:
        key_id: The id of the fingerprint key its fingerprints were made with.
        entries: By (detector, fingerprint).
        generated_at: When it was written.
    """

    key_id: str
    entries: Mapping[tuple[str, str], BaselineEntry] = field(default_factory=dict)
    generated_at: datetime | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def suppresses(self, detector: str, fingerprint: str) -> bool:
        """Whether a finding of ``detector`` with ``fingerprint`` is already known."""
        return (detector, fingerprint) in self.entries

    def require_key(self, key_id: str, what: str = "the baseline") -> None:
        """Check that this baseline was made under ``key_id``.

        Raises:
            ConfigurationError: It was not; the message says what to do.
        """
        if key_id != self.key_id:
            raise ConfigurationError(key_mismatch_message(what, self.key_id, key_id))

    @classmethod
    def parse(cls, text: str | bytes, source: str = "the baseline") -> Baseline:
        """Parse a baseline file's content.

        Raises:
            ConfigurationError: Not a baseline of a version this code reads; the
                message names ``source`` and what is wrong, never a value.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise ConfigurationError(f"{source} is not JSON") from None
        if not isinstance(data, dict) or data.get("version") != BASELINE_VERSION:
            raise ConfigurationError(
                f"{source} is not a version {BASELINE_VERSION} baseline of {TOOL}"
            )
        key_id = data.get("fingerprint_key_id")
        raw_entries = data.get("entries")
        if not isinstance(key_id, str) or not isinstance(raw_entries, list):
            raise ConfigurationError(f"{source} lacks fingerprint_key_id or entries")
        entries: dict[tuple[str, str], BaselineEntry] = {}
        for index, raw in enumerate(raw_entries):
            entry = _entry(raw, source, index)
            if key_id_of(entry.fingerprint) != key_id:
                raise ConfigurationError(
                    f"{source}: entry {index} has a fingerprint of another key than "
                    f"the file's fingerprint_key_id {key_id!r}"
                )
            entries[entry.detector, entry.fingerprint] = entry
        generated = data.get("generated_at")
        return cls(key_id, entries, _parse_time(generated) if isinstance(generated, str) else None)

    def render(self) -> str:
        """The file content: entries sorted, so that baselines diff well under review."""
        doc = {
            "version": BASELINE_VERSION,
            "tool": TOOL,
            "fingerprint_key_id": self.key_id,
            "generated_at": _time(self.generated_at) if self.generated_at else None,
            "matching": MATCHING,
            "entries": [self.entries[k].as_json() for k in sorted(self.entries)],
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"not an ISO 8601 time: {text[:40]!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _entry(raw: object, source: str, index: int) -> BaselineEntry:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{source}: entry {index} is not an object")
    detector, fingerprint = raw.get("detector"), raw.get("fingerprint")
    if not isinstance(detector, str) or not isinstance(fingerprint, str):
        raise ConfigurationError(f"{source}: entry {index} lacks detector or fingerprint")
    if not _FINGERPRINT.match(fingerprint):
        raise ConfigurationError(f"{source}: entry {index} has a malformed fingerprint")
    first_seen = raw.get("first_seen")
    location, origin = raw.get("location"), raw.get("origin")
    return BaselineEntry(
        detector=detector,
        fingerprint=fingerprint,
        rule=str(raw.get("rule", "")),
        kind=str(raw.get("kind", "")),
        location=location if isinstance(location, str) else None,
        origin=origin if isinstance(origin, str) else None,
        first_seen=_parse_time(first_seen)
        if isinstance(first_seen, str)
        else datetime.fromtimestamp(0, UTC),
    )


class BaselineBuilder:
    """Collects findings into a baseline, one entry per (detector, fingerprint).

    Memory grows with the number of distinct values found, not with the input. Entries
    of an earlier baseline can be carried over (``previous``), keeping their first-seen
    time, so rewriting a baseline after a new scan loses nothing already accepted.

    Args:
        key_id: The running fingerprint key's id.
        previous: A baseline to extend (it must be of the same key).

    Raises:
        ConfigurationError: ``previous`` was made under another key.
    """

    def __init__(self, key_id: str, previous: Baseline | None = None) -> None:
        if previous is not None:
            previous.require_key(key_id)
        self.key_id = key_id
        self._entries: dict[tuple[str, str], BaselineEntry] = (
            dict(previous.entries) if previous is not None else {}
        )

    def add(self, finding: Finding) -> None:
        """Note ``finding`` (findings without a fingerprint cannot be baselined)."""
        if finding.fingerprint is None:
            return
        key = (str(finding.detector), finding.fingerprint)
        known = self._entries.get(key)
        if known is not None and known.first_seen <= finding.observed_at:
            return
        self._entries[key] = BaselineEntry(
            detector=key[0],
            fingerprint=finding.fingerprint,
            rule=finding.rule,
            kind=finding.kind,
            location=finding.location,
            origin=finding.origin,
            first_seen=finding.observed_at,
        )

    def extend(self, findings: Iterable[Finding]) -> None:
        """`add` each of ``findings``."""
        for finding in findings:
            self.add(finding)

    def build(self, generated_at: datetime) -> Baseline:
        """The baseline so far."""
        return Baseline(self.key_id, dict(self._entries), generated_at)


def parse_allowlist(text: str, source: str = "the allowlist") -> frozenset[str]:
    """Fingerprints from an allowlist file: one a line, ``#`` starts a comment.

    Raises:
        ConfigurationError: A line that is not a fingerprint (its number is named).
    """
    found: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        item = line.partition("#")[0].strip()
        if not item:
            continue
        if not _FINGERPRINT.match(item):
            raise ConfigurationError(f"{source}:{number}: not a fingerprint (<key id>:<32 hex>)")
        found.add(item)
    return frozenset(found)

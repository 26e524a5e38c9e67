"""What the detect stage runs over content: the two protocols of a content scan.

Kept apart from ``detection`` (which is compiled, see auditor/_native.py): a protocol checked
with ``isinstance`` must be an ordinary Python class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from auditor.models import Finding
    from auditor.protocols import ScanContext

__all__ = ["ContentScan", "GatheringScan"]


class ContentScan(Protocol):
    """What the detect stage runs over content, once per record.

    An ``auditor.protocols.ContentDetector``, or ``detectors.ContentScanner``, which runs
    ``leaked_token`` and ``phi_in_logs`` in one pass. It raises ``RejectedRecord`` for a
    record it examined only in part (see ``detection``), and nothing else.
    """

    def scan(self, content: object, context: ScanContext) -> Sequence[Finding]:
        """Findings in ``content`` (a parsed JSON value or a text line)."""
        ...


@runtime_checkable
class GatheringScan(Protocol):
    """A content scan that can say, before any context is built, that content is clean.

    ``detectors.ContentScanner.gather`` returns ``None`` when the whole record was examined
    and holds nothing: the common case, in which the stage neither builds a ``ScanContext``
    nor calls ``scan``. ``gather`` depends on the content alone, so the same content is
    clean again (the stage remembers events' free text found clean).
    """

    def gather(self, content: object) -> object | None:
        """``None`` when ``content`` was examined whole and holds nothing."""
        ...

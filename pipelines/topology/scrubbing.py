"""What of an authz event is free text, and how it is redacted before storage and detection.

The contract keeps tokens out of its structured fields, but a producer can still put one
where text is free: ``attributes`` (by design scanned like a log line), ``detail``, and the
URLs and messages a service copies from a request (``service.url``, ``fhir_server``,
``token.jku``, ``tls.error``: an ``?access_token=…`` or ``user:password@`` in a URL is a
classic leak). Before an event is stored, or handed to the stream detectors (whose state
is checkpointed), these fields go through the ``Redactor``; the stream detectors get the
event without ``attributes`` and ``detail`` at all, since none of them reads those and a
checkpoint must not carry them. The content detectors get the original text, to report
what leaked.
"""

from __future__ import annotations

from typing import Any, Final

from auditor.models import AuthzEvent
from auditor.redaction import Redactor
from pipelines.topology.authz_mirror import Mirrored

_FAILED: Final = {"redaction": "failed"}
_KNOWN_CLEAN_LIMIT: Final = 4096
_KNOWN_CLEAN_CHARS: Final = 512
"""What replaces ``attributes`` when redaction itself failed (fail closed)."""


class EventScrubber:
    """Redacts the free text of authz events. One per stage; not thread-safe.

    Args:
        redactor: The configured Redactor (its fingerprint key names the markers).
    """

    __slots__ = ("_clean", "_redact")

    def __init__(self, redactor: Redactor) -> None:
        self._redact = redactor
        self._clean: set[str] = set()
        """URLs and messages seen before and found clean: they repeat from event to event
        (a few service and FHIR server URLs), and the same text redacts the same way."""

    def free_text(self, event: AuthzEvent) -> dict[str, Any]:
        """The event's free text as a flat mapping (only what is present), for scanning."""
        text: dict[str, Any] = {}
        if event.attributes:
            text["attributes"] = event.attributes
        if event.detail:
            text["detail"] = event.detail
        if event.fhir_server:
            text["fhir_server"] = event.fhir_server
        service, token, tls = event.service, event.token, event.tls
        if service is not None and service.url:
            text["service_url"] = service.url
        if token is not None and token.jku:
            text["token_jku"] = token.jku
        if tls is not None and tls.error:
            text["tls_error"] = tls.error
        return text

    def scrub(self, event: AuthzEvent, text: dict[str, Any]) -> AuthzEvent | None:
        """The event with its free text redacted, or ``None`` when nothing needed it.

        Args:
            event: A validated event.
            text: ``free_text(event)``.
        """
        changed = self.changes(text)
        return None if changed is None else updated(event, changed)

    def changes(self, text: dict[str, Any]) -> dict[str, Any] | None:
        """What redaction changes in ``text`` (an event's ``free_text``); ``None``: nothing."""
        if not text:
            return None
        known = self._clean
        if "attributes" not in text and all(value in known for value in text.values()):
            return None
        # The Redactor works on a copy: a flat event is redacted in place.
        clean = self._redact(None, "info", dict(text))
        if clean.get("event") == "redaction failed":
            clean = {"attributes": _FAILED} if "attributes" in text else {}
        changed = {k: clean.get(k) for k in text if clean.get(k) is not text[k]}
        if not changed:
            self._remember(text)
            return None
        return changed

    def _remember(self, text: dict[str, Any]) -> None:
        if len(self._clean) >= _KNOWN_CLEAN_LIMIT:
            self._clean.clear()
        for key, value in text.items():
            if key != "attributes" and len(value) <= _KNOWN_CLEAN_CHARS:
                self._clean.add(value)

    def stored(self, item: AuthzEvent | Mirrored) -> AuthzEvent | Mirrored:
        """The event as the store writes it: its free text redacted.

        A mirror whose free text needs nothing stays a mirror (its JSON is written from
        it, with no event built); otherwise the redacted ``AuthzEvent``.
        """
        if isinstance(item, Mirrored):
            changed = self.changes(item.free_text())
            return item if changed is None else updated(item.event(), changed)
        return self.scrub(item, self.free_text(item)) or item

    @staticmethod
    def for_detection(event: AuthzEvent) -> AuthzEvent:
        """The event as the stream detectors get it: no ``attributes``, no ``detail``."""
        if event.attributes or event.detail is not None:
            return event.model_copy(update={"attributes": {}, "detail": None})
        return event


def updated(event: AuthzEvent, changed: dict[str, Any]) -> AuthzEvent:
    """``event`` with the redacted free text put back where it came from."""
    update: dict[str, Any] = {}
    if "attributes" in changed:
        update["attributes"] = changed["attributes"] or {}
    if "detail" in changed:
        update["detail"] = changed["detail"]
    if "fhir_server" in changed:
        update["fhir_server"] = changed["fhir_server"]
    if "service_url" in changed and event.service is not None:
        update["service"] = event.service.model_copy(update={"url": changed["service_url"]})
    if "token_jku" in changed and event.token is not None:
        update["token"] = event.token.model_copy(update={"jku": changed["token_jku"]})
    if "tls_error" in changed and event.tls is not None:
        update["tls"] = event.tls.model_copy(update={"error": changed["tls_error"]})
    return event.model_copy(update=update)


__all__ = ["EventScrubber", "updated"]

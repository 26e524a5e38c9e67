"""The ``leaked_token`` detector: credentials that escaped into logs.

Kinds (stable): ``jwt`` (JWS and JWE, also base64-wrapped and URL-encoded),
``bearer_token`` (opaque credentials after ``Bearer`` in any casing and form, and under
``Authorization``-like keys), ``basic_auth`` (``Basic`` credentials, ``user:password@`` in
URLs), ``url_token`` (``access_token``, ``id_token``, ``refresh_token``, ``code``,
``client_assertion`` in URLs, query strings, form bodies and JSON keys, and the CDS Hooks
``fhirAuthorization.access_token`` by where it sits), ``private_key`` (PEM),
``private_jwk`` (JWK or JWK Set with private members) and ``client_secret``.

Severity (see `detectors.triage.token_severity`): a JWT still live when it was logged is
``critical`` (judged from its ``exp`` against the record's event time, never the wall
clock), and so are private keys and private JWKs; opaque tokens, Basic credentials and
client secrets, which carry no expiry, are ``high``; an expired JWT is ``medium`` unless
it is signed with ``none`` or a symmetric key or names a ``jku`` outside the allowlist
(``high``); an OAuth authorization code is ``medium``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from auditor.models import Finding
from auditor.protocols import ScanContext
from auditor.vocabulary import DetectorName, TokenKind
from detectors.content import ContentConfig, ContentScanner


class LeakedTokenDetector:
    """Reports leaked credentials (an `auditor.protocols.ContentDetector`).

    Args:
        config: Shared content-detector configuration; only its token kinds are used.
    """

    name: ClassVar[DetectorName] = DetectorName.LEAKED_TOKEN
    __slots__ = ("scanner",)

    def __init__(self, config: ContentConfig | None = None) -> None:
        config = config or ContentConfig()
        self.scanner = ContentScanner(replace(config, kinds=config.kinds & frozenset(TokenKind)))

    def scan(self, content: object, context: ScanContext) -> list[Finding]:
        """Examine a parsed JSON value or a text line (see `ContentScanner.scan`)."""
        return self.scanner.scan(content, context)

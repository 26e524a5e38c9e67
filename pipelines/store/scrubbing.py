"""What of a run's configuration may be stored: everything but its secrets.

The configuration of a run is evidence (which topics, which detectors, which thresholds),
so the writer stores it in ``runs.config_json`` — after this module took out whatever could
be a secret: values under secret-looking names, credentials inside URLs, and strings shaped
like a token, an SSN or a long identifier, wherever they are. It fails closed: a key id or
a key file path is removed too, which costs nothing (the key id has its own column).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

REMOVED: Final = "[removed]"

_SECRET_WORDS: Final = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "jaas",
        "key",
        "passphrase",
        "passwd",
        "password",
        "private",
        "pwd",
        "secret",
        "session",
        "token",
    }
)
_SECRET_FRAGMENTS: Final = ("password", "secret", "token", "credential", "apikey")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_URL_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:access_token|id_token|token|key|api_key|secret|password|sig|"
    r"signature|code)=)[^&;#\s]+",
    re.IGNORECASE,
)
# Tokens, and the PHI shapes a configuration could carry by mistake (SSN, long numbers).
_SECRET_SHAPED = re.compile(
    r"eyJ[\w-]{4,}\.[\w-]+|\b(bearer|basic)\s+\S+|\b\d{3}-\d{2}-\d{4}\b|\b\d{9,}\b",
    re.IGNORECASE,
)


def without_secrets(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a configuration that is safe to store.

    Values under names that look secret are replaced, credentials are cut out of URLs,
    and strings shaped like a token, an SSN or a long identifier are replaced wherever
    they are: the configuration of a run is evidence, and a secret must never travel into
    the store.
    """
    return {str(k): _scrub(str(k), v) for k, v in config.items()}


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if any(fragment in lowered for fragment in _SECRET_FRAGMENTS):
        return True
    words = _WORD_SPLIT.split(_CAMEL.sub(r"\1_\2", name).lower())
    return any(word in _SECRET_WORDS for word in words)


def _scrub(name: str, value: Any) -> Any:
    scrubbed: Any = value
    if _is_secret_name(name) and value not in (None, "", False):
        scrubbed = REMOVED
    elif isinstance(value, Mapping):
        scrubbed = without_secrets(value)
    elif isinstance(value, list | tuple | set | frozenset):
        scrubbed = [_scrub(name, v) for v in value]
    elif isinstance(value, bytes):
        scrubbed = REMOVED
    elif not isinstance(value, bool | int | float) and value is not None:
        text = str(value)
        if _SECRET_SHAPED.search(text):
            scrubbed = REMOVED
        else:
            text = _URL_USERINFO.sub(r"\g<scheme>", text)
            scrubbed = _URL_SECRET_PARAM.sub(rf"\g<name>{REMOVED}", text)
    return scrubbed


__all__ = ["REMOVED", "without_secrets"]

"""URL normalisation for audiences, allowlists and ``fhirServer`` checks.

Comparing URLs as raw strings refuses legitimate variants (``HTTPS://Host:443/x/``) and
comparing them loosely lets ``https://ehr.example.org@evil.test/`` through. Every URL we
compare is first brought to one canonical form — lower-case scheme and host, default port
dropped, no trailing slash — and URLs that carry credentials, a query, a fragment or dot
segments are refused outright: none of them belongs in a CDS Hooks endpoint or FHIR base.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from auditor.errors import ConfigurationError

_DEFAULT_PORTS = {"https": 443, "http": 80}
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def canonical_url(  # noqa: PLR0911 - one guard per refused URL form reads clearest
    url: object, *, allow_http: bool = False
) -> str | None:
    """The canonical form of an ``https`` (or, when allowed, ``http``) URL, or ``None``.

    ``None`` means the value is not a URL we would ever compare equal to a configured one:
    not a string, another scheme, credentials, a query or fragment, dot segments, an empty
    host or a bad port.
    """
    if not isinstance(url, str) or not url or len(url) > 2048:  # noqa: PLR2004 - URL length cap
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_http and scheme == "http"):
        return None
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None:
        return None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return None
    path = parts.path.rstrip("/")
    segments = path.split("/")
    if any(segment in {".", ".."} for segment in segments) or "//" in path or "\\" in path:
        return None
    if _CONTROL_OR_SPACE.search(url):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{path}"


def require_canonical_url(url: str, *, what: str, allow_http: bool = False) -> str:
    """Like :func:`canonical_url`, for configuration: a bad URL stops start-up.

    Raises:
        ConfigurationError: The URL is not an absolute https URL without credentials,
            query or fragment (or http when ``allow_http``).
    """
    canonical = canonical_url(url, allow_http=allow_http)
    if canonical is None:
        scheme = "http(s)" if allow_http else "https"
        raise ConfigurationError(
            f"{what} must be an absolute {scheme} URL without credentials, query, fragment "
            f"or dot segments (got one for host {_host_of(url)!r})"
        )
    return canonical


def _host_of(url: str) -> str:
    # The rest of a refused URL may hold a credential (user:password@, ?access_token=).
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def host_is_internal(canonical: str) -> bool:
    """Whether a canonical URL points at this host or a private, link-local or reserved address.

    Only IP literals and ``localhost`` are recognised: a DNS name that resolves to a private
    address needs a resolver check at connection time, which is the FHIR client's job.
    """
    host = urlsplit(canonical).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def display_url(url: object) -> str | None:
    """A URL safe to record: scheme, host, port and path only (no credentials or query).

    Used for values a caller sent that we refuse (a ``fhirServer`` aimed at an internal
    address): the event says where, without repeating a password or a token in a query.
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url[:2048])
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    shown = f"{parts.scheme.lower()}://{netloc}{parts.path}"
    return shown[:512]

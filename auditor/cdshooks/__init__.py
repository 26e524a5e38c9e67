"""CDS Hooks token handling for CDS services and clients; each decision emits an ``AuthzEvent``.

Service side: :class:`Verifier` (with :class:`TrustRegistry`, :class:`VerificationPolicy`
and a pluggable :class:`ReplayCache`), :class:`CdsHooksMiddleware` for ASGI applications.
Client side: :class:`CdsClient` (minting, JWK Set, rotation), :class:`SigningKey`,
:class:`KeyRing`, :class:`ServiceAllowlist` and :class:`CdsHttpClient`.
Attack tokens for tests and simulations live in :mod:`auditor.cdshooks.adversary`.

Needs the ``cdshooks`` extra (PyJWT with ``cryptography``, httpx, Starlette).
"""

from auditor.errors import MissingExtraError

try:
    import cryptography  # noqa: F401 - probe for the extra
    import httpx  # noqa: F401 - probe for the extra
    import jwt  # noqa: F401 - probe for the extra
    import starlette  # noqa: F401 - probe for the extra
except ImportError:
    raise MissingExtraError("auditor.cdshooks", "cdshooks") from None

from auditor.cdshooks.client import (
    CdsClient,
    MintedToken,
    ServiceAllowlist,
    ServiceNotAllowed,
    service_url,
)
from auditor.cdshooks.events import ListSink
from auditor.cdshooks.hooks import FhirAuthorization, FhirServerPolicy, HookRequest
from auditor.cdshooks.keys import KeyRing, SigningKey
from auditor.cdshooks.middleware import CdsHooksMiddleware, VerifiedCall, verified_call
from auditor.cdshooks.ratelimit import TokenBucketLimiter
from auditor.cdshooks.replay import InMemoryReplayCache, ReplayCache, ReplayVerdict
from auditor.cdshooks.transport import CallResult, CdsHttpClient
from auditor.cdshooks.trust import JwksUrl, TrustedIssuer, TrustRegistry
from auditor.cdshooks.verification import (
    TokenRejected,
    Verification,
    VerificationPolicy,
    Verifier,
)

__all__ = [
    "CallResult",
    "CdsClient",
    "CdsHooksMiddleware",
    "CdsHttpClient",
    "FhirAuthorization",
    "FhirServerPolicy",
    "HookRequest",
    "InMemoryReplayCache",
    "JwksUrl",
    "KeyRing",
    "ListSink",
    "MintedToken",
    "ReplayCache",
    "ReplayVerdict",
    "ServiceAllowlist",
    "ServiceNotAllowed",
    "SigningKey",
    "TokenBucketLimiter",
    "TokenRejected",
    "TrustRegistry",
    "TrustedIssuer",
    "Verification",
    "VerificationPolicy",
    "VerifiedCall",
    "Verifier",
    "service_url",
    "verified_call",
]

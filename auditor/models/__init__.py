"""The data contracts: what producers send and what the auditor records."""

from auditor.models.events import (
    AuthzEvent,
    ClientRef,
    Peer,
    ServiceRef,
    Source,
    TlsInfo,
    TokenClaims,
)
from auditor.models.findings import FactValue, Finding, finding_id
from auditor.models.view import AuthzView

__all__ = [
    "AuthzEvent",
    "AuthzView",
    "ClientRef",
    "FactValue",
    "Finding",
    "Peer",
    "ServiceRef",
    "Source",
    "TlsInfo",
    "TokenClaims",
    "finding_id",
]

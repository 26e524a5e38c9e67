"""SMART on FHIR scopes, read well enough to tell "broader than needed" from "fine".

``fhirAuthorization.scope`` uses SMART scopes (CDS Hooks §FHIR Resource Access):
``<context>/<resource>.<permissions>[?query]`` with context ``patient``, ``user`` or
``system``; permissions ``read``/``write``/``*`` (SMART v1) or a subset of ``cruds`` in
that order (SMART v2). Other scopes (``openid``, ``launch``, ``offline_access``...) grant no
resource access and are not classified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ScopeAccess", "classify_scope"]

_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<resource>\*|[A-Za-z]+)\."
    r"(?P<permissions>read|write|\*|c?r?u?d?s?)(?:\?.*)?$"
)


@dataclass(frozen=True, slots=True)
class ScopeAccess:
    """What a resource scope grants.

    Attributes:
        context: ``patient``, ``user`` or ``system``.
        resource: The FHIR resource type, or ``*``.
        write: Whether it allows create, update or delete.
        wildcard: Whether it covers every resource type.
    """

    context: str
    resource: str
    write: bool
    wildcard: bool


@lru_cache(maxsize=4096)
def classify_scope(scope: str) -> ScopeAccess | None:
    """Classify one SMART scope; ``None`` for scopes that grant no resource access."""
    match = _RESOURCE_SCOPE.match(scope)
    if match is None or not match["permissions"]:
        return None
    permissions = match["permissions"]
    if permissions in {"write", "*"}:
        write = True
    elif permissions == "read":
        write = False
    else:
        write = any(letter in permissions for letter in "cud")
    resource = match["resource"]
    return ScopeAccess(match["context"], resource, write, resource == "*")

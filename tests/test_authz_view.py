"""``AuthzView``: the stream detectors' flat projection of an event holds the event's values."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from authz_events import event

from auditor.models import AuthzEvent, AuthzView
from auditor.models.view import FIELDS as VIEW_FIELDS


def _expected(ev: AuthzEvent) -> dict[str, Any]:
    """Each view field as the pydantic attributes give it (the slow, obvious way)."""
    token = ev.token
    return {
        "event": ev,
        "time": ev.time.timestamp(),
        "event_id": ev.event_id,
        "action": ev.action,
        "outcome": ev.outcome,
        "reason": ev.reason,
        "role": ev.source.role,
        "iss": ev.client.iss if ev.client is not None else None,
        "has_service": ev.service is not None,
        "service_id": ev.service.id if ev.service is not None else None,
        "service_url": ev.service.url if ev.service is not None else None,
        "has_token": token is not None,
        "jti": token.jti if token is not None else None,
        "kid": token.kid if token is not None else None,
        "alg": token.alg if token is not None else None,
        "typ": token.typ if token is not None else None,
        "iat": token.iat if token is not None else None,
        "nbf": token.nbf if token is not None else None,
        "exp": token.exp if token is not None else None,
        "aud": token.aud if token is not None else (),
        "jku": token.jku if token is not None else None,
        "fingerprint": token.fingerprint if token is not None else None,
        "hook_instance": ev.hook_instance,
        "fhir_server": ev.fhir_server,
        "fhir_authorization": ev.fhir_authorization,
        "scopes": ev.scopes,
        "payload_bytes": ev.payload_bytes,
        "tls": ev.tls,
        "peer_ip": ev.peer.ip if ev.peer is not None else None,
    }


CASES = {
    # The usual service-side presentation: every part present.
    "full": event(12.5, payload_bytes=900, tls_version="TLSv1.3"),
    # No token at all: claims are None and aud is empty, as for a token without aud.
    "no token": event(1, token=False),
    # No client, service or peer: the flattened fields are None, not errors.
    "no parts": event(2, iss=None, service=None, peer=None, reason="unknown_issuer"),
    # A service that names neither id nor url: both None (policy reads the event for it).
    "empty service": event(3, service=None, service_url=None, iss=None),
    # A client-side request with fhirAuthorization, scopes and a jku.
    "request": event(
        4,
        action="request.sent",
        fhir_server="https://fhir.example.org/r4",
        fhir_authorization=True,
        scopes=("patient/*.read",),
        jku="https://ehr.example.org/jwks",
    ),
    # Built without validation (what bench/stream_detectors.py does): defaults filled in.
    "constructed": AuthzEvent.model_construct(**event(5).__dict__),
}


@pytest.mark.parametrize("ev", CASES.values(), ids=CASES.keys())
def test_every_field_of_the_view_is_the_events_value(ev: AuthzEvent) -> None:
    view = AuthzView(ev)
    assert {name: getattr(view, name) for name in VIEW_FIELDS} == _expected(ev)


def test_the_view_survives_a_pickle_as_the_runtime_snapshots_it() -> None:
    view = AuthzView(CASES["full"])
    copy = pickle.loads(pickle.dumps(view))  # noqa: S301 - our own bytes
    assert {name: getattr(copy, name) for name in VIEW_FIELDS} == _expected(CASES["full"])


def test_the_repr_of_a_view_names_no_claim_or_identifier() -> None:
    ev = CASES["full"]
    text = repr(AuthzView(ev))
    assert ev.token is not None
    assert ev.token.jti is not None
    assert ev.token.jti not in text
    assert str(ev.event_id) not in text

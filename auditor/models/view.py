"""``AuthzView``: the fields of an ``AuthzEvent`` that stream detectors read, extracted once.

Each stream detector reads the same dozen fields of every event (``iss``, ``jti``,
``aud``, service, action, outcome, reason, ``exp``/``iat``, ``hookInstance``, peer, ``alg``
...) in its ``key`` and again in its ``step``: three detectors, up to six reads of each.
A field read from a pydantic model costs several times a slot read (its class is deep and
its nested parts are models of their own), and the event's time must be turned into epoch
seconds. So the stream runtime builds one view per event, reading each field once, and
every detector reads the view; the event itself stays reachable (``event``) for the rare
paths that need more.

A view can also be filled by a decoder that never built the event (the detect stage's
msgspec fast path, ``pipelines.topology.authz_mirror``): its ``event`` is then built on
first use, by the function the decoder left (``deferred``).

Values are exactly the event's (the same objects), flattened: ``None`` where the event or
the part that holds it is absent. A view is read-only by contract — detectors must not
assign to it — and pickled as its event (the runtime's snapshots hold the views of
buffered events).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Callable
    from uuid import UUID

    from auditor.models.events import AuthzEvent, TlsInfo
    from auditor.vocabulary import AuthzAction, FailureReason, Outcome

__all__ = ["FIELDS", "AuthzView"]

#: The names of the values a view holds (its slots).
FIELDS: Final = (
    "action",
    "alg",
    "aud",
    "event",
    "event_id",
    "exp",
    "fhir_authorization",
    "fhir_server",
    "fingerprint",
    "has_service",
    "has_token",
    "hook_instance",
    "iat",
    "iss",
    "jku",
    "jti",
    "kid",
    "nbf",
    "outcome",
    "payload_bytes",
    "peer_ip",
    "reason",
    "role",
    "scopes",
    "service_id",
    "service_url",
    "time",
    "tls",
    "typ",
)


class AuthzView:
    """A flat, read-only projection of one ``AuthzEvent`` for the stream detectors.

    Args:
        event: The validated event. Its fields are read once, here. ``None`` only for
            ``deferred``, whose caller sets every field.

    Attributes:
        event: The event itself, for what the view does not carry.
        time: Event time in seconds since the epoch.
        event_id: ``event.event_id``.
        action, outcome, reason: As in the event.
        role: ``event.source.role``.
        iss: ``event.client.iss``; ``None`` exactly when the event names no client.
        has_service: Whether the event names a service (even with neither id nor url).
        service_id, service_url: ``event.service.id`` and ``.url``.
        has_token: Whether the event carries token claims.
        jti, kid, alg, typ, iat, nbf, exp, aud, jku, fingerprint: The token's claims and
            fingerprint (``aud`` is ``()`` without a token, as in a token without ``aud``).
        hook_instance, fhir_server, fhir_authorization, scopes, payload_bytes, tls: As in
            the event.
        peer_ip: ``event.peer.ip``.
    """

    __slots__ = (
        "_build",
        "_event",
        "action",
        "alg",
        "aud",
        "event_id",
        "exp",
        "fhir_authorization",
        "fhir_server",
        "fingerprint",
        "has_service",
        "has_token",
        "hook_instance",
        "iat",
        "iss",
        "jku",
        "jti",
        "kid",
        "nbf",
        "outcome",
        "payload_bytes",
        "peer_ip",
        "reason",
        "role",
        "scopes",
        "service_id",
        "service_url",
        "time",
        "tls",
        "typ",
    )

    _event: AuthzEvent | None
    _build: Callable[[], AuthzEvent] | None
    time: float
    event_id: UUID
    action: AuthzAction
    outcome: Outcome
    reason: FailureReason | None
    role: Literal["client", "service"]
    iss: str | None
    has_service: bool
    service_id: str | None
    service_url: str | None
    has_token: bool
    jti: str | None
    kid: str | None
    alg: str | None
    typ: str | None
    iat: int | None
    nbf: int | None
    exp: int | None
    aud: tuple[str, ...]
    jku: str | None
    fingerprint: str | None
    hook_instance: str | None
    fhir_server: str | None
    fhir_authorization: bool | None
    scopes: tuple[str, ...]
    payload_bytes: int | None
    tls: TlsInfo | None
    peer_ip: str | None

    def __init__(self, event: AuthzEvent | None) -> None:
        # A validated pydantic model keeps its fields in the instance ``__dict__``; reading
        # that dict directly skips the attribute lookup through the model's class, which
        # is what makes a model field read slow — worth it from two fields of one model
        # on, so one-field parts are read as attributes (tests/test_authz_view.py checks
        # that every value equals the attribute's).
        self._build = None
        self._event = event
        if event is None:
            return
        fields = event.__dict__
        self.time = fields["time"].timestamp()
        self.event_id = fields["event_id"]
        self.action = fields["action"]
        self.outcome = fields["outcome"]
        self.reason = fields["reason"]
        self.role = fields["source"].role
        client = fields["client"]
        self.iss = None if client is None else client.iss
        service = fields["service"]
        self.has_service = service is not None
        if service is None:
            self.service_id = self.service_url = None
        else:
            part = service.__dict__
            self.service_id = part["id"]
            self.service_url = part["url"]
        token = fields["token"]
        if token is None:
            self.has_token = False
            self.jti = self.kid = self.alg = self.typ = self.jku = self.fingerprint = None
            self.iat = self.nbf = self.exp = None
            self.aud = ()
        else:
            claims = token.__dict__
            self.has_token = True
            self.jti = claims["jti"]
            self.kid = claims["kid"]
            self.alg = claims["alg"]
            self.typ = claims["typ"]
            self.iat = claims["iat"]
            self.nbf = claims["nbf"]
            self.exp = claims["exp"]
            self.aud = claims["aud"]
            self.jku = claims["jku"]
            self.fingerprint = claims["fingerprint"]
        self.hook_instance = fields["hook_instance"]
        self.fhir_server = fields["fhir_server"]
        self.fhir_authorization = fields["fhir_authorization"]
        self.scopes = fields["scopes"]
        self.payload_bytes = fields["payload_bytes"]
        self.tls = fields["tls"]
        peer = fields["peer"]
        self.peer_ip = None if peer is None else peer.ip

    @staticmethod
    def deferred(build: Callable[[], AuthzEvent]) -> AuthzView:
        """A view whose event ``build`` makes on first use; the caller sets every field.

        For decoders that read the fields without building the event (the values must be
        exactly the event's: ``tests/test_authz_mirror.py`` checks the one that does).
        """
        view = AuthzView(None)
        view._build = build
        return view

    @property
    def event(self) -> AuthzEvent:
        """The event, built now if the view was filled without it."""
        event = self._event
        if event is None:
            build = self._build
            if build is None:
                raise AssertionError("an AuthzView without its event or a way to build it")
            event = self._event = build()
            self._build = None
        return event

    def __reduce__(self) -> tuple[type[AuthzView], tuple[AuthzEvent]]:
        # Pickled as its event (the runtime's snapshots hold the views of buffered events):
        # everything else is read from it again. Also what a compiled build needs, whose
        # classes pickle only what they are told to.
        return (AuthzView, (self.event,))

    def __repr__(self) -> str:
        # Never the claims or identifiers: a view may end up in a log line or a traceback.
        return f"AuthzView(action={self.action.value}, time={self.time})"

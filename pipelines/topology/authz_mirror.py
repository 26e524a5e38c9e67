"""The detect stage's fast path from JSON to the stream detectors, through a msgspec mirror.

pydantic-core validating an ``AuthzEvent`` from JSON, and freeing the seven model
objects it builds, is most of what a detect process does: ~12 us per event in a warm
loop, 17-25 us inside the pipeline (bench/pipeline.py). Building those models is the
cost, not the parsing: assembling the same models from a faster parser costs as much
(measured: a msgspec mirror plus ``model_construct``-style assembly, compiled, 11.9 us
against pydantic's 12.1). So the fast path does not build them. msgspec decodes the JSON
against a mirror of the contract (``authz_structs``: its fields, types and constraints
as ``msgspec.Struct`` types); ``Mirrored`` then fills the stream detectors' ``AuthzView``
straight from the mirror, and builds the ``AuthzEvent`` only when someone asks for it
(the rare detector path, a redaction, a store in the same process).

The fast path only ever **accepts**; it never refuses. Whatever it does not take plainly —
any msgspec error, a lax input pydantic would coerce (``"123"`` for an int, a Unix-number
time), a time that is not plain RFC 3339 to the microsecond, a success that names a
failure reason, a time outside UTC's range — it declines, and
``AuthzEvent.model_validate_json`` decides (an event, or the error naming the field). So
the rule it keeps is one-sided: **what it accepts, pydantic accepts, with equal values**:
the event it builds equals pydantic's (the same fields, ``model_fields_set`` and JSON), and
the view it fills equals the view of pydantic's event. ``tests/test_authz_mirror.py``
checks that with Hypothesis over valid and broken events, and with a case table of the
places JSON decoders differ.

A field added to the contract without the mirror, or a validator the mirror does not
repeat, turns the fast path off (``FAITHFUL``, checked at import): slower, never wrong.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from msgspec import UNSET

from auditor.models import AuthzEvent, AuthzView
from auditor.models.events import ClientRef, Peer, ServiceRef, Source, TlsInfo, TokenClaims
from auditor.vocabulary import Outcome
from pipelines.topology.authz_structs import (
    ClientMirror,
    EventMirror,
    PeerMirror,
    ServiceMirror,
    SourceMirror,
    TlsMirror,
    TokenMirror,
)

__all__ = ["FAITHFUL", "AuthzMirror", "Mirrored"]

_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
"""RFC 3339 as producers write it, to the microsecond, in ASCII digits: read alike by
``fromisoformat`` and pydantic. More fractional digits are rounded by msgspec and cut by
pydantic; an offset's minutes past 59 are refused by pydantic and carried into the hour by
``fromisoformat``; a leap second is refused by ``fromisoformat``: all declined."""

_DEEPEST: Final = 160
"""Opening brackets past which the fast path declines: pydantic's JSON parser refuses
nesting from about 200 levels deep (a recursion limit) where msgspec reads on, and deeper
still msgspec raises ``RecursionError``. A record holds at least as many brackets as it
nests levels, and real events hold a handful."""


_MIRRORS: Final[dict[type[msgspec.Struct], type[Any]]] = {
    SourceMirror: Source,
    ClientMirror: ClientRef,
    ServiceMirror: ServiceRef,
    TokenMirror: TokenClaims,
    TlsMirror: TlsInfo,
    PeerMirror: Peer,
    EventMirror: AuthzEvent,
}
_new = object.__new__
_set = object.__setattr__


def _model(model: type[Any], values: dict[str, Any], present: set[str]) -> Any:
    # What ``model_construct`` does for a model without aliases or private attributes.
    instance = _new(model)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", present)
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def _fields(part: msgspec.Struct, names: tuple[str, ...]) -> tuple[dict[str, Any], set[str]]:
    # The generic reading, for the parts that are rare or small.
    values: dict[str, Any] = {}
    present: set[str] = set()
    for name in names:
        value = getattr(part, name)
        if value is UNSET:
            value = None
        else:
            present.add(name)
        values[name] = value
    return values, present


_SOURCE_FIELDS: Final = tuple(Source.model_fields)
_CLIENT_FIELDS: Final = tuple(ClientRef.model_fields)
_SERVICE: Final = tuple(ServiceRef.model_fields)
_TLS: Final = tuple(TlsInfo.model_fields)
_PEER: Final = tuple(Peer.model_fields)
_TOKEN: Final = tuple(TokenClaims.model_fields)
_EVENT: Final = tuple(AuthzEvent.model_fields)
_PART_NAMES: Final = ("source", "client", "service", "token", "tls", "peer")


def _part(part: msgspec.Struct) -> Any:
    model = _MIRRORS[type(part)]
    values, present = _fields(part, _PART_FIELDS[type(part)])
    return _model(model, values, present)


def _token(part: TokenMirror) -> TokenClaims:
    values, present = _fields(part, _TOKEN)
    aud = values["aud"]
    if aud is None:  # absent: JSON null is no audience to msgspec or pydantic
        values["aud"] = ()
    elif isinstance(aud, str):
        values["aud"] = (aud,)
    built: TokenClaims = _model(TokenClaims, values, present)
    return built


def _event(mirror: EventMirror, moment: datetime, *, stripped: bool = False) -> AuthzEvent:
    values, present = _fields(mirror, _EVENT)
    values["time"] = moment
    if values["kind"] is None:
        values["kind"] = "authz"
    if values["scopes"] is None:
        values["scopes"] = ()
    if values["attributes"] is None:
        values["attributes"] = {}
    if stripped:
        # What ``EventScrubber.for_detection`` makes of it (a ``model_copy`` with these).
        present |= {"attributes", "detail"}
    for name in _PART_NAMES:
        part = values[name]
        if part is not None:
            values[name] = _token(part) if isinstance(part, TokenMirror) else _part(part)
    event: AuthzEvent = _model(AuthzEvent, values, present)
    return event


def _text(value: object) -> str | None:
    # A present, non-empty text; ``None`` for absent (UNSET), null and "".
    return value if isinstance(value, str) and value else None


class _Deferred:
    """What a view keeps to build its detection event later: the mirror without free text.

    ``EventScrubber.for_detection`` drops ``attributes`` and ``detail``; so does this, at
    once, so that a view waiting in the runtime's buffer holds no free text at all.
    """

    __slots__ = ("_mirror", "_moment", "_stripped")

    def __init__(self, mirror: EventMirror, moment: datetime) -> None:
        attributes, detail = mirror.attributes, mirror.detail
        stripped = bool(attributes) if isinstance(attributes, dict) else False
        stripped = stripped or not (detail is UNSET or detail is None)
        if stripped:
            mirror = msgspec.structs.replace(mirror, attributes=UNSET, detail=UNSET)
        self._mirror = mirror
        self._moment = moment
        self._stripped = stripped

    def build(self) -> AuthzEvent:
        """The detection event."""
        return _event(self._mirror, self._moment, stripped=self._stripped)


class Mirrored:
    """An authz event as the mirror decoded it: a view now, the event on demand.

    Args:
        mirror: The decoded mirror (already checked: see ``AuthzMirror.decode``).
        moment: Its time in UTC.
        raw: The JSON it was decoded from, when kept (``AuthzMirror.decode`` keeps it: an
            embedded run's store process decodes it again instead of receiving the stored
            JSON, see ``store_wire``).
    """

    __slots__ = ("_detection", "_event", "mirror", "moment", "raw")

    def __init__(self, mirror: EventMirror, moment: datetime, raw: bytes | None = None) -> None:
        self.mirror = mirror
        self.moment = moment
        self.raw = raw
        self._event: AuthzEvent | None = None
        self._detection: AuthzEvent | None = None

    @property
    def time(self) -> datetime:
        """The event time, in UTC (``AuthzEvent.time``)."""
        return self.moment

    @property
    def event_id(self) -> object:
        """``AuthzEvent.event_id``."""
        return self.mirror.event_id

    @property
    def client_iss(self) -> str | None:
        """``AuthzEvent.client_iss``."""
        client = self.mirror.client
        return client.iss if isinstance(client, ClientMirror) else None

    @property
    def service_id(self) -> str | None:
        """``AuthzEvent.service_id``."""
        service = self.mirror.service
        if isinstance(service, ServiceMirror):
            value = service.id
            return value if isinstance(value, str) else None
        return None

    def event(self) -> AuthzEvent:
        """The ``AuthzEvent`` pydantic builds from the same JSON."""
        event = self._event
        if event is None:
            event = self._event = _event(self.mirror, self.moment)
        return event

    def detection_event(self) -> AuthzEvent:
        """The event as the stream detectors get it (``EventScrubber.for_detection``)."""
        event = self._detection
        if event is None:
            event = self._detection = _Deferred(self.mirror, self.moment).build()
        return event

    def stored_json(self) -> bytes:
        """The event's JSON as the store keeps it, without building the event when it can.

        Byte for byte ``to_json(self.event(), exclude_none=True)``: the contract's field
        order, absent and null fields left out, ``kind``, ``scopes``, ``attributes`` and a
        token's ``aud`` always written, the time in UTC. An event in that form already (as
        the contract's own serializer writes it: the emitter, the simulator) is the
        mirror's own msgspec encoding; others are assembled field by field. msgspec writes
        what pydantic writes for every value the contract holds but floats, whose
        exponents it spells differently (``1e16`` against ``1e+16``): attributes holding a
        float go the slow way. ``tests/test_authz_mirror.py`` compares the bytes.
        """
        mirror = self.mirror
        attributes = mirror.attributes
        if isinstance(attributes, dict) and attributes and _holds_float(attributes):
            event = self.event()
            return event.__pydantic_serializer__.to_json(event, exclude_none=True)
        if _canonical(mirror):
            encoded = _encode(mirror)
            if b"null" not in encoded:  # a null anywhere (even in a text): assembled instead
                return encoded
        return _encode(_stored(mirror, self.moment))

    def free_text(self) -> dict[str, Any]:
        """``EventScrubber.free_text`` of the event, read from the mirror."""
        mirror = self.mirror
        text: dict[str, Any] = {}
        attributes = mirror.attributes
        if isinstance(attributes, dict) and attributes:
            text["attributes"] = attributes
        detail = _text(mirror.detail)
        if detail is not None:
            text["detail"] = detail
        fhir_server = _text(mirror.fhir_server)
        if fhir_server is not None:
            text["fhir_server"] = fhir_server
        service, token, tls = mirror.service, mirror.token, mirror.tls
        if isinstance(service, ServiceMirror):
            url = _text(service.url)
            if url is not None:
                text["service_url"] = url
        if isinstance(token, TokenMirror):
            jku = _text(token.jku)
            if jku is not None:
                text["token_jku"] = jku
        if isinstance(tls, TlsMirror):
            error = _text(tls.error)
            if error is not None:
                text["tls_error"] = error
        return text

    def view(self) -> AuthzView:
        """The stream detectors' view of the detection event, filled from the mirror."""
        mirror = self.mirror
        view = AuthzView.deferred(_Deferred(mirror, self.moment).build)
        view.time = self.moment.timestamp()
        view.event_id = mirror.event_id
        view.action = mirror.action
        view.outcome = mirror.outcome
        reason = mirror.reason
        view.reason = None if reason is UNSET else reason
        view.role = mirror.source.role
        client = mirror.client
        view.iss = client.iss if isinstance(client, ClientMirror) else None
        service = mirror.service
        if isinstance(service, ServiceMirror):
            view.has_service = True
            view.service_id = _given(service.id)
            view.service_url = _given(service.url)
        else:
            view.has_service = False
            view.service_id = view.service_url = None
        _fill_token(view, mirror.token)
        view.hook_instance = _given(mirror.hook_instance)
        view.fhir_server = _given(mirror.fhir_server)
        flag = mirror.fhir_authorization
        view.fhir_authorization = flag if isinstance(flag, bool) else None
        scopes = mirror.scopes
        view.scopes = scopes if isinstance(scopes, tuple) else ()
        size = mirror.payload_bytes
        view.payload_bytes = size if isinstance(size, int) else None
        tls = mirror.tls
        view.tls = _part(tls) if isinstance(tls, TlsMirror) else None
        peer = mirror.peer
        view.peer_ip = _given(peer.ip) if isinstance(peer, PeerMirror) else None
        return view


_encode: Final = msgspec.json.Encoder().encode


_TO_SECOND: Final = len("2026-11-28T08:00:00Z")
_TO_MICROSECOND: Final = len("2026-11-28T08:00:00.000001Z")


def _canonical(mirror: EventMirror) -> bool:
    """Whether the mirror holds every field pydantic writes, and the time as it writes it."""
    if mirror.kind is UNSET or mirror.scopes is UNSET or mirror.attributes is UNSET:
        return False
    token = mirror.token
    if isinstance(token, TokenMirror) and not isinstance(token.aud, tuple):
        return False
    return _utc_as_written(mirror.time)


def _utc_as_written(text: str) -> bool:
    """Whether a time the mirror took (``_TIME``) is written as pydantic writes it.

    That is in UTC ("Z"), to the second, or to the microsecond when there are some (six
    digits, not all zero). Read off the text: formatting the parsed time to compare it
    costs more than the encoding.
    """
    if not text.endswith("Z"):
        return False
    size = len(text)
    return size == _TO_SECOND or (size == _TO_MICROSECOND and text[20:26] != "000000")


def _holds_float(value: object) -> bool:
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _part_json(part: msgspec.Struct, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(part, name)
        if name == "aud":  # the token's: one shape, always written (its default is ())
            out[name] = () if value is UNSET else (value,) if isinstance(value, str) else value
        elif value is not UNSET and value is not None:
            out[name] = value
    return out


_PART_FIELDS: Final[dict[type[msgspec.Struct], tuple[str, ...]]] = {
    SourceMirror: _SOURCE_FIELDS,
    ClientMirror: _CLIENT_FIELDS,
    ServiceMirror: _SERVICE,
    TokenMirror: _TOKEN,
    TlsMirror: _TLS,
    PeerMirror: _PEER,
}
_WRITTEN_WHEN_ABSENT: Final[dict[str, object]] = {"kind": "authz", "scopes": (), "attributes": {}}
"""The fields whose defaults are not ``None``: ``exclude_none`` writes them when absent."""


def _stored(mirror: EventMirror, moment: datetime) -> dict[str, Any]:
    """The event as ``model_dump(exclude_none=True)`` has it, in the contract's order."""
    out: dict[str, Any] = {}
    for name in _EVENT:
        value = moment if name == "time" else getattr(mirror, name)
        if value is UNSET or value is None:
            if name not in _WRITTEN_WHEN_ABSENT:
                continue
            value = _WRITTEN_WHEN_ABSENT[name]
        elif isinstance(value, msgspec.Struct):
            value = _part_json(value, _PART_FIELDS[type(value)])
        out[name] = value
    return out


def _given(value: object) -> str | None:
    # A text field's value: ``None`` when absent (UNSET) or null.
    return value if isinstance(value, str) else None


def _number(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _fill_token(view: AuthzView, token: object) -> None:
    if not isinstance(token, TokenMirror):
        view.has_token = False
        view.jti = view.kid = view.alg = view.typ = view.jku = view.fingerprint = None
        view.iat = view.nbf = view.exp = None
        view.aud = ()
        return
    view.has_token = True
    view.jti = _given(token.jti)
    view.kid = _given(token.kid)
    view.alg = _given(token.alg)
    view.typ = _given(token.typ)
    view.iat = _number(token.iat)
    view.nbf = _number(token.nbf)
    view.exp = _number(token.exp)
    aud = token.aud
    view.aud = (aud,) if isinstance(aud, str) else aud if isinstance(aud, tuple) else ()
    view.jku = _given(token.jku)
    view.fingerprint = _given(token.fingerprint)


def _decoded(decode: Any, raw: bytes) -> Mirrored | None:
    if raw.count(b"[") + raw.count(b"{") > _DEEPEST:
        return None
    try:
        mirror: EventMirror = decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None  # msgspec's errors, invalid UTF-8, nesting: the contract decides
    reason = mirror.reason
    if mirror.outcome is Outcome.SUCCESS and reason is not UNSET and reason is not None:
        return None  # the contract refuses it, and says why
    text = mirror.time
    if _TIME.fullmatch(text) is None:
        return None
    try:
        moment = datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        return None  # a date that does not exist, a time with no UTC equivalent
    return Mirrored(mirror, moment, raw)


class AuthzMirror:
    """Decodes authz events from JSON through the mirror, or declines.

    ``decode`` returns the event as ``Mirrored`` when the fast path takes it, or ``None``
    when it declines and ``AuthzEvent.model_validate_json`` must decide. It never raises.
    """

    __slots__ = ("_decode",)

    def __init__(self) -> None:
        self._decode: Any = msgspec.json.Decoder(EventMirror).decode

    def decode(self, raw: bytes) -> Mirrored | None:
        """The event in ``raw``, or ``None`` to leave it to the contract."""
        return _decoded(self._decode, raw) if FAITHFUL else None

    def stored_again(self, raw: bytes) -> tuple[bytes, bytes] | None:
        """For a line ``decode`` took before: its event id's 16 bytes and its stored JSON.

        ``(mirror.event_id.bytes, decode(raw).stored_json())``, for a store that receives
        the line instead of the JSON (``store_wire``). The common event, already in the
        stored form, skips what ``decode`` checks for detection (the time's pattern and
        date, the outcome's reason): they held when ``decode`` took the line, and the stored
        JSON writes the time's text as it is. Any other line goes through ``decode`` again;
        ``None`` when it declines.
        """
        try:
            mirror: EventMirror = self._decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        attributes = mirror.attributes
        floats = isinstance(attributes, dict) and bool(attributes) and _holds_float(attributes)
        if FAITHFUL and not floats and _canonical(mirror):
            encoded = _encode(mirror)
            if b"null" not in encoded:
                return mirror.event_id.bytes, encoded
        event = self.decode(raw)
        return None if event is None else (mirror.event_id.bytes, event.stored_json())


_SAMPLE: Final = (
    b'{"kind":"authz","event_id":"0b7c2a52-6f4e-4c1a-9a57-3c1d2b7e9f10",'
    b'"time":"2026-03-01T12:00:00.250+01:00","source":{"role":"service","name":"svc"},'
    b'"action":"token.rejected","outcome":"failure","reason":"replayed_jti","detail":"d",'
    b'"client":{"iss":"https://ehr.example.org"},"service":{"id":"s"},'
    b'"token":{"jti":"j","alg":"RS384","iat":1,"exp":2,"aud":"https://svc.example.org",'
    b'"fingerprint":"k1:00000000000000000000000000000000"},"scopes":["a"],'
    b'"tls":{"version":"TLSv1.3"},"peer":{"ip":"127.0.0.1"},"attributes":{"k":[1,{"x":null}]}}'
)


def _faithful() -> bool:
    """Whether the mirror has the contract's fields and builds what pydantic builds."""
    for mirror, model in _MIRRORS.items():
        if set(mirror.__struct_fields__) != set(model.model_fields):
            return False
        if model.__pydantic_post_init__ is not None or model.__private_attributes__:
            return False
        # The validators the fast path repeats: the event's outcome/reason check (the
        # token's ``aud`` and the time's zone are validators of their field types).
        decorators = model.__pydantic_decorators__
        known = {"_reason_goes_with_failure"} if model is AuthzEvent else set()
        if set(decorators.model_validators) != known or decorators.field_validators:
            return False
    slow = AuthzEvent.model_validate_json(_SAMPLE)
    fast = _decoded(msgspec.json.Decoder(EventMirror).decode, _SAMPLE)
    if fast is None:
        return False
    event = fast.event()
    detection = slow.model_copy(update={"attributes": {}, "detail": None})
    seen, expected = fast.view(), AuthzView(detection)
    return (
        event == slow
        and event.model_fields_set == slow.model_fields_set
        and event.token is not None
        and slow.token is not None
        and event.token.model_fields_set == slow.token.model_fields_set
        and event.model_dump_json() == slow.model_dump_json()
        and fast.detection_event() == detection
        and fast.detection_event().model_fields_set == detection.model_fields_set
        and all(
            getattr(seen, name) == getattr(expected, name)
            for name in ("time", "iss", "jti", "aud", "tls", "fingerprint", "has_service")
        )
    )


FAITHFUL: Final = _faithful()

"""The trust registry against real JWK Set servers on 127.0.0.1: caching, refetch, jku, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cdshooks_support import AUDIENCE, BASE, ISS, NOW, SERVICE, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from auditor.cdshooks import (
    CdsClient,
    JwksUrl,
    ListSink,
    SigningKey,
    TrustedIssuer,
    TrustRegistry,
    Verifier,
)
from auditor.cdshooks.adversary import Forger
from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from auditor.vocabulary import AuthzAction, FailureReason, Outcome


@dataclass
class JwksServer:
    """Serves a JWK Set and counts requests; ``document`` can be swapped by the test."""

    document: Any
    status: int = 200
    hits: list[str] = field(default_factory=list)
    base_url: str = ""

    def app(self, base_url: str) -> Starlette:
        self.base_url = base_url

        async def jwks(request: Request) -> Response:
            self.hits.append(request.url.path)
            if self.status != 200:
                return JSONResponse({"error": "down"}, status_code=self.status)
            doc = self.document() if callable(self.document) else self.document
            return Response(json.dumps(doc), media_type="application/jwk-set+json")

        async def redirect(request: Request) -> Response:
            self.hits.append(request.url.path)
            return RedirectResponse(f"{base_url}/jwks.json", status_code=302)

        return Starlette(routes=[Route("/jwks.json", jwks), Route("/moved", redirect)])

    @property
    def url(self) -> str:
        return f"{self.base_url}/jwks.json"


@pytest.fixture
def jwks_server(ehr: CdsClient) -> Iterator[JwksServer]:
    server = JwksServer(lambda: ehr.jwks(now=NOW))
    with serve(server.app):
        yield server


@pytest.fixture
def attacker_server() -> Iterator[JwksServer]:
    server = JwksServer({"keys": []})
    with serve(server.app):
        yield server


@pytest.fixture
def make_verifier(sink: ListSink, fingerprinter: Fingerprinter) -> Iterator[Any]:
    registries: list[TrustRegistry] = []

    def make(*urls: JwksUrl) -> Verifier:
        registry = TrustRegistry([TrustedIssuer(ISS, jwks_urls=urls)])
        registries.append(registry)
        return Verifier(registry, base_url=BASE, sink=sink, fingerprinter=fingerprinter)

    yield make
    for registry in registries:
        registry.close()


def _fetches(sink: ListSink) -> list[Any]:
    return [e for e in sink if e.action is AuthzAction.JWKS_FETCHED]


def test_a_jwks_url_is_fetched_once_and_cached(
    ehr: CdsClient, jwks_server: JwksServer, sink: ListSink, make_verifier: Any
) -> None:
    verifier = make_verifier(JwksUrl(jwks_server.url, allow_http=True))
    for _ in range(3):
        assert verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW).ok
    assert len(jwks_server.hits) == 1
    [fetch] = _fetches(sink)
    assert fetch.outcome is Outcome.SUCCESS
    assert fetch.attributes == {"jwks_source": jwks_server.url, "keys": 1}
    assert fetch.client is not None
    assert fetch.client.iss == ISS


def test_the_cache_expires_after_its_ttl(
    ehr: CdsClient, jwks_server: JwksServer, make_verifier: Any
) -> None:
    url = JwksUrl(jwks_server.url, allow_http=True, cache_ttl=timedelta(minutes=10))
    verifier = make_verifier(url)
    verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    later = NOW + timedelta(minutes=11)
    assert verifier.verify(ehr.mint(AUDIENCE, now=later).token, SERVICE, now=later).ok
    assert len(jwks_server.hits) == 2


def test_an_unknown_kid_triggers_one_rate_limited_refetch(
    ehr: CdsClient, jwks_server: JwksServer, make_verifier: Any
) -> None:
    url = JwksUrl(jwks_server.url, allow_http=True, refetch_interval=timedelta(minutes=1))
    verifier = make_verifier(url)
    forger = Forger.for_client(ehr)
    assert verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW).ok
    # A storm of unknown kids within the interval costs one fetch, not one per token.
    t1 = NOW + timedelta(minutes=2)
    for _ in range(5):
        result = verifier.verify(forger.unknown_kid(AUDIENCE, t1), SERVICE, now=t1)
        assert result.reason is FailureReason.UNKNOWN_KID
    assert len(jwks_server.hits) == 2
    t2 = t1 + timedelta(minutes=1)
    verifier.verify(forger.unknown_kid(AUDIENCE, t2), SERVICE, now=t2)
    assert len(jwks_server.hits) == 3


def test_a_rotated_key_is_found_by_the_refetch(
    ehr: CdsClient, jwks_server: JwksServer, make_verifier: Any
) -> None:
    verifier = make_verifier(JwksUrl(jwks_server.url, allow_http=True))
    assert verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW).ok
    ehr.rotate_key(now=NOW)
    later = NOW + timedelta(minutes=2)
    assert verifier.verify(ehr.mint(AUDIENCE, now=later).token, SERVICE, now=later).ok
    assert len(jwks_server.hits) == 2


def test_an_unreachable_jwks_url_makes_tokens_jwks_unavailable(
    ehr: CdsClient, closed_port_url: str, sink: ListSink, make_verifier: Any
) -> None:
    verifier = make_verifier(JwksUrl(f"{closed_port_url}/jwks", allow_http=True))
    for _ in range(3):
        result = verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
        assert result.reason is FailureReason.JWKS_UNAVAILABLE
    # One attempt, not one per token: a down key server must not slow every request.
    [fetch] = _fetches(sink)
    assert fetch.reason is FailureReason.JWKS_UNAVAILABLE
    assert fetch.detail == "unreachable (ConnectError)"


def test_a_failed_refresh_keeps_the_last_good_keys(
    ehr: CdsClient, jwks_server: JwksServer, sink: ListSink, make_verifier: Any
) -> None:
    url = JwksUrl(jwks_server.url, allow_http=True, cache_ttl=timedelta(minutes=10))
    verifier = make_verifier(url)
    assert verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW).ok
    jwks_server.status = 500
    later = NOW + timedelta(minutes=11)
    assert verifier.verify(ehr.mint(AUDIENCE, now=later).token, SERVICE, now=later).ok
    assert [(f.outcome, f.detail) for f in _fetches(sink)] == [
        (Outcome.SUCCESS, None),
        (Outcome.FAILURE, "HTTP 500"),
    ]


def test_a_pre_approved_jku_is_honoured(
    es256_key: SigningKey, jwks_server: JwksServer, make_verifier: Any
) -> None:
    client = CdsClient(
        issuer=ISS, keys=es256_key, services=[BASE], jku=jwks_server.url, allow_http=True
    )
    verifier = make_verifier(JwksUrl(jwks_server.url, allow_http=True))
    assert verifier.verify(client.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW).ok


def test_a_jku_that_is_not_pre_approved_is_never_fetched(
    ehr: CdsClient, jwks_server: JwksServer, attacker_server: JwksServer, make_verifier: Any
) -> None:
    verifier = make_verifier(JwksUrl(jwks_server.url, allow_http=True))
    token = Forger.for_client(ehr).unapproved_jku(AUDIENCE, NOW, jku=attacker_server.url)
    assert verifier.verify(token, SERVICE, now=NOW).reason is FailureReason.JKU_NOT_ALLOWED
    assert attacker_server.hits == []


def test_a_jwks_publishing_private_keys_is_refused_whole(
    jwks_server: JwksServer, sink: ListSink, ehr: CdsClient, make_verifier: Any
) -> None:
    leaked = {**ehr.keyring.current.public_jwk(), "d": "cHJpdmF0ZS1zY2FsYXItdmFsdWU"}
    jwks_server.document = {"keys": [leaked]}
    verifier = make_verifier(JwksUrl(jwks_server.url, allow_http=True))
    result = verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    assert result.reason is FailureReason.JWKS_UNAVAILABLE
    [fetch] = _fetches(sink)
    assert fetch.detail == "the JWK Set publishes private key material"
    assert "cHJpdmF0ZS1zY2FsYXItdmFsdWU" not in fetch.model_dump_json()


def test_redirects_are_not_followed(
    ehr: CdsClient, jwks_server: JwksServer, sink: ListSink, make_verifier: Any
) -> None:
    verifier = make_verifier(JwksUrl(f"{jwks_server.base_url}/moved", allow_http=True))
    result = verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    assert result.reason is FailureReason.JWKS_UNAVAILABLE
    assert jwks_server.hits == ["/moved"]
    assert _fetches(sink)[0].detail == "HTTP 302"


def test_an_oversized_jwks_is_refused(
    ehr: CdsClient, jwks_server: JwksServer, sink: ListSink, make_verifier: Any
) -> None:
    jwks_server.document = {"keys": [ehr.keyring.current.public_jwk()], "pad": "x" * 100_000}
    verifier = make_verifier(JwksUrl(jwks_server.url, allow_http=True))
    result = verifier.verify(ehr.mint(AUDIENCE, now=NOW).token, SERVICE, now=NOW)
    assert result.reason is FailureReason.JWKS_UNAVAILABLE
    assert _fetches(sink)[0].detail == "JWK Set larger than 65536 bytes"


def test_refresh_loads_every_source_at_start_up(
    jwks_server: JwksServer, make_verifier: Any
) -> None:
    verifier = make_verifier(JwksUrl(jwks_server.url, allow_http=True))
    verifier.registry.refresh(now=NOW.timestamp(), listener=lambda _f: None)
    assert len(jwks_server.hits) == 1


def test_a_trust_file_with_a_relative_jwks_file_loads(tmp_path: Path, ehr: CdsClient) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ehr.json").write_text(json.dumps(ehr.jwks(now=NOW)))
    config = {"issuers": [{"iss": ISS, "jwks_file": "keys/ehr.json"}]}
    (tmp_path / "trust.json").write_text(json.dumps(config))
    registry = TrustRegistry.from_file(tmp_path / "trust.json")
    assert registry.issuers == frozenset({ISS})


CONFIG_ERRORS = [
    # Each case: the issuers, the error the operator should see, and why.
    (
        [TrustedIssuer(ISS, jwks={"keys": []})],
        "no usable signature key",
        "an empty JWK Set trusts nothing",
    ),
    ([TrustedIssuer(ISS)], "has no keys", "an issuer with no key source"),
    ([TrustedIssuer(ISS, jwks_urls=["http://keys.example.org/jwks"])], "https", "plain http"),
    (
        [TrustedIssuer(ISS, jwks_urls=["https://keys.example.org/jwks?k=v"])],
        "query",
        "a query string in a JWK Set URL",
    ),
]


@pytest.mark.parametrize(
    ("issuers", "message"), [c[:2] for c in CONFIG_ERRORS], ids=[c[2] for c in CONFIG_ERRORS]
)
def test_bad_trust_configuration_stops_start_up(issuers: list, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TrustRegistry(issuers)


def test_an_issuer_listed_twice_stops_start_up(ehr: CdsClient) -> None:
    issuer = TrustedIssuer(ISS, jwks=ehr.jwks(now=NOW))
    with pytest.raises(ConfigurationError, match="listed twice"):
        TrustRegistry([issuer, issuer])


def test_two_keys_with_one_kid_stop_start_up(ehr: CdsClient) -> None:
    jwk = ehr.keyring.current.public_jwk()
    with pytest.raises(ConfigurationError, match="two keys with one kid"):
        TrustRegistry([TrustedIssuer(ISS, jwks={"keys": [jwk, jwk]})])


def test_only_a_registry_with_jwks_urls_may_block(ehr: CdsClient) -> None:
    pinned = TrustRegistry([TrustedIssuer(ISS, jwks=ehr.jwks(now=NOW))])
    fetched = TrustRegistry([TrustedIssuer(ISS, jwks_urls=["https://ehr.example.org/jwks"])])
    assert (pinned.may_block, fetched.may_block) == (False, True)

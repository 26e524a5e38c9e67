"""Packaging: the kernel stays light, the extra is named when missing, the example runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from cdshooks_support import ISS

import auditor.cdshooks
from auditor.cdshooks import CdsClient, CdsHttpClient, SigningKey
from auditor.fingerprints import Fingerprinter
from auditor.vocabulary import AuthzAction

_PY = sys.executable


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [_PY, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_the_kernel_imports_no_cdshooks_dependency() -> None:
    done = _run(
        "import sys, auditor; "
        "print(sorted(m for m in ('jwt', 'httpx', 'starlette', 'cryptography', 'auditor.cdshooks')"
        " if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_extra_the_import_names_it() -> None:
    # A None entry in sys.modules makes "import jwt" fail as if PyJWT were not installed.
    done = _run(
        "import sys; sys.modules['jwt'] = None\n"
        "from auditor.errors import MissingExtraError\n"
        "try:\n    import auditor.cdshooks\n"
        "except MissingExtraError as exc:\n    print(exc.extra, '|', exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cdshooks | auditor.cdshooks needs the 'cdshooks' extra")


def test_the_public_api_is_what_all_lists() -> None:
    exported = set(auditor.cdshooks.__all__)
    assert exported == {n for n in exported if hasattr(auditor.cdshooks, n)}
    assert {"Verifier", "CdsClient", "CdsHooksMiddleware", "CdsHttpClient"} <= exported


def test_the_example_service_runs_as_a_module(tmp_path: Path, fingerprinter: Fingerprinter) -> None:
    key = SigningKey.generate("ES256")
    (tmp_path / "trust.json").write_text(
        json.dumps({"issuers": [{"iss": ISS, "jwks": {"keys": [key.public_jwk()]}}]})
    )
    events = tmp_path / "events.jsonl"
    command = [
        _PY,
        "-m",
        "auditor.cdshooks.example",
        "--port",
        "0",
        "--trust",
        str(tmp_path / "trust.json"),
        "--events",
        str(events),
    ]
    env = {**os.environ, "AUDITOR_FINGERPRINT_KEY": "example-test-key-0123456789"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:  # noqa: S603
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            client = CdsClient(
                issuer=ISS,
                keys=key,
                services=[base_url],
                allow_http=True,
                fingerprinter=fingerprinter,
            )
            body = {
                "hook": "patient-view",
                "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
                "context": {"userId": "Practitioner/1", "patientId": "p-1"},
                "prefetch": {"patient": {"resourceType": "Patient", "name": [{"given": ["Ada"]}]}},
            }
            with CdsHttpClient(client, discovery_attempts=20, sleep=_wait_for_start) as http:
                assert http.discover(base_url).ok
                result = http.call(base_url, "patient-greeter", body)
            assert result.body == {
                "cards": [
                    {
                        "summary": "Now seeing: Ada",
                        "indicator": "info",
                        "source": {"label": "CDS Hooks Auditor example service"},
                    }
                ]
            }
            assert (
                httpx.post(f"{base_url}/cds-services/patient-greeter", json=body).status_code == 401
            )
        finally:
            process.terminate()
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["action"] for r in recorded] == [
        AuthzAction.TOKEN_VALIDATED.value,
        AuthzAction.TOKEN_REJECTED.value,
    ]


def _wait_for_start(_seconds: float) -> None:
    import time

    time.sleep(0.1)

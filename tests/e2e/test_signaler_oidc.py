"""OIDC for the management API against a real OpenID provider (npm ``oidc-provider``) on
loopback: ID tokens from its login pages are accepted; wrong audience, expired, tampered,
unsigned and foreign tokens get 401 and a log line saying why."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.e2e.conftest import StartSignaler
from tests.e2e.oidc import OpenIDProviders, id_token, install
from tests.e2e.processes import SignalerProcess, run_weron


@pytest.fixture(scope="module")
def providers() -> Iterator[OpenIDProviders]:
    """Two providers: ours (issuers[0]) and a stranger with keys of its own (issuers[1])."""
    if (reason := install()) is not None:
        pytest.skip(reason)
    started = OpenIDProviders.start(2)
    yield started
    started.stop()


def oidc_signaler(start: StartSignaler, issuer: str, client_id: str = "weron") -> SignalerProcess:
    return start(
        *("--oidc-issuer", issuer, "--oidc-client-id", client_id),
        *("--api-password", "basic-secret"),  # ignored once OIDC is configured
    )


def status(signaler: SignalerProcess, token: str, username: str = "admin") -> int:
    response = httpx.get(signaler.http_url, auth=(username, token), timeout=10)
    return response.status_code


def rejections(signaler: SignalerProcess) -> list[str]:
    return [
        str(record.get("reason"))
        for record in signaler.log_records()
        if record.get("message") == "Rejected ID token"
    ]


def test_manager_sends_an_id_token_as_api_key(
    signaler_factory: StartSignaler, providers: OpenIDProviders
) -> None:
    signaler = oidc_signaler(signaler_factory, providers.issuers[0])
    token = id_token(providers.issuers[0], "weron")
    env = {"API_KEY": token, "WERON_RADDR": signaler.http_url}
    created = run_weron("manager", "create", "--community", "c", "--password", "pw", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout == "id,clients,persistent\nc,0,true\n"
    listed = run_weron("manager", "list", env=env)
    assert listed.stdout == "id,clients,persistent\nc,0,true\n"
    assert status(signaler, token, username="anyone") == 200  # the username is ignored
    assert status(signaler, "basic-secret") == 401  # the API password no longer works
    assert token not in signaler.logs()


def _tampered(token: str) -> str:
    """The same signature over a changed payload (``sub`` says someone else)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_bad_tokens_are_refused_with_a_reason(
    signaler_factory: StartSignaler, providers: OpenIDProviders
) -> None:
    ours, stranger = providers.issuers
    signaler = oidc_signaler(signaler_factory, ours)
    good = id_token(ours, "weron")
    claims = jwt.decode(good, options={"verify_signature": False})
    cases = {
        "wrong audience": (id_token(ours, "other"), "Audience doesn't match"),
        "other issuer": (id_token(stranger, "weron"), "unknown signing key"),
        "tampered": (_tampered(good), "Signature verification failed"),
        "unsigned": (jwt.encode(claims, "", algorithm="none"), "algorithm 'none' not accepted"),
        "not a token": ("not-a-jwt", "not a JWT"),
    }
    for case, (token, reason) in cases.items():
        assert status(signaler, token) == 401, case
        assert reason in rejections(signaler)[-1], case
    assert status(signaler, good) == 200


def test_expired_token_is_refused(
    signaler_factory: StartSignaler, providers: OpenIDProviders
) -> None:
    signaler = oidc_signaler(signaler_factory, providers.issuers[0], client_id="weron-short")
    token = id_token(providers.issuers[0], "weron-short")  # lives one second
    expiry = jwt.decode(token, options={"verify_signature": False})["exp"]
    while time.time() <= expiry + 1:
        time.sleep(0.2)
    assert status(signaler, token) == 401
    assert rejections(signaler) == ["Signature has expired"]

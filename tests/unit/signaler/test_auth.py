"""HTTP Basic credentials for the management API."""

from __future__ import annotations

import base64

import pytest

from weron.signaler.auth import BasicAuth, parse_basic_credentials


def basic(userinfo: bytes, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(userinfo).decode('ascii')}"


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (basic(b"admin:secret"), ("admin", "secret")),
        (basic(b"admin:se:cr:et"), ("admin", "se:cr:et")),
        (basic(b":"), ("", "")),
        (basic(b"admin:"), ("admin", "")),
        (basic("jürgen:pässword".encode()), ("jürgen", "pässword")),
        (basic(b"admin:secret", "basic"), ("admin", "secret")),
        (basic(b"admin:secret", "BASIC"), ("admin", "secret")),
        ("  " + basic(b"admin:secret") + "  ", ("admin", "secret")),
        ("Basic   " + base64.b64encode(b"admin:secret").decode(), ("admin", "secret")),
    ],
)
def test_parse_valid(authorization: str, expected: tuple[str, str]) -> None:
    assert parse_basic_credentials(authorization) == expected


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic",
        "Basic ",
        basic(b"no separator"),
        basic(b"admin:secret", "Bearer"),
        basic(b"admin:secret", "Basicx"),
        "Bearer eyJhbGciOiJIUzI1NiJ9",
        "Basic not base64!",
        "Basic YWRtaW46c2VjcmV",  # "admin:secret" with its last character cut
        "Basic " + base64.urlsafe_b64encode(b"\xfb\xff:\xfe").decode(),
        basic(b"\xff\xfe:secret"),
    ],
)
def test_parse_invalid(authorization: str | None) -> None:
    assert parse_basic_credentials(authorization) is None


async def test_basic_auth() -> None:
    auth = BasicAuth("admin", "sécret")
    assert await auth.authorize("admin", "sécret")
    assert not await auth.authorize("admin", "secret")
    assert not await auth.authorize("Admin", "sécret")
    assert not await auth.authorize("", "")
    assert not await auth.authorize("admin", "sécret ")


async def test_basic_auth_with_empty_username() -> None:
    auth = BasicAuth("", "pw")
    assert await auth.authorize("", "pw")
    assert not await auth.authorize("admin", "pw")

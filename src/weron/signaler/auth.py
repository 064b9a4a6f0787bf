"""Who may use the management API: HTTP Basic credentials, or an OIDC ID token as the Basic
password (:mod:`weron.signaler.oidc`)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Protocol


class AuthUnavailableError(Exception):
    """The authenticator cannot start (an OIDC issuer that cannot be reached)."""


class ManagementAuth(Protocol):
    async def open(self) -> None:
        """Prepare (fetch what is needed); raises :class:`AuthUnavailableError` saying why."""

    async def close(self) -> None: ...

    async def authorize(self, username: str, password: str) -> bool: ...


class BasicAuth:
    """A fixed username and password, compared in constant time."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode("utf-8")
        self._password = password.encode("utf-8")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def authorize(self, username: str, password: str) -> bool:
        # Compare both before deciding, so timing tells nothing about which one was wrong.
        user_ok = hmac.compare_digest(username.encode("utf-8"), self._username)
        password_ok = hmac.compare_digest(password.encode("utf-8"), self._password)
        return user_ok and password_ok


def parse_basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic ...`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, separator, password = decoded.partition(":")
    if not separator:
        return None
    return username, password

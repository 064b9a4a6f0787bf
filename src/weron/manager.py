"""Client of the signaler's management API: list, create and delete communities."""

from __future__ import annotations

import json
import urllib.parse
from http import HTTPStatus
from typing import Final

import httpx

from weron.community import Community
from weron.log import redact_url
from weron.text import printable
from weron.urls import parse_url

DEFAULT_MANAGER_RADDR: Final = "https://weron.up.railway.app/"


class ManagerError(Exception):
    """A management request failed; the message is meant for the user."""


def http_url(raddr: str) -> str:
    """The management API lives at the signaler's URL; accept ws(s):// addresses too."""
    parts = parse_url(raddr, ("http", "https", "ws", "wss"))
    if parts is None:
        raise ManagerError(
            f"remote address {redact_url(raddr)!r} is not an http(s):// or ws(s):// URL"
        )
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path or "/", "", ""))


class Manager:
    """Speaks to one signaler; ``password`` is the API password or an OIDC ID token."""

    def __init__(self, raddr: str, username: str, password: str, *, timeout: float = 10.0) -> None:
        self._url = http_url(raddr)
        self._auth = httpx.BasicAuth(username, password)
        self._timeout = timeout

    async def list(self) -> list[Community]:
        body = await self._request("GET", {}, "")
        try:
            documents = json.loads(body)
            if not isinstance(documents, list):
                raise ValueError("expected a JSON array of communities")
            return [Community.from_json(document) for document in documents]
        except ValueError as exc:
            raise ManagerError(f"the signaler sent an invalid community list: {exc}") from None

    async def create(self, community: str, password: str) -> Community:
        body = await self._request(
            "POST", {"community": community, "password": password}, community
        )
        try:
            return Community.from_json(json.loads(body))
        except ValueError as exc:
            raise ManagerError(f"the signaler sent an invalid community: {exc}") from None

    async def delete(self, community: str) -> None:
        await self._request("DELETE", {"community": community}, community)

    async def _request(self, method: str, params: dict[str, str], community: str) -> bytes:
        try:
            async with httpx.AsyncClient(timeout=self._timeout, auth=self._auth) as client:
                response = await client.request(method, self._url, params=params)
        except httpx.TimeoutException as exc:
            # A suspended or overloaded signaler (or a path that drops packets) answers nothing:
            # say so, rather than a bare "ReadTimeout".
            raise ManagerError(
                f"the signaler at {self._url} did not answer within {self._timeout:g}s "
                f"({type(exc).__name__}): it is hung, overloaded or unreachable"
            ) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ManagerError(f"cannot reach the signaler at {self._url}: {reason}") from None
        if response.status_code == HTTPStatus.OK:
            return response.content
        raise ManagerError(_explain(response, community))


def _explain(response: httpx.Response, community: str) -> str:
    status = response.status_code
    detail = printable(response.text.strip()[:200])
    if status == HTTPStatus.UNAUTHORIZED:
        return (
            "the signaler rejected the management credentials (401 Unauthorized): check "
            "--api-username and --api-password (API_USERNAME, API_PASSWORD or API_KEY)"
        )
    if status == HTTPStatus.NOT_FOUND:
        return f"community {community!r} does not exist (404 Not Found)"
    if status == HTTPStatus.NOT_IMPLEMENTED:
        return (
            "the signaler's management API is disabled (501 Not Implemented): start the "
            "signaler with an API password (API_PASSWORD) or OIDC"
        )
    if status == HTTPStatus.CONFLICT:
        return f"community {community!r} already exists (409 Conflict)"
    phrase = response.reason_phrase or "error"
    return f"the signaler answered {status} {phrase}" + (f": {detail}" if detail else "")

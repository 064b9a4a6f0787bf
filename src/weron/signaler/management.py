"""The management API (list, create, delete communities): request in, response out.

No sockets here; the connection layer parses HTTP and writes what this returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus

from weron.log import get_logger
from weron.signaler.auth import ManagementAuth, parse_basic_credentials
from weron.signaler.broker import Broker
from weron.signaler.community_names import name_problem
from weron.signaler.passwords import PasswordCheckBusyError, PasswordRefusedError
from weron.signaler.query import QueryError, parse_query
from weron.signaler.store import (
    CommunityExistsError,
    CommunityNotFoundError,
    CommunityStore,
    StoreUnavailableError,
)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    status: HTTPStatus
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def text(cls, status: HTTPStatus, message: str, *headers: tuple[str, str]) -> HTTPResponse:
        return cls(status, (message + "\n").encode("utf-8"), headers=headers)

    @classmethod
    def json(cls, document: object) -> HTTPResponse:
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        return cls(HTTPStatus.OK, body, "application/json")


def render_response(response: HTTPResponse, *, body: bool = True) -> bytes:
    """HTTP/1.1 bytes of a response after which the connection closes; without the body for
    ``HEAD`` (the length stays the body's)."""
    head = [
        f"HTTP/1.1 {response.status.value} {response.status.phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (response.body if body else b"")


class ManagementAPI:
    """Answers management requests; ``auth`` is ``None`` when the API is disabled (501)."""

    def __init__(self, store: CommunityStore, broker: Broker, auth: ManagementAuth | None) -> None:
        self._store = store
        self._broker = broker
        self._auth = auth

    async def handle(
        self, method: str, target: str, authorization: str | None, source: str = ""
    ) -> HTTPResponse:
        """The response to one request; ``source`` is the client's address."""
        try:
            return await self._handle(method, target, authorization, source)
        except StoreUnavailableError as exc:
            log.warning("Management request failed: store unavailable", error=str(exc))
            return HTTPResponse.text(
                HTTPStatus.SERVICE_UNAVAILABLE, f"community store unavailable: {exc}"
            )

    async def _handle(
        self, method: str, target: str, authorization: str | None, source: str
    ) -> HTTPResponse:
        if method not in ("GET", "POST", "DELETE"):
            return HTTPResponse.text(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method {method[:16]} not allowed",
                ("Allow", "GET, POST, DELETE"),
            )
        try:
            query = parse_query(target)
        except QueryError as exc:
            return HTTPResponse.text(HTTPStatus.BAD_REQUEST, str(exc))
        if self._auth is None:
            return HTTPResponse.text(
                HTTPStatus.NOT_IMPLEMENTED,
                "management API disabled: start the signaler with an API password or OIDC",
            )
        credentials = parse_basic_credentials(authorization)
        if credentials is None or not await self._auth.authorize(*credentials):
            log.info("Rejected management request: invalid credentials", method=method)
            return HTTPResponse.text(
                HTTPStatus.UNAUTHORIZED,
                "invalid or missing management API credentials",
                ("WWW-Authenticate", 'Basic realm="weron", charset="UTF-8"'),
            )
        community = query.get("community", "")
        if method == "GET":
            return HTTPResponse.json([c.to_json() for c in await self._store.list()])
        if not community.strip():
            return HTTPResponse.text(HTTPStatus.BAD_REQUEST, "missing community")
        if method == "POST":
            return await self._create(community, query.get("password", ""), source)
        return await self._delete(community)

    async def _create(self, community: str, password: str, source: str) -> HTTPResponse:
        if (problem := name_problem(community)) is not None:
            return HTTPResponse.text(HTTPStatus.BAD_REQUEST, problem)
        if not password.strip():
            return HTTPResponse.text(HTTPStatus.BAD_REQUEST, "missing password")
        try:
            created = await self._store.create(community, password, source)
        except CommunityExistsError as exc:
            return HTTPResponse.text(HTTPStatus.CONFLICT, str(exc))
        except PasswordRefusedError as exc:
            return HTTPResponse.text(HTTPStatus.BAD_REQUEST, str(exc))
        except PasswordCheckBusyError as exc:
            return HTTPResponse.text(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        log.info("Created persistent community", community=community)
        return HTTPResponse.json(created.to_json())

    async def _delete(self, community: str) -> HTTPResponse:
        try:
            await self._store.delete(community)
        except CommunityNotFoundError as exc:
            return HTTPResponse.text(HTTPStatus.NOT_FOUND, str(exc))
        await self._broker.publish_kick(community)
        log.info("Deleted community", community=community)
        return HTTPResponse.text(HTTPStatus.OK, f"deleted community {community!r}")

"""One TCP connection to the signaler: read the request head, then hand it to a WebSocket
member (a ``GET`` naming a community), to readiness and metrics (``/healthz``, ``/metrics``) or
to the management API (everything else)."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import cast

import h11

from weron.log import get_logger
from weron.signaler.management import HTTPResponse, render_response
from weron.signaler.member import WebSocketMember
from weron.signaler.operations import PATHS as OPERATIONS_PATHS
from weron.signaler.query import QueryError, parse_query
from weron.signaler.services import MAX_REQUEST_BODY, MAX_REQUEST_HEAD, Services

log = get_logger(__name__)


def _is_join(request_line: bytes) -> bool:
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return False
    try:
        community = parse_query(parts[1].decode("ascii"))
    except (UnicodeDecodeError, QueryError):
        return False  # the management path answers 400 with the reason
    return bool(community.get("community", "").strip())


class _ManagementExchange:
    """One management request, parsed with h11; the connection closes after the response."""

    def __init__(self, services: Services, transport: asyncio.Transport) -> None:
        self._services = services
        self._transport = transport
        self._parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        self._request: h11.Request | None = None
        self._body_size = 0
        self._done = False

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._parser.receive_data(data)
        while not self._done:
            try:
                event = self._parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._respond(
                    HTTPResponse.text(
                        HTTPStatus(exc.error_status_hint), f"malformed HTTP request: {exc}"
                    )
                )
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = event
            elif isinstance(event, h11.Data):
                self._body_size += len(event.data)
                if self._body_size > MAX_REQUEST_BODY:
                    self._respond(
                        HTTPResponse.text(
                            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large"
                        )
                    )
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
                self._transport.pause_reading()
                self._services.spawn(self._dispatch(), name="management request")
            elif isinstance(event, h11.ConnectionClosed):
                self._transport.close()
                return

    def eof_received(self) -> None:
        self.data_received(b"")

    async def _dispatch(self) -> None:
        request = self._request
        assert request is not None
        authorization = next(
            (
                value.decode("latin-1")
                for name, value in request.headers
                if name == b"authorization"
            ),
            None,
        )
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("latin-1")
        path = target.partition("?")[0]
        if path in OPERATIONS_PATHS:
            response = await self._services.operations.handle(method, path)
        else:
            response = await self._services.management.handle(method, target, authorization)
        log.debug("Management request", method=method, status=response.status.value)
        self._respond(response)

    def _respond(self, response: HTTPResponse) -> None:
        self._done = True
        if not self._transport.is_closing():
            self._transport.write(render_response(response))
            self._transport.close()


class SignalerConnection(asyncio.Protocol):
    def __init__(self, services: Services) -> None:
        self._services = services
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._handler: WebSocketMember | _ManagementExchange | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._services.transports.add(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)
            return
        assert self._transport is not None
        self._head += data
        head_end = self._head.find(b"\r\n\r\n")
        if head_end < 0 and len(self._head) <= MAX_REQUEST_HEAD:
            return
        if head_end < 0 or head_end > MAX_REQUEST_HEAD:
            self._transport.write(
                render_response(
                    HTTPResponse.text(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
                    )
                )
            )
            self._transport.close()
            self._head.clear()
            return
        line_end = self._head.find(b"\r\n")
        head, self._head = bytes(self._head), bytearray()
        if _is_join(head[:line_end]):
            self._handler = WebSocketMember(self._services, self._transport, head)
        else:
            self._handler = _ManagementExchange(self._services, self._transport)
            self._handler.data_received(head)

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            self._handler.eof_received()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._services.forget_transport(self._transport)
        if isinstance(self._handler, WebSocketMember):
            self._handler.connection_lost()

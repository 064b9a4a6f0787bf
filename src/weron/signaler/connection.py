"""One TCP connection to the signaler: read the request head, then hand it to a WebSocket
member (a ``GET`` naming a community, outside ``/web/``), to readiness and metrics
(``/healthz``, ``/metrics``), to the browser peer's page (``/web/``, unless turned off) or to the
management API (everything else).

Until its request is complete, a connection must not fall silent for ``idle_timeout`` nor take
longer than ``head_timeout`` in all, and one source may hold ``max_source_connections`` at once:
slow or half-open connections cannot pile up until honest clients find no file descriptor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import cast

import h11

from weron.log import get_logger
from weron.signaler.limits import source_of
from weron.signaler.management import HTTPResponse, render_response
from weron.signaler.member import WebSocketMember
from weron.signaler.operations import PATHS as OPERATIONS_PATHS
from weron.signaler.query import QueryError, parse_query
from weron.signaler.services import MAX_REQUEST_BODY, MAX_REQUEST_HEAD, Services
from weron.signaler.web import is_web_path

log = get_logger(__name__)


def _is_join(request_line: bytes, web: bool) -> bool:
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return False
    try:
        target = parts[1].decode("ascii")
        community = parse_query(target)
    except (UnicodeDecodeError, QueryError):
        return False  # the management path answers 400 with the reason
    if web and is_web_path(target.partition("?")[0]):
        return False  # the page may be opened with its form filled in from the query
    return bool(community.get("community", "").strip())


class _ManagementExchange:
    """One management request, parsed with h11; the connection closes after the response."""

    def __init__(
        self,
        services: Services,
        transport: asyncio.Transport,
        source: str,
        complete: Callable[[], None],
    ) -> None:
        self._services = services
        self._transport = transport
        self._source = source
        self._complete = complete  # called once the whole request is in
        self._parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        self._request: h11.Request | None = None
        self._head_only = False
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
                self._complete()
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
        headers = dict(request.headers)  # h11 lowercases names; for repeats the last one wins
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("latin-1")
        path = target.partition("?")[0]
        web = self._services.web
        if web is not None and is_web_path(path):
            self._head_only = method == "HEAD"
            if_none_match = headers.get(b"if-none-match", b"").decode("latin-1") or None
            response = web.handle(method, target, if_none_match)
        elif path in OPERATIONS_PATHS:
            response = await self._services.operations.handle(method, path)
        else:
            response = await self._services.management.handle(
                method, target, authorization, self._source
            )
        log.debug("Management request", method=method, status=response.status.value)
        self._respond(response)

    def _respond(self, response: HTTPResponse) -> None:
        self._done = True
        if not self._transport.is_closing():
            self._transport.write(render_response(response, body=not self._head_only))
            self._transport.close()


class SignalerConnection(asyncio.Protocol):
    def __init__(self, services: Services) -> None:
        self._services = services
        self._transport: asyncio.Transport | None = None
        self._source = ""
        self._admitted = False
        self._head = bytearray()
        self._handler: WebSocketMember | _ManagementExchange | None = None
        self._idle: asyncio.TimerHandle | None = None  # both None once the request is in
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._services.transports.add(self._transport)
        peer = transport.get_extra_info("peername")
        self._source = source_of(str(peer[0]) if isinstance(peer, tuple) else str(peer))
        if not self._services.sources.admit(self._source):
            self._drop(
                "source_connections",
                HTTPStatus.SERVICE_UNAVAILABLE,
                "too many connections from your address",
            )
            return
        self._admitted = True
        config, loop = self._services.config, asyncio.get_running_loop()
        self._idle = loop.call_later(config.idle_timeout, self._timed_out, "idle_timeout")
        self._deadline = loop.call_later(config.head_timeout, self._timed_out, "head_timeout")

    def _timed_out(self, reason: str) -> None:
        self._drop(reason, HTTPStatus.REQUEST_TIMEOUT, "request not received in time")

    def _drop(self, reason: str, status: HTTPStatus, message: str) -> None:
        assert self._transport is not None
        self._request_complete()
        self._services.dropped(reason, self._source)
        if not self._transport.is_closing():
            self._transport.write(render_response(HTTPResponse.text(status, message)))
            self._transport.close()

    def _request_complete(self) -> None:
        """The request is in (or the connection is dropped): no more request timeouts."""
        for timer in (self._idle, self._deadline):
            if timer is not None:
                timer.cancel()
        self._idle = self._deadline = None

    def data_received(self, data: bytes) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = asyncio.get_running_loop().call_later(
                self._services.config.idle_timeout, self._timed_out, "idle_timeout"
            )
        if self._handler is not None:
            self._handler.data_received(data)
            return
        assert self._transport is not None
        self._head += data
        head_end = self._head.find(b"\r\n\r\n")
        if head_end < 0 and len(self._head) <= MAX_REQUEST_HEAD:
            return
        if head_end < 0 or head_end > MAX_REQUEST_HEAD:
            self._request_complete()
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
        if _is_join(head[:line_end], self._services.web is not None):
            self._request_complete()
            self._handler = WebSocketMember(self._services, self._transport, head, self._source)
        else:
            self._handler = _ManagementExchange(
                self._services, self._transport, self._source, self._request_complete
            )
            self._handler.data_received(head)

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            self._handler.eof_received()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._request_complete()
        if self._admitted:
            self._services.sources.release(self._source)
        if self._transport is not None:
            self._services.forget_transport(self._transport)
        if isinstance(self._handler, WebSocketMember):
            self._handler.connection_lost()

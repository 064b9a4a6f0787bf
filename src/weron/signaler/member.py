"""One community member: a WebSocket connection on the sans-I/O ``websockets`` protocol.

Join order: parse the handshake, check the origin of a browser (docs/browser.md#origins), check
it is a valid upgrade, check the community password, count the client, only then answer 101.
Relay writes go straight to the transport; a member whose unsent backlog passes ``max_backlog``
is dropped so it cannot stall the others.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import uuid
from collections.abc import Callable
from http import HTTPStatus

from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from weron.log import WIRE_LOGGER, get_logger
from weron.signaler.community_names import name_problem
from weron.signaler.management import HTTPResponse, render_response
from weron.signaler.origins import origin_allowed
from weron.signaler.passwords import PasswordCheckBusyError, PasswordRefusedError
from weron.signaler.query import parse_query
from weron.signaler.services import Services
from weron.signaler.store import Membership, StoreError, StoreUnavailableError

log = get_logger(__name__)
_wire_log = logging.getLogger(WIRE_LOGGER)
_CLOSE_GRACE = 2.0  # seconds a closing member gets to answer our close frame


class _Phase(enum.Enum):
    HANDSHAKE = enum.auto()
    JOINING = enum.auto()
    OPEN = enum.auto()
    CLOSED = enum.auto()


class WebSocketMember:
    def __init__(
        self, services: Services, transport: asyncio.Transport, head: bytes, source: str
    ) -> None:
        self._services = services
        self._source = source  # whom the bcrypt work of this join is charged to
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._config = services.config
        self._protocol = ServerProtocol(max_size=self._config.max_message_size, logger=_wire_log)
        self._phase = _Phase.HANDSHAKE
        self._id = uuid.uuid4().hex
        self._community = ""
        self._membership: Membership | None = None
        self._attached = False
        self._accept: Response | None = None
        self._early_frames: list[Frame] = []
        self._fragments: list[bytes] = []
        self._fragmented_text = False
        self._last_pong = 0.0
        self._beat_due = 0.0  # when the next heartbeat should run (it runs late if we stalled)
        self._binary_frames = False  # a browser: every frame to it is binary
        self._timer: asyncio.TimerHandle | None = None
        peer = transport.get_extra_info("peername")
        self._raddr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unknown"
        self.data_received(head)

    @property
    def id(self) -> str:
        return self._id

    @property
    def community(self) -> str:
        return self._community

    @property
    def generation(self) -> int:
        """Of the community joined; 0 (no generation) once it left."""
        return self._membership.generation if self._membership is not None else 0

    @property
    def binary_frames(self) -> bool:
        return self._binary_frames

    # Incoming bytes and events

    def data_received(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        request_parsed = False
        for event in self._protocol.events_received():
            if isinstance(event, Request):
                request_parsed = True
                self._on_request(event)
            elif not isinstance(event, Frame):
                continue  # a server protocol only yields requests and frames
            elif self._phase is _Phase.OPEN:
                self._on_frame(event)
            else:
                self._early_frames.append(event)
        if self._protocol.parser_exc is not None and self._phase is not _Phase.CLOSED:
            log.info(
                "Dropping client: protocol error",
                raddr=self._raddr,
                community=self._community,
                error=str(self._protocol.parser_exc),
            )
            self._protocol.parser_exc = None
        if (
            not request_parsed
            and self._phase is _Phase.HANDSHAKE
            and self._protocol.handshake_exc is not None
        ):
            self._bad_handshake(self._protocol.handshake_exc)
            return
        self._flush()

    def _bad_handshake(self, exc: Exception) -> None:
        """Answer what the protocol library would close without an answer (an upgrade request
        with a body, a malformed header) with 400 and the reason."""
        self._protocol.data_to_send()  # only the end of the stream: replaced by a response
        cause = exc.__cause__ or exc
        reason = str(cause)  # may quote a header line: for the client, not for the log
        self._services.metrics.reject(HTTPStatus.BAD_REQUEST.value)
        log.debug(
            "Rejected invalid WebSocket handshake", raddr=self._raddr, error=type(cause).__name__
        )
        self._phase = _Phase.CLOSED
        response = HTTPResponse.text(HTTPStatus.BAD_REQUEST, f"invalid WebSocket upgrade: {reason}")
        self._transport.write(render_response(response))
        self._transport.close()

    def eof_received(self) -> None:
        self._protocol.receive_eof()
        self._flush()

    def _on_request(self, request: Request) -> None:
        query = parse_query(request.path)  # the connection already checked that it parses
        self._community = query.get("community", "")
        origins, hosts = request.headers.get_all("Origin"), request.headers.get_all("Host")
        if origins:
            host = hosts[0] if len(hosts) == 1 else None
            if len(origins) > 1 or not origin_allowed(
                origins[0], host, self._config.allowed_origins
            ):
                log.info(
                    "Rejected client: origin not allowed",
                    raddr=self._raddr,
                    origin=ascii(", ".join(origins)[:200]),
                )
                self._reject(HTTPStatus.FORBIDDEN, "origin not allowed")
                return
            self._binary_frames = True
        password = query.get("password", "")
        if (problem := name_problem(self._community)) is not None:
            self._community = ascii(self._community)  # it goes into log lines
            self._reject(HTTPStatus.BAD_REQUEST, problem)
            return
        if not password.strip():
            self._reject(HTTPStatus.BAD_REQUEST, "missing password")
            return
        response = self._protocol.accept(request)
        if response.status_code != 101:
            self._services.metrics.reject(response.status_code)
            log.debug(
                "Rejected invalid WebSocket handshake",
                raddr=self._raddr,
                status=response.status_code,
            )
            self._protocol.send_response(response)
            return
        self._accept = response
        self._phase = _Phase.JOINING
        self._transport.pause_reading()
        self._services.spawn(self._join(password), name=f"join {self._id}")

    async def _join(self, password: str) -> None:
        store = self._services.store
        try:
            self._membership = await store.join(
                self._community,
                password,
                ephemeral=self._config.ephemeral_communities,
                source=self._source,
            )
        except StoreError as exc:
            # Wrong password and unknown community (ephemeral ones off) are both 401, as in Go.
            log.info(
                "Rejected client", raddr=self._raddr, community=self._community, reason=str(exc)
            )
            self._reject(HTTPStatus.UNAUTHORIZED, str(exc))
            return
        except PasswordRefusedError as exc:
            self._reject(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except PasswordCheckBusyError as exc:
            self._reject(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
            return
        except StoreUnavailableError as exc:
            log.warning("Could not admit client: store unavailable", error=str(exc))
            self._reject(HTTPStatus.SERVICE_UNAVAILABLE, "community store unavailable, retry later")
            return
        except Exception as exc:
            log.error(
                "Could not admit client",
                raddr=self._raddr,
                community=self._community,
                error=f"{type(exc).__name__}: {exc}",
            )
            self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error, see signaler logs")
            return
        if self._lost():
            await self._release()
            return
        await self._services.relay.attach(self)
        self._attached = True
        if self._lost():
            await self._release()
            return
        assert self._accept is not None
        self._services.metrics.joins += 1
        self._protocol.send_response(self._accept)
        self._phase = _Phase.OPEN
        self._last_pong = self._loop.time()
        self._next_beat()
        log.info("Connected to client", raddr=self._raddr, community=self._community, id=self._id)
        early, self._early_frames = self._early_frames, []
        for frame in early:
            self._on_frame(frame)
        self._flush()
        self._transport.resume_reading()

    def _lost(self) -> bool:
        """Whether the connection went away (checked after every await while joining)."""
        return self._phase is _Phase.CLOSED

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._services.relay.publish(
                    self, text=opcode is Opcode.TEXT, payload=bytes(frame.data)
                )
            else:
                self._fragmented_text = opcode is Opcode.TEXT
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                payload, self._fragments = b"".join(self._fragments), []
                self._services.relay.publish(self, text=self._fragmented_text, payload=payload)
        elif opcode is Opcode.PONG:
            self._last_pong = self._loop.time()

    # Outgoing

    def _flush(self) -> None:
        outgoing = self._protocol.data_to_send()
        if self._transport.is_closing():
            return
        for data in outgoing:
            if data:
                self._transport.write(data)
            else:  # end of stream: the protocol is done with this connection
                self._transport.close()

    def _reject(self, status: HTTPStatus, message: str) -> None:
        self._services.metrics.reject(status.value)
        self._protocol.send_response(self._protocol.reject(status, message + "\n"))
        self._flush()

    def send_frame(self, frame: bytes) -> None:
        if self._phase is not _Phase.OPEN or self._protocol.state is not State.OPEN:
            return
        if self._transport.get_write_buffer_size() + len(frame) > self._config.max_backlog:
            log.warning(
                "Dropping client that fell too far behind",
                raddr=self._raddr,
                community=self._community,
                backlog=self._transport.get_write_buffer_size(),
            )
            self._phase = _Phase.CLOSED
            self._transport.abort()
            return
        self._transport.write(frame)

    def kick(self, reason: str) -> None:
        self.close(1000, reason)

    def close(self, code: int, reason: str) -> None:
        """Start a closing handshake; the connection is cut if the client does not answer."""
        if self._phase is _Phase.OPEN and self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._flush()
            self._set_timer(_CLOSE_GRACE, self._transport.abort)
        elif self._phase is not _Phase.CLOSED:
            self._transport.abort()

    # Heartbeat and teardown

    def _set_timer(self, delay: float, callback: Callable[[], object]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, callback)

    def _next_beat(self) -> None:
        self._beat_due = self._loop.time() + self._config.heartbeat / 2
        self._set_timer(self._config.heartbeat / 2, self._heartbeat)

    def _heartbeat(self) -> None:
        if self._protocol.state is not State.OPEN:
            return  # closing: the close handshake's own timer ends the connection
        now = self._loop.time()
        # Time we did not run (the signaler was suspended, or its loop blocked) does not count
        # against the member: its pong may be waiting unread, as uvloop runs due timers before
        # it reads. Else every member was dropped at once on SIGCONT, and all came back at once.
        self._last_pong += max(0.0, now - self._beat_due)
        if now - self._last_pong > self._config.heartbeat:
            log.info(
                "Dropping client: no pong within heartbeat",
                raddr=self._raddr,
                community=self._community,
            )
            self._transport.abort()
            return
        self._protocol.send_ping(os.urandom(4))
        self._flush()
        self._next_beat()

    def connection_lost(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        joining = self._phase is _Phase.JOINING
        was_open = self._phase is _Phase.OPEN or self._attached
        self._phase = _Phase.CLOSED
        if not joining and (was_open or self._membership is not None):
            self._services.spawn(self._release(), name=f"leave {self._id}")

    async def _release(self) -> None:
        if self._attached:
            self._attached = False
            await self._services.relay.detach(self)
        if self._membership is not None:
            membership, self._membership = self._membership, None
            try:
                await self._services.store.leave(membership)
            except StoreUnavailableError as exc:
                log.warning(
                    "Could not count a client's leave: its community keeps counting it until "
                    "a --cleanup or its deletion",
                    community=self._community,
                    error=str(exc),
                )
            log.info(
                "Disconnected from client",
                raddr=self._raddr,
                community=self._community,
                id=self._id,
            )

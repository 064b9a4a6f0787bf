"""Connection to a signaler for one community (used by the peer adapters and gonet's
``via_server`` rendezvous).

Messages are sealed with the community key and sent as WebSocket text frames whose payload is
not UTF-8, exactly like the Go peers; received frames are never decoded as text. Each
connection is a :class:`SignalingSession`; :meth:`SignalingClient.sessions` opens a new one
``timeout`` after the previous one dropped, and stops only for a wrong password.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from typing import Final, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from weron.log import WIRE_LOGGER, get_logger, redact_url
from weron.signaler_client.envelope import Envelope, EnvelopeError
from weron.signaler_client.messages import (
    SignalingMessage,
    SignalingMessageError,
    decode_message,
    encode_message,
)
from weron.urls import PUBLIC_SIGNALER, parse_url

log = get_logger(__name__)
MAX_MESSAGE_SIZE: Final = 4 << 20
# A first connection that takes longer than this is reported (a signaler answers well within
# it): a silent host or a slow DNS must not leave the user waiting for the full --timeout.
_SLOW_FIRST_CONNECTION: Final = 3.0
_START_ONE: Final = "start one with `weron signaler`, then pass --raddr ws://HOST:1337/"


def _backoff(limit: float) -> Iterator[float]:
    """Delays between reconnection attempts: none at first, then from 0.25 s doubling up to
    ``limit``, each jittered so a crowd that lost the same signaler does not return at once."""
    yield 0.0
    delay = 0.25
    while True:
        yield min(limit, delay) * random.uniform(0.75, 1.0)
        delay *= 2


class SignalingError(Exception):
    """The signaler cannot be used; the message says why."""


class JoinRefusedError(SignalingError):
    """The signaler refused the community password (or the community cannot be created)."""


def join_url(raddr: str, community: str, password: str) -> str:
    """The signaler URL with ``community`` and ``password`` added to its query string."""
    parts = parse_url(raddr, ("ws", "wss"))
    if parts is None:
        raise SignalingError(f"remote address {redact_url(raddr)!r} is not a ws:// or wss:// URL")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k not in ("community", "password")]
    query += [("community", community), ("password", password)]
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path or "/", urllib.parse.urlencode(query), "")
    )


class SignalingSession:
    """One live connection: send and receive signaling messages until it drops."""

    def __init__(self, connection: ClientConnection, envelope: Envelope) -> None:
        self._connection = connection
        self._envelope = envelope

    async def send(self, message: SignalingMessage) -> None:
        """Seal and send; raises :class:`ConnectionClosed` if the connection dropped."""
        await self._connection.send(self._envelope.seal(encode_message(message)), text=True)

    async def receive(self) -> SignalingMessage:
        """The next message we can open and parse; others are logged and skipped."""
        while True:
            data = await self._connection.recv(decode=False)
            try:
                return decode_message(self._envelope.open(data))
            except (EnvelopeError, SignalingMessageError) as exc:
                log.debug("Ignoring signaling message", reason=str(exc), size=len(data))

    def __aiter__(self) -> AsyncIterator[SignalingMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[SignalingMessage]:
        try:
            while True:
                yield await self.receive()
        except ConnectionClosed:
            return

    async def close(self) -> None:
        await self._connection.close()


class SignalingClient:
    def __init__(
        self, raddr: str, community: str, password: str, key: str, *, timeout: float = 10.0
    ) -> None:
        if not community.strip():
            raise SignalingError("missing community")
        if not password.strip():
            raise SignalingError("missing password")
        if not key.strip():
            raise SignalingError("missing key")
        self._url = join_url(raddr, community, password)
        self._raddr = redact_url(raddr)
        self._community = community
        self._envelope = Envelope(key)
        self._timeout = timeout
        self._session: SignalingSession | None = None
        self._said_unreachable = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _resolve(self) -> None:
        """Look the signaler's name up first: a name that does not resolve is then a
        SignalingError like any other, and the library's own lookup, which left its failure
        unretrieved ("Future exception was never retrieved" at exit), is never made for it."""
        parts = urllib.parse.urlsplit(self._url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.get_running_loop().getaddrinfo(
                    parts.hostname, port, type=socket.SOCK_STREAM
                )
        except TimeoutError:
            raise SignalingError(
                f"cannot connect to the signaler at {self._raddr}: {parts.hostname}: no answer "
                f"from the name service within {self._timeout:g}s"
            ) from None
        except socket.gaierror as exc:
            raise SignalingError(
                f"cannot connect to the signaler at {self._raddr}: {parts.hostname}: "
                f"{exc.strerror or exc}"
            ) from None

    async def connect(self) -> SignalingSession:
        """Open one connection; heartbeats (ping every ``timeout/2``) keep checking it."""
        log.info("Connecting to signaler", addr=self._raddr)
        await self._resolve()
        try:
            connection = await connect(
                self._url,
                open_timeout=self._timeout,
                ping_interval=self._timeout / 2,
                ping_timeout=self._timeout,
                # A dead link cannot carry the closing handshake: waiting the library's 10 s
                # for it would keep us from reconnecting (and re-offering) that long.
                close_timeout=min(2.0, self._timeout / 2),
                max_size=MAX_MESSAGE_SIZE,
                compression=None,
                logger=logging.getLogger(WIRE_LOGGER),
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == HTTPStatus.UNAUTHORIZED:
                raise JoinRefusedError(
                    f"the signaler at {self._raddr} refused to let us join community "
                    f"{self._community!r}: wrong password, or the community does not exist and "
                    "ephemeral communities are disabled"
                ) from None
            reason = exc.response.body.decode("utf-8", "replace").strip()[:200]
            raise SignalingError(
                f"the signaler at {self._raddr} answered {status}"
                + (f": {reason}" if reason else "")
            ) from None
        except InvalidURI as exc:
            raise SignalingError(f"invalid signaler address {self._raddr}: {exc}") from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise SignalingError(
                f"cannot connect to the signaler at {self._raddr}: {exc or type(exc).__name__}"
            ) from None
        self._session = SignalingSession(connection, self._envelope)
        return self._session

    async def sessions(self) -> AsyncIterator[SignalingSession]:
        """Yield a session per successful connection. After a drop the first attempt is
        immediate, then they back off up to ``timeout``. A wrong password ends it with
        :class:`JoinRefusedError` on the first join only: once we were a member, a refusal
        is a signaler that restarted and lost the community, or a squatter, and we keep
        trying (with a warning) rather than leave the community for good."""
        joined = False
        delays = _backoff(self._timeout)
        lost_at = time.monotonic()
        slow = asyncio.get_running_loop().call_later(
            _SLOW_FIRST_CONNECTION, self._unreachable, f"no answer in {_SLOW_FIRST_CONNECTION:g} s"
        )
        try:
            while True:
                try:
                    session = await self.connect()
                except SignalingError as exc:
                    refused = isinstance(exc, JoinRefusedError)
                    if refused and not joined:
                        raise
                    if not joined:
                        self._unreachable(str(exc))
                    delay = next(delays)
                    # Said once before the first join; then a restarting signaler is not worth a
                    # warning until it takes longer than the timeout (peer connections carry on
                    # meanwhile); a refused rejoin always is.
                    brief = not refused and (
                        not joined or time.monotonic() - lost_at < self._timeout
                    )
                    (log.info if brief else log.warning)(
                        "The signaler refused our password on rejoining, retrying"
                        if refused
                        else "Could not connect to signaler, retrying",
                        reason=str(exc),
                        retry_in=round(delay, 2),
                    )
                    await asyncio.sleep(delay)
                    continue
                slow.cancel()
                joined = True
                try:
                    yield session
                finally:
                    await session.close()
                log.info("Disconnected from signaler, reconnecting", addr=self._raddr)
                delays = _backoff(self._timeout)
                lost_at = time.monotonic()
        finally:
            slow.cancel()

    def _unreachable(self, reason: str) -> None:
        """Say once, early, that the signaler cannot be reached and what to do about it."""
        if self._said_unreachable:
            return
        self._said_unreachable = True
        log.warning(
            "Cannot reach the default signaler, the original author's public server; still trying"
            if self._raddr == PUBLIC_SIGNALER
            else "Cannot reach the signaler; still trying",
            addr=self._raddr,
            reason=reason,
            fix=_START_ONE,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

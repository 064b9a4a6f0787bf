"""Redis pub/sub broker: relay traffic and kicks between signaler instances.

Each community is one channel (``<prefix>c:<community>``), subscribed to by the instances that
have members in it. A message a member sends is delivered to this instance's other members at
once and published for the other instances, which skip their own echo. Publishing is batched
in pipelines by one writer task, so order per instance is kept.

When Redis goes away, members stay connected and keep relaying among themselves on each
instance; what this instance could not publish is counted (``messages_lost``) and dropped
rather than queued (signaling messages go stale), and on reconnect (with exponential backoff)
every channel is subscribed again, the outage is logged with what was lost, and the relay is
told (kicks of deleted communities were missed: ``weron.signaler.resync``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from weron.log import get_logger, redact_url
from weron.signaler.broker import BrokerSink, BrokerUnavailableError, RelayedMessage

log = get_logger(__name__)

_RELAY: Final = b"R"
_KICK: Final = b"K"
_RESYNC: Final = b"S"  # on the control channel: "I could not publish a kick, check yours"
_TEXT: Final = b"t"
_BINARY: Final = b"b"
_INSTANCE_BYTES: Final = 8
_CONNECT_TIMEOUT: Final = 5.0
_SUBSCRIBE_TIMEOUT: Final = 5.0  # a join waits at most this long for its channel subscription
_CHECK_TIMEOUT: Final = 2.0
_BACKOFF_MIN: Final = 0.1
_BACKOFF_MAX: Final = 5.0
_BATCH: Final = 256  # PUBLISH commands per pipeline
_MAX_QUEUED: Final = 10_000  # messages waiting for the writer; beyond, new ones are dropped
_ERRORS: Final = (RedisError, OSError)


def encode_relay(instance: bytes, message: RelayedMessage) -> bytes:
    """``R`` instance(8) ``t``/``b`` len(sender) sender payload: the payload is never decoded."""
    sender = message.sender.encode("utf-8")
    return b"".join(
        (
            _RELAY,
            instance,
            _TEXT if message.text else _BINARY,
            bytes((len(sender),)),
            sender,
            message.payload,
        )
    )


def decode(data: bytes) -> tuple[bytes, RelayedMessage | None]:
    """``(instance, message)``; ``message`` is ``None`` for a kick. ``ValueError`` if malformed."""
    kind, instance = data[:1], data[1 : 1 + _INSTANCE_BYTES]
    if len(instance) != _INSTANCE_BYTES:
        raise ValueError("truncated broker message")
    if kind == _KICK:
        return instance, None
    if kind != _RELAY:
        raise ValueError(f"unknown broker message type {kind!r}")
    body = 1 + _INSTANCE_BYTES
    if len(data) < body + 2 or data[body : body + 1] not in (_TEXT, _BINARY):
        raise ValueError("malformed relay message")
    sender_end = body + 2 + data[body + 1]
    if len(data) < sender_end:
        raise ValueError("truncated relay message")
    sender = data[body + 2 : sender_end].decode("utf-8")
    return instance, RelayedMessage(sender, data[body : body + 1] == _TEXT, data[sender_end:])


class RedisBroker:
    """``url`` as redis-py takes it (``redis://user:password@host:6379/1``); channels are named
    ``prefix`` + ..., so deployments sharing one Redis (pub/sub ignores database numbers) stay
    apart when their prefixes differ."""

    shared = True

    def __init__(self, url: str, prefix: str = "weron:") -> None:
        self._url = url
        self._prefix = prefix.encode("utf-8")
        self._community_prefix = self._prefix + b"c:"
        self._control = self._prefix + b"control"
        self._instance = os.urandom(_INSTANCE_BYTES)
        self._sink: BrokerSink | None = None
        self._kick_unsent = False  # a kick of ours never went out: ask for a resync
        self._watched: set[str] = set()
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._connected = False
        self._down_since = 0.0
        self._unsent_in_outage = 0
        self._outgoing: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.messages_lost = 0
        self.reconnects = 0

    def _channel(self, community: str) -> bytes:
        return self._community_prefix + community.encode("utf-8", "surrogateescape")

    # Connection lifecycle

    async def open(self, sink: BrokerSink) -> None:
        self._sink = sink
        try:
            await self._connect()
        except _ERRORS as exc:
            await self._disconnect()
            raise BrokerUnavailableError(
                f"cannot connect to Redis at {redact_url(self._url)}: {exc}"
            ) from None
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._receive_forever(), name="redis receive"),
            loop.create_task(self._publish_forever(), name="redis publish"),
        ]
        log.info("Using Redis", url=redact_url(self._url), prefix=self._prefix.decode())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._disconnect()
        self._sink = None

    async def _connect(self) -> None:
        """A fresh client and subscriber connection, subscribed to every watched channel."""
        client = Redis.from_url(
            self._url,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),  # reconnecting is ours to do, with backoff
        )
        self._client = client
        await client.ping()
        pubsub = client.pubsub()
        self._pubsub = pubsub
        # The control channel keeps the subscriber connection up (and its loss noticed) even
        # while this instance has no members.
        await pubsub.subscribe(self._control, *(self._channel(c) for c in self._watched))
        self._connected = True

    async def _disconnect(self) -> None:
        self._connected = False
        pubsub, self._pubsub = self._pubsub, None
        client, self._client = self._client, None
        if pubsub is not None:
            with contextlib.suppress(*_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        if client is not None:
            with contextlib.suppress(*_ERRORS):
                await client.aclose()

    async def _receive_forever(self) -> None:
        loop = asyncio.get_running_loop()
        delay = _BACKOFF_MIN
        while True:
            try:
                assert self._pubsub is not None
                await self._receive(self._pubsub)
            except _ERRORS as exc:
                self._connected = False
                self._down_since = loop.time()
                log.warning(
                    "Lost connection to Redis: members on other instances are out of reach "
                    "until it is back; reconnecting",
                    error=str(exc) or type(exc).__name__,
                )
            await self._disconnect()
            while True:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, _BACKOFF_MAX)
                try:
                    await self._connect()
                    break
                except _ERRORS as exc:
                    log.debug("Redis still unreachable", error=str(exc) or type(exc).__name__)
                    await self._disconnect()
            delay = _BACKOFF_MIN
            self.reconnects += 1
            log.warning(
                "Reconnected to Redis: relaying between instances resumed; messages sent "
                "meanwhile did not cross instances",
                outage_s=round(loop.time() - self._down_since, 3),
                unsent_from_here=self._unsent_in_outage,
                communities_resubscribed=len(self._watched),
            )
            self._unsent_in_outage = 0
            if self._sink is not None:
                self._sink.kicks_missed()
            if self._kick_unsent:
                await self._ask_for_resync()

    async def _ask_for_resync(self) -> None:
        """Tell the other instances that a kick of ours never went out: they check their
        members against the store (a lost request is made up for by their periodic check)."""
        client = self._client
        if client is None:
            return
        try:
            await client.publish(self._control, _RESYNC + self._instance)
        except _ERRORS as exc:
            log.debug(
                "Could not ask other instances to check", error=str(exc) or type(exc).__name__
            )
            return
        self._kick_unsent = False
        log.info("Asked the other instances to check their members against the store")

    async def _receive(self, pubsub: PubSub) -> None:
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            if kind == "message":
                self._on_message(channel, message["data"])
            elif kind == "subscribe":
                for future in self._confirmations.pop(channel, ()):
                    if not future.done():
                        future.set_result(None)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if self._sink is None:
            return
        if channel == self._control:
            if data[:1] == _RESYNC and data[1:] != self._instance:
                self._sink.kicks_missed()
            return
        if not channel.startswith(self._community_prefix):
            return
        try:
            instance, message = decode(data)
        except (ValueError, UnicodeDecodeError) as exc:
            log.debug("Ignoring malformed broker message", error=str(exc))
            return
        if instance == self._instance:
            return  # our own, already delivered here
        community = channel[len(self._community_prefix) :].decode("utf-8", "surrogateescape")
        if message is None:
            self._sink.kick(community)
        else:
            self._sink.fan_out(community, message)

    async def _publish_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outgoing:
                client = self._client
                if not self._connected or client is None:
                    self._lose(len(self._outgoing))
                    self._outgoing.clear()
                    break
                count = min(len(self._outgoing), _BATCH)
                batch = [self._outgoing.popleft() for _ in range(count)]
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                except _ERRORS as exc:
                    self._lose(len(batch))
                    log.debug("Could not publish to Redis", error=str(exc) or type(exc).__name__)

    def _lose(self, count: int) -> None:
        self.messages_lost += count
        self._unsent_in_outage += count

    # Broker interface

    async def check(self) -> None:
        client = self._client
        if not self._connected or client is None:
            down = asyncio.get_running_loop().time() - self._down_since
            raise BrokerUnavailableError(f"Redis unreachable for {down:.1f}s, reconnecting")
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                await client.ping()
        except (*_ERRORS, TimeoutError) as exc:
            raise BrokerUnavailableError(f"Redis does not answer: {exc}") from None

    async def watch(self, community: str) -> None:
        """Subscribe, and wait (bounded) for Redis to confirm: a member must not miss what
        other instances relay right after it was admitted."""
        self._watched.add(community)
        pubsub = self._pubsub
        if not self._connected or pubsub is None:
            return  # subscribed on reconnect
        channel = self._channel(community)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, []).append(confirmed)
        try:
            await pubsub.subscribe(channel)
            async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                await confirmed
        except (*_ERRORS, TimeoutError) as exc:
            log.debug("Subscription not confirmed yet", error=str(exc) or type(exc).__name__)
        finally:
            waiting = self._confirmations.get(channel)
            if waiting is not None and confirmed in waiting:
                waiting.remove(confirmed)
                if not waiting:
                    del self._confirmations[channel]

    async def unwatch(self, community: str) -> None:
        self._watched.discard(community)
        pubsub = self._pubsub
        if self._connected and pubsub is not None:
            with contextlib.suppress(*_ERRORS):
                await pubsub.unsubscribe(self._channel(community))

    def publish(self, community: str, message: RelayedMessage) -> None:
        if self._sink is not None:
            self._sink.fan_out(community, message)
        if len(self._outgoing) >= _MAX_QUEUED:
            self._lose(1)
            return
        self._outgoing.append((self._channel(community), encode_relay(self._instance, message)))
        self._wakeup.set()

    async def publish_kick(self, community: str) -> None:
        if self._sink is not None:
            self._sink.kick(community)
        client = self._client
        try:
            if not self._connected or client is None:
                raise BrokerUnavailableError("Redis unreachable")
            await client.publish(self._channel(community), _KICK + self._instance)
        except (*_ERRORS, BrokerUnavailableError) as exc:
            self._kick_unsent = True
            log.error(
                "Could not tell other instances to disconnect the members of a deleted "
                "community: they check their members against the store once Redis is back",
                community=community,
                error=str(exc) or type(exc).__name__,
            )

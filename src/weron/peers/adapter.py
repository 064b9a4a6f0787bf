"""The adapter: community membership and a peer connection to every member.

The rules live in :class:`weron.peers.session.MeshSession` (no I/O); this module carries
out its actions: sends on the signaler connection, backend calls, timers and logs.

- One id for the life of the adapter: a signaler connection that drops and returns (the
  first reconnect is immediate, then backs off up to ``timeout``) changes nothing for the
  peer connections, which keep carrying data while the signaler is away.
- Each link (peer connection) has one worker that runs its backend calls in the order the
  session asked for them (a remote description before the candidates that follow it).
- Backend events come back on the event loop and go straight into the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from weron.log import get_logger
from weron.peers import Peer, next_announcement, next_peer
from weron.peers import session as core
from weron.peers.watch import Watch
from weron.signaler_client.client import SignalingClient, SignalingSession
from weron.signaler_client.messages import SignalingMessage
from weron.webrtc import (
    CLOSE_GRACE,
    Backend,
    ChannelOptions,
    ChannelSpec,
    ConnectionState,
    DataChannel,
    IpNetwork,
    PeerConfig,
    PeerConnection,
    mdns,
)
from weron.webrtc.ice import peer_config
from weron.webrtc.mdns_resolver import MdnsResolver

log = get_logger(__name__)

Late = Callable[[DataChannel], None]  # takes a channel that opened after its opener gave up


@dataclass(slots=True)
class AdapterConfig:
    timeout: float = 10.0
    id: str = ""  # empty: a random UUID, kept for the life of the adapter
    ice: Sequence[str] = ("stun:stun.l.google.com:19302",)
    force_relay: bool = False
    channel_options: dict[str, ChannelOptions] = field(default_factory=dict)
    mtu: int | None = None  # see PeerConfig.mtu
    # The overlay's networks now (asked at every negotiation: a VPN's claims change): see
    # PeerConfig.excluded_networks.
    overlay_networks: Callable[[], Iterable[IpNetwork]] | None = None
    # Labels of channels a peer may open after connecting (besides the adapter's channels,
    # which the offerer creates with the connection); e.g. one per forwarded TCP connection.
    later_labels: Callable[[str], bool] | None = None
    # Where links are reported for `weron status` and metrics (weron.status.observe).
    watch: Watch | None = None


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A candidate whose ``.local`` name was looked up: the engine gets it as it is now."""

    candidate: str


_Step = core.Answer | core.Complete | core.AddCandidate | _Resolved | None  # None: the offer


class _Link:
    """One peer connection: the backend object, its channels, and its ordered steps."""

    def __init__(self, adapter: Adapter, action: core.Open) -> None:
        self.adapter = adapter
        self.number = action.link
        self.peer_id = action.peer_id
        self.pc: PeerConnection = adapter.backend.peer_connection(adapter.link_config(), self)
        self.channels: list[DataChannel] = []
        self.steps: asyncio.Queue[_Step] = asyncio.Queue()
        self.lookups: set[asyncio.Task[None]] = set()
        self.closed = False
        self.connected = False
        # Channels we asked for, until open: the opener's future, and who takes the channel
        # if it opens after the opener gave up (None: nobody, it is closed).
        self.opening: dict[DataChannel, tuple[asyncio.Future[DataChannel], Late | None]] = {}
        self.watch = adapter.config.watch
        if action.initiator:
            for label in adapter.labels:
                options = adapter.config.channel_options.get(label, ChannelOptions())
                self.pc.create_channel(ChannelSpec(label, options))
            self.steps.put_nowait(None)
        self.worker = asyncio.create_task(self._work(), name=f"peer {self.peer_id}")
        if self.watch is not None:  # last: a link that failed to start is not listed
            self.watch.opened(self, self.peer_id, self.pc)

    # PeerEvents, called by the backend on the event loop

    def on_candidate(self, candidate: str) -> None:
        if not self.closed:
            log.debug("Sending candidate", peer=self.peer_id, candidate=candidate)
            self.adapter.carry(self.adapter.core.local_candidate(self.number, candidate))

    def on_channel(self, channel: DataChannel) -> None:
        opening = self.opening.pop(channel, None)
        if opening is not None and not self.closed:
            future, late = opening
            if not future.done():
                self._hold(channel)
                future.set_result(channel)
            elif late is not None:  # the opener gave up waiting: its app may still use it
                self._hold(channel)
                late(channel)
            else:
                channel.close()
            return
        later = self.adapter.config.later_labels
        wanted = channel.label in self.adapter.labels or (
            later is not None and later(channel.label)
        )
        if self.closed or not wanted:
            channel.close()
            return
        self._hold(channel)
        log.debug("Connected to channel", peer=self.peer_id, channel=channel.label)
        self.adapter.accepted.put_nowait(Peer(self.peer_id, channel.label, channel))

    def on_state(self, state: ConnectionState) -> None:
        log.trace("Peer connection state", peer=self.peer_id, state=state.value)
        if self.closed:
            return
        if self.watch is not None:
            self.watch.state(self, state)
        session, now = self.adapter.core, self.adapter.now()
        self.connected = state is ConnectionState.CONNECTED
        if state is ConnectionState.CONNECTED:
            self.adapter.carry(session.connected(self.number, now))
        elif state is ConnectionState.DISCONNECTED:
            self.adapter.carry(session.disconnected(self.number, now))
        elif state in (ConnectionState.FAILED, ConnectionState.CLOSED):
            self.adapter.carry(session.failed(self.number, now, state.value))

    # The steps, in order

    async def _work(self) -> None:
        session = self.adapter.core
        while True:
            step = await self.steps.get()
            try:
                if step is None:
                    offer = await self.pc.create_offer()
                    self.adapter.carry(session.local_description(self.number, offer))
                elif isinstance(step, core.Answer):
                    answer = await self.pc.accept_offer(step.sdp)
                    self.adapter.carry(session.local_description(self.number, answer))
                elif isinstance(step, core.Complete):
                    await self.pc.accept_answer(step.sdp)
                elif isinstance(step, _Resolved):
                    await self._add_candidate(step.candidate)
                elif self._hidden(step.candidate):
                    self._look_up(step.candidate)
                else:
                    await self._add_candidate(step.candidate)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken peer must never take the adapter down
                reason = f"{type(exc).__name__}: {exc}"[:200]
                log.info("Dropping peer after an error", peer=self.peer_id, error=reason)
                self.adapter.carry(session.failed(self.number, self.adapter.now(), reason))
                return

    def _hidden(self, candidate: str) -> bool:
        """A ``.local`` candidate to resolve; with --force-relay it can serve no path (the
        engine ignores it) and no multicast query goes out for it."""
        return not self.adapter.config.force_relay and mdns.candidate_host(candidate) is not None

    def _look_up(self, candidate: str) -> None:
        """Resolve a browser's hidden address beside the other steps (docs/browser.md#local-
        candidates); the result comes back as a step, after the description it belongs to."""
        task = asyncio.create_task(self._resolve(candidate), name=f"mDNS {self.peer_id}")
        self.lookups.add(task)
        task.add_done_callback(self.lookups.discard)

    async def _resolve(self, candidate: str) -> None:
        candidate = await self.adapter.mdns.resolve_candidate(candidate)
        if not self.closed:
            self.steps.put_nowait(_Resolved(candidate))

    async def _add_candidate(self, candidate: str) -> None:
        try:
            await self.pc.add_candidate(candidate)
        except Exception as exc:  # engines raise anything for a bad line
            log.info(
                "Ignoring malformed candidate",
                peer=self.peer_id,
                reason=f"{type(exc).__name__}: {exc}"[:200],
            )

    def _hold(self, channel: DataChannel) -> None:
        """An open channel: closed with the connection, and listed by `weron status` (those
        we opened too) until forgotten."""
        self.channels.append(channel)
        if self.watch is not None:
            self.watch.channel(self, channel.label)

    def forget(self, channel: DataChannel) -> None:
        with contextlib.suppress(ValueError):
            self.channels.remove(channel)
            if self.watch is not None:
                self.watch.channel_closed(self, channel.label)

    async def close(self) -> None:
        self.closed = True
        if self.watch is not None:
            self.watch.closed(self)
        self.worker.cancel()
        for opening, _ in self.opening.values():
            if not opening.done():
                opening.set_exception(ConnectionError("the peer connection closed"))
        for lookup in list(self.lookups):
            lookup.cancel()
        for channel in self.channels:
            channel.close()
        with contextlib.suppress(Exception):
            await self.pc.close()


class Adapter:
    """Joins a community and yields a :class:`Peer` for every open data channel to a member.

    ::

        adapter = Adapter("ws://localhost:1337/", "c", "password", "key", ["my/channel"], backend)
        await adapter.open()
        async for peer in adapter.peers():
            ...
    """

    def __init__(
        self,
        raddr: str,
        community: str,
        password: str,
        key: str,
        channels: Sequence[str],
        backend: Backend,
        config: AdapterConfig | None = None,
        *,
        announce: bool = True,
    ) -> None:
        self.config = config if config is not None else AdapterConfig()
        self._announce = announce
        self.labels = [label for label in channels if label.strip()]
        self.backend = backend
        self.peer_config: PeerConfig = peer_config(
            self.config.ice, force_relay=self.config.force_relay, mtu=self.config.mtu
        )  # raises IceConfigError before anything starts
        self._signaling = SignalingClient(
            raddr, community, password, key, timeout=self.config.timeout
        )
        self.core = core.MeshSession(
            self.config.id.strip() or str(uuid.uuid4()), self.config.timeout
        )
        if self.config.watch is not None:
            self.config.watch.id = self.id
        self.accepted: asyncio.Queue[Peer] = asyncio.Queue()
        self._ids: asyncio.Queue[str] = asyncio.Queue()
        self._links: dict[int, _Link] = {}
        self._outbox: asyncio.Queue[SignalingMessage] | None = None
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closing = False  # links closed: a late event must not open another
        self.mdns = MdnsResolver()  # for browsers' .local candidates; opened on first use

    @property
    def id(self) -> str:
        return self.core.id

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def link_config(self) -> PeerConfig:
        """The peer configuration for a new connection, with the overlay's networks now."""
        if self.config.overlay_networks is None:
            return self.peer_config
        networks = tuple(self.config.overlay_networks())
        return dataclasses.replace(self.peer_config, excluded_networks=networks)

    async def open(self) -> None:
        self._task = asyncio.create_task(self._run(), name="adapter")
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self._failure = task.exception()
        # Wake whoever waits for ids or peers, so they see the failure.
        self._ids.put_nowait("")

    async def _run(self) -> None:
        timers = asyncio.create_task(self._keep_time(), name="adapter timers")
        try:
            async for session in self._signaling.sessions():
                if self._announce:
                    log.info("Connected to signaler", id=self.id)
                else:
                    log.debug("Connected to signaler", id=self.id)
                self._ids.put_nowait(self.id)
                await self._serve(session)
        finally:
            timers.cancel()
            await self._close_links()
            self.mdns.close()

    async def _serve(self, session: SignalingSession) -> None:
        """One signaler connection: relay the session's sends and feed it what arrives."""
        outbox: asyncio.Queue[SignalingMessage] = asyncio.Queue()
        self._outbox = outbox
        writer = asyncio.create_task(self._write(session, outbox), name="signaling writer")
        try:
            self.carry(self.core.signaler_connected(self.now()))
            async for message in session:
                self.carry(self.core.receive(message, self.now()))
        finally:
            self._outbox = None
            writer.cancel()
            self.carry(self.core.signaler_disconnected())

    @staticmethod
    async def _write(session: SignalingSession, outbox: asyncio.Queue[SignalingMessage]) -> None:
        with contextlib.suppress(Exception):  # the reader sees the connection drop
            while True:
                await session.send(await outbox.get())

    async def _keep_time(self) -> None:
        """Tick the session at its next deadline (or when something changed)."""
        while True:
            deadline = self.core.next_deadline()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                delay = None if deadline is None else max(0.0, deadline - self.now())
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            if deadline is not None and self.now() >= deadline:
                self.carry(self.core.tick(self.now()))

    def carry(self, actions: list[core.Action]) -> None:
        """Carry out the session's actions, in order."""
        for action in actions:
            if isinstance(action, core.Send):
                if self._outbox is not None:
                    self._outbox.put_nowait(action.message)
            elif isinstance(action, core.Open):
                self._open(action)
            elif isinstance(action, core.Close):
                link = self._links.pop(action.link, None)
                if link is not None:
                    self._in_background(link.close())
            elif isinstance(action, core.Notice):
                log.at(action.level, action.event, **action.fields)
            elif (link := self._links.get(action.link)) is not None:
                link.steps.put_nowait(action)
        if actions:
            self._wake.set()

    def _open(self, action: core.Open) -> None:
        if self._closing:  # its connection would outlive the loop (Ctrl-C mid-negotiation)
            return
        try:
            self._links[action.link] = _Link(self, action)
        except Exception as exc:  # the engine refused (e.g. out of file descriptors)
            reason = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("Could not create a peer connection", peer=action.peer_id, error=reason)
            self.carry(self.core.failed(action.link, self.now(), reason))

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close_links(self) -> None:
        """Close every connection; wait for the closes at most ``CLOSE_GRACE``: one whose
        peer cannot be reached goes on in the background (the process may end first)."""
        self._closing = True
        links, self._links = list(self._links.values()), {}
        for link in links:
            self._in_background(link.close())
        if self._background:
            _, closing = await asyncio.wait(self._background, timeout=CLOSE_GRACE)
            if closing:
                log.info("Not waiting for connections still closing", count=len(closing))

    def negotiating(self) -> int:
        """How many connections are being negotiated now (not yet connected)."""
        return self.core.negotiating()

    async def open_channel(
        self, peer_id: str, spec: ChannelSpec, late: Late | None = None
    ) -> DataChannel:
        """Open a channel on the connection to ``peer_id`` (its newest connected one) and
        return it once open; ``ConnectionError`` if there is no such connection, it closes,
        or the channel is not open within ``timeout``; ``ChannelLimitError`` (one) if the
        connection has no stream left for it. A channel that opens after ``timeout`` goes to
        ``late`` if given, else it is closed (with libdatachannel its stream stays taken
        until the connection closes: an app that reuses channels takes it)."""
        timeout = self.config.timeout
        links = [
            link
            for link in self._links.values()
            if link.peer_id == peer_id and link.connected and not link.closed
        ]
        if not links:
            raise ConnectionError(f"not connected to {peer_id}")
        link = max(links, key=lambda each: each.number)
        opening: asyncio.Future[DataChannel] = asyncio.get_running_loop().create_future()
        try:
            link.opening[link.pc.create_channel(spec)] = (opening, late)
            async with asyncio.timeout(timeout):
                return await asyncio.shield(opening)
        except TimeoutError:
            raise ConnectionError(f"channel {spec.label!r} not open after {timeout:g}s") from None
        except ConnectionError:
            raise
        except Exception as exc:  # the engine refused
            raise ConnectionError(f"{type(exc).__name__}: {exc}"[:200]) from None
        finally:
            if not opening.done():
                opening.cancel()  # on_channel hands it to ``late`` if it opens later

    def forget_channel(self, channel: DataChannel) -> None:
        """A channel we are done with is closed: its connection no longer holds it (apps that
        open a channel per connection would otherwise grow the list for ever)."""
        for link in self._links.values():
            link.forget(channel)

    def drop(self, peer_id: str) -> None:
        """The connection to ``peer_id`` stopped answering: offer again beside it."""
        self.carry(self.core.drop(peer_id, self.now()))

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._task is not None and self._task.done():
            raise ConnectionError("the adapter is closed")

    async def next_id(self) -> str:
        """Our id, announced again on every signaler connection (it does not change)."""
        return await next_announcement(self._ids, self.raise_if_failed)

    async def accept(self) -> Peer:
        return await next_peer(self.accepted, self._task, self.raise_if_failed)

    async def peers(self) -> AsyncIterator[Peer]:
        while True:
            yield await self.accept()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._signaling.close()

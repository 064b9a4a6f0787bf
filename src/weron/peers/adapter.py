"""The adapter: community membership, offer/answer, trickled candidates, peer lifecycle.

Per signaler connection: pick an id, introduce ourselves, offer to every member that introduces
itself, answer offers addressed to us. Each remote member has one :class:`_Remote` that handles
its signaling messages in order (so candidates that arrive before the description they belong
to are buffered, not lost). When the signaler connection drops, every peer is closed, and after
``timeout`` we reconnect and introduce ourselves again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from weron.log import get_logger
from weron.peers import Peer, next_announcement, next_peer
from weron.signaling.client import SignalingClient, SignalingSession
from weron.signaling.messages import (
    Exchange,
    Introduction,
    MessageError,
    MessageType,
    SignalingMessage,
    decode_session_description,
    encode_session_description,
)
from weron.webrtc import (
    ENDED_STATES,
    Backend,
    ChannelOptions,
    ChannelSpec,
    ConnectionState,
    DataChannel,
    IpNetwork,
    PeerConfig,
    PeerConnection,
)
from weron.webrtc.ice import peer_config

log = get_logger(__name__)

_MAX_EARLY_CANDIDATES: Final = 64  # per member, before its offer arrives
_MAX_EARLY_SENDERS: Final = 256
_RECONNECT_ATTEMPTS: Final = 5  # then wait for the member to introduce itself again


@dataclass(slots=True)
class AdapterConfig:
    timeout: float = 10.0
    id: str = ""  # empty: a new random UUID on every signaler connection
    ice: Sequence[str] = ("stun:stun.l.google.com:19302",)
    force_relay: bool = False
    channel_options: dict[str, ChannelOptions] = field(default_factory=dict)
    mtu: int | None = None  # see PeerConfig.mtu
    # The overlay's networks now (asked at every negotiation: a VPN's claims change): see
    # PeerConfig.excluded_networks.
    overlay_networks: Callable[[], Iterable[IpNetwork]] | None = None


class _Remote:
    """One remote member: its peer connection and the ordered handling of its messages."""

    def __init__(
        self, adapter: Adapter, peer_id: str, session: _Session, *, initiator: bool
    ) -> None:
        self.adapter = adapter
        self.peer_id = peer_id
        self.session = session
        self.initiator = initiator
        self.pc: PeerConnection = adapter.backend.peer_connection(adapter.peer_config, self)
        self.inbox: asyncio.Queue[Exchange] = asyncio.Queue()
        self.remote_described = False
        self.pending_candidates: list[str] = []
        # Our candidates wait until our offer/answer is on its way: a peer must not see
        # candidates for a connection it has not heard of (the Go peers drop those).
        self.local_candidates: list[str] | None = []
        self.channels: list[DataChannel] = []
        self.connected = asyncio.Event()
        self.closed = False
        self.worker = asyncio.create_task(self._work(), name=f"peer {peer_id}")

    # PeerEvents, called by the backend on the event loop

    def on_candidate(self, candidate: str) -> None:
        if self.closed:
            return
        if self.local_candidates is not None:
            self.local_candidates.append(candidate)
            return
        log.debug("Sending candidate", peer=self.peer_id, candidate=candidate)
        self.session.send(
            Exchange(MessageType.CANDIDATE, self.session.id, self.peer_id, candidate.encode())
        )

    def _send_description(self, kind: MessageType, sdp: str) -> None:
        payload = encode_session_description(kind, sdp)
        self.session.send(Exchange(kind, self.session.id, self.peer_id, payload))
        held, self.local_candidates = self.local_candidates or [], None
        for candidate in held:
            self.on_candidate(candidate)

    def on_channel(self, channel: DataChannel) -> None:
        if self.closed or channel.label not in self.adapter.labels:
            channel.close()
            return
        self.channels.append(channel)
        log.debug("Connected to channel", peer=self.peer_id, channel=channel.label)
        self.adapter.accepted.put_nowait(Peer(self.peer_id, channel.label, channel))

    def on_state(self, state: ConnectionState) -> None:
        log.trace("Peer connection state", peer=self.peer_id, state=state.value)
        if state is ConnectionState.CONNECTED:
            self.connected.set()
        if state in ENDED_STATES and not self.closed:
            log.debug("Disconnected from peer", peer=self.peer_id, state=state.value)
            self.session.forget(self)

    # Signaling, in order

    async def _work(self) -> None:
        try:
            if self.initiator:
                for label in self.adapter.labels:
                    options = self.adapter.config.channel_options.get(label, ChannelOptions())
                    self.pc.create_channel(ChannelSpec(label, options))
                self._send_description(MessageType.OFFER, await self.pc.create_offer())
            while True:
                await self._handle(await self.inbox.get())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken peer must never take the adapter down
            log.warning(
                "Dropping peer after an error",
                peer=self.peer_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            self.session.forget(self)

    async def _handle(self, message: Exchange) -> None:
        if message.type is MessageType.CANDIDATE:
            try:
                candidate = message.payload.decode("utf-8")
            except UnicodeDecodeError:
                log.debug("Ignoring candidate that is not UTF-8", peer=self.peer_id)
                return
            if self.remote_described:
                await self._add_candidate(candidate)
            elif len(self.pending_candidates) < _MAX_EARLY_CANDIDATES:
                self.pending_candidates.append(candidate)
            return
        try:
            kind, sdp = decode_session_description(message.payload)
        except MessageError as exc:
            log.info("Ignoring malformed session description", peer=self.peer_id, reason=str(exc))
            return
        if kind is not message.type:
            log.info("Ignoring session description of the wrong type", peer=self.peer_id)
            return
        if kind is MessageType.OFFER and not self.initiator and not self.remote_described:
            self._send_description(MessageType.ANSWER, await self.pc.accept_offer(sdp))
        elif kind is MessageType.ANSWER and self.initiator and not self.remote_described:
            await self.pc.accept_answer(sdp)
        else:
            log.debug("Ignoring unexpected session description", peer=self.peer_id, type=kind.value)
            return
        self.remote_described = True
        pending, self.pending_candidates = self.pending_candidates, []
        for candidate in pending:
            await self._add_candidate(candidate)

    async def _add_candidate(self, candidate: str) -> None:
        try:
            await self.pc.add_candidate(candidate)
        except Exception as exc:  # engines raise anything for a bad line
            log.info(
                "Ignoring malformed candidate",
                peer=self.peer_id,
                reason=f"{type(exc).__name__}: {exc}"[:200],
            )

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.worker.cancel()
        for channel in self.channels:
            channel.close()
        with contextlib.suppress(Exception):
            await self.pc.close()


class _Session:
    """One signaler connection: our id for it, its remotes, and an ordered outbox."""

    def __init__(self, adapter: Adapter, session: SignalingSession, my_id: str) -> None:
        self.adapter = adapter
        self.session = session
        self.id = my_id
        self.remotes: dict[str, _Remote] = {}
        self.early_candidates: dict[str, list[Exchange]] = {}
        self.outbox: asyncio.Queue[SignalingMessage] = asyncio.Queue()
        self.background: set[asyncio.Task[None]] = set()
        self.reconnects: dict[str, asyncio.Task[None]] = {}  # by peer id
        self.ending = False

    def send(self, message: SignalingMessage) -> None:
        self.outbox.put_nowait(message)

    async def _write(self) -> None:
        while True:
            await self.session.send(await self.outbox.get())

    def forget(self, remote: _Remote) -> None:
        """Remove ``remote`` if it is still the current connection to its member; a working
        connection that broke (a link cut, a NAT rebinding) is offered again."""
        current = self.remotes.get(remote.peer_id) is remote
        if current:
            del self.remotes[remote.peer_id]
        self._close_later(remote)
        peer_id = remote.peer_id
        broke = current and remote.connected.is_set() and not self.ending
        if broke and peer_id not in self.reconnects:
            task = asyncio.create_task(self._reconnect(peer_id))
            self.reconnects[peer_id] = task
            task.add_done_callback(lambda _: self.reconnects.pop(peer_id, None))

    def _close_later(self, remote: _Remote) -> None:
        task = asyncio.create_task(remote.close())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _reconnect(self, peer_id: str) -> None:
        """Offer to a member we lost while both of us stay in the community: no one would
        introduce themselves again, so without this the two would stay apart. Attempts are
        spread out (and jittered, so both sides rarely offer at once; if they do, the glare
        rule picks one offer); a member that left for good simply never answers."""
        for attempt in range(_RECONNECT_ATTEMPTS):
            await asyncio.sleep(random.uniform(0.2, 1.0) * 2**attempt)
            current = self.remotes.get(peer_id)
            if current is None:
                log.debug("Offering again to lost peer", peer=peer_id, attempt=attempt + 1)
                current = self._replace(peer_id, initiator=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.adapter.config.timeout):
                    await current.connected.wait()
            if current.connected.is_set():
                return
            if self.remotes.get(peer_id) is current:
                del self.remotes[peer_id]
                self._close_later(current)
        log.info("Giving up on lost peer until it introduces itself again", peer=peer_id)

    def _replace(self, peer_id: str, *, initiator: bool) -> _Remote:
        old = self.remotes.pop(peer_id, None)
        if old is not None:
            log.debug("Replacing connection to rejoined peer", peer=peer_id)
            self._close_later(old)
        remote = _Remote(self.adapter, peer_id, self, initiator=initiator)
        self.remotes[peer_id] = remote
        return remote

    async def run(self) -> None:
        writer = asyncio.create_task(self._write(), name="signaling writer")
        try:
            self.send(Introduction(self.id))
            async for message in self.session:
                self._dispatch(message)
        finally:
            self.ending = True
            writer.cancel()
            for task in list(self.reconnects.values()):
                task.cancel()
            for remote in list(self.remotes.values()):
                await remote.close()
            self.remotes.clear()
            if self.background:
                await asyncio.gather(*self.background, return_exceptions=True)

    def _dispatch(self, message: SignalingMessage) -> None:
        if isinstance(message, Introduction):
            if message.sender != self.id:
                log.debug("Offering to introduced peer", peer=message.sender)
                self._replace(message.sender, initiator=True)
            return
        if message.recipient != self.id or message.sender == self.id:
            return
        sender = message.sender
        remote = self.remotes.get(sender)
        if message.type is MessageType.OFFER:
            glare = remote is not None and remote.initiator and not remote.remote_described
            if glare and self.id > sender:
                return  # both offered at once: the larger id keeps its offer, the other answers
            remote = self._replace(sender, initiator=False)
            for buffered in self.early_candidates.pop(sender, []):
                remote.inbox.put_nowait(buffered)
            remote.inbox.put_nowait(message)
            return
        if remote is not None:
            remote.inbox.put_nowait(message)
        elif message.type is MessageType.CANDIDATE:
            early = self.early_candidates.setdefault(sender, [])
            if (
                len(early) < _MAX_EARLY_CANDIDATES
                and len(self.early_candidates) <= _MAX_EARLY_SENDERS
            ):
                early.append(message)


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
        self.accepted: asyncio.Queue[Peer] = asyncio.Queue()
        self._ids: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._session: _Session | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._run(), name="adapter")
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self._failure = task.exception()
        # Wake whoever waits for ids or peers, so they see the failure.
        self._ids.put_nowait("")

    async def _run(self) -> None:
        async for session in self._signaling.sessions():
            my_id = self.config.id.strip() or str(uuid.uuid4())
            if self._announce:
                log.info("Connected to signaler", id=my_id)
            else:
                log.debug("Connected to signaler", id=my_id)
            self._ids.put_nowait(my_id)
            self._session = _Session(self, session, my_id)
            try:
                await self._session.run()
            finally:
                self._session = None

    def drop(self, peer_id: str) -> None:
        """Close the connection to ``peer_id`` (e.g. it stopped answering); its channels end
        and it is connected again when it introduces itself again."""
        if self._session is not None and (remote := self._session.remotes.get(peer_id)):
            log.info("Dropping unresponsive peer", peer=peer_id)
            self._session.forget(remote)

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._task is not None and self._task.done():
            raise ConnectionError("the adapter is closed")

    async def next_id(self) -> str:
        """Our id on the next signaler connection (a new one after each reconnect)."""
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

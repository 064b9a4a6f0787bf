"""The named adapter: every member claims a unique name on the id channel, and peers are
reported by name instead of by their per-connection UUID.

Timers live here, the negotiation rules in :mod:`weron.peers.names`. A peer's data
channels are held back until both its name and ours are known.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterable, Sequence
from typing import Any, Final

from weron.log import get_logger
from weron.peers import Peer, next_announcement, next_peer
from weron.peers import names as negotiation
from weron.peers.adapter import Adapter, AdapterConfig, Late
from weron.webrtc import Backend, ChannelClosedError, ChannelSpec, DataChannel

log = get_logger(__name__)
# The shortest time a claim waits for connections still being negotiated: ten members starting
# together on a busy two-core machine took more than 5 s to connect.
_CONNECTIONS_WAIT: Final = 15.0


class NamedAdapter:
    """Like :class:`Adapter`, with ``names`` to claim one from on ``id_channel``."""

    def __init__(
        self,
        raddr: str,
        community: str,
        password: str,
        key: str,
        channels: Sequence[str],
        backend: Backend,
        *,
        names: Sequence[str],
        id_channel: str = "weron/id/id",
        kicks: float = 5.0,
        config: AdapterConfig | None = None,
        conflicts: Callable[[Iterable[str], str], bool] = negotiation.names_overlap,
        choose: Callable[[Sequence[str]], str] = negotiation.first,
        features: Collection[str] = (),
    ) -> None:
        self._config = config if config is not None else AdapterConfig()
        self._id_channel = id_channel
        self._kicks = kicks
        self._adapter = Adapter(
            raddr,
            community,
            password,
            key,
            [id_channel, *channels],
            backend,
            self._config,
            announce=False,  # we announce the claimed name instead of the connection's UUID
        )
        self._negotiation = negotiation.NameNegotiation(
            names,
            time.time_ns(),
            conflicts,
            choose,
            # The longest a rival's simultaneous claim can take to reach us: the connection to
            # it may still have been negotiating when we claimed.
            contest=max(self._config.timeout, _CONNECTIONS_WAIT) + kicks,
            features=frozenset(features),
        )
        self._names: asyncio.Queue[str] = asyncio.Queue()
        self._accepted: asyncio.Queue[Peer] = asyncio.Queue()
        self._id_channels: dict[str, Peer] = {}  # by peer UUID
        self._peer_names: dict[str, str] = {}  # peer UUID -> claimed name
        self._views: dict[str, negotiation.PeerNames] = {}  # by peer UUID
        self._held: dict[str, list[Peer]] = {}  # data channels waiting for names
        self._released: set[str] = set()  # peer UUIDs whose data channels carry their name
        self._naming = asyncio.Event()  # set (and replaced) whenever a peer announces a name
        self._silent: set[str] = set()  # peer UUIDs that stopped answering (see _listen)
        self._claim_timer: asyncio.TimerHandle | None = None
        self._claim_due = 0.0  # when the claim timer was meant to fire
        self._waited_for_connections = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def open(self) -> None:
        await self._adapter.open()
        self._main = asyncio.create_task(self._run(), name="named adapter")
        self._main.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self._failure = task.exception()
        self._names.put_nowait("")

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        ids = asyncio.create_task(self._follow_ids())
        try:
            async for peer in self._adapter.peers():
                if peer.channel_id == self._id_channel:
                    self._id_channels[peer.peer_id] = peer
                    self._views[peer.peer_id] = negotiation.PeerNames()
                    self._spawn(self._negotiate(peer), f"names {peer.peer_id}")
                else:
                    self._held.setdefault(peer.peer_id, []).append(peer)
                    self._release(peer.peer_id)
        finally:
            ids.cancel()

    async def _follow_ids(self) -> None:
        """Negotiate once the signaler is reached. Connections (and with them our name and
        the names we know) outlive a signaler reconnect, so later ones change nothing, but
        an unfinished negotiation waits for members that come back with the signaler."""
        while True:
            my_id = await self._adapter.next_id()
            if self._negotiation.name is None:
                log.debug("Negotiating a name", id=my_id)
                # As the original: --timeout + --kicks after reaching the signaler, so that the
                # members already there are connected and can make us back off or kick us.
                self._restart_claim_timer(self._config.timeout + self._kicks)
            else:
                log.info("Connected to signaler", id=self._negotiation.name)

    def _restart_claim_timer(self, delay: float | None = None) -> None:
        if self._claim_timer is not None:
            self._claim_timer.cancel()
        loop = asyncio.get_running_loop()
        delay = self._kicks if delay is None else delay
        self._claim_due = loop.time() + delay
        self._claim_timer = loop.call_later(delay, self._claim)

    def _claim(self) -> None:
        """Claim a name, but not while connections to members are still being negotiated
        (a crowd that starts together takes longer than --kicks to connect, and a member we
        are not connected to yet can neither make us back off nor kick us): wait for them, up
        to --timeout (at least 15 s) longer, so that a flood cannot hold our name back."""
        loop = asyncio.get_running_loop()
        negotiating = self._adapter.negotiating()
        in_time = loop.time() < self._claim_due + max(self._config.timeout, _CONNECTIONS_WAIT)
        if negotiating and in_time:
            log.trace("Claim waits for connections", negotiating=negotiating)
            self._waited_for_connections = True
            self._claim_timer = loop.call_later(min(0.25, self._kicks), self._claim)
            return
        if self._waited_for_connections and in_time:
            # The new connections' members greet us now: give them --kicks to make us back
            # off (members that waited for the same connections would all claim at once).
            self._waited_for_connections = False
            self._restart_claim_timer()
            return
        try:
            name = self._negotiation.claim(loop.time())
        except negotiation.AllNamesClaimedError as exc:
            self._failure = exc
            if self._main is not None:
                self._main.cancel()
            self._names.put_nowait("")
            return
        log.info("Connected to signaler", id=name)
        if self._config.watch is not None:
            self._config.watch.name = name
        self._names.put_nowait(name)
        for peer in list(self._id_channels.values()):
            log.debug("Sending name claim", peer=peer.peer_id, id=name)
            self._spawn(self._send(peer, [negotiation.Claimed(name)]), "claimed")
        for peer_id in list(self._held):
            self._release(peer_id)

    def _release(self, peer_id: str) -> None:
        """Hand over a peer's held data channels once both names are known."""
        name = self._peer_names.get(peer_id)
        if name is None or self._negotiation.name is None:
            return
        self._released.add(peer_id)
        for peer in self._held.pop(peer_id, []):
            self._accepted.put_nowait(Peer(name, peer.channel_id, peer.conn))

    async def _send(self, peer: Peer, messages: list[negotiation.NameMessage]) -> None:
        with contextlib.suppress(ChannelClosedError):
            for message in messages:
                await peer.conn.send(negotiation.encode(message))

    async def _keep_alive(self, peer: Peer) -> None:
        with contextlib.suppress(ChannelClosedError):
            while True:
                await asyncio.sleep(self._config.timeout / 4)
                await peer.conn.send(negotiation.encode(negotiation.Keepalive()))

    async def _negotiate(self, peer: Peer) -> None:
        await self._send(peer, self._negotiation.greetings())
        keeping_alive = asyncio.create_task(self._keep_alive(peer))
        try:
            await self._listen(peer)
        finally:
            keeping_alive.cancel()
        if self._id_channels.get(peer.peer_id) is peer:
            del self._id_channels[peer.peer_id]
            self._set_silent(peer.peer_id, False)
            self._peer_names.pop(peer.peer_id, None)
            self._views.pop(peer.peer_id, None)
            self._released.discard(peer.peer_id)

    async def _listen(self, peer: Peer) -> None:
        """Handle the peer's id channel until it closes; a peer that sent keepalives and then
        falls silent for ``timeout`` is dropped (WebRTC itself takes 15-30 s to notice): a
        connection is offered beside this one, which stays until that one takes over or the
        session gives up on it. Meanwhile this channel is still read: a peer that was only
        slow (a stalled process on a loaded machine) may claim its name here yet, and then
        send on the data channels held for that claim."""
        deadline: float | None = None
        view = self._views.get(peer.peer_id, negotiation.PeerNames())
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    data = await peer.conn.receive()
            except ChannelClosedError:
                log.debug("Id channel ended", peer=peer.peer_id)
                return
            except TimeoutError:
                log.warning(
                    "Peer stopped answering", peer=peer.peer_id, timeout=self._config.timeout
                )
                self._adapter.drop(peer.peer_id)
                if self._id_channels.get(peer.peer_id) is peer:  # not a replaced connection's
                    self._set_silent(peer.peer_id, True)
                    if self._id_channels.keys() <= self._silent:
                        log.debug("Cut off from every peer", id=self._negotiation.name)
                        self._negotiation.cut_off(time.time_ns())
                deadline = None  # until it sends a keepalive again
                continue
            if peer.peer_id in self._silent:  # it answers again: its name is its own again
                self._set_silent(peer.peer_id, False)
                self._wake_namers()
            try:
                messages = negotiation.decode(data)
                for message in messages:
                    now = asyncio.get_running_loop().time()
                    reaction = self._negotiation.receive(message, view, now)
                    await self._send(peer, reaction.replies)
                    if reaction.back_off:
                        await self._back_off(peer)
                    if reaction.gave_up is not None:
                        self._give_up(reaction.gave_up)
                    if reaction.peer_name is not None:
                        self._named(peer.peer_id, reaction.peer_name)
                    if reaction.alive or deadline is not None:
                        deadline = asyncio.get_running_loop().time() + self._config.timeout
            except negotiation.NameMessageError as exc:
                log.info("Ignoring id channel message", peer=peer.peer_id, reason=str(exc))

    def _named(self, peer_id: str, name: str) -> None:
        """A peer announced its claimed name. One whose channels went out under another name
        (it gave that one up to an older member) is connected again: its new channels come
        with the new name."""
        previous = self._peer_names.get(peer_id)
        self._peer_names[peer_id] = name
        self._wake_namers()
        if self._config.watch is not None:
            self._config.watch.named(peer_id, name)
        if previous == name:
            return
        if previous is not None and peer_id in self._released:
            log.info("Peer changed its name", id=name, previous=previous)
            # Its new connection's channels wait for the claim on the new id channel, and that
            # claim announces the peer under the new name.
            del self._peer_names[peer_id]
            self._released.discard(peer_id)
            self._adapter.drop(peer_id)
            return
        log.info("Connected to peer", id=name)
        self._release(peer_id)

    def _give_up(self, name: str) -> None:
        """An older member claimed our name at the same time, or while we were cut off from
        every peer: greet every peer with the remaining candidates and claim one of them after
        --kicks."""
        log.warning(
            "Name claimed by an older member at the same time or while we were away: "
            "claiming another",
            id=name,
        )
        for peer in list(self._id_channels.values()):
            self._spawn(self._send(peer, self._negotiation.greetings()), "greeting")
        self._restart_claim_timer()

    async def _back_off(self, peer: Peer) -> None:
        if self._claim_timer is not None:
            self._claim_timer.cancel()
        await asyncio.sleep(self._kicks)
        await self._send(peer, self._negotiation.greetings())
        self._restart_claim_timer()

    def _set_silent(self, peer_id: str, silent: bool) -> None:
        """Whether the peer stopped answering; `weron status` shows its link as silent."""
        if silent:
            self._silent.add(peer_id)
        else:
            self._silent.discard(peer_id)
        if self._config.watch is not None:
            self._config.watch.silent(peer_id, silent)

    def _wake_namers(self) -> None:
        """Wake whoever waits in until_named: a member claimed a name or answers again."""
        self._naming.set()
        self._naming = asyncio.Event()

    def peer_id(self, name: str) -> str | None:
        """The id of the connected member that claimed ``name``, if any: one that answers
        rather than one that stopped answering, else that one (it may come back). Both hold
        the name when a member killed and restarted claims it again before its old
        connection is given up (another ``timeout``)."""
        holders = [
            peer_id
            for peer_id, claimed in self._peer_names.items()
            if claimed == name and peer_id in self._id_channels
        ]
        answering = [each for each in holders if each not in self._silent]
        return next(iter(answering or holders), None)

    def features(self, name: str) -> frozenset[str]:
        """What the connected member named ``name`` said in its greeting it can take (known
        before its channels are handed out: its greeting comes before its claim)."""
        peer_id = self.peer_id(name)
        view = self._views.get(peer_id) if peer_id is not None else None
        return view.features if view is not None else frozenset()

    async def until_named(self, name: str) -> str:
        """The id of the member named ``name``, once one is connected and answers: not one
        that stopped answering (a member killed, restarted and claiming its name again
        comes as a new one)."""
        while (peer_id := self.peer_id(name)) is None or peer_id in self._silent:
            await self._naming.wait()
        return peer_id

    async def open_channel(self, name: str, spec: ChannelSpec, late: Late | None = None) -> Peer:
        """Open a channel to the member named ``name`` (see Adapter.open_channel, which hands
        ``late`` a channel that opens too late); ``ConnectionError`` if no connected member
        has that name."""
        peer_id = self.peer_id(name)
        if peer_id is None:
            raise ConnectionError(f"no connected member is named {name!r}")
        channel = await self._adapter.open_channel(peer_id, spec, late)
        return Peer(name, spec.label, channel)

    def forget_channel(self, channel: DataChannel) -> None:
        """A channel we are done with is closed (see Adapter.forget_channel)."""
        self._adapter.forget_channel(channel)

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._main is not None and self._main.done():
            self._adapter.raise_if_failed()
            raise ConnectionError("the adapter is closed")

    async def next_name(self) -> str:
        """Our name, once claimed (again after every signaler reconnect)."""
        return await next_announcement(self._names, self._raise_if_failed)

    async def accept(self) -> Peer:
        return await next_peer(self._accepted, self._main, self._raise_if_failed)

    async def peers(self) -> AsyncIterator[Peer]:
        while True:
            yield await self.accept()

    async def close(self) -> None:
        if self._claim_timer is not None:
            self._claim_timer.cancel()
        for task in [*self._tasks, *([self._main] if self._main else [])]:
            task.cancel()
        await self._adapter.close()

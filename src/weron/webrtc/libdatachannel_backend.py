"""The libdatachannel backend (``libdatachannel-py``): the fast default.

Threads and the GIL. libdatachannel calls back on its "RTC worker" pool (a thread per core, at
least two; their Python thread states are kept between callbacks: see
``weron.webrtc.thread_state``), and a callback waits there for the GIL while holding the
library's lock of that callback, sometimes others too. The bindings keep the GIL through every
call into the library except ``PeerConnection.close``. A call from Python that waits for the
pool, or for a lock a worker holds while it calls back, therefore waits with the GIL for
threads that wait for the GIL: a deadlock for good. Seen: ``set_local_description`` waiting in
``populateLocalDescription`` for the connection's DTLS certificate, which the library makes on
that very pool, all of whose threads were waiting for the GIL to report arrivals. The rule: no
call made with the GIL waits for the pool, nor for a lock a worker may hold while calling into
Python. Hence:

- the certificate is ours, one per process, handed over as PEM text
  (``weron.webrtc.certificate``): the constructor parses it and nothing waits for the pool;
- no ``on_buffered_amount_low``: the library calls it holding the connection's SCTP send lock,
  which ``send`` takes; a sender waiting for room polls ``buffered_amount`` (an atomic);
- only ``PeerConnection.close`` (which releases the GIL) closes the library's channels:
  closing one resets its callbacks, taking the lock of each, which a worker holds while it
  waits for the GIL to report an arrival, so a message arriving as we close would deadlock the
  process (and any peer may send one then). A channel's ``close()`` ends it for us at once
  (later arrivals are discarded) and for the remote peer with the connection; its SCTP stream
  stays taken until then (512 per side: the library then refuses another channel, raised as
  ``ChannelLimitError``), so an app that opens many channels reuses them. A remote peer's
  close (a stream reset) is done by the library on a worker, which holds no GIL: the channel
  then ends here too, and the connection stops holding it;
- callbacks are registered only where none of that object's can run yet: a connection in its
  constructor, a channel we create before negotiating (auto-negotiation off), and a channel the
  remote peer opened, on the worker that announces it (``on_data_channel``);
- the local description is read with the getter once ``set_local_description`` returns, not
  awaited from a callback. Calls are made on the loop thread (any other thread would hold the
  GIL through them just the same), ``close`` in a thread of its own as it waits unlocked.

Every callback does one thing: hand its event to the loop with ``call_soon_threadsafe``; the
exceptions are an echoing channel (``echo()``), whose arrival callback sends the message back
itself, and a channel that delivers on any thread (``set_receiver(receiver, any_thread=True)``: the
VPNs), whose arrival callback hands the message to the receiver itself. ``receive`` and
``send`` wait for the same locks from a worker as from the loop (both hold the GIL through
them, and the rule above covers them), and the library lets its callbacks send (it holds none
of the send path's locks while it reports an arrival). One thread at a time pumps a channel's
queue (a lock taken without waiting; a thread that finds it taken leaves its arrival to the
holder), so messages keep their order.

Received messages stay queued inside libdatachannel until the reader pulls them
(``on_available`` + ``receive()``), so a slow reader slows the sender down through SCTP
flow control instead of growing a Python queue or dropping anything; the loop is woken for an
arrival only while a reader waits (past 1,024 queued messages the library's worker waits for
the reader: the pool is shared, so a channel nobody reads stalls the others). Sending waits
while ``buffered_amount`` is above a high-water mark (1 MiB: 4 and 16 MiB measured no faster).

Closing. ``PeerConnection.close`` (the bindings release the GIL, then poll every 10 ms for
up to 30 s) returns once the library reports the connection closed: after SCTP's graceful
shutdown, milliseconds over a live path; over a dead one (the TURN server or the network
gone) only when SCTP gives up retransmitting its SHUTDOWN, about 13 s later. Each close runs
in a daemon thread of its own, kept in a registry of closes under way, and resolves its
awaiter through the loop (if the loop is still there): not in the default executor, whose
threads ``asyncio.run`` joins on its way out, so that a shutdown waits for a close only as
long as it chooses (``CLOSE_GRACE``, see ``weron.peers.adapter``). A process that exits with
a connection neither closed nor closing is aborted by the library ("terminate called without
an active exception"); one that exits normally with a close under way destroys the library's
static objects under its still-running threads (that went well in the runs tried, but nothing
promises it). The exit hook therefore waits for each close under way until its grace is
over; then, in a console script (which recorded its exit status: ``weron.exit_status``), if
a close is still under way or a connection was left open, it flushes the output and the logs
and ends the process with ``os._exit`` and that status: the peer could not be told anyway. A
library user's program recorded nothing: there the hook closes what was left open itself
(Python 3.12 refuses new threads at exit) and waits for every close, however long they take,
as it always did.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import logging
import os
import sys
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from typing import Final

import libdatachannel as rtc

from weron import exit_status
from weron.log import get_logger
from weron.webrtc import (
    CLOSE_GRACE,
    ChannelClosedError,
    ChannelLimitError,
    ChannelSpec,
    ConnectionState,
    IceServer,
    LinkStats,
    PeerConfig,
    PeerEvents,
    candidate_line,
    candidates,
    certificate,
    endpoint,
    message_bytes,
)
from weron.webrtc.thread_state import keep_thread_state

log = get_logger(__name__)

_HIGH_WATER: Final = 1 << 20
# How often a sender waiting for room looks again: from 1 ms, doubling up to 8 ms (on a slow link,
# or with many senders waiting, fewer wake-ups); at 60 MB/s, 1 MiB lasts 17 ms on the wire.
_ROOM_POLL: Final = (0.001, 0.008)
# Arrivals closer together than this mark a busy channel, whose receiver is run on the loop.
_BUSY_GAP: Final = 0.0005
# SCTP streams a side may open channels on (libdatachannel negotiates 1,024, odd or even ids).
_CHANNELS_PER_SIDE: Final = 512
_POOL_THREADS: Final = frozenset({"RTC worker"})  # where libdatachannel runs callbacks
# Connections not closing yet: whatever is left at exit is closed then (see "Closing").
_LIVE: weakref.WeakSet[rtc.PeerConnection] = weakref.WeakSet()
# Closes under way: each one's thread, and when it started (monotonic).
_CLOSING: dict[threading.Thread, float] = {}


def _start_close(pc: rtc.PeerConnection, closed: Callable[[], None]) -> None:
    """Close ``pc`` in a daemon thread of its own, which calls ``closed`` when it is done."""
    _LIVE.discard(pc)

    def close() -> None:
        try:
            with contextlib.suppress(Exception):
                pc.close()
        finally:
            _CLOSING.pop(thread, None)
            closed()

    thread = threading.Thread(target=close, name="weron close", daemon=True)
    _CLOSING[thread] = time.monotonic()
    thread.start()


@atexit.register
def _close_leftovers() -> None:
    """Let the closes under way finish, each within its grace; close what is left. A console
    script whose closes are not all done by then ends here, with the status it recorded."""
    for thread, started in list(_CLOSING.items()):
        thread.join(max(0.0, started + CLOSE_GRACE - time.monotonic()))
    status = exit_status.recorded()
    if status is not None and (_CLOSING or _LIVE):
        log.debug("Not waiting for connections to close", count=len(_CLOSING) + len(_LIVE))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        logging.shutdown()
        os._exit(status)
    for pc in list(_LIVE):  # no new thread at exit (Python 3.12): here, however long it takes
        with contextlib.suppress(Exception):
            pc.close()
    for thread in list(_CLOSING):
        thread.join()


def _keep_thread_state() -> None:
    """Keep the Python thread state of libdatachannel's worker pool between callbacks
    (see weron.webrtc.thread_state): saves creating and destroying one per callback."""
    keep_thread_state(_POOL_THREADS)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    """From a library thread: have the loop run ``callback(*args)``. Once the loop is closed
    (Ctrl-C, then a connection closing at exit) nobody is left to tell: the event is dropped,
    instead of a "RuntimeError: Event loop is closed" traceback from the library's thread."""
    _keep_thread_state()
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


_CANDIDATE_TYPES: Final = {
    rtc.Candidate.Type.Host: "host",
    rtc.Candidate.Type.ServerReflexive: "srflx",
    rtc.Candidate.Type.PeerReflexive: "prflx",
    rtc.Candidate.Type.Relayed: "relay",
}

_RELAY_TYPES: Final = {
    "udp": rtc.IceServer.RelayType.TurnUdp,
    "tcp": rtc.IceServer.RelayType.TurnTcp,
}


def _ice_server(server: IceServer) -> rtc.IceServer:
    scheme, _, rest = server.url.partition(":")
    address, _, query = rest.partition("?")
    host, _, port_text = address.rpartition(":")
    if not host:
        host, port_text = address, "3478"
    port = int(port_text)
    if scheme in ("stun", "stuns"):
        return rtc.IceServer(host, port)
    transport = urllib.parse.parse_qs(query).get("transport", ["udp"])[0].lower()
    relay_type = rtc.IceServer.RelayType.TurnTls if scheme == "turns" else _RELAY_TYPES[transport]
    return rtc.IceServer(host, port, server.username, server.credential, relay_type)


class LibdatachannelChannel:
    def __init__(
        self, channel: rtc.DataChannel, loop: asyncio.AbstractEventLoop, events: PeerEvents
    ) -> None:
        """Built on the loop before negotiation, or on the library thread that announced it."""
        self._channel = channel
        self._label = channel.label()
        self._loop = loop
        self._readable = asyncio.Event()
        self._reader_waits = False  # the loop is woken for arrivals only while a reader waits
        self._closed = False  # nothing more to send; readers end once the queue is drained
        self._discard = False  # closed by us: whatever arrives is dropped
        # What had arrived, unread, when we closed: still readable (as with aiortc). A peer's
        # last words come just before its connection ends, and closing our side of it must
        # not lose them; out of the library's queue, so that a full one stalls no worker.
        self._arrived: collections.deque[bytes] = collections.deque()
        self._receiver: Callable[[bytes], None] | None = None
        self._drain_scheduled = False
        # What a library thread does with each arrival itself: echo it, or hand it to a
        # receiver that runs on any thread (None: the loop is woken instead).
        self._pump: Callable[[bytes | str], None] | None = None
        self._echoes = False
        self._pump_lock = threading.Lock()  # one thread pumps at a time: messages stay in order
        self._pump_arrived = False  # for the thread that holds the lock: look again
        self._echo_full = False  # the send buffer was full: the loop echoes once there is room
        self._last_arrival = 0.0  # when on_available last ran (monotonic)
        self.ended = False  # the library closed the channel (the remote peer's reset)
        channel.on_available(self._on_available)
        channel.on_closed(lambda: _post(loop, self._on_closed))
        # Replayed at once if the channel is already open.
        channel.on_open(lambda: _post(loop, self._on_open, events))

    @property
    def label(self) -> str:
        return self._label

    def _on_open(self, events: PeerEvents) -> None:
        if not self._closed:
            events.on_channel(self)

    @property
    def max_message_size(self) -> int:
        return self._channel.max_message_size()

    def _on_available(self) -> None:
        """On a library thread, when a message arrives in an empty queue: echo or deliver it
        here, or drain to the receiver on the loop, or to nowhere once we closed the channel
        (one drain scheduled at a time: a burst costs one wake-up), or wake the reader if one
        waits. A receiver that may run on any thread gets the arrivals of an idle channel
        here, and those of a busy one on the loop: there a burst costs one wake-up, where
        here each arrival would pass the GIL back and forth with the loop (measured: 12 %
        more CPU per GB through the VPN)."""
        _keep_thread_state()
        if self._pump is not None and not self._discard:
            now = time.monotonic()
            busy, self._last_arrival = now - self._last_arrival < _BUSY_GAP, now
            if self._echoes or not busy:
                self._pump_queued()
            elif not self._drain_scheduled:
                self._drain_scheduled = True
                _post(self._loop, self._drain)
        elif self._receiver is not None or self._discard:
            if not self._drain_scheduled:
                self._drain_scheduled = True
                _post(self._loop, self._drain)
        elif self._reader_waits:
            self._reader_waits = False
            _post(self._loop, self._readable.set)

    def _drain(self) -> None:
        """Hand what is queued to the receiver, or drop it once we closed the channel (the
        library's lives on until the connection closes, and a full queue stalls a worker)."""
        self._drain_scheduled = False
        receiver = self._receiver
        if self._pump is not None and not self._discard:
            self._pump_queued()  # a busy channel's arrivals: here, in order, with the lock
        elif self._discard:
            while self._channel.receive() is not None:
                pass
        elif receiver is not None:
            while (message := self._channel.receive()) is not None:
                receiver(message_bytes(message))

    def set_receiver(self, receiver: Callable[[bytes], None], *, any_thread: bool = False) -> None:
        self._pump = None
        with self._pump_lock:  # a library thread still handing to the last receiver is done
            self._receiver = receiver
        if any_thread:
            self._pump = lambda message: receiver(message_bytes(message))
            self._pump_queued()  # what arrived before: later arrivals on the library's threads
        else:
            self._pump = None
            self._drain()  # what arrived before: later messages trigger the callback

    async def echo(self) -> None:
        self._echoes = True
        self._pump = self._send
        self._pump_queued()  # what arrived before: later messages are echoed as they arrive
        while not self._closed:
            self._readable.clear()
            await self._readable.wait()  # the send buffer full, or the close
            pause, longest = _ROOM_POLL
            while self._channel.buffered_amount() > _HIGH_WATER and not self._closed:
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest)
            self._echo_full = False
            self._pump_queued()
        raise ChannelClosedError(f"channel {self._label!r} is closed")

    def _pump_queued(self) -> None:
        """Echo or deliver what is queued, on a library thread or the loop. A thread that finds
        the lock taken leaves its arrival to the holder, which looks again before it stops; an
        echo with the send buffer full leaves the rest to the loop, which waits for room."""
        self._pump_arrived = True
        while self._pump_arrived and self._pump_lock.acquire(blocking=False):
            try:
                self._pump_arrived = False
                while (pump := self._pump) is not None and not (
                    self._closed or self._discard or self._echo_full
                ):
                    if self._echoes and self._channel.buffered_amount() > _HIGH_WATER:
                        self._echo_full = True
                        _post(self._loop, self._readable.set)
                    elif (message := self._channel.receive()) is not None:
                        pump(message)
                    else:
                        break
            except ChannelClosedError:
                _post(self._loop, self._readable.set)
            finally:
                self._pump_lock.release()

    def _on_closed(self) -> None:
        self._closed = self.ended = True
        self._readable.set()

    async def send(self, message: bytes) -> None:
        # Polled: the library's "buffered amount low" callback runs under the send lock.
        pause, longest = _ROOM_POLL
        while self._channel.buffered_amount() > _HIGH_WATER and not self._closed:
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)
        self._send(message)

    async def drain(self) -> None:
        """Once our buffer is empty: the library hands the rest to SCTP, whose shutdown on
        close delivers what is in flight."""
        pause, longest = _ROOM_POLL
        while self._channel.buffered_amount() > 0 and not self._closed:
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    def send_nowait(self, message: bytes) -> bool:
        if not self._closed and self._channel.buffered_amount() > _HIGH_WATER:
            return False
        self._send(message)
        return True

    def _send(self, message: bytes | str) -> None:
        if self._closed:
            raise ChannelClosedError(f"channel {self._label!r} is closed")
        try:
            self._channel.send(message)
        except RuntimeError as exc:  # the library raises when the channel closed meanwhile
            self._closed = True
            raise ChannelClosedError(f"channel {self._label!r} is closed: {exc}") from None

    async def receive(self) -> bytes:
        while self._receiver is not None and not self._closed:
            self._readable.clear()
            await self._readable.wait()  # only the close wakes us: messages go to the receiver
        while True:
            if self._arrived:
                return self._arrived.popleft()
            message = None if self._receiver or self._discard else self._channel.receive()
            if message is not None:
                return message_bytes(message)
            if self._closed:
                raise ChannelClosedError(f"channel {self._label!r} is closed")
            self._readable.clear()
            # Announce the wait before looking again: a message that arrives after this
            # look finds the flag set and wakes us; one that arrived before it is seen here.
            self._reader_waits = True
            if self._channel.available_amount() == 0 and not self._closed:
                await self._readable.wait()
            self._reader_waits = False

    def close(self) -> None:
        """Closed for us now; for the remote peer when the connection closes (see the module
        docstring). What had arrived is still read; later arrivals are discarded."""
        if not self._discard:
            self._closed = self._discard = True
            if self._receiver is None:
                while (message := self._channel.receive()) is not None:
                    self._arrived.append(message_bytes(message))
            self._readable.set()
            if self._channel.available_amount() and not self._drain_scheduled:
                self._drain_scheduled = True
                self._loop.call_soon(self._drain)


class LibdatachannelPeerConnection:
    def __init__(self, config: PeerConfig, events: PeerEvents) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._events = events
        self._excluded = config.excluded_networks
        configuration = rtc.Configuration()
        configuration.ice_servers = [_ice_server(server) for server in config.ice_servers]
        if config.relay_only:
            configuration.ice_transport_policy = rtc.TransportPolicy.Relay
        if config.mtu is not None:
            configuration.mtu = config.mtu
        configuration.disable_auto_negotiation = True  # we set descriptions when ready
        dtls = certificate.current()
        configuration.certificate_pem_file = dtls.certificate_pem  # PEM text, not a path
        configuration.key_pem_file = dtls.key_pem
        self._pc = pc = rtc.PeerConnection(configuration)
        _LIVE.add(pc)
        self._remote_mid = "0"
        self._channels: list[LibdatachannelChannel] = []
        pc.on_local_candidate(
            lambda candidate: _post(loop, self._on_candidate, candidate.candidate())
        )
        pc.on_state_change(lambda state: _post(loop, self._on_state, state.name))
        pc.on_data_channel(self._adopt)

    def _on_candidate(self, candidate: str) -> None:
        """libjuice gathers on every interface (it has no exclusion): those inside the
        excluded networks are never reported; it sends from one unbound socket, so a check
        to a peer's real address never leaves through the overlay."""
        if candidates.candidate_excluded(candidate, self._excluded):
            candidates.dropped(candidate, "local")
        else:
            self._events.on_candidate(candidate)

    def _on_state(self, name: str) -> None:
        with contextlib.suppress(ValueError):
            self._events.on_state(ConnectionState(name.lower()))

    def _adopt(self, channel: rtc.DataChannel) -> None:
        """On a library thread: a channel the remote peer created."""
        _keep_thread_state()
        wrapped = LibdatachannelChannel(channel, self._loop, self._events)
        _post(self._loop, self._keep, wrapped)

    def _keep(self, channel: LibdatachannelChannel) -> None:
        """Hold a channel until the connection closes (dropped, it would be closed by its
        destructor, under the GIL), or until the remote peer closed it in the library."""
        self._channels = [each for each in self._channels if not each.ended]
        self._channels.append(channel)

    def stats(self) -> LinkStats:
        """The library's own figures: the selected pair (libjuice's agent lock, which its
        thread never holds while calling into Python: it hands events to the library's
        queues), and SCTP's counters and round trip (atomics and usrsctp's socket lock,
        likewise never held across a callback)."""
        local, remote = rtc.Candidate(), rtc.Candidate()
        selected = self._pc.get_selected_candidate_pair(local, remote)
        rtt = self._pc.rtt()
        return LinkStats(
            local_type=_CANDIDATE_TYPES.get(local.type()) if selected else None,
            remote_type=_CANDIDATE_TYPES.get(remote.type()) if selected else None,
            local_address=_candidate_address(local) if selected else None,
            remote_address=_candidate_address(remote) if selected else None,
            rtt=rtt.total_seconds() if rtt is not None else None,
            bytes_sent=self._pc.bytes_sent(),
            bytes_received=self._pc.bytes_received(),
        )

    def create_channel(self, spec: ChannelSpec) -> LibdatachannelChannel:
        init = rtc.DataChannelInit()
        reliability = rtc.Reliability()
        reliability.unordered = not spec.options.ordered
        reliability.max_retransmits = spec.options.max_retransmits
        init.reliability = reliability
        try:
            channel = self._pc.create_data_channel(spec.label, init)
        except RuntimeError as exc:
            if "Too many DataChannels" not in str(exc):
                raise
            raise ChannelLimitError(
                f"no data channel left on this connection ({_CHANNELS_PER_SIDE} a side, "
                f"closed ones included until it closes): {exc}"
            ) from None
        wrapped = LibdatachannelChannel(channel, self._loop, self._events)
        self._keep(wrapped)
        return wrapped

    async def create_offer(self) -> str:
        return self._set_local()

    async def accept_offer(self, sdp: str) -> str:
        self._set_remote(sdp, "offer")
        return self._set_local()

    async def accept_answer(self, sdp: str) -> None:
        self._set_remote(sdp, "answer")

    def _set_local(self) -> str:
        """Set the local description and return it without candidates: each is trickled
        through ``on_candidate`` as it is gathered, and some were gathered already."""
        self._pc.set_local_description()
        description = self._pc.local_description()
        if description is None:  # the connection was closed meanwhile
            raise ConnectionError("peer connection closed")
        return candidates.without_candidates(str(description))

    def _set_remote(self, sdp: str, kind: str) -> None:
        sdp = candidates.remote_description(sdp, self._excluded)
        description = rtc.Description(sdp, kind)  # type: ignore[attr-defined]  # stub gap
        self._pc.set_remote_description(description)
        for line in sdp.splitlines():
            if line.startswith("a=mid:"):
                self._remote_mid = line[6:].strip()
                break

    async def add_candidate(self, candidate: str) -> None:
        line = candidate_line(candidate)
        if candidates.remote_candidate_kept(line, self._excluded):
            self._pc.add_remote_candidate(rtc.Candidate(line, self._remote_mid))

    async def close(self) -> None:
        """Returns once closed: the library closes the channels and drops the callbacks (and
        with them the cycle through our lambdas) on its own threads. A close that cannot
        reach the peer takes about 13 s (see "Closing")."""
        for channel in self._channels:
            channel.close()  # ours only: nothing is sent on them while the library closes
        closed = self._loop.create_future()
        _start_close(self._pc, lambda: _post(self._loop, _resolve, closed))
        await closed


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # its waiter may have been cancelled
        future.set_result(None)


def _candidate_address(candidate: rtc.Candidate) -> str | None:
    host, port = candidate.address(), candidate.port()
    return endpoint(host, port) if host is not None and port is not None else None


class LibdatachannelBackend:
    def __init__(self) -> None:
        certificate.prepare()

    @property
    def name(self) -> str:
        return "libdatachannel"

    def peer_connection(
        self, config: PeerConfig, events: PeerEvents
    ) -> LibdatachannelPeerConnection:
        return LibdatachannelPeerConnection(config, events)

"""`weron forward`'s protocol, without I/O (docs/forwarding.md): channel labels, frames, the
life of one forwarded TCP connection, the allow-list of exposed ports, the listen/to pairs, and
who is admitted.

TCP: a reliable, ordered channel ``weron/forward/tcp/<serial>`` carries one forwarded connection
after another. Each starts with ``OPEN`` (the port) and ends when both sides have sent and
received ``CLOSE``; then the channel's creator may open the next one on it. Channels are
reused, never closed to be freed: libdatachannel frees a closed channel's stream only when the
peer connection closes, and a peer connection has 512 per side. The end of a stream travels in
band: ``END`` is a half-close (TCP FIN), ``ERROR`` a reset with a reason (TCP RST), ``CLOSE``
"nothing more from me in this stream".

UDP: an unordered channel without retransmissions ``weron/forward/udp/<port>`` per peer and
port carries ``DATAGRAM`` frames; a flow id tells the opener's local sources apart.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

ID_CHANNEL: Final = "weron/forward/id"
LABEL_PREFIX: Final = "weron/forward/"
MAX_SERIAL: Final = 2**32 - 1
MAX_FLOW: Final = 2**32 - 1
MAX_REASON: Final = 200  # bytes of an ERROR frame's reason that are kept


class ForwardError(ValueError):
    """A flag value, label or frame that is not what `weron forward` speaks."""


class Transport(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """What a channel label says: TCP streams (a serial that only tells the opener's channels
    apart), or the datagrams of one UDP ``port``."""

    transport: Transport
    number: int  # the serial (TCP) or the port (UDP)

    @property
    def label(self) -> str:
        return f"{LABEL_PREFIX}{self.transport}/{self.number}"


def tcp_label(serial: int) -> str:
    return ChannelRequest(Transport.TCP, serial % (MAX_SERIAL + 1)).label


def udp_label(port: int) -> str:
    return ChannelRequest(Transport.UDP, port).label


def is_forward_label(label: str) -> bool:
    """Whether a peer's channel is ours to look at (every other label is closed unread)."""
    return label.startswith(LABEL_PREFIX) and label != ID_CHANNEL


def _number(text: str, what: str, high: int, low: int = 0) -> int:
    # Digits only: int() would take "+22", " 22" or "2_2", which no honest peer writes.
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise ForwardError(f"bad {what}: {text[:20]!r}")
    value = int(text)
    if not low <= value <= high:
        raise ForwardError(f"{what} out of range: {value}")
    return value


def parse_label(label: str) -> ChannelRequest:
    """What a channel label asks for; :class:`ForwardError` for anything else."""
    if not label.startswith(LABEL_PREFIX):
        raise ForwardError(f"not a forward channel: {label[:60]!r}")
    parts = label[len(LABEL_PREFIX) :].split("/")
    if len(parts) != 2:
        raise ForwardError(f"malformed forward channel label: {label[:60]!r}")
    if parts[0] == Transport.TCP:
        return ChannelRequest(Transport.TCP, _number(parts[1], "serial", MAX_SERIAL))
    if parts[0] == Transport.UDP:
        return ChannelRequest(Transport.UDP, _number(parts[1], "port", 65_535, 1))
    raise ForwardError(f"unknown transport: {parts[0][:20]!r}")


# Frames


class FrameType(enum.IntEnum):
    DATA = 0  # bytes of the stream
    END = 1  # half-close: no more DATA from the sender (TCP FIN)
    ERROR = 2  # abort: a code byte, then a UTF-8 reason (TCP RST)
    OPEN = 3  # a stream to a port: two bytes, big-endian
    CLOSE = 4  # the sender's last frame of the stream
    DATAGRAM = 5  # UDP: a flow id (four bytes, big-endian), then the datagram
    WINDOW = 6  # TCP: more credit for DATA, four bytes big-endian


class ErrorCode(enum.IntEnum):
    NOT_EXPOSED = 1  # the port is not in the serving peer's allow-list
    UNREACHABLE = 2  # the serving peer could not connect to the exposed target
    RESET = 3  # the connection was reset or aborted on the other side
    TOO_MANY = 4  # the serving peer's limit of connections from this peer is reached
    PROTOCOL = 5  # a frame that breaks this protocol (the stream is reset)


@dataclass(frozen=True, slots=True)
class Data:
    payload: bytes


@dataclass(frozen=True, slots=True)
class End:
    pass


@dataclass(frozen=True, slots=True)
class Error:
    code: ErrorCode
    reason: str


@dataclass(frozen=True, slots=True)
class Open:
    port: int


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Datagram:
    flow: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Window:
    credit: int


Frame = Data | End | Error | Open | Close | Datagram | Window

END_FRAME: Final = bytes([FrameType.END])
CLOSE_FRAME: Final = bytes([FrameType.CLOSE])
_DATA_TYPE: Final = bytes([FrameType.DATA])
_DATAGRAM_HEADER: Final = struct.Struct("!BI")
_OPEN: Final = struct.Struct("!BH")
_WINDOW: Final = struct.Struct("!BI")
# Flow control of a TCP stream: the DATA a side may have sent that the other has not yet
# written to its socket. A DATA frame costs its payload's length, at least MIN_COST, so that no
# more than WINDOW / MIN_COST (512) messages ever wait unread in the receiver's engine
# (libdatachannel's worker threads stall on a channel with 1,024 unread messages).
WINDOW: Final = 2 << 20
MIN_COST: Final = 4096


def data_frame(payload: bytes) -> bytes:
    return _DATA_TYPE + payload


def error_frame(code: ErrorCode, reason: str) -> bytes:
    return bytes([FrameType.ERROR, code]) + reason.encode()[:MAX_REASON]


def open_frame(port: int) -> bytes:
    return _OPEN.pack(FrameType.OPEN, port)


def window_frame(credit: int) -> bytes:
    return _WINDOW.pack(FrameType.WINDOW, credit)


def cost(size: int) -> int:
    """What a DATA frame with ``size`` bytes takes of the window."""
    return max(size, MIN_COST)


def datagram_frame(flow: int, payload: bytes) -> bytes:
    return _DATAGRAM_HEADER.pack(FrameType.DATAGRAM, flow) + payload


DATAGRAM_OVERHEAD: Final = _DATAGRAM_HEADER.size


def decode(message: bytes) -> Frame:
    """One frame; :class:`ForwardError` for an empty message, an unknown type or code, or a
    frame of the wrong length."""
    if not message:
        raise ForwardError("empty frame")
    kind = message[0]
    if kind == FrameType.DATA:
        return Data(message[1:])
    if kind in (FrameType.END, FrameType.CLOSE):
        if len(message) != 1:
            raise ForwardError(f"{FrameType(kind).name} frame with a body")
        return End() if kind == FrameType.END else Close()
    if kind == FrameType.ERROR:
        if len(message) < 2:
            raise ForwardError("ERROR frame without a code")
        try:
            code = ErrorCode(message[1])
        except ValueError:
            raise ForwardError(f"unknown error code {message[1]}") from None
        return Error(code, message[2 : 2 + MAX_REASON].decode("utf-8", "replace"))
    if kind == FrameType.OPEN:
        if len(message) != _OPEN.size:
            raise ForwardError("OPEN frame of the wrong length")
        port = _OPEN.unpack(message)[1]
        if port == 0:
            raise ForwardError("OPEN frame for port 0")
        return Open(port)
    if kind == FrameType.WINDOW:
        if len(message) != _WINDOW.size:
            raise ForwardError("WINDOW frame of the wrong length")
        return Window(_WINDOW.unpack(message)[1])
    if kind == FrameType.DATAGRAM:
        if len(message) < _DATAGRAM_HEADER.size:
            raise ForwardError("DATAGRAM frame without a flow id")
        return Datagram(_DATAGRAM_HEADER.unpack_from(message)[1], message[_DATAGRAM_HEADER.size :])
    raise ForwardError(f"unknown frame type {kind}")


# One forwarded TCP connection


@dataclass(slots=True)
class Reaction:
    """What a peer's frame asks of the local side: ``send`` these frames (in order, before
    anything else is sent), ``write`` bytes to the socket, ``shutdown`` its write side, or
    ``reset`` it; ``credit``: more DATA may be sent now."""

    send: list[bytes] = field(default_factory=list)
    write: bytes = b""
    credit: bool = False
    shutdown: bool = False
    reset: Error | None = None


class Stream:
    """One TCP connection on a channel, from OPEN to both CLOSEs, as seen by one side.

    Each side sends DATA until its socket's EOF (then END) or a failure (then ERROR), and CLOSE
    once it will send nothing more: when its own half ended (END or ERROR) and the peer's too
    (END or ERROR either way). The stream is done, and the channel free for the next one, when
    CLOSE went both ways. A frame that breaks this (DATA after END, a second OPEN, CLOSE before
    END or ERROR, DATA beyond the window, a window larger than WINDOW) aborts the stream as an
    ERROR would.

    Flow control: a side sends DATA only within its credit (WINDOW at first, less each DATA's
    :func:`cost`), and grants credit back with WINDOW frames as it writes what it received to
    its socket, so that a slow reader stops the writer instead of filling the engine."""

    def __init__(self) -> None:
        self.credit = WINDOW  # what we may still send
        self.unwritten = 0  # received, not yet written to the socket
        self.granted = 0  # written, not yet granted back
        self.sent_end = False
        self.received_end = False
        self.aborted: Error | None = None  # sent or received ERROR (the first one)
        self.sent_close = False
        self.received_close = False

    @property
    def done(self) -> bool:
        return self.sent_close and self.received_close

    @property
    def sending(self) -> bool:
        """Whether the local socket's bytes may still go out as DATA."""
        return not (self.sent_end or self.aborted is not None or self.sent_close)

    def _close_if_over(self, frames: list[bytes]) -> None:
        ours = self.sent_end or self.aborted is not None
        theirs = self.received_end or self.aborted is not None
        if ours and theirs and not self.sent_close:
            self.sent_close = True
            frames.append(CLOSE_FRAME)

    def room(self) -> int:
        """How many bytes one DATA frame may carry now (0: wait for credit)."""
        return self.credit if self.credit >= MIN_COST else 0

    def data(self, payload: bytes) -> bytes:
        """The DATA frame for bytes read from the socket (at most :meth:`room`)."""
        self.credit -= cost(len(payload))
        return data_frame(payload)

    def written(self, size: int) -> list[bytes]:
        """``size`` bytes of a DATA frame were written to the socket: the frames to send (a
        WINDOW once a quarter of the window was written)."""
        self.unwritten -= cost(size)
        self.granted += cost(size)
        if self.granted < WINDOW // 4 or self.sent_close or self.aborted is not None:
            return []
        granted, self.granted = self.granted, 0
        return [window_frame(granted)]

    def local_eof(self) -> list[bytes]:
        """The local socket's reader reached EOF: the frames to send."""
        if not self.sending:
            return []
        self.sent_end = True
        frames = [END_FRAME]
        self._close_if_over(frames)
        return frames

    def local_error(self, code: ErrorCode, reason: str) -> list[bytes]:
        """The local socket failed (or could not connect): the frames to send."""
        if self.sent_close or self.aborted is not None:
            return []
        self.aborted = Error(code, reason)
        frames = [error_frame(code, reason)]
        self._close_if_over(frames)
        return frames

    def _breach(self, reason: str) -> Reaction:
        reaction = Reaction()
        if self.aborted is None:
            reaction.reset = Error(ErrorCode.PROTOCOL, reason)
            reaction.send = self.local_error(ErrorCode.PROTOCOL, reason)
        self._close_if_over(reaction.send)
        return reaction

    def receive(self, message: bytes) -> Reaction:
        """A peer's message, until :attr:`done`."""
        try:
            frame = decode(message)
        except ForwardError as exc:
            return self._breach(str(exc))
        reaction = Reaction()
        if isinstance(frame, Data):
            if self.received_end:
                return self._breach("DATA after END")
            if self.aborted is None:
                self.unwritten += cost(len(frame.payload))
                if self.unwritten > WINDOW:
                    return self._breach("DATA beyond the window")
                reaction.write = frame.payload
        elif isinstance(frame, Window):
            self.credit += frame.credit
            if self.credit > WINDOW:
                return self._breach("a window larger than the protocol's")
            reaction.credit = True
        elif isinstance(frame, End):
            if self.received_end:
                return self._breach("a second END")
            self.received_end = True
            reaction.shutdown = self.aborted is None
        elif isinstance(frame, Error):
            if self.aborted is None:
                self.aborted = frame
                reaction.reset = frame
        elif isinstance(frame, Close):
            if not (self.received_end or self.aborted is not None):
                self.received_close = True
                return self._breach("CLOSE before END or ERROR")
            self.received_close = True
        else:
            return self._breach(f"{type(frame).__name__.upper()} inside a stream")
        self._close_if_over(reaction.send)
        return reaction


# Flags


@dataclass(frozen=True, slots=True)
class HostPort:
    """A ``HOST:PORT`` of ``--listen`` or ``--expose``: a TCP or UDP socket address on this
    machine's side (not gonet's UDP endpoints of :mod:`weron.net.endpoints`), printed back the
    way it is written."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _split_transport(text: str) -> tuple[str, Transport]:
    body, slash, suffix = text.strip().rpartition("/")
    if not slash:
        return text.strip(), Transport.TCP
    try:
        return body, Transport(suffix.lower())
    except ValueError:
        raise ForwardError(f"unknown transport {suffix!r} in {text!r} (tcp or udp)") from None


def parse_host_port(text: str, what: str) -> HostPort:
    """``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ForwardError(f"bad {what} {text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ForwardError(f"bad {what} {text!r}: not an IPv6 address") from None
    elif ":" in host:
        raise ForwardError(f"bad {what} {text!r}: write IPv6 addresses as [ADDRESS]:PORT")
    try:
        port = _number(port_text, "port", 65_535, 1)
    except ForwardError:
        raise ForwardError(f"bad {what} {text!r}: the port must be 1 to 65535") from None
    return HostPort(host, port)


@dataclass(frozen=True, slots=True)
class Exposed:
    """What a peer may reach: ``port`` over ``transport`` is forwarded to ``target``."""

    transport: Transport
    port: int
    target: HostPort


def parse_exposed(values: Sequence[str]) -> dict[tuple[Transport, int], Exposed]:
    """``--expose`` values: ``PORT`` (localhost's), ``HOST:PORT`` (exposed as PORT), each with
    an optional ``/udp`` (default ``/tcp``)."""
    exposed: dict[tuple[Transport, int], Exposed] = {}
    for value in values:
        if not value.strip():
            continue
        body, transport = _split_transport(value)
        if body.isdigit():
            target = parse_host_port(f"127.0.0.1:{body}", "--expose")
        else:
            target = parse_host_port(body, "--expose")
        key = (transport, target.port)
        if key in exposed:
            raise ForwardError(f"--expose {value!r}: port {target.port}/{transport} twice")
        exposed[key] = Exposed(transport, target.port, target)
    return exposed


@dataclass(frozen=True, slots=True)
class Forward:
    """``--listen`` on ``listen`` and forward to ``peer``'s exposed ``port``."""

    transport: Transport
    listen: HostPort
    peer: str
    port: int


def parse_forwards(listens: Sequence[str], targets: Sequence[str]) -> list[Forward]:
    """``--listen HOST:PORT[/udp]`` and ``--to NAME:PORT``, paired in the order given."""
    listens = [value for value in listens if value.strip()]
    targets = [value for value in targets if value.strip()]
    if len(listens) != len(targets):
        raise ForwardError(
            f"{len(listens)} --listen but {len(targets)} --to: give one --to per --listen"
        )
    forwards = []
    seen: set[tuple[Transport, HostPort]] = set()
    for listen_text, target_text in zip(listens, targets, strict=True):
        body, transport = _split_transport(listen_text)
        listen = parse_host_port(body, "--listen")
        if (transport, listen) in seen:
            raise ForwardError(f"--listen {listen_text!r} twice")
        seen.add((transport, listen))
        name, colon, port_text = target_text.strip().rpartition(":")
        if not colon or not name:
            raise ForwardError(f"bad --to {target_text!r}: expected NAME:PORT")
        try:
            port = _number(port_text, "port", 65_535, 1)
        except ForwardError:
            raise ForwardError(f"bad --to {target_text!r}: the port must be 1 to 65535") from None
        forwards.append(Forward(transport, listen, name, port))
    return forwards


# Admission on the serving side


@dataclass(frozen=True, slots=True)
class Refusal:
    code: ErrorCode
    reason: str


class Admission:
    """What the serving peer answers: exposed ports only, at most ``per_peer`` streams and UDP
    channels open at a time from one peer (a member opening stream after stream gets
    refusals, not a socket each), and at most ``per_peer`` UDP flows (a socket each) over all
    of its UDP channels."""

    def __init__(self, exposed: dict[tuple[Transport, int], Exposed], per_peer: int) -> None:
        self._exposed = exposed
        self._per_peer = per_peer
        self._open: dict[str, int] = {}
        self._flows: dict[str, int] = {}

    def admit(self, peer: str, transport: Transport, port: int) -> Exposed | Refusal:
        """The target, counted as open until :meth:`release`; or why not."""
        target = self._exposed.get((transport, port))
        if target is None:
            return Refusal(ErrorCode.NOT_EXPOSED, f"port {port}/{transport} is not exposed")
        if self._open.get(peer, 0) >= self._per_peer:
            return Refusal(ErrorCode.TOO_MANY, f"more than {self._per_peer} connections")
        self._open[peer] = self._open.get(peer, 0) + 1
        return target

    def release(self, peer: str) -> None:
        _count_down(self._open, peer)

    def open_count(self, peer: str) -> int:
        return self._open.get(peer, 0)

    def admit_flow(self, peer: str) -> bool:
        """Whether one more UDP flow of ``peer``'s may have a socket (counted until
        :meth:`release_flow`)."""
        if self._flows.get(peer, 0) >= self._per_peer:
            return False
        self._flows[peer] = self._flows.get(peer, 0) + 1
        return True

    def release_flow(self, peer: str) -> None:
        _count_down(self._flows, peer)


def _count_down(counts: dict[str, int], peer: str) -> None:
    """One less for ``peer``; a peer with none left is forgotten."""
    count = counts.get(peer, 0) - 1
    if count > 0:
        counts[peer] = count
    else:
        counts.pop(peer, None)

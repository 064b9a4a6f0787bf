"""`weron forward`'s protocol core: labels, frames, the stream's life (two cores against each
other), flags and admission."""

from __future__ import annotations

import pytest

from weron.net import port_forward as proto
from weron.net.port_forward import ErrorCode, Stream, Transport


def test_labels_round_trip_and_garbage_is_refused() -> None:
    assert proto.parse_label(proto.tcp_label(7)) == proto.ChannelRequest(Transport.TCP, 7)
    assert proto.parse_label(proto.udp_label(53)) == proto.ChannelRequest(Transport.UDP, 53)
    assert proto.tcp_label(2**32) == "weron/forward/tcp/0"
    for label in [
        "weron/forward/tcp",
        "weron/forward/tcp/1/2",
        "weron/forward/sctp/1",
        "weron/forward/udp/0",
        "weron/forward/udp/65536",
        "weron/forward/tcp/+1",
        "weron/forward/tcp/１",
        "weron/forward/tcp/99999999999",
        "weron/chat/primary",
    ]:
        with pytest.raises(proto.ForwardError):
            proto.parse_label(label)
    assert proto.is_forward_label("weron/forward/tcp/1")
    assert not proto.is_forward_label(proto.ID_CHANNEL)
    assert not proto.is_forward_label("weron/chat/primary")


def test_frames_round_trip() -> None:
    assert proto.decode(proto.data_frame(b"abc")) == proto.Data(b"abc")
    assert proto.decode(proto.END_FRAME) == proto.End()
    assert proto.decode(proto.CLOSE_FRAME) == proto.Close()
    assert proto.decode(proto.open_frame(22)) == proto.Open(22)
    assert proto.decode(proto.datagram_frame(9, b"x")) == proto.Datagram(9, b"x")
    error = proto.decode(proto.error_frame(ErrorCode.NOT_EXPOSED, "é" * 300))
    assert isinstance(error, proto.Error)
    assert error.code is ErrorCode.NOT_EXPOSED
    assert len(error.reason.encode()) <= proto.MAX_REASON


@pytest.mark.parametrize(
    "message",
    [b"", b"\x09", b"\x01x", b"\x04x", b"\x02", b"\x02\x63", b"\x03\x00", b"\x03\x00\x00", b"\x05"],
)
def test_malformed_frames_are_refused(message: bytes) -> None:
    with pytest.raises(proto.ForwardError):
        proto.decode(message)


def exchange(sender: Stream, frames: list[bytes], receiver: Stream) -> list[proto.Reaction]:
    """Deliver ``frames`` to ``receiver``; what it answers goes back to ``sender``."""
    reactions = []
    for frame in frames:
        reaction = receiver.receive(frame)
        reactions.append(reaction)
        if reaction.send:
            exchange(receiver, reaction.send, sender)
    return reactions


def test_a_clean_stream_half_closes_then_closes_both_ways() -> None:
    client, server = Stream(), Stream()
    (reaction,) = exchange(client, [proto.data_frame(b"hi")], server)
    assert reaction.write == b"hi"
    (reaction,) = exchange(client, client.local_eof(), server)
    assert reaction.shutdown and not reaction.send  # the server still sends
    assert not client.sending and server.sending
    (reaction,) = exchange(server, [proto.data_frame(b"bye")], client)
    assert reaction.write == b"bye"
    frames = server.local_eof()
    assert frames == [proto.END_FRAME, proto.CLOSE_FRAME]
    exchange(server, frames, client)
    assert client.done and server.done
    assert client.aborted is None and server.aborted is None


def test_both_ends_at_once_close_once_each() -> None:
    client, server = Stream(), Stream()
    to_server, to_client = client.local_eof(), server.local_eof()
    exchange(client, to_server, server)
    exchange(server, to_client, client)
    assert client.done and server.done


def test_a_refusal_resets_the_opener_and_both_close() -> None:
    client, server = Stream(), Stream()
    frames = server.local_error(ErrorCode.NOT_EXPOSED, "port 23/tcp is not exposed")
    assert frames[-1] == proto.CLOSE_FRAME
    # The opener had already sent data (it does not wait for an answer): discarded.
    (ignored,) = exchange(client, [proto.data_frame(b"early")], server)
    assert ignored.write == b""
    reactions = exchange(server, frames, client)
    assert reactions[0].reset == proto.Error(ErrorCode.NOT_EXPOSED, "port 23/tcp is not exposed")
    assert client.done and server.done


def test_a_local_failure_after_end_still_ends_in_both_closes() -> None:
    client, server = Stream(), Stream()
    exchange(client, client.local_eof(), server)
    frames = client.local_error(ErrorCode.RESET, "broken pipe")
    reactions = exchange(client, frames, server)
    assert reactions[0].reset is not None
    assert client.done and server.done


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([proto.END_FRAME, proto.data_frame(b"x")], "DATA after END"),
        ([proto.END_FRAME, proto.END_FRAME], "a second END"),
        ([proto.CLOSE_FRAME], "CLOSE before END or ERROR"),
        ([proto.open_frame(22)], "OPEN inside a stream"),
        ([b"\x09garbage"], "unknown frame type 9"),
    ],
)
def test_a_frame_that_breaks_the_protocol_resets_the_stream(
    frames: list[bytes], reason: str
) -> None:
    stream = Stream()
    reactions = [stream.receive(frame) for frame in frames]
    assert reactions[-1].reset == proto.Error(ErrorCode.PROTOCOL, reason)
    assert reactions[-1].send[0] == proto.error_frame(ErrorCode.PROTOCOL, reason)
    assert not stream.sending
    # Only the peer's CLOSE is awaited from now on; nothing reaches the socket.
    assert stream.receive(proto.data_frame(b"more")).write == b""


def test_exposed_ports_and_targets() -> None:
    exposed = proto.parse_exposed(["22", "10.0.0.5:80", "53/udp", "[::1]:8080/tcp"])
    assert exposed[(Transport.TCP, 22)].target == proto.HostPort("127.0.0.1", 22)
    assert exposed[(Transport.TCP, 80)].target == proto.HostPort("10.0.0.5", 80)
    assert exposed[(Transport.UDP, 53)].target == proto.HostPort("127.0.0.1", 53)
    assert str(exposed[(Transport.TCP, 8080)].target) == "[::1]:8080"
    for values in (["22", "22/tcp"], ["0"], ["70000"], ["host"], ["22/sctp"], ["::1:22"]):
        with pytest.raises(proto.ForwardError):
            proto.parse_exposed(values)


def test_listen_and_to_pair_in_order() -> None:
    forwards = proto.parse_forwards(
        ["127.0.0.1:2222", "127.0.0.1:5353/udp"], ["home:22", "home:53"]
    )
    assert forwards == [
        proto.Forward(Transport.TCP, proto.HostPort("127.0.0.1", 2222), "home", 22),
        proto.Forward(Transport.UDP, proto.HostPort("127.0.0.1", 5353), "home", 53),
    ]
    for listens, targets in (
        (["127.0.0.1:1"], []),
        (["127.0.0.1:1"], ["home"]),
        (["127.0.0.1:1"], ["home:0"]),
        (["127.0.0.1:1", "127.0.0.1:1"], ["a:1", "b:1"]),
        (["nowhere"], ["home:22"]),
    ):
        with pytest.raises(proto.ForwardError):
            proto.parse_forwards(listens, targets)


def test_admission_exposes_only_the_allow_list_and_caps_each_peer() -> None:
    admission = proto.Admission(proto.parse_exposed(["22"]), per_peer=2)
    refusal = admission.admit("mallory", Transport.TCP, 23)
    assert isinstance(refusal, proto.Refusal) and refusal.code is ErrorCode.NOT_EXPOSED
    refusal = admission.admit("mallory", Transport.UDP, 22)
    assert isinstance(refusal, proto.Refusal) and refusal.code is ErrorCode.NOT_EXPOSED
    assert isinstance(admission.admit("mallory", Transport.TCP, 22), proto.Exposed)
    assert isinstance(admission.admit("mallory", Transport.TCP, 22), proto.Exposed)
    refusal = admission.admit("mallory", Transport.TCP, 22)
    assert isinstance(refusal, proto.Refusal) and refusal.code is ErrorCode.TOO_MANY
    assert isinstance(admission.admit("alice", Transport.TCP, 22), proto.Exposed)
    admission.release("mallory")
    assert admission.open_count("mallory") == 1
    assert isinstance(admission.admit("mallory", Transport.TCP, 22), proto.Exposed)


def test_admission_caps_the_udp_flows_of_each_peer_over_all_its_channels() -> None:
    admission = proto.Admission(proto.parse_exposed(["53/udp"]), per_peer=2)
    assert admission.admit_flow("mallory") and admission.admit_flow("mallory")
    assert not admission.admit_flow("mallory")
    assert admission.admit_flow("alice")
    admission.release_flow("mallory")
    assert admission.admit_flow("mallory")
    assert not admission.admit_flow("mallory")


def test_the_window_stops_the_sender_until_the_receiver_writes() -> None:
    sender, receiver = Stream(), Stream()
    chunk = b"x" * 65_536
    sent = 0
    while size := min(len(chunk), sender.room()):
        reaction = receiver.receive(sender.data(chunk[:size]))
        assert reaction.write and reaction.reset is None
        sent += size
    assert sent == proto.WINDOW and sender.room() == 0
    # The receiver's socket takes it all: the credit comes back in quarters.
    grants = [frame for _ in range(sent // len(chunk)) for frame in receiver.written(len(chunk))]
    assert grants == [proto.window_frame(proto.WINDOW // 4)] * 4
    reactions = [sender.receive(frame) for frame in grants]
    assert all(reaction.credit for reaction in reactions)
    assert sender.room() == proto.WINDOW


def test_small_frames_cost_at_least_the_minimum() -> None:
    sender = Stream()
    for _ in range(proto.WINDOW // proto.MIN_COST):
        sender.data(b"k")  # a keystroke
    assert sender.room() == 0


def test_data_beyond_the_window_or_too_much_credit_is_a_breach() -> None:
    receiver = Stream()
    for _ in range(proto.WINDOW // proto.MIN_COST):
        assert receiver.receive(proto.data_frame(b"k")).reset is None
    reaction = receiver.receive(proto.data_frame(b"k"))
    assert reaction.reset == proto.Error(ErrorCode.PROTOCOL, "DATA beyond the window")
    greedy = Stream()
    reaction = greedy.receive(proto.window_frame(1))
    assert reaction.reset == proto.Error(ErrorCode.PROTOCOL, "a window larger than the protocol's")
    assert proto.decode(proto.window_frame(5)) == proto.Window(5)
    with pytest.raises(proto.ForwardError):
        proto.decode(b"\x06\x00")

"""The pure core of `weron status`: records and their JSON, the request protocol, the table,
the metrics exposition, socket names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from weron.status import metrics, paths, protocol, render
from weron.status.model import PeerStatus, ProcessStatus, StatusFormatError, from_json, to_json
from weron.webrtc import LinkStats

NOW = 1_800_000_000.0


def peer(name: str = "bob", **stats: object) -> PeerStatus:
    figures = LinkStats(
        local_type="host",
        remote_type="srflx",
        local_address="10.0.0.1:5000",
        remote_address="[2001:db8::2]:6000",
        rtt=0.0123,
        bytes_sent=1_500,
        bytes_received=2_500_000,
    )
    values = {**{f: getattr(figures, f) for f in LinkStats.__slots__}, **stats}
    return PeerStatus.of(
        "id-" + name,
        name,
        "connected",
        NOW - 75,
        ("a", "b"),
        LinkStats(**values),
    )


def process(*peers: PeerStatus) -> ProcessStatus:
    return ProcessStatus(4242, "vpn ip", "home", "my-id", "alice", peers)


def test_json_round_trip() -> None:
    status = process(peer(), peer("carol", remote_type="relay", rtt=None))
    document = json.loads(json.dumps(to_json(status)))
    assert document["peers"][0]["direct"] is True
    assert document["peers"][1]["direct"] is False
    assert document["peers"][1]["path"] == "relay"
    assert from_json(document) == status


def test_a_peer_without_figures_still_shows() -> None:
    empty = PeerStatus.of("x", "", "connecting", None, (), None)
    assert empty.path is None and empty.direct is None and empty.bytes_sent is None
    assert from_json(to_json(process(empty))).peers == (empty,)


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"pid": "1"},
        {**to_json(process()), "peers": "no"},
        {**to_json(process()), "pid": True},
        {**to_json(process()), "peers": [{"id": 1}]},
        {
            **to_json(process(peer())),
            "peers": [{**to_json(process(peer()))["peers"][0], "channels": [1]}],
        },
    ],
)
def test_bad_documents_are_refused(document: object) -> None:
    with pytest.raises(StatusFormatError):
        from_json(document)


def test_requests() -> None:
    assert protocol.parse_request(protocol.request_line()).get == "status"
    for line, reason in [
        (b"x" * (protocol.MAX_REQUEST + 1), "longer than"),
        (b"\xff\n", "not JSON"),
        (b"{\n", "not JSON"),
        (b"[]\n", "not a JSON object"),
        (b'{"get": 1}\n', "unknown request"),
        (b'{"get": "stop"}\n', "unknown request"),
    ]:
        with pytest.raises(protocol.RequestError, match=reason):
            protocol.parse_request(line)


def test_replies() -> None:
    status = process(peer())
    reply = protocol.status_reply(status)
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    assert protocol.parse_reply(reply) == status
    with pytest.raises(StatusFormatError, match="refused: too long"):
        protocol.parse_reply(protocol.error_reply("too long"))
    with pytest.raises(StatusFormatError):
        protocol.parse_reply(b"garbage\n")
    with pytest.raises(StatusFormatError):
        protocol.parse_reply(b'{"ok": true, "status": {}}\n')


def test_table() -> None:
    text = render.as_table(
        [process(peer(), peer("carol", remote_type="relay", rtt=None)), process()], NOW
    )
    lines = text.splitlines()
    assert lines[0] == "vpn ip (pid 4242) in 'home' as alice"
    assert lines[1].split() == [
        *("PEER", "STATE", "PATH", "LOCAL", "REMOTE", "RTT", "SENT", "RECEIVED", "SINCE")
    ]
    assert lines[2].split() == [
        *("bob", "connected", "direct", "(srflx)", "10.0.0.1:5000", "[2001:db8::2]:6000"),
        *("12.3", "ms", "1.5", "kB", "2.5", "MB", "1m15s", "ago"),
    ]
    assert "relay (TURN)" in lines[3] and " - " in lines[3]
    assert lines[-1] == "  no peers"


def test_the_table_is_safe_from_hostile_names() -> None:
    """A peer picks its own name: escape sequences are shown escaped, long names cut."""
    evil = peer("\x1b[2J\x1b]0;pwned\x07" + "y" * 500, remote_address="\r1.2.3.4:5")
    text = render.as_table([process(evil)], NOW)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b[2J" in text
    assert max(len(line) for line in text.splitlines()) < 300


def test_vpn_ip_members_show_their_addresses() -> None:
    member = peer('["10.77.0.2/24","fd00:77::2/64"]')
    assert "10.77.0.2/24,fd00:77::2/64" in render.as_table([process(member)], NOW)
    assert render.who("[not json") == "[not json"
    assert render.who("[1, 2]") == "[1, 2]"


@pytest.mark.parametrize(
    ("count", "text"),
    [(None, "-"), (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (12_345_678, "12.3 MB")],
)
def test_sizes(count: int | None, text: str) -> None:
    assert render.size(count) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(-3, "0s"), (59, "59s"), (61, "1m1s"), (7380, "2h3m")]
)
def test_elapsed(seconds: float, text: str) -> None:
    assert render.elapsed(seconds) == text


def test_json_output() -> None:
    assert json.loads(render.as_json([])) == {"processes": []}
    assert json.loads(render.as_json([process(peer())]))["processes"][0]["name"] == "alice"


def test_metrics_exposition() -> None:
    text = metrics.exposition(process(peer(), peer('we"ird', remote_type="relay"))).decode()
    assert "# TYPE weron_peer_sent_bytes_total counter" in text
    assert 'weron_peer_sent_bytes_total{peer="id-bob",name="bob"} 1500' in text
    assert 'weron_peer_rtt_seconds{peer="id-bob",name="bob"} 0.0123' in text
    assert 'weron_peer_path{peer="id-bob",name="bob",path="srflx"} 1' in text
    assert 'weron_peer_path{peer="id-bob",name="bob",path="relay"} 0' in text
    assert 'name="we\\"ird",path="relay"} 1' in text
    assert 'weron_peers{state="connected"} 2' in text


def test_socket_names() -> None:
    name = paths.socket_name(77, "utility latency", "my community/../x" + "y" * 100)
    assert "/" not in name and name.startswith("77.utility-latency.my-community-")
    assert len(name) < 80
    parsed = paths.parse_socket_name(name)
    assert parsed is not None and parsed.pid == 77 and parsed.command == "utility-latency"
    assert paths.parse_socket_name("notes.txt") is None
    assert paths.parse_socket_name("x.chat.c.sock") is None


def test_runtime_dirs() -> None:
    assert paths.runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000) == Path(
        "/run/user/1000/weron"
    )
    assert paths.runtime_dir({}, 0) == Path("/run/weron")
    assert paths.runtime_dir({}, 1000) == Path("/tmp/weron-1000")


def test_a_runtime_dir_open_to_others_is_refused(tmp_path: Path) -> None:
    directory = paths.ensure_runtime_dir(tmp_path / "weron")
    assert directory.stat().st_mode & 0o777 == 0o700
    directory.chmod(0o755)
    with pytest.raises(paths.RuntimeDirError, match="open to others"):
        paths.ensure_runtime_dir(directory)
    link = tmp_path / "link"
    link.symlink_to(directory)
    with pytest.raises(paths.RuntimeDirError, match="not a directory"):
        paths.check_private(link)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_a_runtime_dir_of_another_user_is_refused_but_root_may_read_it(tmp_path: Path) -> None:
    directory = paths.ensure_runtime_dir(tmp_path / "weron")
    os.chown(directory, 65534, 65534)
    with pytest.raises(paths.RuntimeDirError, match="belongs to uid 65534"):
        paths.ensure_runtime_dir(directory)
    paths.check_private(directory, reader=True)  # root reading a service's sockets

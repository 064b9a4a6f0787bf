"""File transfer: send one file to a named peer; the receiver checks its SHA-256 on arrival.

Members get names through the library's NamedAdapter, so the sender can address the
receiver by name. A transfer is a header message (JSON: file name, size, SHA-256), the file in
chunks, then the receiver's verdict (``ok`` or ``mismatch``). A file is only renamed into
place once its checksum matched.

    .venv/bin/python examples/file_transfer.py receive ./inbox --name alice \\
        --raddr ws://localhost:1337/ --community mycommunity --password mypassword --key mykey
    .venv/bin/python examples/file_transfer.py send ./photo.jpg --to alice --name bob \\
        --raddr ws://localhost:1337/ --community mycommunity --password mypassword --key mykey
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
from pathlib import Path

from weron.peers import Peer
from weron.peers.adapter import AdapterConfig
from weron.peers.named import NamedAdapter
from weron.webrtc import ChannelClosedError
from weron.webrtc.backends import load_backend

CHANNEL = "weron/files/primary"
CHUNK = 64 * 1024  # bytes per message, at most: each must fit the channel's largest message


def describe(path: Path) -> dict[str, str | int]:
    """The header of a transfer: reads the whole file, so it runs in a thread."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


async def send(peer: Peer, path: Path) -> bool:
    """Send ``path`` to ``peer``; whether the receiver found the checksum right."""
    header = await asyncio.to_thread(describe, path)
    await peer.conn.send(json.dumps(header).encode())
    chunk_size = min(CHUNK, peer.conn.max_message_size)
    with path.open("rb") as source:
        while chunk := source.read(chunk_size):
            await peer.conn.send(chunk)  # waits while the channel's send buffer is full
    verdict = (await peer.conn.receive()).decode()
    size, checksum = header["size"], header["sha256"]
    print(f"Sent {path.name} ({size} B, sha256 {checksum}) to {peer.peer_id}: {verdict}")
    return verdict == "ok"


async def receive(peer: Peer, inbox: Path) -> bool | None:
    """Receive one file from ``peer`` into ``inbox``: whether its checksum matched, or None
    when the peer left without sending one."""
    try:
        header = json.loads(await peer.conn.receive())
    except ChannelClosedError:
        return None
    name = Path(str(header["name"])).name  # never a path chosen by the peer
    size = int(header["size"])
    if name in ("", ".", ".."):
        raise ValueError(f"unusable file name {header['name']!r}")
    partial = inbox / f".{name}.part"
    digest = hashlib.sha256()
    received = 0
    with partial.open("wb") as sink:
        while received < size:
            chunk = await peer.conn.receive()
            received += len(chunk)
            digest.update(chunk)
            sink.write(chunk)
    ok = received == size and digest.hexdigest() == header["sha256"]
    await peer.conn.send(b"ok" if ok else b"mismatch")
    if ok:
        partial.replace(inbox / name)
    else:
        partial.unlink()
    print(
        f"Received {name} ({received} B) from {peer.peer_id}: "
        + ("sha256 ok" if ok else f"sha256 mismatch ({digest.hexdigest()})"),
        flush=True,
    )
    return ok


async def run_sender(adapter: NamedAdapter, path: Path, to: str) -> int:
    while (peer := await adapter.accept()).peer_id != to:
        pass  # another member: not the one we send to
    try:
        return 0 if await send(peer, path) else 1
    except (ChannelClosedError, ValueError) as exc:
        print(f"Sending to {to} failed: {exc!r}", file=sys.stderr)
        return 1


async def run_receiver(adapter: NamedAdapter, inbox: Path, once: bool, linger: float) -> int:
    """Receive from every peer at once; with ``once``, return after the first file."""
    done: asyncio.Queue[tuple[Peer, bool]] = asyncio.Queue()
    tasks = set()

    async def serve(peer: Peer) -> None:
        try:
            ok = await receive(peer, inbox)
        except (ChannelClosedError, ValueError, KeyError, TypeError) as exc:
            print(f"Receiving from {peer.peer_id} failed: {exc!r}", file=sys.stderr)
            ok = False
        if ok is not None:
            done.put_nowait((peer, ok))

    async def accept() -> None:
        async for peer in adapter.peers():
            task = asyncio.create_task(serve(peer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    accepting = asyncio.create_task(accept())
    try:
        while True:
            getter = asyncio.create_task(done.get())
            await asyncio.wait({getter, accepting}, return_when=asyncio.FIRST_COMPLETED)
            if accepting.done():
                getter.cancel()
                accepting.result()  # the adapter's failure
            peer, ok = getter.result()
            if once:
                # Leaving at once could drop our verdict unsent: wait for the sender to go.
                with contextlib.suppress(ChannelClosedError, TimeoutError):
                    async with asyncio.timeout(linger):
                        await peer.conn.receive()
                return 0 if ok else 1
    finally:
        accepting.cancel()
        for task in tasks:
            task.cancel()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raddr", default="ws://localhost:1337/")
    parser.add_argument("--community", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--name", required=True, help="our name in the community")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds")
    parser.add_argument("--backend", default=None, help="libdatachannel or aiortc")
    roles = parser.add_subparsers(dest="role", required=True)
    sender = roles.add_parser("send", help="send a file to --to")
    sender.add_argument("file", type=Path)
    sender.add_argument("--to", required=True, help="the receiver's name")
    receiver = roles.add_parser("receive", help="receive files into a folder")
    receiver.add_argument("inbox", type=Path)
    receiver.add_argument("--once", action="store_true", help="exit after one file")
    args = parser.parse_args()
    if args.role == "send" and not args.file.is_file():
        parser.error(f"{args.file} is not a file")
    if args.role == "receive" and not args.inbox.is_dir():
        parser.error(f"{args.inbox} is not a folder")

    adapter = NamedAdapter(
        args.raddr,
        args.community,
        args.password,
        args.key,
        [CHANNEL],
        load_backend(args.backend),
        names=[args.name],
        config=AdapterConfig(timeout=args.timeout, ice=()),
    )
    await adapter.open()
    try:
        print("Connected to signaler as", await adapter.next_name(), flush=True)
        if args.role == "send":
            return await run_sender(adapter, args.file, args.to)
        return await run_receiver(adapter, args.inbox, args.once, args.timeout)
    finally:
        await adapter.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))

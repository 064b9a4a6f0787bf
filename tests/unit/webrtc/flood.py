"""A flood of libdatachannel peer connections in one process, to run in a subprocess
(``python -m tests.unit.webrtc.flood``): a deadlock between the GIL and the library's
threads freezes it for good, which the caller turns into a failure with a timeout.

Each round, while two connected pairs echo messages back and forth: many pairs are offered
and answered at once (candidates trickling across, channels opening), many lone offers are
made (a hostile member's burst of introductions), half the new pairs start echoing too (half of
those from the library's threads, as ``weron utility latency --server`` does), and
then everything new is closed at once, channels first for half the pairs, while the
messages flow. Prints one line per finished step, so a freeze shows where."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from tests.unit.webrtc.pairs import Pair, negotiate

from weron.webrtc import ChannelClosedError, ChannelSpec, ConnectionState, DataChannel, PeerConfig
from weron.webrtc.libdatachannel_backend import LibdatachannelBackend

MESSAGE = b"x" * 1200


class _Ignore:
    """PeerEvents of an offer nobody answers."""

    def on_candidate(self, candidate: str) -> None:
        pass

    def on_channel(self, channel: DataChannel) -> None:
        pass

    def on_state(self, state: ConnectionState) -> None:
        pass


async def _echo(channel: DataChannel, *, on_library_thread: bool) -> None:
    """With receive and send on the loop, or with ``echo()``: sends from the library's threads."""
    with contextlib.suppress(ChannelClosedError):
        if on_library_thread:
            await channel.echo()
        while True:
            await channel.send(await channel.receive())


async def _ping(channel: DataChannel) -> None:
    """Keep messages flowing (so the library's threads keep calling back) until cancelled."""
    with contextlib.suppress(ChannelClosedError):
        while True:
            for _ in range(8):
                await channel.send(MESSAGE)
            for _ in range(8):
                await channel.receive()


async def _pump(pair: Pair, *, on_library_thread: bool) -> list[asyncio.Task[None]]:
    """Echo traffic on the pair's channels, started once a few messages went round."""
    ours, theirs = await pair.channels()
    for _ in range(4):
        await ours.send(MESSAGE)
        await theirs.send(await theirs.receive())
        await ours.receive()
    echo = _echo(theirs, on_library_thread=on_library_thread)
    return [asyncio.create_task(_ping(ours)), asyncio.create_task(echo)]


async def _close(pair: Pair, *, channels_first: bool) -> None:
    if channels_first:
        for events in (pair.offering, pair.answering):
            while not events.channels.empty():
                events.channels.get_nowait().close()
    await pair.close()


def _step(text: str) -> None:
    print(text, flush=True)


async def flood(rounds: int, pairs: int, offers: int) -> None:
    backend = LibdatachannelBackend()
    traffic = [await negotiate(backend) for _ in range(2)]
    tasks = []
    for index, pair in enumerate(traffic):
        ours, theirs = await pair.channels()
        echo = _echo(theirs, on_library_thread=index % 2 == 1)
        tasks += [asyncio.create_task(_ping(ours)), asyncio.create_task(echo)]
    for round_ in range(rounds):
        lone = [backend.peer_connection(PeerConfig(), _Ignore()) for _ in range(offers)]
        for pc in lone:
            pc.create_channel(ChannelSpec("lone"))
        batch, _ = await asyncio.gather(
            asyncio.gather(*(negotiate(backend) for _ in range(pairs))),
            asyncio.gather(*(pc.create_offer() for pc in lone)),
        )
        _step(f"round {round_}: {pairs} pairs negotiated, {offers} lone offers made")
        pumps = await asyncio.gather(
            *(
                _pump(pair, on_library_thread=index % 2 == 1)
                for index, pair in enumerate(batch[: pairs // 2])
            )
        )
        _step(f"round {round_}: messages flowing on {len(pumps)} pairs")
        await asyncio.gather(
            *(_close(pair, channels_first=index % 2 == 0) for index, pair in enumerate(batch)),
            *(pc.close() for pc in lone),
        )
        for task in (task for tasks in pumps for task in tasks):
            task.cancel()
        _step(f"round {round_}: all closed, while messages flowed")
    for task in tasks:
        task.cancel()
    for pair in traffic:
        await pair.close()
    _step("done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--offers", type=int, default=150)
    args = parser.parse_args()
    asyncio.run(flood(args.rounds, args.pairs, args.offers))


if __name__ == "__main__":
    main()

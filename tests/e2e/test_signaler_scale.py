"""Two real signaler processes sharing the machine's PostgreSQL and a Redis: one community
across both, exact counts, deletion and crash recovery, and a Redis restart mid-run."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable

import httpx
import pytest
import redis.asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from tests.e2e.backends import CuttableLink, RedisServer, drop_database
from tests.e2e.chat import ChatProcess
from tests.e2e.conftest import Cluster, StartSignaler
from tests.e2e.processes import SignalerProcess, free_port, run_weron
from tests.e2e.test_chat import PRIMARY, connected
from tests.e2e.test_signaler_relay import members
from weron.manager import Manager
from weron.signaler.resync import RESYNC_INTERVAL


def manager(signaler: SignalerProcess) -> Manager:
    return Manager(signaler.http_url, "admin", "api-secret")


async def listing(signaler: SignalerProcess) -> list[tuple[str, int, bool]]:
    return [(c.id, c.clients, c.persistent) for c in await manager(signaler).list()]


async def settled(signaler: SignalerProcess, expected: list[tuple[str, int, bool]]) -> None:
    """Wait until the community list is ``expected`` (leaves are counted after the close)."""
    async with asyncio.timeout(30):
        while (current := await listing(signaler)) != expected:
            await asyncio.sleep(0.1)
    assert current == expected


async def get(signaler: SignalerProcess, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(signaler.http_url + path.lstrip("/"))


def test_peers_on_different_instances_chat(
    cluster: Cluster, chat_factory: Callable[..., ChatProcess]
) -> None:
    one, two = cluster.start(), cluster.start()
    first, second = chat_factory(one.ws_url), chat_factory(two.ws_url)
    first_name, second_name = connected([first, second])
    first.say("hello from instance one")
    second.say("hello from instance two")
    second.wait_for(f"{first_name}@{PRIMARY}: hello from instance one")
    first.wait_for(f"{second_name}@{PRIMARY}: hello from instance two")


async def test_counts_exact_after_500_concurrent_joins_and_leaves_on_two_instances(
    cluster: Cluster,
) -> None:
    instances = cluster.start(), cluster.start()
    await manager(instances[0]).create("persistent-crowd", "pw")
    communities = ["persistent-crowd", *(f"ephemeral-{n}" for n in range(4))]
    rng = random.Random(500)

    async def join(index: int) -> ClientConnection:
        signaler = instances[index % 2]
        community = communities[index % len(communities)]
        await asyncio.sleep(rng.random() * 0.2)
        return await connect(signaler.join_url(community, "pw"), open_timeout=60)

    async with asyncio.timeout(120):
        connections = await asyncio.gather(*(join(n) for n in range(500)))
    # Every join is counted before its 101 is sent: exact now, seen from either instance.
    expected = [("ephemeral-0", 100, False), ("ephemeral-1", 100, False)]
    expected += [("ephemeral-2", 100, False), ("ephemeral-3", 100, False)]
    expected += [("persistent-crowd", 100, True)]
    assert await listing(instances[0]) == expected
    assert await listing(instances[1]) == expected

    async def leave(index: int, connection: ClientConnection) -> None:
        await asyncio.sleep(rng.random() * 0.2)
        if index % 3 == 0:
            connection.transport.abort()  # vanish without a closing handshake
        else:
            await connection.close()

    async with asyncio.timeout(120):
        await asyncio.gather(*(leave(n, c) for n, c in enumerate(connections)))
    await settled(instances[0], [("persistent-crowd", 0, True)])
    assert await listing(instances[1]) == [("persistent-crowd", 0, True)]


async def test_deleting_a_community_disconnects_its_members_on_both_instances(
    cluster: Cluster,
) -> None:
    one, two = cluster.start(), cluster.start()
    doomed = [*await members(one, "doomed", 2), *await members(two, "doomed", 2)]
    bystanders = [*await members(one, "other", 1), *await members(two, "other", 1)]
    await manager(two).delete("doomed")
    async with asyncio.timeout(10):
        for member in doomed:
            await member.wait_closed()
            assert member.close_code == 1000
            assert member.close_reason == "community deleted"
    await bystanders[0].send(b"still here")
    async with asyncio.timeout(5):
        assert await bystanders[1].recv(decode=False) == b"still here"
    assert await listing(one) == [("other", 2, False)]
    for member in bystanders:
        await member.close()


async def test_sigkilled_instance_replaced_with_cleanup_leaves_correct_counts(
    cluster: Cluster,
) -> None:
    doomed, survivor = cluster.start(), cluster.start()
    await manager(survivor).create("persistent", "pw")
    await members(doomed, "persistent", 2)
    await members(doomed, "only-on-doomed", 1)
    await members(doomed, "shared", 1)
    kept = [*await members(survivor, "persistent", 1), *await members(survivor, "shared", 1)]
    assert doomed.stop(signal.SIGKILL) == -signal.SIGKILL
    # A crash changes no count by itself: the dead instance's members still count.
    assert await listing(survivor) == [
        ("only-on-doomed", 1, False),
        ("persistent", 3, True),
        ("shared", 2, False),
    ]
    replacement = cluster.start("--cleanup")
    expected = [("persistent", 1, True), ("shared", 1, False)]
    assert await listing(replacement) == expected
    assert await listing(survivor) == expected
    # The survivor's members were not touched: they still relay and leave normally.
    newcomer = (await members(replacement, "shared", 1))[0]
    await newcomer.send(b"after the crash")
    async with asyncio.timeout(5):
        assert await kept[1].recv(decode=False) == b"after the crash"
    for member in [*kept, newcomer]:
        await member.close()
    await settled(survivor, [("persistent", 0, True)])


async def test_relaying_resumes_after_a_redis_restart(
    postgres_url: str, own_redis: RedisServer, signaler_factory: StartSignaler
) -> None:
    cluster = Cluster(signaler_factory, postgres_url, own_redis.url)
    one, two = cluster.start(), cluster.start()
    (sender,) = await members(one, "c", 1)
    (receiver,) = await members(two, "c", 1)
    await sender.send(b"before")
    async with asyncio.timeout(5):
        assert await receiver.recv(decode=False) == b"before"

    own_redis.kill()
    async with asyncio.timeout(30):
        while (response := await get(one, "/healthz")).status_code != 503:
            await asyncio.sleep(0.1)
    assert "Redis unreachable" in response.json()["broker"]
    assert response.json()["store"] == "ok"
    await sender.send(b"lost in the outage")

    own_redis.start()
    async with asyncio.timeout(30):  # until both instances resubscribed and relay again
        while True:
            await sender.send(b"after")
            try:
                async with asyncio.timeout(0.5):
                    received = await receiver.recv(decode=False)
                    break
            except TimeoutError:
                continue
    assert received == b"after"  # nothing from the outage came late
    lost = (
        "Lost connection to Redis: members on other instances are out of reach until it is "
        "back; reconnecting"
    )
    for signaler in (one, two):
        assert signaler.process.poll() is None
        assert lost in signaler.messages()
    reconnected = [r for r in one.log_records() if r["message"].startswith("Reconnected to Redis")]
    assert reconnected[0]["unsent_from_here"] >= 1
    assert reconnected[0]["communities_resubscribed"] == 1
    metrics = (await get(one, "/metrics")).text
    assert "weron_broker_reconnects_total 1\n" in metrics
    assert (await get(one, "/healthz")).status_code == 200
    await sender.close()
    await receiver.close()


async def test_a_community_deleted_during_a_redis_outage_loses_its_members_everywhere(
    postgres_url: str, own_redis: RedisServer, signaler_factory: StartSignaler
) -> None:
    """The kick of a deletion cannot cross instances while Redis is down: the other instance
    checks its members against the database once it is back, and disconnects those of the
    deleted community, before anyone who re-creates the name under another password can talk
    with them. Members of other communities stay."""
    cluster = Cluster(signaler_factory, postgres_url, own_redis.url)
    one, two = cluster.start(), cluster.start()
    (stale,) = await members(two, "doomed", 1)
    (bystander,) = await members(two, "other", 1)
    own_redis.kill()
    async with asyncio.timeout(30):
        while (await get(one, "/healthz")).status_code != 503:
            await asyncio.sleep(0.1)
    await manager(one).delete("doomed")
    warned = "Could not tell other instances to disconnect the members of a deleted community"
    assert any(message.startswith(warned) for message in one.messages())
    newcomer = await connect(one.join_url("doomed", "another-password"))  # a new community
    own_redis.start()
    async with asyncio.timeout(15):
        await stale.wait_closed()
    assert (stale.close_code, stale.close_reason) == (1000, "community deleted")
    deleted = "Disconnecting members of a community deleted while this instance could not hear it"
    assert deleted in two.messages()
    assert "weron_stale_members_disconnected_total 1\n" in (await get(two, "/metrics")).text
    assert bystander.state is State.OPEN and newcomer.state is State.OPEN
    assert await listing(one) == [("doomed", 1, False), ("other", 1, False)]
    for member in (bystander, newcomer):
        await member.close()


async def test_an_instance_cut_off_from_redis_has_the_others_drop_a_deleted_communitys_members(
    postgres_url: str, own_redis: RedisServer, signaler_factory: StartSignaler
) -> None:
    """Only instance one loses Redis (its own network cut) while a community is deleted
    through it: the kick never goes out, and instance two, whose Redis never went away, has
    no reason of its own to check. Once one is back it asks the others to check, and two
    disconnects the deleted community's member then (not at its next periodic check)."""
    link = CuttableLink(own_redis.port)
    try:
        direct = Cluster(signaler_factory, postgres_url, own_redis.url)
        through_link = Cluster(
            signaler_factory, postgres_url, f"redis://127.0.0.1:{link.port}/0", direct.prefix
        )
        one, two = through_link.start(), direct.start()
        (stale,) = await members(two, "doomed", 1)
        link.cut()
        async with asyncio.timeout(30):
            while (await get(one, "/healthz")).status_code != 503:
                await asyncio.sleep(0.1)
        assert (await get(two, "/healthz")).status_code == 200
        await manager(one).delete("doomed")
        link.mend()
        started = time.monotonic()
        async with asyncio.timeout(RESYNC_INTERVAL / 2):
            await stale.wait_closed()
        assert (stale.close_code, stale.close_reason) == (1000, "community deleted")
        assert "Asked the other instances to check their members against the store" in (
            one.messages()
        )
        print(f"disconnected {time.monotonic() - started:.2f} s after the link was mended")
    finally:
        link.close()


async def test_readiness_and_metrics(cluster: Cluster) -> None:
    one = cluster.start()
    response = await get(one, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "store": "ok", "broker": "ok"}
    first, second = await members(one, "c", 2)
    with pytest.raises(Exception, match="HTTP 401"):
        await connect(one.join_url("c", "wrong"))
    await first.send(b"counted")
    async with asyncio.timeout(5):
        await second.recv()
    metrics = parse_metrics((await get(one, "/metrics")).text)
    assert metrics["weron_connected_clients"] == 2
    assert metrics["weron_joins_total"] == 2
    assert metrics['weron_joins_rejected_total{status="401"}'] == 1
    assert metrics["weron_messages_relayed_total"] == 1
    assert metrics['weron_communities{persistent="false"}'] == 1
    assert metrics["weron_community_clients"] == 2
    assert metrics["weron_broker_messages_lost_total"] == 0
    await first.close()
    await second.close()
    await settled(one, [])

    drop_database(cluster.database)  # the database goes away under the running signaler
    response = await get(one, "/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "ok"
    assert "cannot use PostgreSQL" in response.json()["store"]
    assert "Not ready" in one.messages()


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of the Prometheus text format, checking every sample has HELP and TYPE."""
    samples: dict[str, float] = {}
    described: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            described.add(line.split()[2])
        elif line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name.partition("{")[0] in described, line
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--postgres-url", "postgres://weron:secret@127.0.0.1:1/x"), "cannot use PostgreSQL at"),
        (("--redis-url", "redis://:secret@127.0.0.1:1/0"), "cannot connect to Redis at"),
        (("--oidc-issuer", "http://127.0.0.1:1/", "--oidc-client-id", "x"), "cannot use OIDC"),
    ],
)
def test_unreachable_backend_at_start_is_a_clear_error(
    flags: tuple[str, ...], message: str
) -> None:
    result = run_weron("signaler", "--laddr", f"127.0.0.1:{free_port()}", *flags)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


async def test_garbage_on_a_community_channel_is_ignored(cluster: Cluster) -> None:
    one, two = cluster.start("--verbose", "6"), cluster.start()
    (sender,) = await members(one, "c", 1)
    (receiver,) = await members(two, "c", 1)
    channel = f"{cluster.prefix}c:c".encode()
    client = redis.asyncio.Redis.from_url(cluster.redis)
    try:
        for garbage in (
            b"",
            b"garbage",
            b"R" + bytes(8) + b"t\x05ab",
            b"R" + bytes(8) + b"t\x01\xff",
        ):
            assert await client.publish(channel, garbage) == 2  # both instances subscribed
    finally:
        await client.aclose()
    await sender.send(b"still relayed")
    async with asyncio.timeout(5):
        assert await receiver.recv(decode=False) == b"still relayed"
    async with asyncio.timeout(10):
        while one.messages().count("Ignoring malformed broker message") < 4:
            await asyncio.sleep(0.1)
    await sender.close()
    await receiver.close()

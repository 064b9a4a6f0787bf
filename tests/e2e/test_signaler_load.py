"""Many clients at once against a real signaler: counts stay exact, it stays responsive."""

from __future__ import annotations

import asyncio
import random

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.processes import SignalerProcess
from weron.manager import Manager


async def test_thousand_concurrent_joins_and_leaves_end_at_zero(
    signaler: SignalerProcess,
) -> None:
    manager = Manager(signaler.http_url, "admin", "api-secret")
    await manager.create("persistent-crowd", "pw")
    communities = ["persistent-crowd", *(f"ephemeral-{n}" for n in range(9))]
    rng = random.Random(7)

    async def visit(index: int) -> None:
        community = communities[index % len(communities)]
        connection = await connect(signaler.join_url(community, "pw"), open_timeout=60)
        await asyncio.sleep(rng.random() * 0.2)
        if index % 3 == 0:
            connection.transport.abort()  # vanish without a closing handshake
        else:
            await connection.close()

    async with asyncio.timeout(180):
        await asyncio.gather(*(visit(n) for n in range(1000)))
        while (listed := await manager.list()) != [
            community for community in listed if community.id == "persistent-crowd"
        ] or listed[0].clients != 0:
            await asyncio.sleep(0.1)
    assert [(c.id, c.clients, c.persistent) for c in listed] == [("persistent-crowd", 0, True)]


async def test_wrong_password_flood_does_not_starve_members(signaler: SignalerProcess) -> None:
    """Repeated wrong passwords cost one bcrypt check; distinct ones are bounded and refused
    (401, or 503 when too many are queued) while known members join and relay at once."""
    manager = Manager(signaler.http_url, "admin", "api-secret")
    await manager.create("guarded", "right")
    inside = await connect(signaler.join_url("guarded", "right"))

    async def attempt(password: str) -> int:
        try:
            connection = await connect(signaler.join_url("guarded", password), open_timeout=120)
        except InvalidStatus as exc:
            return exc.response.status_code
        await connection.close()
        return 101

    flood = [asyncio.create_task(attempt("wrong")) for _ in range(300)]
    flood += [asyncio.create_task(attempt(f"wrong-{n}")) for n in range(100)]
    async with asyncio.timeout(30):
        # While the flood is in flight: a member with the known password joins and relays,
        # and the management API answers.
        newcomer = await connect(signaler.join_url("guarded", "right"))
        await newcomer.send(b"through the flood")
        assert await inside.recv(decode=False) == b"through the flood"
        assert any(c.id == "guarded" for c in await manager.list())
    async with asyncio.timeout(120):
        statuses = await asyncio.gather(*flood)
    assert set(statuses[:300]) == {401}
    assert set(statuses[300:]) <= {401, 503}
    await newcomer.close()
    await inside.close()

"""What operators poll: readiness (``GET /healthz``) and metrics (``GET /metrics``).

Neither needs credentials nor reveals community names or passwords: readiness says whether
the store and the broker answer, metrics are counts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Final

from weron.log import get_logger
from weron.prometheus import CONTENT_TYPE, Family, render
from weron.signaler.broker import Broker, BrokerUnavailableError
from weron.signaler.management import HTTPResponse
from weron.signaler.metrics import Metrics
from weron.signaler.relay import Relay
from weron.signaler.store import CommunityStore, StoreUnavailableError

log = get_logger(__name__)

PATHS: Final = frozenset({"/healthz", "/metrics"})
_CHECK_TIMEOUT: Final = 3.0


async def _probe(check: Awaitable[None]) -> str:
    """``"ok"``, or what is wrong."""
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            await check
    except (StoreUnavailableError, BrokerUnavailableError) as exc:
        return str(exc)
    except TimeoutError:
        return f"no answer within {_CHECK_TIMEOUT:g}s"
    return "ok"


class OperationsAPI:
    def __init__(
        self, store: CommunityStore, broker: Broker, relay: Relay, metrics: Metrics
    ) -> None:
        self._store = store
        self._broker = broker
        self._relay = relay
        self._metrics = metrics

    async def handle(self, method: str, path: str) -> HTTPResponse:
        if method != "GET":
            return HTTPResponse.text(
                HTTPStatus.METHOD_NOT_ALLOWED, f"method {method[:16]} not allowed", ("Allow", "GET")
            )
        if path == "/healthz":
            return await self._readiness()
        return await self._exposition()

    async def _readiness(self) -> HTTPResponse:
        store, broker = await asyncio.gather(
            _probe(self._store.check()), _probe(self._broker.check())
        )
        ready = store == "ok" and broker == "ok"
        if not ready:
            log.warning("Not ready", store=store, broker=broker)
        body = json.dumps({"ready": ready, "store": store, "broker": broker}).encode()
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        return HTTPResponse(status, body, "application/json")

    async def _exposition(self) -> HTTPResponse:
        families = [
            Family(
                "weron_connected_clients",
                "gauge",
                "Members connected to this signaler instance.",
                (({}, self._relay.member_count()),),
            ),
            Family(
                "weron_messages_relayed_total",
                "counter",
                "Messages relayed to members of this instance (once per message).",
                (({}, self._relay.messages_relayed),),
            ),
            Family(
                "weron_joins_total",
                "counter",
                "Clients admitted to a community by this instance.",
                (({}, self._metrics.joins),),
            ),
            Family(
                "weron_joins_rejected_total",
                "counter",
                "Join attempts this instance refused, by HTTP status (400 bad request, 401 wrong "
                "password or unknown community, 503 busy, 500 internal error).",
                tuple(
                    ({"status": str(status)}, count)
                    for status, count in sorted(self._metrics.joins_rejected.items())
                ),
            ),
            Family(
                "weron_connections_dropped_total",
                "counter",
                "Connections this instance dropped at a limit (idle_timeout, head_timeout, "
                "source_connections).",
                tuple(
                    ({"reason": reason}, count)
                    for reason, count in sorted(self._metrics.dropped.items())
                ),
            ),
            Family(
                "weron_broker_messages_lost_total",
                "counter",
                "Messages that could not be passed to other instances (broker outages).",
                (({}, self._broker.messages_lost),),
            ),
            Family(
                "weron_stale_members_disconnected_total",
                "counter",
                "Members this instance disconnected because their community was deleted while "
                "it could not hear the deletion (see weron.signaler.resync).",
                (({}, self._relay.stale_disconnected),),
            ),
            Family(
                "weron_broker_reconnects_total",
                "counter",
                "Times the broker connection was lost and restored.",
                (({}, self._broker.reconnects),),
            ),
        ]
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                communities = await self._store.list()
        except (StoreUnavailableError, TimeoutError) as exc:
            log.warning("Metrics without community counts: store unavailable", error=str(exc))
        else:
            families += [
                Family(
                    "weron_communities",
                    "gauge",
                    "Communities in the store (shared by all instances).",
                    tuple(
                        (
                            {"persistent": kind},
                            sum(c.persistent == (kind == "true") for c in communities),
                        )
                        for kind in ("true", "false")
                    ),
                ),
                Family(
                    "weron_community_clients",
                    "gauge",
                    "Clients counted in the store's communities, on all instances.",
                    (({}, sum(c.clients for c in communities)),),
                ),
            ]
        return HTTPResponse(HTTPStatus.OK, render(families), CONTENT_TYPE)

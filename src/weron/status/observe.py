"""The one call that lets a peer command be seen: its control socket for `weron status` and,
if asked, its metrics endpoint, for as long as the command runs.

Any peer command enables both by handing its :class:`Observation` (whose ``watch`` its
adapters report to, through ``AdapterConfig.watch``) to :func:`observed` with its main
coroutine; ``weron.cli.runtime.run_peer_app`` does so for every peer command.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from weron.log import get_logger
from weron.peers.watch import Watch
from weron.status import paths
from weron.status.model import ProcessStatus
from weron.status.server import ControlServer, MetricsServer

log = get_logger(__name__)
T = TypeVar("T")


class MetricsAddressError(OSError):
    """--metrics-addr cannot be listened on (the user has to pick another)."""


@dataclass(frozen=True, slots=True)
class Observation:
    command: str  # e.g. "chat", "utility latency"
    community: str
    watch: Watch = field(default_factory=Watch)
    metrics_addr: tuple[str, int] | None = None
    runtime_dir: Path | None = None  # None: paths.runtime_dir()

    def snapshot(self) -> ProcessStatus:
        return ProcessStatus(
            pid=os.getpid(),
            command=self.command,
            community=self.community,
            id=self.watch.id,
            name=self.watch.name,
            peers=tuple(self.watch.peers()),
        )


async def _control(observation: Observation) -> ControlServer | None:
    """The control socket, or ``None`` (with a warning) where it cannot be made: being seen
    is not worth failing the command for."""
    try:
        directory = paths.ensure_runtime_dir(observation.runtime_dir)
        name = paths.socket_name(os.getpid(), observation.command, observation.community)
        server = ControlServer(directory / name, observation.snapshot)
        await server.start()
    except OSError as exc:
        log.warning("No control socket: weron status will not see this process", error=str(exc))
        return None
    return server


async def observed(observation: Observation, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` with the control socket open (and the metrics endpoint, if asked for)."""
    servers: list[ControlServer | MetricsServer] = []
    try:
        if observation.metrics_addr is not None:
            host, port = observation.metrics_addr
            metrics = MetricsServer(host, port, observation.snapshot)
            try:
                await metrics.start()
            except OSError as exc:
                main.close()
                raise MetricsAddressError(
                    f"cannot listen on --metrics-addr {host}:{port}: {exc.strerror or exc}"
                ) from None
            servers.append(metrics)
        control = await _control(observation)
        if control is not None:
            servers.append(control)
        return await main
    finally:
        for server in reversed(servers):
            await server.close()

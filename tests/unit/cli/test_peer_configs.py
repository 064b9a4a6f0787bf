"""What the peer commands hand their apps: the shared flags as one ``JoinConfig``, the rest in
the app's own fields (no app started: ``run_peer_app`` is replaced by a recorder)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from weron.apps import chat, latency, port_forward, throughput, vpn_ethernet, vpn_ip
from weron.apps.join import JoinConfig
from weron.cli import peers
from weron.cli.main import cli

pytestmark = pytest.mark.usefixtures("restore_logging")

_JOIN = ("--raddr", "wss://example.test/", "--community", "c", "--password", "p", "--key", "k")


@pytest.mark.parametrize(
    ("args", "app_module", "config_type"),
    [
        (("chat", "--names", "alice"), chat, chat.ChatConfig),
        (
            ("forward", "--names", "home", "--expose", "22"),
            port_forward,
            port_forward.ForwardConfig,
        ),
        (("utility", "latency", "--pause", "2s"), latency, latency.LatencyConfig),
        (("utility", "throughput", "--server"), throughput, throughput.ThroughputConfig),
        (("vpn", "ip", "--ips", "10.0.0.1/24"), vpn_ip, vpn_ip.VpnIpConfig),
        (
            ("vpn", "ethernet", "--mac", "02:00:00:00:00:01"),
            vpn_ethernet,
            vpn_ethernet.VpnEthernetConfig,
        ),
    ],
)
def test_every_peer_command_gives_its_app_the_join_flags_as_one_join_config(
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    app_module: ModuleType,
    config_type: type,
) -> None:
    started: list[Callable[[Any], Coroutine[Any, Any, object]]] = []
    monkeypatch.setattr(peers, "run_peer_app", lambda app, *_: started.append(app))
    result = CliRunner().invoke(
        cli, [*args, *_JOIN, "--timeout", "3s", "--force-relay"], prog_name="weron", env={}
    )
    assert result.exit_code == 0, result.output
    (app,) = started
    recorded: list[object] = []

    async def run(config: object, *_: object) -> None:
        recorded.append(config)

    monkeypatch.setattr(app_module, "run", run)
    _run_to_end(app(object()))
    (config,) = recorded
    assert isinstance(config, config_type)
    join = config.join  # type: ignore[attr-defined]
    assert isinstance(join, JoinConfig)
    assert (join.raddr, join.community, join.password, join.key) == (
        "wss://example.test/",
        "c",
        "p",
        "k",
    )
    assert (join.adapter.timeout, join.adapter.force_relay) == (3.0, True)


def _run_to_end(coroutine: Coroutine[Any, Any, object]) -> None:
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the recorded app awaited something")


@pytest.mark.parametrize(
    ("flags", "env", "offload"),
    [((), {}, True), (("--offload=false",), {}, False), ((), {"WERON_OFFLOAD": "false"}, False)],
)
def test_vpn_ethernet_offloads_are_on_unless_turned_off_by_flag_or_environment(
    monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], env: dict[str, str], offload: bool
) -> None:
    started: list[Callable[[Any], Coroutine[Any, Any, object]]] = []
    monkeypatch.setattr(peers, "run_peer_app", lambda app, *_: started.append(app))
    result = CliRunner().invoke(
        cli, ["vpn", "ethernet", *flags, *_JOIN], prog_name="weron", env=env
    )
    assert result.exit_code == 0, result.output
    recorded: list[vpn_ethernet.VpnEthernetConfig] = []

    async def run(config: vpn_ethernet.VpnEthernetConfig, *_: object) -> None:
        recorded.append(config)

    monkeypatch.setattr(vpn_ethernet, "run", run)
    _run_to_end(started[0](object()))
    assert recorded[0].offload is offload

"""An app never changes the ``JoinConfig`` it is given: the apps that add to the adapter's
settings (channel options, overlay networks, id, later labels) give the adapter a copy. The
adapter is replaced by a recorder that stops the app at once; no device, no WebRTC."""

from __future__ import annotations

import os
from typing import Any, NoReturn, cast

import pytest

from weron.apps import port_forward, vpn_ethernet, vpn_ip
from weron.apps.join import JoinConfig
from weron.net.device import Device, DeviceKind
from weron.peers.adapter import AdapterConfig
from weron.webrtc import Backend, ChannelOptions

_OURS = ChannelOptions(ordered=True)


class _StoppedError(Exception):
    """Raised by the recorder in place of the adapter: the app goes no further."""


def join() -> JoinConfig:
    return JoinConfig("ws://unused", "c", "p", "k", AdapterConfig(channel_options={"x": _OURS}))


def record(into: list[AdapterConfig]) -> Any:
    def adapter(*args: object, config: AdapterConfig | None = None, **_: object) -> NoReturn:
        given = config if config is not None else args[-1]
        assert isinstance(given, AdapterConfig)
        into.append(given)
        raise _StoppedError

    return adapter


async def fake_device(kind: DeviceKind, *_: object, **__: object) -> Device:
    read, write = os.pipe()
    os.close(write)
    return Device(read, "fake0", kind, 0, 1420, bytes.fromhex("020000000001"))


async def test_vpn_ip_gives_the_adapter_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[AdapterConfig] = []
    monkeypatch.setattr(vpn_ip, "open_device", fake_device)
    monkeypatch.setattr(vpn_ip, "NamedAdapter", record(given))
    config = vpn_ip.VpnIpConfig(join(), ips=["10.0.0.1/24"])
    with pytest.raises(_StoppedError):
        await vpn_ip.run(config, cast(Backend, object()))
    (adapter,) = given
    assert adapter.channel_options == {
        "x": _OURS,
        vpn_ip.PACKET_CHANNEL: vpn_ip.PACKET_CHANNEL_OPTIONS,
    }
    assert adapter.overlay_networks is not None
    assert config.join == join()


async def test_vpn_ethernet_gives_the_adapter_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[AdapterConfig] = []
    monkeypatch.setattr(vpn_ethernet, "open_device", fake_device)
    monkeypatch.setattr(vpn_ethernet, "Adapter", record(given))
    config = vpn_ethernet.VpnEthernetConfig(join())
    with pytest.raises(_StoppedError):
        await vpn_ethernet.run(config, cast(Backend, object()))
    (adapter,) = given
    assert adapter.id == "02:00:00:00:00:01"
    assert vpn_ethernet.FRAME_CHANNEL in adapter.channel_options
    assert config.join == join()


async def test_forward_gives_the_adapter_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[AdapterConfig] = []
    monkeypatch.setattr(port_forward, "NamedAdapter", record(given))
    config = port_forward.ForwardConfig(join(), names=["home"], expose=["22"])
    with pytest.raises(_StoppedError):
        await port_forward.run(config, cast(Backend, object()))
    (adapter,) = given
    assert adapter.later_labels is not None
    assert config.join == join()

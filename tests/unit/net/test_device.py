"""Device names are checked as Linux checks them, before a device is opened; a kernel without
TUN offloads gives a plain device."""

from __future__ import annotations

import errno
import fcntl
import os
import struct

import pytest

from weron.net import device
from weron.net.device import DeviceError, check_device_name


@pytest.mark.parametrize("name", ["weron0", "wrn-%d", "a" * 15, ""])
def test_device_names_linux_takes(name: str) -> None:
    check_device_name(name)


@pytest.mark.parametrize("name", ["bad/name", "a b", "tab\there", "a:1", ".", "..", "a" * 16])
def test_device_names_linux_refuses(name: str) -> None:
    with pytest.raises(DeviceError, match="choose another --dev"):
        check_device_name(name)


def test_a_kernel_without_tun_offloads_gives_a_plain_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TUNSETOFFLOAD refused: the device is made again without the virtio-net header."""
    requests: list[tuple[int, object]] = []
    closed: list[int] = []

    def ioctl(fd: int, request: int, argument: object) -> bytes:
        requests.append((request, argument))
        if request == device._TUNSETOFFLOAD:
            raise OSError(errno.EINVAL, "Invalid argument")
        return struct.pack("16sH22x", b"tun7", 0)

    opened = iter([41, 42])
    monkeypatch.setattr(os, "open", lambda *_: next(opened))
    monkeypatch.setattr(os, "close", closed.append)
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    assert device._create(device.DeviceKind.TUN, "", True) == (42, "tun7", False, False)
    assert closed == [41]
    flags = [
        struct.unpack("16sH22x", argument)[1]
        for request, argument in requests
        if request == device._TUNSETIFF and isinstance(argument, bytes)
    ]
    assert [bool(each & device._IFF_VNET_HDR) for each in flags] == [True, False]


def test_a_kernel_without_udp_offloads_gives_tcp_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """TUN_F_USO4/6 refused (Linux < 6.2): TSO alone, on the same descriptor."""
    asked: list[object] = []

    def ioctl(fd: int, request: int, argument: object) -> bytes:
        if request == device._TUNSETOFFLOAD:
            asked.append(argument)
            if isinstance(argument, int) and argument & device._TUN_F_USO:
                raise OSError(errno.EINVAL, "Invalid argument")
        return struct.pack("16sH22x", b"tap7", 0)

    monkeypatch.setattr(os, "open", lambda *_: 41)
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    assert device._create(device.DeviceKind.TAP, "", True) == (41, "tap7", True, False)
    assert asked == [device._TUN_F_CSUM_TSO | device._TUN_F_USO, device._TUN_F_CSUM_TSO]

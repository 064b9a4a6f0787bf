"""TUN and TAP devices: created with the ioctl on ``/dev/net/tun``, configured over netlink
(pyroute2) — links, addresses, MTU, link state — rather than by shelling out to ``ip``.

The device's file descriptor is non-blocking; :mod:`weron.apps.forwarding` reads and writes
whole packets on it (no packet-information header: ``IFF_NO_PI``, as the original does).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import fcntl
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from weron.log import get_logger
from weron.net.claims import Interface
from weron.net.packets import format_mac

log = get_logger(__name__)

_TUN_PATH: Final = "/dev/net/tun"
_TUNSETIFF: Final = 0x400454CA
_IFF_TUN: Final = 0x0001
_IFF_TAP: Final = 0x0002
_IFF_NO_PI: Final = 0x1000
_IFNAMSIZ: Final = 16
_IFA_F_NODAD: Final = 0x02
_NEEDS_ADMIN: Final = "needs root or CAP_NET_ADMIN (run it with sudo)"


class DeviceError(Exception):
    """A TUN/TAP device could not be created or configured; the message says what to do."""


class DeviceKind(enum.Enum):
    TUN = _IFF_TUN  # layer 3: raw IP packets
    TAP = _IFF_TAP  # layer 2: Ethernet frames


@dataclass(slots=True)
class Device:
    fd: int
    name: str
    kind: DeviceKind
    index: int
    mtu: int
    mac: bytes | None = None  # TAP only

    def close(self) -> None:
        """Closing the descriptor removes the (non-persistent) device."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def _create(kind: DeviceKind, name: str) -> tuple[int, str]:
    if len(name.encode()) >= _IFNAMSIZ:
        raise DeviceError(f"device name {name!r} is too long (at most {_IFNAMSIZ - 1} bytes)")
    try:
        fd = os.open(_TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DeviceError(
            f"{_TUN_PATH} is missing: load the tun module (modprobe tun) or, in a container, "
            f"pass the device in (--device {_TUN_PATH})"
        ) from None
    except PermissionError:
        raise DeviceError(f"opening {_TUN_PATH} {_NEEDS_ADMIN}") from None
    request = struct.pack("16sH22x", name.encode(), kind.value | _IFF_NO_PI)
    try:
        answer = fcntl.ioctl(fd, _TUNSETIFF, request)
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.EPERM:
            raise DeviceError(f"creating a {kind.name} device {_NEEDS_ADMIN}") from None
        if exc.errno == errno.EBUSY:
            raise DeviceError(f"device {name!r} is busy (in use by another program)") from None
        if exc.errno == errno.EINVAL:
            raise DeviceError(
                f"device {name!r} exists and is not a {kind.name} device: choose another --dev"
            ) from None
        raise DeviceError(f"creating a {kind.name} device failed: {exc.strerror}") from None
    return fd, answer[:_IFNAMSIZ].rstrip(b"\0").decode()


def _disable_ipv6_autoconfiguration(name: str) -> None:
    """No link-local address on a TUN: every packet it would source (router solicitations,
    MLD reports) would only be sent to every peer and dropped there as unclaimed."""
    setting = Path(f"/proc/sys/net/ipv6/conf/{name}/addr_gen_mode")
    with contextlib.suppress(OSError):
        setting.write_text("1")


async def open_device(
    kind: DeviceKind, name: str = "", *, mtu: int, mac: bytes | None = None
) -> Device:
    """Create the device (the kernel names it when ``name`` is empty), set its MTU (and MAC
    for a TAP) and bring it up."""
    # pyroute2's own asyncio API needs a netlink datagram endpoint, which uvloop cannot open:
    # its blocking API runs in a worker thread instead (a few milliseconds, once).
    return await asyncio.to_thread(_open_device, kind, name, mtu, mac)


def _open_device(kind: DeviceKind, name: str, mtu: int, mac: bytes | None) -> Device:
    fd, actual = _create(kind, name)
    try:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=actual)[0]
            if kind is DeviceKind.TUN:
                _disable_ipv6_autoconfiguration(actual)
            if mac is not None:
                ipr.link("set", index=index, address=format_mac(mac))
            ipr.link("set", index=index, mtu=mtu, state="up")
            address = ipr.link("get", index=index)[0].get("address")
    except NetlinkError as exc:
        os.close(fd)
        if exc.code == errno.EPERM:
            raise DeviceError(f"configuring {actual} {_NEEDS_ADMIN}") from None
        if exc.code == errno.EINVAL:
            raise DeviceError(f"configuring {actual} failed: invalid MTU {mtu} or MAC") from None
        raise DeviceError(f"configuring {actual} failed: {exc}") from None
    except BaseException:
        os.close(fd)
        raise
    device_mac = bytes.fromhex(address.replace(":", "")) if kind is DeviceKind.TAP else None
    log.debug("Created device", dev=actual, kind=kind.name, mtu=mtu)
    return Device(fd, actual, kind, index, mtu, device_mac)


async def set_addresses(device: Device, interfaces: Sequence[Interface]) -> None:
    """Give the device exactly ``interfaces`` (removing addresses we gave it before)."""
    await asyncio.to_thread(_set_addresses, device, interfaces)


def _set_addresses(device: Device, interfaces: Sequence[Interface]) -> None:
    wanted = {(str(interface.ip), interface.network.prefixlen) for interface in interfaces}
    try:
        with IPRoute() as ipr:
            present = set()
            for message in ipr.addr("dump", index=device.index):
                address = message.get("address")
                if message.get("scope") == 0 and address is not None:  # global scope only
                    present.add((address, message["prefixlen"]))
            for address, prefixlen in present - wanted:
                ipr.addr("del", index=device.index, address=address, prefixlen=prefixlen)
            for address, prefixlen in wanted - present:
                ipr.addr(
                    "add",
                    index=device.index,
                    address=address,
                    prefixlen=prefixlen,
                    flags=_IFA_F_NODAD,  # claimed through the community: no duplicate to find
                )
    except NetlinkError as exc:
        if exc.code == errno.EPERM:
            raise DeviceError(f"adding addresses to {device.name} {_NEEDS_ADMIN}") from None
        raise DeviceError(f"adding addresses to {device.name} failed: {exc}") from None

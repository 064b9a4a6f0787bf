"""TUN and TAP devices: created with the ioctl on ``/dev/net/tun``, configured over netlink
(pyroute2) — links, addresses, MTU, link state — rather than by shelling out to ``ip``.

The device's file descriptor is non-blocking; :mod:`weron.apps.forwarding` reads and writes
whole packets on it (no packet-information header: ``IFF_NO_PI``, as the original does). A TUN
or TAP opened with ``offload`` puts a virtio-net header before each packet or frame and takes
TCP super-packets (:mod:`weron.net.offload`); where the kernel refuses that, the device is
plain.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import fcntl
import ipaddress
import os
import socket
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
from weron.webrtc import IpNetwork

log = get_logger(__name__)

_TUN_PATH: Final = "/dev/net/tun"
_TUNSETIFF: Final = 0x400454CA
_IFF_TUN: Final = 0x0001
_IFF_TAP: Final = 0x0002
_IFF_NO_PI: Final = 0x1000
_IFF_VNET_HDR: Final = 0x4000
_TUNSETOFFLOAD: Final = 0x400454D0
_TUN_F_CSUM_TSO: Final = 0x01 | 0x02 | 0x04  # TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
_TUN_F_USO: Final = 0x20 | 0x40  # TUN_F_USO4 | TUN_F_USO6: Linux >= 6.2
_IOCTL_FAILURES: Final = (errno.EINVAL, errno.ENOTTY, errno.EOPNOTSUPP)
_IFNAMSIZ: Final = 16
_IFA_F_NODAD: Final = 0x02
# rtnetlink, for address_networks()
_SOL_NETLINK: Final = 270
_NETLINK_GET_STRICT_CHK: Final = 12
_NLMSG_HEADER: Final = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFADDRMSG: Final = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_RTATTR: Final = struct.Struct("=HH")  # length, type
_NLMSG_ERROR: Final = 2
_NLMSG_DONE: Final = 3
_RTM_NEWADDR: Final = 20
_RTM_GETADDR: Final = 22
_NLM_F_DUMP_REQUEST: Final = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_IFA_ADDRESS: Final = 1
_IFA_LOCAL: Final = 2
_ADDRESS_SIZES: Final = {socket.AF_INET: 4, socket.AF_INET6: 16}
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
    offload: bool = False  # a virtio-net header before each packet, super-packets allowed
    udp_offload: bool = False  # UDP super-packets (GSO_UDP_L4) too

    def close(self) -> None:
        """Closing the descriptor removes the (non-persistent) device."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def check_device_name(name: str) -> None:
    """Refuse what Linux refuses as an interface name (else the ioctl's EINVAL would read as
    "exists and is not a TUN device"); empty lets the kernel choose."""
    if not name:
        return
    reason = None
    if len(name.encode()) >= _IFNAMSIZ:
        reason = f"is too long (at most {_IFNAMSIZ - 1} bytes)"
    elif name in (".", ".."):
        reason = "is not allowed"
    elif any(char in "/:" or char.isspace() for char in name):
        reason = "may not contain '/', ':' or white space"
    if reason is not None:
        raise DeviceError(f"device name {name!r} {reason}: choose another --dev")


def _create(kind: DeviceKind, name: str, offload: bool) -> tuple[int, str, bool, bool]:
    """The descriptor, the name, and whether the offloads asked for (TCP, UDP) are on: UDP
    ones where the kernel has them, TCP ones or none where it has only those or none."""
    check_device_name(name)
    try:
        fd = os.open(_TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DeviceError(
            f"{_TUN_PATH} is missing: load the tun module (modprobe tun) or, in a container, "
            f"pass the device in (--device {_TUN_PATH})"
        ) from None
    except PermissionError:
        raise DeviceError(f"opening {_TUN_PATH} {_NEEDS_ADMIN}") from None
    flags = kind.value | _IFF_NO_PI | (_IFF_VNET_HDR if offload else 0)
    request = struct.pack("16sH22x", name.encode(), flags)
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
    actual = answer[:_IFNAMSIZ].rstrip(b"\0").decode()
    if not offload:
        return fd, actual, False, False
    for offloads in (_TUN_F_CSUM_TSO | _TUN_F_USO, _TUN_F_CSUM_TSO):
        try:
            fcntl.ioctl(fd, _TUNSETOFFLOAD, offloads)
        except OSError as exc:
            if exc.errno not in _IOCTL_FAILURES:
                os.close(fd)
                raise DeviceError(f"enabling offloads on {actual} failed: {exc.strerror}") from None
        else:
            return fd, actual, True, bool(offloads & _TUN_F_USO)
    log.info("The kernel has no TUN/TAP offloads: plain packets", dev=actual)
    os.close(fd)
    return _create(kind, actual if name else "", offload=False)


def _disable_ipv6_autoconfiguration(name: str) -> None:
    """No link-local address on a TUN: every packet it would source (router solicitations,
    MLD reports) would only be sent to every peer and dropped there as unclaimed."""
    setting = Path(f"/proc/sys/net/ipv6/conf/{name}/addr_gen_mode")
    with contextlib.suppress(OSError):
        setting.write_text("1")


async def open_device(
    kind: DeviceKind,
    name: str = "",
    *,
    mtu: int,
    mac: bytes | None = None,
    offload: bool = False,
) -> Device:
    """Create the device (the kernel names it when ``name`` is empty), set its MTU (and MAC
    for a TAP) and bring it up; ``offload``: with a virtio-net header and TCP
    super-packets (in frames, for a TAP), and UDP ones, when the kernel has them
    (``Device.offload`` and ``.udp_offload`` say)."""
    # pyroute2's own asyncio API needs a netlink datagram endpoint, which uvloop cannot open:
    # its blocking API runs in a worker thread instead (a few milliseconds, once).
    return await asyncio.to_thread(_open_device, kind, name, mtu, mac, offload)


def _open_device(kind: DeviceKind, name: str, mtu: int, mac: bytes | None, offload: bool) -> Device:
    fd, actual, offload, udp_offload = _create(kind, name, offload)
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
    log.debug(
        "Created device", dev=actual, kind=kind.name, mtu=mtu, offload=offload, udp=udp_offload
    )
    return Device(fd, actual, kind, index, mtu, device_mac, offload, udp_offload)


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


def address_networks(device: Device) -> tuple[IpNetwork, ...]:
    """The networks of the device's global addresses as the kernel has them now (link-local
    ones are left out: fe80::/64 is on every link). Called on the event loop at every
    negotiation, so it is one netlink dump on a plain socket, a fraction of a millisecond:
    pyroute2's blocking API cannot run inside a running loop, and its asyncio API needs a
    netlink endpoint, which uvloop cannot open."""
    request = _NLMSG_HEADER.pack(
        _NLMSG_HEADER.size + _IFADDRMSG.size, _RTM_GETADDR, _NLM_F_DUMP_REQUEST, 1, 0
    ) + _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, device.index)
    networks: dict[IpNetwork, None] = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            with contextlib.suppress(OSError):  # the kernel filters by index (Linux >= 4.20)
                sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)
            sock.settimeout(1.0)  # the kernel answers a dump at once; never hang the loop
            sock.send(request)
            while True:
                data = sock.recv(1 << 16)
                offset = 0
                while offset + _NLMSG_HEADER.size <= len(data):
                    length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
                    if kind in (_NLMSG_DONE, _NLMSG_ERROR) or length < _NLMSG_HEADER.size:
                        return tuple(networks)
                    if kind == _RTM_NEWADDR:
                        body = data[offset + _NLMSG_HEADER.size : offset + length]
                        networks.update(dict.fromkeys(_networks_of(body, device.index)))
                    offset += (length + 3) & ~3
    except OSError as exc:
        log.warning("Reading the device's addresses failed", dev=device.name, error=str(exc))
        return tuple(networks)


def _networks_of(message: bytes, index: int) -> list[IpNetwork]:
    """The networks in one RTM_NEWADDR message, if it is about a global address of ``index``."""
    family, prefixlen, _, scope, owner = _IFADDRMSG.unpack_from(message)
    size = _ADDRESS_SIZES.get(family)
    if owner != index or scope != 0 or size is None:
        return []
    networks: list[IpNetwork] = []
    offset = _IFADDRMSG.size
    while offset + _RTATTR.size <= len(message):
        length, kind = _RTATTR.unpack_from(message, offset)
        if length < _RTATTR.size:
            break
        value = message[offset + _RTATTR.size : offset + length]
        if kind in (_IFA_ADDRESS, _IFA_LOCAL) and len(value) == size:
            address = ipaddress.ip_address(value)
            networks.append(ipaddress.ip_network((address, prefixlen), strict=False))
        offset += (length + 3) & ~3
    return networks

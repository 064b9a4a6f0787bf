"""The systemd units of contrib/systemd/ run as systemd would run them (tests/netlab/units.py):
unprivileged, with their capabilities only, configured by their environment files, in the
namespace lab. The signaler serves readiness and the management API; two `vpn ip` members,
each started from the template unit, claim addresses and ping each other over the overlay."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.lab import Lab
from tests.netlab.conftest import SIGNALER_PORT, WERON
from tests.netlab.units import (
    CONTRIB,
    INSTALL_PREFIX,
    Service,
    parse_environment_file,
    reachable_by_others,
    runtime_root,
    with_usable_tun,
)

CAP_NET_ADMIN = 1 << 12
API_PASSWORD = "lab-api-password"
IPS = "10.83.0.1/24,fd00:83::1/64"


@pytest.fixture
def state_root() -> Iterator[Path]:
    """Stands for /var/lib; under /tmp, as nobody cannot reach pytest's own folders."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    root = Path(tempfile.mkdtemp(prefix="weron-units-"))
    root.chmod(0o755)
    try:
        with reachable_by_others():
            yield root
    finally:
        shutil.rmtree(root)


def environment_file(example: str, folder: Path, **settings: str) -> Path:
    """The unit's example environment file with ``settings`` changed, as an admin would."""
    variables = parse_environment_file((CONTRIB / example).read_text())
    variables.update(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / example.removesuffix(".example")
    path.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    return path


def start(lab: Lab, namespace: str, service: Service, log: Path) -> subprocess.Popen[bytes]:
    environment = service.environment()
    argv = service.argv(environment)
    if "/dev/net/tun rw" in service.unit.get("DeviceAllow", []):
        argv = with_usable_tun(argv, service.state_root / "dev")
    with log.open("wb") as sink:
        return lab.start(namespace, argv, log=sink, env=environment, cwd="/")


def status(process: subprocess.Popen[bytes]) -> dict[str, str]:
    """/proc/PID/status of the service's process (``ip netns exec`` and setpriv exec it)."""
    text = Path(f"/proc/{process.pid}/status").read_text()
    return dict(re.findall(r"^(\w+):\s*(.*)$", text, re.MULTILINE))


def start_signaler(lab: Lab, folder: Path, state_root: Path) -> subprocess.Popen[bytes]:
    service = Service(
        CONTRIB / "weron-signaler.service",
        instance="",
        state_root=state_root,
        environment_file=environment_file(
            "signaler.env.example",
            folder,
            WERON_LADDR=f"{lab.hub_address}:{SIGNALER_PORT}",
            API_PASSWORD=API_PASSWORD,
        ),
    )
    assert service.environment_files() == [("/etc/weron/signaler.env", True)]
    process = start(lab, lab.hub, service, folder / "signaler.log")
    deadline = time.monotonic() + 30
    while not lab.listening(lab.hub, SIGNALER_PORT):
        assert process.poll() is None, (folder / "signaler.log").read_text()
        assert time.monotonic() < deadline, "the signaler did not start"
        time.sleep(0.1)
    return process


def test_systemd_understands_every_line_of_the_units(tmp_path: Path) -> None:
    """The sandboxing options are systemd's to apply: at least none is misspelt or misplaced.
    ``systemd-analyze verify`` also checks that ExecStart's program exists, so the copies it
    reads start this virtual environment's weron."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    copies = []
    for unit, name in (
        ("weron-signaler.service", "weron-signaler.service"),
        ("weron-vpn-ip@.service", "weron-vpn-ip@lab.service"),
    ):
        copy = tmp_path / name
        copy.write_text((CONTRIB / unit).read_text().replace(INSTALL_PREFIX, sys.prefix))
        copies.append(str(copy))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stderr


def test_the_signaler_unit_serves_readiness_and_the_management_api_as_nobody(
    lab: Lab, tmp_path: Path, state_root: Path
) -> None:
    signaler = start_signaler(lab, tmp_path, state_root)
    process = status(signaler)
    assert set(process["Uid"].split()) == set(process["Gid"].split()) == {"65534"}
    assert int(process["CapEff"], 16) == 0 and int(process["CapBnd"], 16) == 0
    assert process["NoNewPrivs"] == "1"
    url = f"http://{lab.hub_address}:{SIGNALER_PORT}/healthz"
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
    readiness = lab.run(lab.hub, [sys.executable, "-c", fetch])
    assert readiness.returncode == 0, readiness.stderr
    assert json.loads(readiness.stdout)["ready"] is True, readiness.stdout
    manager = [
        "env", f"API_PASSWORD={API_PASSWORD}",
        f"WERON_RADDR=http://{lab.hub_address}:{SIGNALER_PORT}/", *WERON, "manager",
    ]  # fmt: skip
    created = lab.run(lab.hub, [*manager, "create", "--community", "unit", "--password", "pw"])
    assert created.returncode == 0, created.stderr
    listed = lab.run(lab.hub, [*manager, "list"])
    assert listed.stdout.splitlines() == ["id,clients,persistent", "unit,0,true"], listed.stderr
    # --state ${STATE_DIRECTORY}/communities.state: written at start, by the service's user.
    state = state_root / "weron-signaler" / "communities.state"
    assert state.stat().st_uid == 65534 and state.stat().st_mode & 0o077 == 0
    assert lab.stop(signaler) == 0


def test_two_vpn_ip_members_from_the_template_unit_ping_each_other_unprivileged(
    lab: Lab, tmp_path: Path, state_root: Path
) -> None:
    signaler = start_signaler(lab, tmp_path, state_root / "hub")
    members = []
    for number in (1, 2):
        host = lab.add_host()
        service = Service(
            CONTRIB / "weron-vpn-ip@.service",
            instance="lab",
            state_root=state_root / host.namespace,  # every host has its own /var/lib
            environment_file=environment_file(
                "vpn-ip.env.example",
                tmp_path / f"member{number}",
                WERON_RADDR=f"ws://{lab.hub_address}:{SIGNALER_PORT}/",
                WERON_IPS=IPS,
                WERON_ICE=f"stun:{lab.hub_address}:3478",  # no STUN server: host candidates
                WERON_TIMEOUT="3s",
                WERON_KICKS="1s",
            ),
        )
        assert service.environment_files() == [("/etc/weron/lab.env", False)]
        log = tmp_path / f"member{number}.log"
        members.append((host, start(lab, host.namespace, service, log), log))

    addresses = []
    for host, process, log in members:
        deadline = time.monotonic() + 90
        while True:
            shown = lab.run(host.namespace, ["ip", "-4", "addr", "show", "weron0"]).stdout
            found = re.findall(r"inet (10\.83\.0\.\d+)/24 scope global", shown)
            if found:
                break
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no address claimed:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        addresses.append(found[0])
        process_status = status(process)
        assert set(process_status["Uid"].split()) == {"65534"}
        assert int(process_status["CapAmb"], 16) == CAP_NET_ADMIN
        assert int(process_status["CapBnd"], 16) == CAP_NET_ADMIN
        assert process_status["NoNewPrivs"] == "1"
    assert addresses[0] != addresses[1]

    for (host, _, log), target in zip(members, reversed(addresses), strict=True):
        deadline = time.monotonic() + 60
        ping = ["ping", "-c", "1", "-W", "2", target]
        while lab.run(host.namespace, ping).returncode != 0:
            assert time.monotonic() < deadline, f"no ping to {target}:\n{log.read_text()[-3000:]}"
        assert lab.run(host.namespace, ["ping", "-c", "3", "-i", "0.2", target]).returncode == 0
    # `weron status`, as root, sees the member's peer through its control socket.
    runtime = runtime_root(state_root / members[0][0].namespace) / "weron-vpn-ip" / "lab"
    listing = subprocess.run(
        [*WERON, "status", "--json", "--runtime-dir", str(runtime / "weron")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    (process_shown,) = json.loads(listing.stdout)["processes"]
    assert process_shown["command"] == "vpn ip"
    assert [peer["state"] for peer in process_shown["peers"]] == ["connected"]
    for _, process, log in members:
        assert lab.stop(process) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
    assert lab.stop(signaler) == 0

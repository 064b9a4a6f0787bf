"""A VPN's device deleted under it (``ip link del``): the member ends at once with a clear
error and a failure status (a service manager starts it again), instead of running on
without a device and then dying with a traceback when it next sets an address."""

from __future__ import annotations

import pytest

from tests.netlab.conftest import Network
from tests.netlab.test_vpn_ip import IPS


@pytest.mark.parametrize("kind", ["ip", "ethernet"])
def test_a_deleted_device_ends_the_member_with_a_clear_error(network: Network, kind: str) -> None:
    args = ("--ips", IPS) if kind == "ip" else ()
    member = network.start(kind, *args)
    member.wait_for("Connecting to signaler")  # the device is up by then
    result = network.lab.run(member.host.namespace, ["ip", "link", "del", member.dev])
    assert result.returncode == 0, result.stderr
    assert member.process.wait(timeout=15) == 1, member.output()[-3000:]
    output = member.output()
    assert f"Error: reading from {member.dev} failed" in output
    assert "was the device deleted?" in output
    assert "Traceback" not in output
    member.wait_for("Stopped")

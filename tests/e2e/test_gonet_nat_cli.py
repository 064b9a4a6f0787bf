"""`gonet nat` and `weron utility nat` against a real coturn on loopback: with two addresses
(RFC 5780) and with one (no behaviour discovery possible)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.chat import GONET
from tests.e2e.processes import run_weron
from tests.e2e.turn import coturn


def gonet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GONET, *args], capture_output=True, text=True, timeout=60, check=False)


def test_gonet_nat_tells_an_open_loopback_from_a_server_without_rfc_5780(tmp_path: Path) -> None:
    with coturn(tmp_path, listen=("127.0.0.1", "127.0.0.2")) as ice:
        server = ice.rpartition("turn:")[2]
        result = gonet("nat", "--stun", server)
        assert result.returncode == 0, result.stderr
        assert "behind a NAT: no" in result.stdout
        assert "mapping: endpoint-independent" in result.stdout
        assert "filtering: endpoint-independent" in result.stdout
        assert "every peer can connect directly" in result.stdout
        utility = run_weron("utility", "nat", "--stun", server, timeout=60)
        assert utility.returncode == 0 and "mapping: endpoint-independent" in utility.stdout
    with coturn(tmp_path) as ice:
        server = ice.rpartition("turn:")[2]
        result = gonet("nat", "--stun", server)
        assert result.returncode == 0, result.stderr
        assert "mapping: unknown" in result.stdout and "two addresses" in result.stdout


def test_gonet_nat_without_an_answer_or_a_server_is_a_clear_error(tmp_path: Path) -> None:
    silent = gonet("nat", "--stun", "127.0.0.1:9")
    assert silent.returncode == 1 and "timed out" in silent.stderr
    assert "Traceback" not in silent.stderr
    missing = gonet("nat")
    assert missing.returncode == 2 and "--stun" in missing.stderr

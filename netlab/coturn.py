"""coturn's command line as the labs and tests run it: STUN and TURN with one lab user."""

from __future__ import annotations

import shutil
from pathlib import Path

TURN_USER, TURN_PASSWORD = "lab", "labpass"


def coturn_argv(
    listen: list[str], port: int, relay_ip: str, log_dir: Path, relay_low: int
) -> list[str]:
    """coturn as STUN and TURN server (with two ``listen`` addresses also RFC 5780)."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise RuntimeError("coturn is not installed (Debian package coturn)")
    return [
        binary,
        "-n",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        *(argument for address in listen for argument in ("-L", address)),
        "--listening-port",
        str(port),
        "--relay-ip",
        relay_ip,
        "--min-port",
        str(relay_low),
        "--max-port",
        str(relay_low + 50),
        "--lt-cred-mech",
        "--user",
        f"{TURN_USER}:{TURN_PASSWORD}",
        "--realm",
        "weron.test",
        "--fingerprint",
        "--allow-loopback-peers",
        "--log-file",
        str(log_dir / f"coturn-{port}.log"),
        "--simple-log",
        "--pidfile",
        str(log_dir / f"coturn-{port}.pid"),
    ]

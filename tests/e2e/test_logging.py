"""Logs say what happened and never carry a secret."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import StartSignaler
from tests.e2e.processes import run_weron

COMMUNITY_PASSWORD = "hunter2-community-secret"
API_PASSWORD = "api-s3cret-value"


async def test_no_secret_in_trace_logs(signaler_factory: StartSignaler) -> None:
    signaler = signaler_factory("--verbose", "7", "--api-password", API_PASSWORD)
    member = await connect(signaler.join_url("logged", COMMUNITY_PASSWORD))
    with contextlib.suppress(InvalidStatus):
        await connect(signaler.join_url("logged", COMMUNITY_PASSWORD + "-wrong"))
    env = {"WERON_RADDR": signaler.http_url}
    for password in (API_PASSWORD, API_PASSWORD + "-wrong"):
        await asyncio.to_thread(run_weron, "manager", "list", env={**env, "API_PASSWORD": password})
    await member.close()
    await asyncio.sleep(0.3)
    signaler.stop()
    logs = signaler.logs()
    assert "Connected to client" in logs and "Rejected client" in logs
    for secret in (COMMUNITY_PASSWORD, API_PASSWORD):
        assert secret not in logs

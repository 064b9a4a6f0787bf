from __future__ import annotations

import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.chat import ChatProcess, GonetProcess
from tests.e2e.processes import SignalerProcess, start_signaler

StartSignaler = Callable[..., SignalerProcess]


@pytest.fixture(scope="session", autouse=True)
def _enough_file_descriptors() -> None:
    """Thousands of sockets in one test: raise the soft limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.fixture
def signaler_factory(tmp_path: Path) -> Iterator[StartSignaler]:
    started: list[SignalerProcess] = []

    def start(*args: str, **kwargs: object) -> SignalerProcess:
        signaler = start_signaler(tmp_path, *args, **kwargs)  # type: ignore[arg-type]
        started.append(signaler)
        return signaler

    yield start
    for signaler in started:
        signaler.stop()


@pytest.fixture
def signaler(signaler_factory: StartSignaler) -> SignalerProcess:
    """A signaler with the management API enabled (password ``api-secret``)."""
    return signaler_factory("--api-password", "api-secret", "--heartbeat", "2s")


@pytest.fixture
def chat_factory(tmp_path: Path) -> Iterator[Callable[..., ChatProcess]]:
    started: list[ChatProcess] = []

    def start(signaler_url: str, *args: str, **kwargs: str) -> ChatProcess:
        chat = ChatProcess(signaler_url, tmp_path, *args, **kwargs)
        started.append(chat)
        return chat

    yield start
    for chat in started:
        if chat.process.poll() is None:
            chat.kill()


@pytest.fixture
def gonet_factory(tmp_path: Path) -> Iterator[Callable[..., GonetProcess]]:
    started: list[GonetProcess] = []

    def start(signaler_url: str, room: str, *args: str) -> GonetProcess:
        member = GonetProcess(signaler_url, tmp_path, room, *args)
        started.append(member)
        return member

    yield start
    for member in started:
        if member.process.poll() is None:
            member.kill()

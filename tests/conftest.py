"""Shared test configuration: everything under tests/e2e is marked ``e2e``, everything under
tests/netlab ``netlab`` and ``e2e`` (so ``-m "not e2e"`` is the fast set); the store contract's
fixtures are available to every store's tests."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.store_contract"]

# A suite started in the background by a shell without job control (`.ci/run &` in a script)
# inherits SIGINT ignored, and so would every command it starts, which then rightly ignores
# Ctrl-C: the Ctrl-C tests would fail for the shell's sake. Python's handler is put back, so
# the commands start with SIGINT's default, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_E2E = Path(__file__).parent / "e2e"
_NETLAB = Path(__file__).parent / "netlab"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parents = Path(str(item.fspath)).parents
        if _E2E in parents:
            item.add_marker(pytest.mark.e2e)
        if _NETLAB in parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.netlab)


@pytest.fixture(autouse=True, scope="session")
def _own_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The peer processes the tests start put their control sockets (`weron status`) in a
    directory of this run's, not the machine's /run/weron: the ones tests kill leave nothing
    there, and no test sees another run's processes."""
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("run"))
    yield
    if previous is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = previous


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory of this test's own (the peers it starts inherit it: their control
    sockets go there, nobody else's are seen). Short, under /tmp: a Unix socket's path holds
    at most 107 bytes, and pytest's own directories made them longer (no socket at all)."""
    directory = Path(tempfile.mkdtemp(prefix="wr-", dir="/tmp"))  # mode 0700
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)

"""The server and dht extras: the commands start without their libraries, and a flag that needs
a missing one is one line naming the extra. The libraries are hidden from a subprocess by a
PYTHONPATH directory whose modules of the same names fail to import, as missing ones do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from weron.extras import MissingExtraError, needs_extra

EXTRA_MODULES = {"server": ("psycopg", "psycopg_pool", "redis", "jwt"), "dht": ("libtorrent",)}
WERON = (sys.executable, "-m", "weron")
GONET = (sys.executable, "-m", "weron.cli.gonet")


@pytest.fixture
def hidden(tmp_path: Path) -> dict[str, str]:
    """An environment in which no library of any extra can be imported."""
    for module in (name for names in EXTRA_MODULES.values() for name in names):
        message = f"No module named {module!r}"
        (tmp_path / f"{module}.py").write_text(
            f"raise ModuleNotFoundError({message!r}, name={module!r})\n"
        )
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def run(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        (*WERON, "--help"),
        (*WERON, "chat", "--help"),
        (*WERON, "signaler", "--help"),
        (*GONET, "--help"),
    ],
    ids=["weron", "chat", "signaler", "gonet"],
)
def test_help_needs_no_extra(hidden: dict[str, str], command: tuple[str, ...]) -> None:
    result = run(hidden, *command)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_the_commands_import_no_library_of_an_extra() -> None:
    """Checked in a fresh interpreter, where nothing else imported them first."""
    libraries = sorted(name for names in EXTRA_MODULES.values() for name in names)
    script = (
        "import sys, weron.cli.main, weron.cli.gonet, weron.apps.chat; "
        f"print(sorted(set({libraries!r}) & set(sys.modules)))"
    )
    result = run(dict(os.environ), sys.executable, "-c", script)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.parametrize(
    ("extra", "command"),
    [
        ("server", (*WERON, "signaler", "--postgres-url", "postgres://u@127.0.0.1:1/db")),
        ("server", (*WERON, "signaler", "--redis-url", "redis://127.0.0.1:1/1")),
        (
            "server",
            (*WERON, "signaler", "--oidc-issuer", "https://issuer.test/", "--oidc-client-id", "x"),
        ),
        ("dht", (*GONET, "--dht", "lobby/room/key")),
    ],
    ids=["postgres", "redis", "oidc", "gonet-dht"],
)
def test_a_flag_that_needs_a_missing_extra_is_one_line_naming_it(
    hidden: dict[str, str], extra: str, command: tuple[str, ...]
) -> None:
    result = run(hidden, *command)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"pip install 'weron[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_weron_module_is_not_taken_for_a_missing_extra() -> None:
    with pytest.raises(ImportError), needs_extra("server", "--postgres-url"):
        raise ImportError("cannot import name 'X'", name="weron.signaler.store.postgres")
    with (
        pytest.raises(MissingExtraError, match=r"\(psycopg is missing\)"),
        needs_extra("server", "--postgres-url"),
    ):
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

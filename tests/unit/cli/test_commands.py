"""The `weron` command tree: help is the contract, unavailable commands say so plainly."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from weron import __version__
from weron.cli.main import cli

pytestmark = pytest.mark.usefixtures("restore_logging")

ALIASES = {
    "signaler": ("signaler", "sgl", "s"),
    "manager": ("manager", "mgr", "m"),
    "list": ("list", "lis", "l", "ls"),
    "create": ("create", "ctr", "c"),
    "delete": ("delete", "del", "d", "rm"),
    "chat": ("chat", "cht", "c"),
    "utility": ("utility", "uti", "u"),
    "latency": ("latency", "ltc", "l"),
    "throughput": ("throughput", "thr", "t"),
    "vpn": ("vpn", "v"),
    "ip": ("ip", "i"),
    "ethernet": ("ethernet", "eth", "e"),
    "completion": ("completion",),
}
SIGNALER = [
    *("--laddr", "--heartbeat", "--postgres-url", "--redis-url", "--cleanup"),
    *("--ephemeral-communities", "--api-username", "--api-password", "--oidc-issuer"),
    *("--oidc-client-id", "--verbose", "WERON_LADDR", "WERON_HEARTBEAT", "API_PASSWORD"),
    *("API_USERNAME", "DATABASE_URL", "REDIS_URL", "OIDC_ISSUER", "OIDC_CLIENT_ID"),
    *(":1337", "default: 10s"),
]
MANAGER = ["--api-password", "--api-username", "--raddr", "--verbose", "API_PASSWORD", "API_KEY"]
PEER = [
    *("--community", "--force-relay", "--ice", "--key", "--password", "--raddr", "--timeout"),
    *("--webrtc-mtu", "WERON_WEBRTC_MTU"),
    *("--verbose", "WERON_COMMUNITY", "WERON_KEY", "stun:stun.l.google.com:19302"),
]
HELP_CONTRACT: dict[tuple[str, ...], list[str]] = {
    ("signaler",): SIGNALER,
    ("manager",): ["list", "create", "delete"],
    ("manager", "list"): MANAGER,
    ("manager", "create"): [*MANAGER, "--community", "--password"],
    ("manager", "delete"): [*MANAGER, "--community"],
    ("chat",): [*PEER, "--channels", "--id-channel", "--kicks", "--names"],
    ("utility",): ["latency", "throughput"],
    ("utility", "latency"): [*PEER, "--packet-length", "--pause", "--server"],
    ("utility", "throughput"): [*PEER, "--packet-count", "--packet-length", "--server"],
    ("vpn",): ["ip", "ethernet"],
    ("vpn", "ip"): [
        *PEER,
        *("--dev", "--id-channel", "--ips", "--kicks", "--max-retries", "--parallel"),
        *("--static", "WERON_MAX_RETRIES"),
    ],
    ("vpn", "ethernet"): [*PEER, "--dev", "--mac", "--parallel"],
    ("completion",): ["bash", "zsh", "fish"],
}
HELP_CASES = [
    pytest.param(spelling, path, expected, id=" ".join(spelling))
    for path, expected in HELP_CONTRACT.items()
    for spelling in itertools.product(*(ALIASES[name] for name in path))
]
COMMANDS = ["signaler", "manager", "chat", "utility", "vpn", "completion"]
# Variables a developer's shell may set that would change what the commands do.
_OUTSIDE_ENV = [
    *("API_PASSWORD", "API_USERNAME", "API_KEY", "DATABASE_URL", "REDIS_URL", "PORT"),
    *("OIDC_ISSUER", "OIDC_CLIENT_ID"),
    *(name for name in os.environ if name.startswith("WERON_")),
]


def weron(*args: str, **env: str) -> Result:
    clean: dict[str, str | None] = dict.fromkeys(_OUTSIDE_ENV)
    return CliRunner().invoke(cli, list(args), env={**clean, **env}, prog_name="weron")


def assert_fails(result: Result, message: str, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, result.output
    assert message in result.output


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_root_help(flag: str) -> None:
    result = weron(flag)
    assert result.exit_code == 0, result.output
    for expected in [*COMMANDS, "--verbose", "WERON_VERBOSE", "--version", "WERON_MAX_RETRIES"]:
        assert expected in result.output


@pytest.mark.parametrize(("spelling", "path", "expected"), HELP_CASES)
def test_command_help(
    spelling: tuple[str, ...], path: tuple[str, ...], expected: list[str]
) -> None:
    result = weron(*spelling, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: weron {' '.join(path)} ")
    aliases = ALIASES[path[-1]]
    if len(aliases) > 1:
        assert f"Aliases: {', '.join(aliases)}" in result.output
    missing = [text for text in expected if text not in result.output]
    assert missing == []


def test_version() -> None:
    result = weron("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_is_a_usage_error() -> None:
    assert_fails(weron("signal"), "No such command", exit_code=2)


_JOIN = ("--community", "c", "--password", "p", "--key", "k")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("vpn", "ip", "--ips", "10.0.0.0/24"), "missing community"),
        (("vpn", "ethernet"), "missing community"),
        (("v", "e", "--parallel", "2", "--community", "c"), "missing password"),
        (("vpn", "ip", *_JOIN), "missing ips"),
        (("vpn", "ip", *_JOIN, "--ips", "10.0.0.0/24", "--webrtc-mtu", "100"), "--webrtc-mtu"),
        (("vpn", "ip", *_JOIN, "--ips", "10.0.0.0/24", "--max-retries", "0"), "--max-retries"),
    ],
)
def test_vpn_flags_are_checked_before_anything_starts(
    command: tuple[str, ...], message: str
) -> None:
    result = weron(*command)
    assert result.exit_code in (1, 2), result.output
    assert message in result.output


@pytest.mark.parametrize("command", [("utility", "latency"), ("u", "t", "--server")])
def test_utilities_need_community_password_and_key(command: tuple[str, ...]) -> None:
    assert_fails(weron(*command), "missing community")
    assert_fails(weron(*command, "--community", "c", "--password", "p"), "missing key")


def test_utilities_refuse_nonsense_sizes() -> None:
    result = weron("utility", "latency", "--packet-length", "0")
    assert result.exit_code == 2 and "--packet-length" in result.output


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--webrtc-mtu", "999"), {}),
        (("--webrtc-mtu", "4097"), {}),
        ((), {"WERON_WEBRTC_MTU": "70000"}),
    ],
)
def test_peer_commands_refuse_an_mtu_out_of_range(
    args: tuple[str, ...], env: dict[str, str]
) -> None:
    for command in (("chat",), ("utility", "latency"), ("utility", "throughput")):
        result = weron(*command, *args, **env)
        assert result.exit_code == 2 and "--webrtc-mtu" in result.output, result.output
        assert "1000<=x<=4096" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "missing community"),
        (("--community", "c"), "missing password"),
        (("--community", "c", "--password", "p"), "missing key"),
        (("--community", "c", "--password", "p", "--key", "k"), "missing names"),
        (
            (
                "--community",
                "c",
                "--password",
                "p",
                "--key",
                "k",
                "--names",
                "a",
                "--force-relay",
                "--ice",
                "stun:127.0.0.1:3478",
            ),
            "no TURN server",
        ),
        (
            (
                "--community",
                "c",
                "--password",
                "p",
                "--key",
                "k",
                "--names",
                "a",
                "--ice",
                "user@turn:127.0.0.1:3478",
            ),
            "username:credential@",
        ),
    ],
)
def test_chat_flag_errors_are_clear(args: tuple[str, ...], message: str) -> None:
    assert_fails(weron("chat", *args), message)


def test_manager_list_without_api_password() -> None:
    assert_fails(weron("manager", "list"), "missing API password")
    assert_fails(weron("mgr", "ls", "--api-password", "   "), "missing API password")


def test_manager_delete_and_create_need_a_community() -> None:
    assert_fails(weron("manager", "delete", "--api-password", "s"), "missing community")
    assert_fails(weron("manager", "create", "--api-password", "s"), "missing community")
    result = weron("manager", "create", "--api-password", "s", "--community", "c")
    assert_fails(result, "missing password")


def test_manager_rejects_a_bad_remote_address() -> None:
    result = weron("manager", "list", "--raddr", "ftp://user:secret@host/", API_KEY="s")
    assert_fails(result, "is not an http(s)://")
    assert "secret" not in result.output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--postgres-url", "x"), {}, "'x' is not a postgres:// URL"),
        ((), {"WERON_POSTGRES_URL": "mysql://db/weron"}, "is not a postgres:// URL"),
        (("--redis-url", "x"), {}, "'x' is not a redis:// URL"),
        ((), {"REDIS_URL": "http://u:secret@cache/"}, "'http://u:***@cache/' is not a redis://"),
        (("--oidc-issuer", "https://issuer/"), {}, "OIDC needs both --oidc-issuer"),
        ((), {"OIDC_CLIENT_ID": "x"}, "OIDC needs both"),
        (("--oidc-client-id", "x", "--oidc-issuer", "issuer"), {}, "is not a https:// URL"),
        (("--state", "s", "--postgres-url", "postgres://h/d"), {}, "--state is for in-memory"),
        (("--allowed-origins", "chat.example"), {}, "--allowed-origins: allowed origin"),
        ((), {"WERON_ALLOWED_ORIGINS": "https://a.example/path"}, "is not scheme://host"),
    ],
)
def test_signaler_rejects_bad_backend_settings(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """Checked before anything is contacted; secrets in URLs are not echoed."""
    result = weron("signaler", *args, **env)
    assert_fails(result, message)
    assert "secret" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("--cleanup",),
        ("--cleanup=false",),
        ("--cleanup=true",),
        ("--ephemeral-communities=false",),
        ("--heartbeat", "1m30s"),
        ("--idle-timeout", "500ms", "--head-timeout", "1m"),
        ("--max-source-connections", "0"),
        ("--state-grace", "2m"),
        ("--web=false",),
        ("--allowed-origins", "https://a.example,http://b.example:8080", "--allowed-origins", "*"),
        ("-v", "0"),
    ],
)
def test_signaler_accepts_go_style_values(args: tuple[str, ...]) -> None:
    # A bad --postgres-url stops the command after its flags are parsed, before it listens.
    assert_fails(weron("signaler", *args, "--postgres-url", "x"), "is not a postgres:// URL")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--heartbeat", "bogus"), {}, "invalid duration"),
        ((), {"WERON_HEARTBEAT": "bogus"}, "invalid duration"),
        (("--heartbeat", "0"), {}, "must be positive"),
        (("--idle-timeout", "0s"), {}, "must be positive"),
        ((), {"WERON_HEAD_TIMEOUT": "soon"}, "invalid duration"),
        (("--max-source-connections", "-1"), {}, "--max-source-connections"),
        (("--cleanup=maybe",), {}, "--cleanup"),
        (("--web=perhaps",), {}, "--web"),
    ],
)
def test_signaler_usage_errors(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    assert_fails(weron("signaler", *args, **env), message, exit_code=2)


def test_signaler_bad_listen_address() -> None:
    assert_fails(weron("signaler", "--laddr", "nonsense"), "not host:port")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion(shell: str) -> None:
    result = weron("completion", shell)
    assert result.exit_code == 0, result.output
    assert "_WERON_COMPLETE" in result.output


@pytest.mark.parametrize(
    ("words", "expected"),
    [("weron ", "utility"), ("weron u ", "latency"), ("weron u l --pa", "--pause")],
)
def test_completion_of_lazily_imported_commands(words: str, expected: str) -> None:
    cword = str(len(words.split(" ")) - 1)
    result = weron(_WERON_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword)
    assert f"plain,{expected}" in result.output.splitlines(), result.output


def test_a_peer_command_does_not_import_the_other_commands() -> None:
    """Start-up time: `weron utility ...` loads neither the signaler nor the manager."""
    probe = (
        "import sys\n"
        "from weron.cli.main import cli\n"
        "try:\n"
        "    cli(['utility', 'latency', '--help'], prog_name='weron')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('weron.cli.signaler', 'weron.cli.manager', 'weron.signaler',"
        " 'weron.manager', 'httpx') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "[]", result.stdout


def test_completion_of_unknown_shell() -> None:
    assert_fails(weron("completion", "tcsh"), "tcsh", exit_code=2)

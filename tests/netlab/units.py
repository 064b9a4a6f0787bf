"""Running a systemd service unit of contrib/systemd/ the way systemd would, without systemd:
its ExecStart expanded (specifiers, then ``${VAR}`` and ``$VAR`` from its environment), its
Environment= and EnvironmentFile= variables, its state and runtime directories, and its user and
capabilities applied by ``setpriv`` (a dynamic user becomes ``nobody``).

Only what our units use is understood; anything else fails loudly rather than being ignored.
The sandboxing options (ProtectSystem=, SystemCallFilter=, ...) are systemd's alone to apply:
here they are only checked to parse (``systemd-analyze verify``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shlex
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import weron

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
INSTALL_PREFIX = "/opt/weron"  # where the README installs weron for the units
NOBODY = "nobody"
NOGROUP = "nogroup"
_SPECIFIER = re.compile(r"%(.)")
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BARE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_TRAVERSAL_LOCK = Path("/tmp/weron-netlab-traversal.lock")


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections → keys → values in order; an empty assignment clears the key's list."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"continuation lines are not understood: {line}"
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
            continue
        key, separator, value = line.partition("=")
        assert section is not None and separator, f"not a unit file line: {line}"
        values = section.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


def parse_environment_file(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#``/``;`` comments; one pair of surrounding quotes removed."""
    variables: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, separator, value = line.partition("=")
        assert separator, f"not an environment file line: {line}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[key.strip()] = value
    return variables


def expand_specifiers(text: str, instance: str, state_root: Path) -> str:
    """``%i``/``%I`` (the instance), ``%S`` (the state directories' root), ``%t`` (the
    runtime directories' root: ``run`` under the state root here), ``%%``."""

    def replace(match: re.Match[str]) -> str:
        values = {
            "i": instance,
            "I": instance,
            "S": str(state_root),
            "t": str(runtime_root(state_root)),
            "%": "%",
        }
        assert match.group(1) in values, f"specifier %{match.group(1)} is not understood"
        return values[match.group(1)]

    return _SPECIFIER.sub(replace, text)


def runtime_root(state_root: Path) -> Path:
    """Stands for /run: beside the state directories, made for each test."""
    return state_root / "run"


def command_line(line: str, environment: Mapping[str, str]) -> list[str]:
    """ExecStart's words: ``${VAR}`` is replaced within a word, a word that is ``$VAR`` alone
    becomes the value's whitespace-separated words (systemd.service, "Command lines")."""
    assert line[:1] not in "@-:+!", f"ExecStart prefixes are not understood: {line}"
    words: list[str] = []
    for word in shlex.split(line):
        bare = _BARE.fullmatch(word)
        if bare is not None:
            words.extend(environment.get(bare.group(1), "").split())
        else:
            words.append(_BRACED.sub(lambda match: environment.get(match.group(1), ""), word))
    return words


def _capabilities(values: list[str]) -> str:
    """A setpriv capability list that leaves exactly ``values`` (``CAP_NET_ADMIN`` ...)."""
    names = [name.lower().removeprefix("cap_") for value in values for name in value.split()]
    return ",".join(["-all", *(f"+{name}" for name in names)])


@dataclass
class Service:
    """One unit (and instance), ready to run as systemd would run it."""

    path: Path
    instance: str
    state_root: Path  # stands for /var/lib: the state directories are made under it
    environment_file: Path | None = None  # stands for the unit's EnvironmentFile=

    def __post_init__(self) -> None:
        self.unit = parse_unit(self.path)["Service"]
        assert self.unit.get("DynamicUser") == ["yes"], "only units with DynamicUser= run here"

    def _expand(self, text: str) -> str:
        return expand_specifiers(text, self.instance, self.state_root)

    def environment_files(self) -> list[tuple[str, bool]]:
        """The unit's EnvironmentFile= paths, each with whether it may be missing."""
        return [
            (self._expand(value.removeprefix("-")), value.startswith("-"))
            for value in self.unit.get("EnvironmentFile", [])
        ]

    def make_state_directories(self) -> dict[str, str]:
        """StateDirectory= and RuntimeDirectory=: made under their roots, owned by the
        service's user, with STATE_DIRECTORY and RUNTIME_DIRECTORY pointing at them (as systemd
        sets them)."""
        user = pwd.getpwnam(NOBODY)
        variables = {}
        for kind, root in (("State", self.state_root), ("Runtime", runtime_root(self.state_root))):
            mode = int(self.unit.get(f"{kind}DirectoryMode", ["0755"])[-1], 8)
            directories = []
            for value in self.unit.get(f"{kind}Directory", []):
                for name in self._expand(value).split():
                    directory = root / name
                    directory.mkdir(parents=True, exist_ok=True)
                    os.chown(directory, user.pw_uid, user.pw_gid)
                    directory.chmod(mode)
                    directories.append(str(directory))
            if directories:
                variables[f"{kind.upper()}_DIRECTORY"] = ":".join(directories)
        return variables

    def environment(self) -> dict[str, str]:
        """What the process gets: systemd's basics, Environment=, then EnvironmentFile=
        (which wins), then the state directories."""
        variables = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
            "LANG": "C.UTF-8",
            "HOME": "/",
            "USER": NOBODY,
            "LOGNAME": NOBODY,
        }
        for value in self.unit.get("Environment", []):
            for assignment in shlex.split(self._expand(value)):
                key, _, setting = assignment.partition("=")
                variables[key] = setting
        files = self.environment_files()
        assert len(files) <= 1, "one EnvironmentFile= at most is understood"
        if self.environment_file is not None:
            assert files, "the unit has no EnvironmentFile="
            variables.update(parse_environment_file(self.environment_file.read_text()))
        else:
            assert all(optional for _, optional in files), "the unit needs its environment file"
        variables.update(self.make_state_directories())
        return variables

    def argv(self, environment: Mapping[str, str]) -> list[str]:
        """setpriv with the unit's user and capabilities, then its ExecStart, whose program
        is taken from this virtual environment instead of the documented install prefix."""
        (line,) = self.unit["ExecStart"]
        command = command_line(self._expand(line), environment)
        assert command[0].startswith(INSTALL_PREFIX + "/"), command[0]
        command[0] = sys.prefix + command[0].removeprefix(INSTALL_PREFIX)
        ambient = self.unit.get("AmbientCapabilities", [])
        setpriv = [
            "setpriv", f"--reuid={NOBODY}", f"--regid={NOGROUP}", "--clear-groups",
            f"--bounding-set={_capabilities(self.unit.get('CapabilityBoundingSet', []))}",
            f"--inh-caps={_capabilities(ambient)}", f"--ambient-caps={_capabilities(ambient)}",
        ]  # fmt: skip
        if self.unit.get("NoNewPrivileges") == ["yes"]:
            setpriv.append("--no-new-privs")
        return [*setpriv, *command]


@contextlib.contextmanager
def reachable_by_others() -> Iterator[None]:
    """Let every user traverse the folders on the way to this interpreter and to weron (a
    pyenv Python under /root is not, as root's home is 0700): o+x only, no listing, restored
    afterwards. Runs that need it take turns, so that none restores a folder another uses."""
    targets = [
        Path(os.path.realpath(sys.executable)),
        Path(sys.base_prefix),
        Path(sys.prefix),
        Path(weron.__file__).resolve().parent,
    ]
    folders = {folder for target in targets for folder in target.parents}
    with _TRAVERSAL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        opened = []
        try:
            for folder in sorted(folders):
                mode = stat.S_IMODE(folder.stat().st_mode)
                if not mode & stat.S_IXOTH:
                    folder.chmod(mode | stat.S_IXOTH)
                    opened.append((folder, mode))
            yield
        finally:
            for folder, mode in opened:
                folder.chmod(mode)


def with_usable_tun(argv: list[str], folder: Path) -> list[str]:
    """``argv`` as it would run where /dev/net/tun is 0666, as Debian's udev makes it (the
    capability is what guards it). Where it is not (a container's 0600 node), a 0666 node of
    the same device, made in a tmpfs at ``folder``, is bound over it first: in the command's
    own mount namespace (``ip netns exec`` gives it one), so the machine's node stays as it is."""
    tun = Path("/dev/net/tun").stat()
    if stat.S_IMODE(tun.st_mode) & 0o006 == 0o006:
        return argv
    folder.mkdir(exist_ok=True)
    node = folder / "tun"
    script = (
        f"mount -t tmpfs -o mode=0755 tmpfs {folder} && "
        f"mknod -m 0666 {node} c {os.major(tun.st_rdev)} {os.minor(tun.st_rdev)} && "
        f'mount --bind {node} /dev/net/tun && exec "$@"'
    )
    return ["sh", "-c", script, "sh", *argv]

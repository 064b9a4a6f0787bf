"""The addresses a VPN member claimed, remembered in a small state file, so that after a
restart it asks for the same ones first: its peers' neighbour caches, known_hosts entries and
firewall rules keep matching it. A remembered address is only a preference: a member that
holds it now kicks us off it, and we claim another as usual.

One JSON file holds every community's claim (``{"claims": {KEY: NAME}}``), keyed by community
and networks so that two communities, or other ``--ips``, never clash. It is written whole
to a temporary file, then renamed over the old one: a crash leaves the old or the new.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from weron.log import get_logger

log = get_logger(__name__)


def default_state_file(name: str) -> Path:
    """``/var/lib/weron/NAME`` for root, else ``$XDG_STATE_HOME/weron/NAME`` (by default
    ``~/.local/state/weron/NAME``), where the XDG base directory specification puts state."""
    if os.geteuid() == 0:
        return Path("/var/lib/weron") / name
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "weron" / name


class ClaimMemory:
    """The name claimed under ``key`` in the state file at ``path`` (None: remember nothing)."""

    def __init__(self, path: Path | None, key: str) -> None:
        self._path = path
        self._key = key

    def recall(self) -> str | None:
        claims = self._read()
        name = claims.get(self._key)
        return name if isinstance(name, str) else None

    def prefer_recalled(
        self, choose: Callable[[Sequence[str]], str]
    ) -> Callable[[Sequence[str]], str]:
        """``choose``, but the remembered name while it is still a candidate."""
        recalled = self.recall()

        def preferring(candidates: Sequence[str]) -> str:
            if recalled is not None and recalled in candidates:
                return recalled
            return choose(candidates)

        return preferring

    def remember(self, name: str) -> None:
        """Keep ``name`` for next time; a state file we cannot write costs a warning only."""
        if self._path is None:
            return
        claims = self._read()
        if claims.get(self._key) == name:
            return
        claims[self._key] = name
        try:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_atomically(self._path, json.dumps({"claims": claims}, indent=1) + "\n")
        except OSError as exc:
            log.warning(
                "Cannot remember the claimed addresses (set --state-file, or --state-file '' "
                "to remember nothing)",
                path=str(self._path),
                error=exc.strerror or str(exc),
            )

    def _read(self) -> dict[str, object]:
        if self._path is None:
            return {}
        try:
            document = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("Ignoring an unreadable state file", path=str(self._path), error=str(exc))
            return {}
        claims = document.get("claims") if isinstance(document, dict) else None
        return dict(claims) if isinstance(claims, dict) else {}


def _write_atomically(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp's mode is 0600
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise

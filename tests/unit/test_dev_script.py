"""dev.sh picks the Python of the main venv (3.12+, else 3.11) from PATH, and without one says
what to install in one line. Run on a copy (so no venv exists) with a PATH of fake Pythons
that report the version they are given and refuse to make venvs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEV_SH = Path(__file__).resolve().parents[2] / "dev.sh"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def fake_python(bin_dir: Path, name: str, version: tuple[int, int]) -> Path:
    """``name`` runs ``-c`` code on this Python as if it were ``version``; ``-m venv`` fails."""
    path = bin_dir / name
    patch = f"import sys; sys.version_info = {(*version, 0, 'final', 0)!r}"
    path.write_text(
        f'#!/bin/sh\nif [ "$1" = -c ]; then exec {sys.executable} -c "{patch}\n$2"; fi\nexit 3\n'
    )
    path.chmod(0o755)
    return path


def run_dev_sh(
    tmp_path: Path, pythons: dict[str, tuple[int, int]]
) -> subprocess.CompletedProcess[str]:
    checkout = tmp_path / "checkout"
    bin_dir = tmp_path / "bin"
    checkout.mkdir()
    bin_dir.mkdir()
    shutil.copy(DEV_SH, checkout / "dev.sh")
    dirname = shutil.which("dirname")
    assert dirname is not None
    (bin_dir / "dirname").symlink_to(dirname)
    for name, version in pythons.items():
        fake_python(bin_dir, name, version)
    assert BASH is not None
    return subprocess.run(
        [BASH, str(checkout / "dev.sh"), "run"],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("pythons", [{}, {"python3": (3, 10)}], ids=["none", "too old"])
def test_without_a_usable_python_one_line_says_what_to_install(
    tmp_path: Path, pythons: dict[str, tuple[int, int]]
) -> None:
    result = run_dev_sh(tmp_path, pythons)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: no Python 3.11 or newer")
    assert "apt install" in result.stderr
    assert "pyenv install" in result.stderr


def test_a_newer_python_is_preferred(tmp_path: Path) -> None:
    result = run_dev_sh(tmp_path, {"python3": (3, 11), "python3.12": (3, 12)})
    assert f"Creating .venv with {tmp_path / 'bin' / 'python3.12'}" in result.stderr


def test_python_3_11_is_enough(tmp_path: Path) -> None:
    result = run_dev_sh(tmp_path, {"python3": (3, 11)})
    assert f"Creating .venv with {tmp_path / 'bin' / 'python3'}" in result.stderr

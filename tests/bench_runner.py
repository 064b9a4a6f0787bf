"""Running a benchmark of bench/ the way the smoke tests do: ``--quick``, JSON to a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_quick(script: str, directory: Path, *args: str, timeout: float = 240) -> dict[str, Any]:
    """The JSON document of ``bench/<script> --quick``; fails the test on a non-zero exit."""
    out = directory / f"{Path(script).stem}.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *args, "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return report

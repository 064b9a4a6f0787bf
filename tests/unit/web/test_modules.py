"""The browser peer's JavaScript modules (src/weron/web/), tested in node with ``node:test``
(tests/unit/web/*.test.mjs) against vectors Python computes here: SHA-224 from hashlib, an
envelope sealed by :class:`weron.signaler_client.envelope.Envelope` (and node's sealed one opened by
it), Go durations from :func:`weron.apps.report.go_duration`."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from weron.apps.report import go_duration
from weron.signaler_client.envelope import Envelope

HERE = Path(__file__).parent
NODE = shutil.which("node")


def _sha224_vectors() -> list[dict[str, str]]:
    rng = random.Random(224)
    # Every length around the 55/56/64-byte padding boundaries, then some long ones.
    lengths = [*range(130), 1000, 4095, 4096, 70_000]
    inputs = [rng.randbytes(length) for length in lengths] + ["päss wörd".encode()]
    return [{"input": data.hex(), "digest": hashlib.sha224(data).hexdigest()} for data in inputs]


@pytest.mark.skipif(NODE is None, reason="node is not installed: the page's modules are untested")
def test_node_modules(tmp_path: Path) -> None:
    sha_vectors = tmp_path / "sha224.json"
    sha_vectors.write_text(json.dumps(_sha224_vectors()))
    key, plaintext = "a community key", b'{"type":"introduction","from":"x"}'
    envelope_vectors = tmp_path / "envelope.json"
    sealed_by_python = Envelope(key).seal(plaintext).hex()
    envelope_vectors.write_text(
        json.dumps({"key": key, "sealed": sealed_by_python, "plaintext": plaintext.hex()})
    )
    durations = [0.0, 1e-9, 5e-7, 0.000110111, 0.0015, 0.510690403, 3.364971672, 61.5, 3725.25]
    duration_vectors = tmp_path / "durations.json"
    duration_vectors.write_text(json.dumps([[s, go_duration(s)] for s in durations]))
    env = {
        **os.environ,
        "WERON_SHA224_VECTORS": str(sha_vectors),
        "WERON_ENVELOPE_VECTORS": str(envelope_vectors),
        "WERON_DURATION_VECTORS": str(duration_vectors),
    }
    assert NODE is not None
    command = [NODE, "--test", str(HERE)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sealed = bytes.fromhex((tmp_path / "envelope.json.sealed").read_text())
    assert Envelope(key).open(sealed) == plaintext

"""The guard benchmark still runs (tiny sizes; figures are not checked)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.timeout(180)
def test_benchmark_runs_with_tiny_sizes():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.guard",
            "--n",
            "30",
            "--repeat",
            "2",
            "--runs",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr
    rows = {
        r.split()[0]: r.split() for r in done.stdout.splitlines() if len(r.split()) == 5
    }
    for name in (
        "none",
        "c-listener",
        "guard-allow",
        "guard-200-rules",
        "guard-repeated",
    ):
        assert rows[name][-1] == "0", f"{name}: opens failed"
    assert "guard-200-rules / c-listener:" in done.stdout

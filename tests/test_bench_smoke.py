"""The watch benchmark still runs: tiny sizes, every row, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

ROWS = [
    "throughput | C consumer [fd, mount mark]",
    "throughput | library, raw events [fd, mount mark]",
    "throughput | library, Watcher (paths + processes) [fd, mount mark]",
    "throughput | fanwatch watch --json > /dev/null [fd, mount mark]",
    "throughput | C consumer [FID, filesystem mark]",
    "throughput | library, Watcher (paths + processes) [FID, filesystem mark]",
    "throughput | fanwatch watch --json > /dev/null [FID, filesystem mark]",
    "throughput | fanwatch watch (text) -o FILE [FID, filesystem mark]",
    "burst | C consumer [fd, mount mark]",
    "burst | library, raw events [fd, mount mark]",
    "burst | library, Watcher (paths + processes) [fd, mount mark]",
    "burst | fanwatch watch --json > /dev/null [fd, mount mark]",
    "burst | C consumer [FID, filesystem mark]",
    "burst | library, Watcher (paths + processes) [FID, filesystem mark]",
    "burst | fanwatch watch --json > /dev/null [FID, filesystem mark]",
    "scale | 1 inode marks, unprivileged",
    "scale | 10 inode marks, unprivileged",
    "scale | 100 inode marks, unprivileged",
    "scale | 1 path filter(s), privileged",
    "scale | 5 path filter(s), privileged",
    "scale | 50 path filter(s), privileged",
    "memory | fanwatch watch --json into a pipe, concurrent",
]


def test_watch_benchmark_tiny_run_has_every_row_and_loses_nothing(tmp_path):
    table = tmp_path / "table.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.watch", "--tiny", "--markdown", str(table)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr

    rows = [line for line in table.read_text().splitlines() if line.startswith("| ")]
    body = {
        line.split(" | ")[0][2:] + " | " + line.split(" | ")[1]: line for line in rows
    }
    for name in ROWS:
        match = [line for key, line in body.items() if key.startswith(name)]
        assert match, f"no row {name!r} in:\n{table.read_text()}"
        cells = [cell.strip() for cell in match[0].strip("|").split("|")]
        events, lost = int(cells[2].replace(",", "")), int(cells[7])
        assert events > 0, match[0]
        assert lost == 0, match[0]
        assert "incomplete" not in match[0]
    assert "privileged (filesystem mark)" in table.read_text()
    assert "unprivileged (inode marks)" in table.read_text()
    assert "Machine:" in table.read_text()
    assert os.path.getsize(table) > 0

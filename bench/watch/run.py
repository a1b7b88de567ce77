"""The ``fanwatch watch`` benchmark: C baseline, library and CLI side by side.

Run as root: ``python -m bench.watch [--quick]``. docs/PERFORMANCE.md says
what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from bench import common

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
FANWATCH = [PY, "-m", "fanwatch", "watch"]
CONSUMERS = [PY, "-m", "bench.watch.consumers"]
DROP_SYS_ADMIN = [
    "setpriv",
    "--inh-caps=-sys_admin,-dac_read_search",
    "--bounding-set=-sys_admin,-dac_read_search",
    "--",
]
QUEUE_SYSCTL = "/proc/sys/fs/fanotify/max_queued_events"
C_ROWS = {
    "fd": "C consumer [fd, mount mark]",
    "FID": "C consumer [FID, filesystem mark]",
}


@dataclass(frozen=True)
class Sizes:
    files: int  # throughput: distinct files
    burst: int  # events queued before reading
    scale_files: int  # files per scale row
    marks: tuple[int, ...]  # directories watched, unprivileged
    filters: tuple[int, ...]  # path globs
    memory: int  # events through fanwatch watch for the RSS run
    startup_dirs: int


FULL = Sizes(
    200_000, 1_000_000, 50_000, (1, 100, 10_000), (1, 50, 1000), 5_000_000, 100_000
)
QUICK = Sizes(5_000, 20_000, 3_000, (1, 100, 1000), (1, 50, 1000), 100_000, 5_000)
TINY = Sizes(500, 2_000, 300, (1, 10, 100), (1, 5, 50), 5_000, 200)


@dataclass
class Row:
    section: str
    name: str
    events: int
    seconds: float
    lost: int = 0
    rss_kib: int | None = None
    complete: bool = True
    note: str = ""
    ratio_to: str | None = None  # the row whose events/s this is compared to

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Report:
    sizes: Sizes
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    memory_samples: list[tuple[float, int, int]] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)
    startup: list[tuple[str, float, int, int]] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(
            f"  {row.section}: {row.name}: {row.events} events in {row.seconds:.3f} s "
            f"({row.rate:,.0f}/s), lost {row.lost}"
            + ("" if row.complete else " INCOMPLETE"),
            file=sys.stderr,
            flush=True,
        )
        return row

    def find(self, section: str, name: str) -> Row | None:
        return next(
            (r for r in self.rows if r.section == section and r.name == name), None
        )


# -- running one consumer against a queued workload --------------------------


@dataclass
class Drain:
    """What one stopped-then-continued consumer did."""

    seconds: float
    workload_seconds: float
    rss_kib: int
    complete: bool
    stdout: bytes
    stderr: bytes


def drain(
    consumer: list[str],
    workload: list[str],
    *,
    ready: str = "ready",
    ready_on_stderr: bool = False,
    stdout=subprocess.PIPE,
) -> Drain:
    """Start *consumer*, wait for its *ready* line, stop it, run *workload*
    to completion (its process stays alive), continue the consumer and time
    it until it exits."""
    proc = subprocess.Popen(
        consumer, stdout=stdout, stderr=subprocess.PIPE, bufsize=0, cwd=common.REPO
    )
    work = None
    try:
        common.read_line(proc.stderr if ready_on_stderr else proc.stdout, 60, ready)
        common.stop(proc.pid)
        started = time.monotonic()
        work = subprocess.Popen(workload, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        common.read_line(work.stdout, 3600, "done")
        workload_seconds = time.monotonic() - started
        began = time.monotonic()
        os.kill(proc.pid, signal.SIGCONT)
        ended, rss, complete = common.wait_exit(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        if work is not None:
            work.stdin.close()
            work.wait()
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read()
    if proc.returncode not in (0, 130):
        raise RuntimeError(
            f"{' '.join(consumer)} exited {proc.returncode}: {err.decode()}"
        )

    return Drain(ended - began, workload_seconds, rss, complete, out, err)


def counts_of(output: bytes) -> dict:
    """The counts line a C or Python consumer prints last."""
    last = output.decode().strip().splitlines()[-1]
    if last.startswith("{"):
        return json.loads(last)

    return {k: int(v) for k, v in (p.split("=") for p in last.split())}


def _with_counts(result: Drain) -> tuple[Drain, dict]:
    """The consumer's own counts; its own VmHWM is exact, unlike sampling."""
    counts = counts_of(result.stdout)
    result.rss_kib = counts["vmhwm_kib"]

    return result, counts


class Bench:
    def __init__(self, sizes: Sizes, workdir: str) -> None:
        self.sizes = sizes
        self.workdir = workdir
        self.workload = common.build_c(os.path.join(HERE, "workload.c"), workdir)
        self.consumer = common.build_c(os.path.join(HERE, "consumer.c"), workdir)
        self.report = Report(sizes, common.machine())

    # -- consumers -----------------------------------------------------------

    def run_c(self, mode: str, mount: str, workload: list[str]) -> tuple[Drain, dict]:
        return _with_counts(drain([self.consumer, mode, mount], workload))

    def run_py(
        self,
        kind: str,
        mount: str,
        workload: list[str],
        extra: list[str] = (),
        prefix: list[str] = (),
    ) -> tuple[Drain, dict]:
        return _with_counts(drain([*prefix, *CONSUMERS, kind, mount, *extra], workload))

    def run_cli(
        self, mount: str, workload: list[str], count: int, args: list[str]
    ) -> Drain:
        return drain(
            [*FANWATCH, *args, "--count", str(count), mount],
            workload,
            ready="fanwatch: watching",
            ready_on_stderr=True,
            stdout=subprocess.DEVNULL,
        )

    def files_workload(self, mount: str, files: int, *extra: str) -> list[str]:
        return [self.workload, "-H", *extra, mount, str(files)]

    # -- 1. throughput and 2. burst -----------------------------------------

    def throughput(self) -> None:
        n = self.sizes.files
        print(f"throughput: {n} files", file=sys.stderr)
        self._drain_all("throughput", lambda mode: n, text_output=True)

    def burst(self) -> None:
        target = self.sizes.burst
        print(f"burst: {target} events queued", file=sys.stderr)
        # Files per mode so that about `target` events are queued: the
        # kernel merges a file's events differently in each mode.
        per_file = {mode: self._per_file(C_ROWS[mode]) for mode in C_ROWS}
        self._drain_all("burst", lambda mode: max(1, round(target / per_file[mode])))

    def _per_file(self, name: str) -> float:
        row = self.report.find("throughput", name)
        return row.events / self.sizes.files if row else 1.0

    def _drain_all(self, section: str, files, text_output: bool = False) -> None:
        """Every consumer, each on a fresh tmpfs with its own run of the
        workload, fd mode first, then FID mode."""
        for mode in ("fd", "FID"):
            n = files(mode)
            cli = ["--mount"] if mode == "fd" else []
            extra = ["--mount"] if mode == "fd" else []
            base = C_ROWS[mode]
            self._add_c(section, mode, n)
            if mode == "fd":
                with common.private_tmpfs() as mnt:
                    result, counts = self.run_py(
                        "raw", mnt, self.files_workload(mnt, n)
                    )
                self._add(section, "library, raw events", mode, counts, result, base)
            with common.private_tmpfs() as mnt:
                result, counts = self.run_py(
                    "watcher", mnt, self.files_workload(mnt, n), extra
                )
            self._add(
                section,
                "library, Watcher (paths + processes)",
                mode,
                counts,
                result,
                base,
                note=_emitted(counts),
            )
            records, expected = counts["events"], counts["emitted"]
            outputs = [("fanwatch watch --json > /dev/null", ["--json"])]
            if text_output and mode == "FID":
                outputs.append(("fanwatch watch (text) -o FILE", None))
            for name, args in outputs:
                with common.private_tmpfs() as mnt, common.private_tmpfs() as out:
                    args = args or ["-o", os.path.join(out, "events.txt")]
                    result = self.run_cli(
                        mnt, self.files_workload(mnt, n), expected, [*cli, *args]
                    )
                    lines = _count_lines(args[1]) if args[0] == "-o" else expected
                counts = {"events": records, "overflows": _lost(result.stderr)}
                row = self._add(section, name, mode, counts, result, base)
                row.complete = result.complete and lines == expected

    def _add_c(self, section: str, mode: str, n: int) -> None:
        with common.private_tmpfs() as mnt:
            result, counts = self.run_c(mode.lower(), mnt, self.files_workload(mnt, n))
        self._add(section, "C consumer", mode, counts, result, None)

    def _add(
        self,
        section: str,
        name: str,
        mode: str,
        counts: dict,
        result: Drain,
        base: str | None,
        note: str = "",
    ) -> Row:
        mark = "mount mark" if mode == "fd" else "filesystem mark"
        return self.report.add(
            Row(
                section,
                f"{name} [{mode}, {mark}]",
                counts["events"],
                result.seconds,
                counts["overflows"],
                result.rss_kib,
                result.complete,
                note,
                base,
            )
        )

    # -- 3. scale ------------------------------------------------------------

    def scale(self) -> None:
        n = self.sizes.scale_files
        print(f"scale: {n} files per row", file=sys.stderr)
        # Without CAP_SYS_ADMIN the queue holds max_queued_events; it is
        # raised for the run so that the drain method loses nothing.
        with common.sysctl(QUEUE_SYSCTL, max(16384, 8 * n)):
            for dirs in self.sizes.marks:
                self._scale_marks(n, dirs)
        for globs in self.sizes.filters:
            self._scale_filters(n, globs)

    def _scale_marks(self, n: int, dirs: int) -> None:
        with common.private_tmpfs() as mnt:
            if dirs == 1:
                subprocess.run([self.workload, "-t", "1", mnt, "0"], check=True)
                watched, spread = os.path.join(mnt, "s0"), 1
            else:
                # The watched root, dirs - 1 leaves and their parents.
                leaves = dirs - 1 if dirs <= 1001 else dirs - 101
                subprocess.run([self.workload, "-t", str(leaves), mnt, "0"], check=True)
                watched, spread = mnt, leaves
            workload = self.files_workload(mnt, n, "-s", str(spread))
            result, counts = self.run_py(
                "watcher", watched, workload, ["--unprivileged"], prefix=DROP_SYS_ADMIN
            )
        self.report.add(
            Row(
                "scale",
                f"{counts['marks']} inode marks, unprivileged",
                counts["events"],
                result.seconds,
                counts["overflows"],
                result.rss_kib,
                note=_emitted(counts),
            )
        )

    def _scale_filters(self, n: int, globs: int) -> None:
        # globs - 1 patterns that match nothing, then one that matches every
        # file: every event is tested against all of them. They rotate over
        # three common forms: a suffix, a name, a subtree.
        forms = ("*.none{}", "f{}_*.tmp", "/srv/dir{}/**")
        patterns = [forms[i % 3].format(i) for i in range(globs - 1)] + ["**/*.dat"]
        extra = [arg for p in patterns for arg in ("--include", p)]
        with common.private_tmpfs() as mnt:
            result, counts = self.run_py(
                "watcher", mnt, self.files_workload(mnt, n), extra
            )
        self.report.add(
            Row(
                "scale",
                f"{globs} path filter(s), privileged",
                counts["events"],
                result.seconds,
                counts["overflows"],
                result.rss_kib,
                note=_emitted(counts),
            )
        )

    # -- 4. memory -----------------------------------------------------------

    def memory(self) -> None:
        target = self.sizes.memory
        print(f"memory: {target} events through fanwatch watch --json", file=sys.stderr)
        with common.private_tmpfs() as mnt:
            run = self._memory_run(mnt, target)
        samples = run["samples"]
        self.report.memory_samples = samples
        warm = next(s[2] for s in samples if s[1] >= target // 10)
        final = samples[-1][2]
        self.report.memory = {
            "warm": warm,
            "final": final,
            "peak": run["peak"],
            "growth": (final - warm) / warm,
        }
        self.report.add(
            Row(
                "memory",
                "fanwatch watch --json into a pipe, concurrent",
                samples[-1][1],
                run["seconds"],
                run["lost"],
                run["peak"],
                run["complete"],
                note="workload running alongside, "
                "a new process and directory every 200 files",
            )
        )

    def _memory_run(self, mnt: str, target: int) -> dict:
        # A paced workload in forked chunks (a new pid every 200 files, a
        # new directory each chunk, removed after) kept at most `lead`
        # chunks ahead of what fanwatch has written.
        per_chunk, lead = 200, 40
        # A lower bound: every file gives at least three lines (creation,
        # rename, deletion, each with whatever merged into it), so the
        # workload is never held back below what fanwatch has written.
        events_per_chunk = 3 * per_chunk
        proc = subprocess.Popen(
            [*FANWATCH, "--json", "--count", str(target), mnt],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        work = subprocess.Popen(
            [self.workload, "-p", "-f", "-d", str(per_chunk), mnt, str(10**9)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        samples: list[tuple[float, int, int]] = []
        lines = sent = rss = peak = 0
        try:
            common.read_line(proc.stderr, 60, "fanwatch: watching")
            began = last_sample = last_line = time.monotonic()
            out = proc.stdout.fileno()
            while True:
                idle = time.monotonic() - last_line > 1.0
                while sent * events_per_chunk < lines + lead * events_per_chunk or idle:
                    work.stdin.write(b"x")  # one more chunk
                    sent += 1
                    idle = False
                work.stdin.flush()
                ready, _, _ = select.select([out], [], [], 0.1)
                data = os.read(out, 1 << 20) if ready else b"-"
                if not data:
                    break
                if data != b"-":
                    lines += data.count(b"\n")
                    last_line = time.monotonic()
                with contextlib.suppress(OSError, KeyError):
                    rss = common.status_kib(proc.pid, "VmRSS")
                    peak = common.status_kib(proc.pid, "VmHWM")
                now = time.monotonic()
                warming = not samples or samples[-1][1] < target // 10 <= lines
                if rss and (now - last_sample >= 0.5 or warming):
                    last_sample = now
                    samples.append((now - began, lines, rss))
            ended, _peak, complete = common.wait_exit(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.wait()
            work.kill()
            work.wait()
        samples.append((ended - began, lines, rss))

        return {
            "samples": samples,
            "seconds": ended - began,
            "peak": peak,
            "lost": _lost(proc.stderr.read()),
            "complete": complete,
        }

    # -- 5. start-up ---------------------------------------------------------

    def startup(self) -> None:
        dirs = self.sizes.startup_dirs
        print(f"start-up: {dirs} directories", file=sys.stderr)
        with common.private_tmpfs() as mnt:
            subprocess.run([self.workload, "-t", str(dirs), mnt, "0"], check=True)
            for name, prefix, args in (
                ("privileged (filesystem mark)", [], []),
                ("unprivileged (inode marks)", DROP_SYS_ADMIN, ["--unprivileged"]),
            ):
                seconds, marks, rss = self._first_event(mnt, prefix, args)
                self.report.startup.append((name, seconds, marks, rss))
                print(
                    f"  start-up: {name}: {seconds:.2f} s, {marks} marks, "
                    f"{rss // 1024} MiB",
                    file=sys.stderr,
                    flush=True,
                )

    def _first_event(self, mnt: str, prefix: list[str], args: list[str]):
        probe = os.path.join(mnt, "startup-probe")
        began = time.monotonic()
        proc = subprocess.Popen(
            [*prefix, *FANWATCH, "--json", *args, mnt],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        try:
            out = proc.stdout.fileno()
            while True:
                # Touch a file until the watcher reports one.
                os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o644))
                ready, _, _ = select.select([out], [], [], 0.005)
                if ready and os.read(out, 1 << 16):
                    break
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"fanwatch exited: {proc.stderr.read().decode()}"
                    )
            seconds = time.monotonic() - began
            rss = common.status_kib(proc.pid, "VmRSS")
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        found = re.search(rb"(\d+) mark", err)

        return seconds, int(found.group(1)) if found else 0, rss


def _emitted(counts: dict) -> str:
    return f"{counts['emitted']:,} emitted"


def _lost(stderr: bytes) -> int:
    found = re.search(rb"overflowed (\d+) time", stderr)
    return int(found.group(1)) if found else 0


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


# -- the report --------------------------------------------------------------


def markdown(report: Report) -> str:
    m = report.machine
    out = [
        (
            f"Machine: {m['cpu']}, {m['nproc']} CPUs, {m['memory']}, "
            f"Linux {m['kernel']}, Python {m['python']}."
        ),
        "",
        (
            "| section | consumer | events | seconds | events/s | vs C, same mode "
            "| vs C fd | lost | peak RSS |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in report.rows:
        same = report.find(row.section, row.ratio_to) if row.ratio_to else None
        c_fd = report.find(row.section, C_ROWS["fd"])
        rss = f"{row.rss_kib / 1024:.1f} MiB" if row.rss_kib else ""
        name = row.name + (f" ({row.note})" if row.note else "")
        if not row.complete:
            name += " **incomplete**"
        out.append(
            f"| {row.section} | {name} | {row.events:,} | {row.seconds:.2f} | "
            f"{row.rate:,.0f} | {_ratio(row, same)} | "
            f"{_ratio(row, c_fd if c_fd is not row else None)} | "
            f"{row.lost} | {rss} |"
        )
    if report.memory:
        mem = report.memory
        out += [
            "",
            (
                f"Memory, `fanwatch watch --json` over {report.rows[-1].events:,} "
                f"events: RSS after warm-up (10% of events) "
                f"{mem['warm'] / 1024:.1f} MiB, final {mem['final'] / 1024:.1f} MiB "
                f"({mem['growth']:+.1%}), peak {mem['peak'] / 1024:.1f} MiB."
            ),
            "",
            "| seconds | events written | RSS |",
            "|--:|--:|--:|",
        ]
        for seconds, lines, rss in _spread(report.memory_samples, 10):
            out.append(f"| {seconds:.1f} | {lines:,} | {rss / 1024:.1f} MiB |")
    if report.startup:
        out += [
            "",
            (
                f"Start-up, time to the first event on a tree of "
                f"{report.sizes.startup_dirs:,} directories:"
            ),
            "",
            "| mode | marks | seconds | RSS at first event |",
            "|---|--:|--:|--:|",
        ]
        for name, seconds, marks, rss in report.startup:
            out.append(f"| {name} | {marks:,} | {seconds:.2f} | {rss / 1024:.1f} MiB |")

    return "\n".join(out) + "\n"


def _ratio(row: Row, base: Row | None) -> str:
    return f"{row.rate / base.rate:.2f}x" if base and base.rate else ""


def _spread(samples: list, count: int) -> list:
    if len(samples) <= count:
        return samples
    step = (len(samples) - 1) / (count - 1)
    return [samples[round(i * step)] for i in range(count)]


SECTIONS = ("throughput", "burst", "scale", "memory", "startup")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watch", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (under 30 s)")
    size.add_argument("--tiny", action="store_true", help="smallest sizes (smoke test)")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable)",
    )
    parser.add_argument(
        "--markdown", metavar="FILE", help="also write the table to FILE"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error(
            "run as root: the benchmark mounts tmpfs and uses FAN_UNLIMITED_QUEUE"
        )

    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    sections = args.only or list(SECTIONS)
    if "burst" in sections and "throughput" not in sections:
        sections.insert(0, "throughput")  # burst sizes itself from it
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fanwatch-bench-build-") as workdir:
        bench = Bench(sizes, workdir)
        for name in SECTIONS:
            if name in sections:
                getattr(bench, name)()
    text = markdown(bench.report)
    print(text)
    print(f"total {time.monotonic() - began:.0f} s", file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)

    return 0

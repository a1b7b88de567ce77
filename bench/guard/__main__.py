"""Per-open latency under fanwatch guard, side by side with its baselines.

Run as root from the repository: ``python -m bench.guard`` (``--help`` for
sizes). Every scenario gets its own private tmpfs with fresh files, and a C
opener (built here with gcc) times each open+close:

- none: no listener at all;
- c-listener: a minimal C permission listener that allows everything;
- guard-allow: fanwatch guard with an empty policy (default allow);
- guard-200-rules: fanwatch guard with 200 rules none of which matches;
- guard-repeated: opens of files the guard already allowed once (the
  kernel's ignore marks answer them), against "none" on repeated opens.

Nothing here is a test: the figures depend on the machine. The suite only
runs it with tiny sizes so that it keeps working.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from bench import common

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# Which CPU the listener and the opener run on. On a VM, waking a process
# on another, idle CPU can cost tens of microseconds, which then hides the
# listener's own cost; on one CPU the hand-over is a context switch.
PLACEMENTS = {"same": (0, 0), "split": (0, 1), "free": (None, None)}
pinning = {"listener": None, "opener": None}


def _pin(role: str):
    """A preexec_fn that pins the child to the CPU chosen for *role*."""
    cpu = pinning[role]
    if cpu is None:
        return None

    return lambda: os.sched_setaffinity(0, {cpu})


TARGETS = {
    "guard-200-rules": ("c-listener", 1.3),
    "guard-repeated": ("none-repeated", 1.2),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.guard", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--n", type=int, default=20000, help="files opened per scenario"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="rounds of repeated opens"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per scenario (best kept)"
    )
    parser.add_argument(
        "--placement",
        choices=sorted(PLACEMENTS),
        default="same",
        help="listener and opener on the same CPU (default), on two CPUs, "
        "or wherever the scheduler puts them",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    pinning["listener"], pinning["opener"] = PLACEMENTS[args.placement]
    if os.geteuid() != 0:
        print(
            "bench.guard: needs root (mounts tmpfs, permission events)", file=sys.stderr
        )
        return 2

    with tempfile.TemporaryDirectory(prefix="fanwatch-bench-") as work:
        tools = build_tools(work)
        results = run_all(work, tools, args)
    report(results, args.json)

    return 0


def build_tools(work: str) -> dict[str, str]:
    tools = {}
    for name in ("listener", "opener"):
        out = os.path.join(work, name)
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", out, os.path.join(HERE, f"{name}.c")],
            check=True,
        )
        tools[name] = out
    return tools


def run_all(work: str, tools: dict, args) -> dict:
    results = {
        "machine": machine(),
        "n": args.n,
        "repeat": args.repeat,
        "placement": args.placement,
        "scenarios": {},
    }
    scenarios = results["scenarios"]
    for _ in range(args.runs):
        for name, outcome in run_once(work, tools, args).items():
            best = scenarios.get(name)
            if best is None or outcome["mean_ns"] < best["mean_ns"]:
                scenarios[name] = outcome
    results["ratios"] = {
        name: round(scenarios[name]["mean_ns"] / scenarios[base]["mean_ns"], 2)
        for name, (base, _) in TARGETS.items()
    }
    results["ratios"]["guard-allow"] = round(
        scenarios["guard-allow"]["mean_ns"] / scenarios["c-listener"]["mean_ns"], 2
    )
    return results


def run_once(work: str, tools: dict, args) -> dict:
    outcomes = {}
    with Tmpfs(work, "none") as mnt:
        files = make_files(mnt, args.n)
        first, *repeated = open_files(tools, files, 1 + args.repeat)
        outcomes["none"] = first
        outcomes["none-repeated"] = merge(repeated)
    with Tmpfs(work, "c") as mnt:
        files = make_files(mnt, args.n)
        with Listener([tools["listener"], mnt, ready_path(work)], ready_path(work)):
            outcomes["c-listener"] = open_files(tools, files, 1)[0]
    allow_policy = os.path.join(work, "allow.toml")
    with open(allow_policy, "w") as f:
        f.write('default = "allow"\n')
    with Tmpfs(work, "allow") as mnt:
        files = make_files(mnt, args.n)
        with Listener(guard_argv(allow_policy, mnt, work), ready_path(work)):
            first, *repeated = open_files(tools, files, 1 + args.repeat)
            outcomes["guard-allow"] = first
            outcomes["guard-repeated"] = merge(repeated)
    with Tmpfs(work, "rules") as mnt:
        files = make_files(mnt, args.n)
        policy = os.path.join(work, "rules.toml")
        with open(policy, "w") as f:
            f.write(two_hundred_rules(mnt))
        with Listener(guard_argv(policy, mnt, work), ready_path(work)):
            outcomes["guard-200-rules"] = open_files(tools, files, 1)[0]
    return outcomes


def guard_argv(policy: str, mnt: str, work: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fanwatch",
        "guard",
        "--policy",
        policy,
        "--log",
        os.path.join(work, "decisions.jsonl"),
        "--ready-file",
        ready_path(work),
        mnt,
    ]


def ready_path(work: str) -> str:
    return os.path.join(work, "ready")


def two_hundred_rules(mnt: str) -> str:
    """200 rules of the usual shapes, none matching the benchmark's files
    (so that each open walks the index to the default)."""
    kinds = [
        ("{m}/app{i}/**", None),
        ("{m}/data/d{i}/*.secret", None),
        ("**/*.ext{i}", None),
        ("{m}/etc/conf{i}", None),
        ("{m}/srv/s{i}/**", '"/usr/bin/prog{i}"'),
    ]
    lines = ['default = "allow"\n']
    for i in range(200):
        pattern, exe = kinds[i % len(kinds)]
        lines.append(
            f'[[rule]]\nid = "rule-{i}"\npath = "{pattern.format(m=mnt, i=i)}"\n'
        )
        if exe:
            lines.append(f"exe = {exe.format(i=i)}\n")
        lines.append(f'decision = "{"deny" if i % 2 else "audit"}"\n\n')
    return "".join(lines)


def make_files(mnt: str, n: int) -> list[str]:
    files = []
    for i in range(n):
        directory = os.path.join(mnt, "files", f"d{i % 100}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"f{i}.txt")
        with open(path, "w") as f:
            f.write("x")
        files.append(path)
    return files


def open_files(tools: dict, files: list[str], rounds: int) -> list[dict]:
    done = subprocess.run(
        [tools["opener"], str(rounds)],
        preexec_fn=_pin("opener"),
        input="\n".join(files) + "\n",
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def merge(rounds: list[dict]) -> dict:
    best = min(rounds, key=lambda r: r["mean_ns"])
    return dict(best, rounds=len(rounds))


class Tmpfs:
    def __init__(self, work: str, name: str) -> None:
        self.path = os.path.join(work, f"mnt-{name}")

    def __enter__(self) -> str:
        os.makedirs(self.path, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512m", "fanwatch-bench", self.path],
            check=True,
        )
        return self.path

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", self.path], check=False)


class Listener:
    """A listener process, ready once *ready* exists; killed by pid on exit."""

    def __init__(self, argv: list[str], ready: str) -> None:
        self.argv = argv
        self.ready = ready

    def __enter__(self) -> subprocess.Popen:
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        env = {**os.environ, "PYTHONPATH": REPO}
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_pin("listener"),
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(
                    f"listener did not start: {self.proc.stderr.read().decode()}"
                )
            time.sleep(0.01)
        return self.proc

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def machine() -> dict:
    """The machine the figures came from, and the compiler that built the
    C programs."""
    gcc = subprocess.run(
        ["gcc", "-dumpfullversion"], capture_output=True, text=True
    ).stdout.strip()

    return {**common.machine(), "gcc": gcc or None}


def report(results: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    m = results["machine"]
    print(
        f"machine: {m['nproc']} CPUs, {m['cpu']}, "
        f"Linux {m['kernel']}, Python {m['python']}"
    )
    print(
        f"files per scenario: {results['n']}, repeated rounds: {results['repeat']}, "
        f"placement: {results['placement']}"
    )
    header = ("mean µs", "p50 µs", "p99 µs")
    print(f"{'scenario':<18}" + "".join(f"{h:>10}" for h in header) + f"{'failed':>8}")
    for name in (
        "none",
        "c-listener",
        "guard-allow",
        "guard-200-rules",
        "none-repeated",
        "guard-repeated",
    ):
        s = results["scenarios"][name]
        print(
            f"{name:<18}{s['mean_ns'] / 1000:>10.2f}{s['p50_ns'] / 1000:>10.2f}"
            f"{s['p99_ns'] / 1000:>10.2f}{s['failed']:>8}"
        )
    for name, (base, target) in TARGETS.items():
        ratio = results["ratios"][name]
        verdict = "met" if ratio <= target else "MISSED"
        print(f"{name} / {base}: {ratio:.2f}x (target {target}x: {verdict})")
    print(f"guard-allow / c-listener: {results['ratios']['guard-allow']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())

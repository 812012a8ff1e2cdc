"""One benchmark, this checkout against an older commit, in the same run: the two are run
alternately (older first), so the machine's load falls on both alike, and each verdict's
first figure is compared by its median over the runs.

    .venv/bin/python bench/against.py --ref 68b2669 --runs 3 -- bench/hot_path.py --quick

The older commit is exported with `git archive` into a temporary directory and run with this
checkout's virtualenv, its own code first on PYTHONPATH (the processes the benchmark starts
inherit it).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERDICT = re.compile(r"^\s*(PASS|FAIL)\s+(.+?):\s+(-?[0-9.]+)")


def _run(tree: Path, command: list[str]) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run([sys.executable, *command], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{tree}: {' '.join(command)} exited {done.returncode}")
    figures = {}
    for line in done.stdout.splitlines():
        if match := VERDICT.match(line):
            figures[match.group(2)] = float(match.group(3))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the older commit")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- then the benchmark and its flags, relative to the root")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the benchmark after --")
    results: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        old = Path(tmp)
        archive = subprocess.run(["git", "archive", args.ref], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        for run in range(args.runs):
            for side, tree in (("old", old), ("new", ROOT)):
                started = time.monotonic()
                for name, value in _run(tree, command).items():
                    results[side].setdefault(name, []).append(value)
                print(f"run {run + 1}/{args.runs} {side}: {time.monotonic() - started:.0f} s",
                      file=sys.stderr)
    print(f"\n== {' '.join(command)}: {args.ref} (old) vs this checkout (new), "
          f"median of {args.runs} alternated runs, load {os.getloadavg()[0]:.2f}")
    print(f"   {'verdict':<50} {'old':>9} {'new':>9} {'new/old':>8}")
    for name, values in results["new"].items():
        before = results["old"].get(name)
        if not before:
            continue
        a, b = statistics.median(before), statistics.median(values)
        ratio = f"{b / a:.3f}" if a else "-"
        print(f"   {name[:50]:<50} {a:>9.3f} {b:>9.3f} {ratio:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How fast `covidx-us --help`, `covidx-us <cmd> --help` and `--version` answer (target: under 0.3 s).

    python benchmarks/bench_startup.py                       # python -m processing.cli from this checkout
    python benchmarks/bench_startup.py --exe /venv/bin/covidx-us --runs 30   # an installed console script

Each command runs ``--runs`` times in a fresh process (wall time, output discarded); prints min / median / max and
the bare interpreter start (``python -c pass``) for comparison. Results and the machine: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("catalogue", "download", "clean", "build", "push", "demo", "report")


def timings(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exe", help="a covidx-us console script (default: python -m processing.cli from here)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = dict(os.environ)
    if args.exe:
        base = [args.exe]
        env.pop("PYTHONPATH", None)
    else:
        base = [sys.executable, "-m", "processing.cli"]
        env["PYTHONPATH"] = str(ROOT)
    cases = [("python -c pass", [sys.executable, "-c", "pass"]), ("--help", [*base, "--help"]),
             ("--version", [*base, "--version"]), *((f"{c} --help", [*base, c, "--help"]) for c in COMMANDS)]
    print(f"{'command':18} {'min':>7} {'median':>7} {'max':>7}  ({args.runs} runs, seconds)")
    for name, argv in cases:
        t = timings(argv, args.runs, env)
        print(f"{name:18} {min(t):7.3f} {statistics.median(t):7.3f} {max(t):7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The fleet audit on a seeded 5,000-instance, 35-service fleet: `kiln audit`
against the Python + boto3 baseline (bench/audit_baseline.py), in the same
run, against the same emulator, alternating, N times each. Both must find
exactly the seeded counts. Prints the median wall time, each tool's own CPU
time (user + system of its process: the emulator's time is not in it), the
API calls, and the ratios.

Usage: .venv/bin/python bench/audit.py --kiln target/release/kiln [--runs N]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from coldstart import ROOT, start_emulator

import fleet


def measure(command, env):
    """Runs `command`; returns (wall seconds, CPU seconds, parsed stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[0]} failed: {stdout[-2000:]!r}")
    return wall, usage.ru_utime + usage.ru_stime, json.loads(stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--services", type=int, default=35)
    args = parser.parse_args()

    emulator, seeded = start_emulator()
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=seeded["endpoint"], AWS_REGION=seeded["region"],
                   AWS_DEFAULT_REGION=seeded["region"], AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing")
        os.environ.update(env)
        started = time.perf_counter()
        expected = fleet.seed(str(args.kiln), args.instances, args.services)
        seeding = time.perf_counter() - started

        kiln_cmd = [str(args.kiln), "audit", "--output", "json"]
        python_cmd = [sys.executable, str(ROOT / "bench/audit_baseline.py")]
        samples = {"kiln": [], "python": []}
        for _ in range(args.runs):
            for name, command in (("kiln", kiln_cmd), ("python", python_cmd)):
                samples[name].append(measure(command, env))
    finally:
        emulator.stdin.close()
        emulator.wait(10)

    kiln_report = samples["kiln"][-1][2]
    python_report = samples["python"][-1][2]
    found = {s: n for s, n in kiln_report["summary"]["by_status"].items() if n}
    wanted = {s: n for s, n in expected.items() if n}
    baseline = {s: n for s, n in python_report["by_status"].items() if n}
    if not (found == wanted == baseline):
        sys.exit(f"counts differ: seeded {wanted}, kiln {found}, python {baseline}")

    def med(name, i):
        return statistics.median(sample[i] for sample in samples[name])

    kiln_calls = kiln_report["api_calls"]
    python_calls = python_report["api_calls"]
    print(f"fleet: {args.instances:,} instances, {args.services} services, seeded in {seeding:.1f} s;"
          f" both tools found exactly the seeded counts {wanted}")
    print(f"{'tool':<28} {'wall s':>8} {'own CPU s':>10} {'API calls':>10}")
    print(f"{'kiln audit (Rust)':<28} {med('kiln', 0):>8.2f} {med('kiln', 1):>10.3f}"
          f" {sum(kiln_calls.values()):>10}  {json.dumps(kiln_calls, sort_keys=True)}")
    print(f"{'Python + boto3 (baseline)':<28} {med('python', 0):>8.2f} {med('python', 1):>10.3f}"
          f" {sum(python_calls.values()):>10}  {json.dumps(dict(python_calls), sort_keys=True)}")
    print(f"ratio (Python / kiln): wall {med('python', 0) / med('kiln', 0):.2f}x,"
          f" own CPU {med('python', 1) / med('kiln', 1):.1f}x  (medians of {args.runs} runs each;"
          " the wall time is mostly the emulator serialising 5,000 instances, for both)")


if __name__ == "__main__":
    main()

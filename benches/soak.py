#!/usr/bin/env python3
"""A soak: many whole runs on a machine kept busy on purpose, counting wrong
verdicts. A verdict must not depend on load; this is how that is watched
over hundreds of runs (tests/timing.rs forces the one race found so far).

    python3 benches/soak.py [--all-runs 500] [--microvm-runs 50] [--jobs 2]

While it runs, the machine is loaded with one CPU-bound process per core
and a release build of tcplab in a scratch target directory, rebuilt over
and over. Then:
1. `tcplab all --json`, JOBS at a time, ALL_RUNS times;
2. `tcplab fin-wait2 --lab microvm --json`, MICROVM_RUNS times (one at a
   time: two VMs each).
Every case whose verdict is not "as expected" is printed with its
failures. The summary gives runs, cases, wrong verdicts, other exits, the
load average seen, and the time taken. Run it as root from the repository.
Nothing here is a test: it prints numbers.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCPLAB = os.path.join(ROOT, "target", "release", "tcplab")


class Load:
    """CPU-bound spinners and a build loop; ended by pid on exit."""

    def __init__(self):
        self.stop = threading.Event()
        self.spinners = []
        self.scratch = tempfile.mkdtemp(prefix="soak-build.")
        self.build_thread = threading.Thread(target=self._builds, daemon=True)
        self.builds = 0
        self.build = None

    def __enter__(self):
        for _ in range(os.cpu_count() or 1):
            self.spinners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        self.build_thread.start()
        return self

    def _builds(self):
        while not self.stop.is_set():
            self.build = subprocess.Popen(
                ["cargo", "build", "--release", "--quiet", "--target-dir", self.scratch],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.build.wait()
            self.builds += 1
            subprocess.run(["cargo", "clean", "--quiet", "--target-dir", self.scratch, "-p", "tcplab"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __exit__(self, *_):
        self.stop.set()
        for process in self.spinners + ([self.build] if self.build else []):
            if process.poll() is None:
                process.kill()
                process.wait()
        self.build_thread.join(timeout=60)
        shutil.rmtree(self.scratch, ignore_errors=True)


def documents(output):
    """The experiment documents of `all` or of one experiment."""
    document = json.loads(output)
    return document.get("experiments", [document])


def one_run(args):
    """Runs tcplab with ARGS; returns (exit code, cases, wrong verdicts)."""
    result = subprocess.run([TCPLAB, *args, "--json", "-q"], capture_output=True, text=True)
    if result.returncode not in (0, 1):
        return result.returncode, 0, [f"exit {result.returncode}: {result.stderr.strip()[-300:]}"]
    cases, wrong = 0, []
    for experiment in documents(result.stdout):
        for number, case in enumerate(experiment.get("cases", []), 1):
            cases += 1
            if not case["passed"]:
                wrong.append(f"{experiment['experiment']} case {number}: {'; '.join(case['failures'])}")
    return result.returncode, cases, wrong


def soak(name, args, runs, jobs, load):
    started = time.monotonic()
    cases, wrong, other, highest_load = 0, [], 0, 0.0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for done, (code, n, bad) in enumerate(pool.map(lambda _: one_run(args), range(runs)), 1):
            cases += n
            if code not in (0, 1):
                other += 1
            wrong.extend(b for b in bad if not b.startswith("exit "))
            for line in bad:
                print(f"  run {done}: {line}", flush=True)
            highest_load = max(highest_load, os.getloadavg()[0])
            if done % 10 == 0 or done == runs:
                print(f"  {name}: {done}/{runs} runs, {cases} cases, {len(wrong)} wrong, "
                      f"{other} other exits, load {os.getloadavg()[0]:.1f}", flush=True)
    seconds = time.monotonic() - started
    print(f"{name}: {runs} runs ({jobs} at a time), {cases} cases, {len(wrong)} wrong verdicts, "
          f"{other} runs that did not finish, load average up to {highest_load:.1f}, "
          f"a build running beside it ({load.builds} finished), {seconds:.0f} s", flush=True)
    return len(wrong) + other


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-runs", type=int, default=500)
    parser.add_argument("--microvm-runs", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benches/soak.py: run it as root (namespaces, VMs)")
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    bad = 0
    with Load() as load:
        if options.all_runs:
            bad += soak("tcplab all", ["all"], options.all_runs, options.jobs, load)
        if options.microvm_runs:
            bad += soak("tcplab fin-wait2 --lab microvm", ["fin-wait2", "--lab", "microvm"],
                        options.microvm_runs, 1, load)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

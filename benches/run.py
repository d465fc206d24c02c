#!/usr/bin/env python3
"""tcplab's benchmarks, side by side with what they are compared to, in one
run: medians over repeated runs, and ratios. Run as root from the repository:

    python3 benches/run.py [--runs N] [--sockets N]

1. `tcplab fin-wait2` (four cases) against benches/baseline-fin-wait2.sh, the
   same matrix scripted by hand (ip netns, iptables, python3, ss).
2. Reading the sockets of one port in a namespace holding 100,000 TCP
   sockets: `tcplab sockets --port P` against `ss -tan sport = :P` and
   `netstat -tan | grep :P` (netstat only if net-tools is installed).
3. Where a case's time goes: lab bring-up, experiment, teardown (from
   `tcplab fin-wait2 --json`).
4. `tcplab all` wall time (the whole catalogue but the slow timeline).
5. Peak RSS of one tcplab process during `tcplab fin-wait2`.

Nothing here is a test: it prints numbers; targets are shown next to them.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCPLAB = os.path.join(ROOT, "target", "release", "tcplab")
BASELINE = os.path.join(ROOT, "benches", "baseline-fin-wait2.sh")
MANY = os.path.join(ROOT, "benches", "many_sockets.py")


def timed(command, **kwargs):
    """Seconds one run of `command` takes; fails loudly if it fails."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def median_of(runs, command, **kwargs):
    return statistics.median(timed(command, **kwargs) for _ in range(runs))


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def row(name, value, baseline=None, ratio=None, target=""):
    print(f"  {name:<44} {value:>11} {baseline or '':>12} {ratio or '':>8}  {target}")


def experiment_latency(runs):
    print("\n1. fin-wait2, four cases (medians)")
    row("", "tcplab", "by hand", "ratio")
    ours, theirs = [], []
    for _ in range(runs):  # interleaved, so both see the same machine
        ours.append(timed([TCPLAB, "fin-wait2", "-q"]))
        theirs.append(timed(["bash", BASELINE]))
    a, b = statistics.median(ours), statistics.median(theirs)
    row("tcplab fin-wait2 vs baseline-fin-wait2.sh", ms(a), ms(b), f"{b / a:.1f}x", "target >= 10x")


def state_reads(runs, sockets):
    print(f"\n2. reading one port's sockets among {sockets:,} (medians)")
    crowd = subprocess.Popen(
        ["unshare", "-n", sys.executable, MANY, str(sockets), "8080"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = crowd.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise SystemExit("the socket crowd did not start")
        enter = ["nsenter", f"--net=/proc/{crowd.pid}/ns/net"]
        commands = {
            "tcplab sockets --port 8080": enter + [TCPLAB, "sockets", "--port", "8080"],
            "ss -tan sport = :8080": enter + ["ss", "-tan", "sport", "=", ":8080"],
        }
        if shutil.which("netstat"):
            commands["netstat -tan | grep :8080"] = enter + [
                "sh", "-c", "netstat -tan | grep :8080"]
        times = {name: median_of(runs, command) for name, command in commands.items()}
        ours = times["tcplab sockets --port 8080"]
        row(f"({ready[1]} sockets in the namespace)", "time", "", "vs tcplab")
        for name, value in times.items():
            ratio = "" if value is ours else f"{value / ours:.1f}x"
            target = {"ss -tan sport = :8080": "target >= 1x",
                      "netstat -tan | grep :8080": "target >= 10x"}.get(name, "")
            row(name, ms(value), "", ratio, target)
        if "netstat -tan | grep :8080" not in times:
            row("netstat", "not installed (apt-get install net-tools)")
    finally:
        crowd.stdin.close()
        crowd.wait()


def phases(runs):
    print("\n3. where a netns case's time goes (medians over cases and runs)")
    samples = {"lab_up_us": [], "experiment_us": [], "teardown_us": []}
    for _ in range(runs):
        out = subprocess.run([TCPLAB, "fin-wait2", "--json", "-q"],
                             check=True, capture_output=True, text=True).stdout
        for case in json.loads(out)["cases"]:
            for key in samples:
                samples[key].append(case["timings"][key])
    for key, label in [("lab_up_us", "lab bring-up (2 netns, veth, addresses, agents)"),
                       ("experiment_us", "experiment (rule, server, client, kill, probe)"),
                       ("teardown_us", "teardown (agents undo and exit)")]:
        row(label, ms(statistics.median(samples[key]) / 1e6))


def catalogue(runs):
    print("\n4. tcplab all (every experiment but the slow timeline)")
    row("tcplab all", ms(median_of(runs, [TCPLAB, "all", "-q"])), "", "", "target < 2000 ms")


def memory():
    print("\n5. memory")
    probe = subprocess.run(
        [sys.executable, "-c",
         "import resource, subprocess, sys; "
         "subprocess.run([sys.argv[1], 'fin-wait2', '-q'], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)", TCPLAB],
        check=True, capture_output=True, text=True)
    kib = int(probe.stdout.strip())
    row("peak RSS of one tcplab process (fin-wait2)", f"{kib / 1024:.1f} MiB", "", "", "target < 20 MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per median (default 7)")
    parser.add_argument("--sockets", type=int, default=100_000, help="sockets for benchmark 2")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the baseline and the socket crowd need namespaces")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; runs per median: {args.runs}")
    experiment_latency(args.runs)
    state_reads(args.runs, args.sockets)
    phases(args.runs)
    catalogue(args.runs)
    memory()


if __name__ == "__main__":
    main()

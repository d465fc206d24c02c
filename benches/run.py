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
6. The microvm lab: `tcplab fin-wait2 --lab microvm` (boot included) against
   the netns lab in the same run, boot-to-agent-ready and the experiment's own
   time apart, peak RSS of each qemu, and whether a second run with a warm
   cache builds anything.
7. `tcplab matrix fin-wait2` over Debian's 5.10, 6.1 and 6.12 (warm cache):
   wall time, each kernel's time, the concurrency tcplab chose, against the
   same three kernels one at a time (`--jobs 1`) in the same run.
8. `tcplab matrix fin-wait2 --kernel all --kernel host` (every line Debian's
   archive can boot, warm cache): wall time against the three lines of 7 in
   the same run, time per kernel, and the peak RSS of every qemu it ran.

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
import tempfile
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


def row(name, value, baseline=None, ratio=None, target="", met=None):
    """One line; a target is followed by whether this run met it."""
    verdict = "" if met is None else ("  met" if met else "  MISSED")
    print(f"  {name:<44} {value:>11} {baseline or '':>12} {ratio or '':>8}  {target}{verdict}")


def experiment_latency(runs):
    print("\n1. fin-wait2, four cases (medians)")
    row("", "tcplab", "by hand", "ratio")
    ours, theirs = [], []
    for _ in range(runs):  # interleaved, so both see the same machine
        ours.append(timed([TCPLAB, "fin-wait2", "-q"]))
        theirs.append(timed(["bash", BASELINE]))
    a, b = statistics.median(ours), statistics.median(theirs)
    row("tcplab fin-wait2 vs baseline-fin-wait2.sh", ms(a), ms(b), f"{b / a:.1f}x", "target >= 10x",
        b / a >= 10)


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
            goal = {"ss -tan sport = :8080": 1, "netstat -tan | grep :8080": 10}.get(name)
            target = f"target >= {goal}x" if goal else ""
            row(name, ms(value), "", ratio, target, None if goal is None else value / ours >= goal)
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
    took = median_of(runs, [TCPLAB, "all", "-q"])
    row("tcplab all", ms(took), "", "", "target < 2000 ms", took < 2.0)


def memory():
    print("\n5. memory")
    probe = subprocess.run(
        [sys.executable, "-c",
         "import resource, subprocess, sys; "
         "subprocess.run([sys.argv[1], 'fin-wait2', '-q'], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)", TCPLAB],
        check=True, capture_output=True, text=True)
    kib = int(probe.stdout.strip())
    row("peak RSS of one tcplab process (fin-wait2)", f"{kib / 1024:.1f} MiB", "", "", "target < 20 MiB",
        kib / 1024 < 20)


def qemu_peaks(tcplab_pid, peaks):
    """Samples VmHWM of the qemu children of `tcplab_pid` into `peaks`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() != str(tcplab_pid) or "qemu" not in fields.get("Name", ""):
            continue
        kib = int(fields.get("VmHWM", "0 kB").split()[0])
        peaks[entry] = max(peaks.get(entry, 0), kib)


def snapshot_bytes():
    """Bytes of the saved guests in tcplab's cache, and how many there are."""
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "tcplab", "snapshots")
    sizes = [os.path.getsize(os.path.join(cache, name)) for name in os.listdir(cache)
             if name.endswith(".vmstate")] if os.path.isdir(cache) else []
    return sum(sizes), len(sizes)


def boots(runs):
    print("\n6a. boot to both agents ready: cold against restored (medians, Debian's 6.1)")
    warm = [TCPLAB, "fin-wait2", "--lab", "microvm", "--json", "-q"]
    subprocess.run(warm, check=True, stdout=subprocess.DEVNULL)  # save the guests
    cold_boots, warm_boots, warm_walls = [], [], []
    for _ in range(runs):  # interleaved, so both see the same machine
        document = json.loads(subprocess.run(warm + ["--cold"], check=True, capture_output=True,
                                              text=True).stdout)
        cold_boots.append(document["lab"]["boot_ms"] / 1000)
        started = time.perf_counter()
        document = json.loads(subprocess.run(warm, check=True, capture_output=True,
                                              text=True).stdout)
        warm_walls.append(time.perf_counter() - started)
        if document["lab"].get("boot") != "restored":
            raise SystemExit(f"the warm run booted {document['lab'].get('boot')}")
        warm_boots.append(document["lab"]["boot_ms"] / 1000)
    cold, warm_boot = statistics.median(cold_boots), statistics.median(warm_boots)
    row("boot to both agents ready, restored", ms(warm_boot), ms(cold), f"{cold / warm_boot:.0f}x",
        "target <= 500 ms", warm_boot <= 0.5)
    wall = statistics.median(warm_walls)
    row("tcplab fin-wait2 --lab microvm, restored, wall", ms(wall), "", "", "target <= 2500 ms",
        wall <= 2.5)
    total, count = snapshot_bytes()
    if count:
        row("disk per saved guest", f"{total / count / 2**20:.0f} MiB", "", "",
            f"{count} saved guests, {total / 2**20:.0f} MiB in all")
    print("  (baseline column: the same boot with --cold, in the same run)")


def microvm(runs):
    print("\n6. the microvm lab: two qemu VMs, Debian's 6.1 cloud kernel (medians)")
    command = [TCPLAB, "fin-wait2", "--lab", "microvm", "--json", "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # warm the cache
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "tcplab", "initramfs")
    before = sorted(os.listdir(cache))
    walls, netns, boots, cases, peaks, kernel, accel = [], [], [], [], {}, "", ""
    for _ in range(runs):
        started = time.perf_counter()
        run = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        while run.poll() is None:
            qemu_peaks(run.pid, peaks)
            time.sleep(0.05)
        walls.append(time.perf_counter() - started)
        document = json.loads(run.stdout.read())
        if run.returncode != 0:
            raise SystemExit(f"tcplab fin-wait2 --lab microvm exited {run.returncode}")
        boots.append(document["lab"]["boot_ms"] / 1000)
        cases.append(sum(case["duration_ms"] for case in document["cases"]) / 1000)
        kernel, accel = document["lab"]["kernel"], document["lab"]["accelerator"]
        netns.append(timed([TCPLAB, "fin-wait2", "-q"]))
    wall, floor = statistics.median(walls), statistics.median(netns)
    print(f"  (Linux {kernel} in the VMs, accelerator {accel}; this machine runs {os.uname().release})")
    row("tcplab fin-wait2 --lab microvm, wall", ms(wall), ms(floor), f"{wall / floor:.0f}x",
        "target <= 8000 ms", wall <= 8.0)
    row("  boot to both agents ready", ms(statistics.median(boots)))
    row("  the four cases themselves", ms(statistics.median(cases)))
    peak = max(peaks.values()) / 1024 if peaks else 0
    row("peak RSS of one qemu", f"{peak:.0f} MiB", "", "", "target <= 256 MiB", 0 < peak <= 256)
    built = sorted(os.listdir(cache)) != before
    row("second run with a warm cache builds nothing", "no" if built else "yes", "", "",
        "target: yes", not built)
    print("  (netns column: tcplab fin-wait2 on the netns lab in the same run, the floor)")


def matrix(runs):
    print("\n7. tcplab matrix fin-wait2 --kernel 5.10 --kernel 6.1 --kernel 6.12 (medians)")
    kernels = ["--kernel", "5.10", "--kernel", "6.1", "--kernel", "6.12"]
    command = [TCPLAB, "matrix", "fin-wait2", *kernels, "--json", "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # warm the cache
    walls, serial, per_kernel, jobs = [], [], {}, 0
    for _ in range(runs):  # interleaved, so both see the same machine
        started = time.perf_counter()
        document = json.loads(subprocess.run(command, check=True, capture_output=True,
                                              text=True).stdout)
        walls.append(time.perf_counter() - started)
        jobs = document["concurrency"]
        for kernel in document["kernels"]:
            per_kernel.setdefault(kernel["name"], []).append(kernel["duration_ms"] / 1000)
        serial.append(timed(command[:-2] + ["--jobs", "1", "-q"]))
    wall, one_at_a_time = statistics.median(walls), statistics.median(serial)
    row(f"wall, {jobs} kernels at a time (tcplab's choice)", ms(wall), ms(one_at_a_time),
        f"{one_at_a_time / wall:.1f}x", "target <= 30000 ms", wall <= 30.0)
    for name, times in per_kernel.items():
        row(f"  kernel {name} (boot, four cases, shutdown)", ms(statistics.median(times)))
    print("  (baseline column: the same matrix with --jobs 1, one kernel at a time)")


def matrix_all(runs):
    print("\n8. tcplab matrix fin-wait2 --kernel all --kernel host (medians)")
    every = [TCPLAB, "matrix", "fin-wait2", "--kernel", "all", "--kernel", "host", "--json", "-q"]
    three = [TCPLAB, "matrix", "fin-wait2", "--kernel", "5.10", "--kernel", "6.1",
             "--kernel", "6.12", "-q"]
    subprocess.run(every, check=True, stdout=subprocess.DEVNULL)  # warm the cache
    walls, baseline, per_kernel, peaks = [], [], {}, {}
    for _ in range(runs):  # interleaved, so both see the same machine
        started = time.perf_counter()
        # The document is larger than a pipe holds: it goes to a file, or
        # tcplab would wait on a full pipe while this loop samples.
        with tempfile.TemporaryFile(mode="w+") as document:
            run = subprocess.Popen(every, stdout=document, text=True)
            while run.poll() is None:
                qemu_peaks(run.pid, peaks)
                time.sleep(0.1)
            walls.append(time.perf_counter() - started)
            document.seek(0)
            text = document.read()
        if run.returncode != 0:
            raise SystemExit(f"tcplab matrix --kernel all exited {run.returncode}")
        for kernel in json.loads(text)["kernels"]:
            name = kernel["build"] or kernel["name"]
            per_kernel.setdefault(name, []).append(kernel["duration_ms"] / 1000)
        baseline.append(timed(three))
    wall, three_lines = statistics.median(walls), statistics.median(baseline)
    columns = len(per_kernel)
    row(f"wall, {columns} columns", ms(wall), ms(three_lines), f"{wall / three_lines:.1f}x",
        "target <= 30000 ms (warm)", wall <= 30.0)
    for name, times in per_kernel.items():
        row(f"  {name} (boot, four cases, shutdown)", ms(statistics.median(times)))
    peak = max(peaks.values()) / 1024 if peaks else 0
    row(f"peak RSS of the largest of {len(peaks)} qemu", f"{peak:.0f} MiB", "", "",
        "target <= 256 MiB", 0 < peak <= 256)
    print("  (baseline column: fin-wait2 over 5.10, 6.1 and 6.12 alone, in the same run)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per median (default 7)")
    parser.add_argument("--sockets", type=int, default=100_000, help="sockets for benchmark 2")
    parser.add_argument("--vms-only", action="store_true",
                        help="only the microvm lab's and the matrix's benchmarks (6 to 8)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the baseline and the socket crowd need namespaces")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; runs per median: {args.runs}")
    if not args.vms_only:
        experiment_latency(args.runs)
        state_reads(args.runs, args.sockets)
        phases(args.runs)
        catalogue(args.runs)
        memory()
    if shutil.which("qemu-system-x86_64"):
        boots(min(args.runs, 5))
        microvm(min(args.runs, 5))
        matrix(min(args.runs, 3))
        matrix_all(min(args.runs, 2))
    else:
        print("\n6-8. the microvm lab and the matrix: skipped (apt-get install qemu-system-x86)")


if __name__ == "__main__":
    main()

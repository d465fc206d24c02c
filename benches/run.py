#!/usr/bin/env python3
"""tcplab's benchmarks, side by side with what they are compared to, in one
run, with ratios. Run as root from the repository:

    python3 benches/run.py [--runs N] [--sockets N] [--export-dir DIR]

Whole commands are timed by hyperfine (warm-up runs, mean ± standard
deviation, min to max), one hyperfine call per section so a section's
commands see the same machine; its JSON and Markdown exports go to
DIR/<section>.json and .md (default target/bench). What hyperfine cannot
see (the time inside a case, boot to ready, peak RSS) is read from tcplab's
--json and /proc, as medians.

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
import shlex
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


EXPORTS = os.path.join(ROOT, "target", "bench")


def hyperfine(section, commands, runs, warmup=1):
    """Times each of `commands` ({name: argv}) with hyperfine; returns
    {name: its result} (seconds: mean, stddev, median, min, max) and keeps
    hyperfine's exports as EXPORTS/<section>.json and .md."""
    exported = os.path.join(EXPORTS, section)
    argv = ["hyperfine", "--shell=none", "--style", "none", "--warmup", str(warmup),
            "--runs", str(runs), "--export-json", exported + ".json",
            "--export-markdown", exported + ".md"]
    for name, command in commands.items():
        argv += [f"--command-name={name}", shlex.join(command)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    with open(exported + ".json", encoding="utf-8") as file:
        return {result["command"]: result for result in json.load(file)["results"]}


def spread(result):
    """`59.7 ± 3.1 ms` (mean ± standard deviation)."""
    scale, unit = (1, "s") if result["mean"] >= 10 else (1000, "ms")
    return f"{result['mean'] * scale:.1f} ± {result['stddev'] * scale:.1f} {unit}"


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def row(name, value, baseline=None, ratio=None, target="", met=None):
    """One line; a target is followed by whether this run met it."""
    verdict = "" if met is None else ("  met" if met else "  MISSED")
    print(f"  {name:<44} {value:>17} {baseline or '':>17} {ratio or '':>7}  {target}{verdict}")


def experiment_latency(runs):
    print("\n1. fin-wait2, four cases (hyperfine: mean ± σ)")
    row("", "tcplab", "by hand", "ratio")
    times = hyperfine("1-fin-wait2", {"tcplab fin-wait2": [TCPLAB, "fin-wait2", "-q"],
                                      "baseline-fin-wait2.sh": ["bash", BASELINE]}, runs)
    ours, theirs = times["tcplab fin-wait2"], times["baseline-fin-wait2.sh"]
    ratio = theirs["mean"] / ours["mean"]
    row("tcplab fin-wait2 vs baseline-fin-wait2.sh", spread(ours), spread(theirs), f"{ratio:.1f}x",
        "target >= 10x", ratio >= 10)


def state_reads(runs, sockets):
    print(f"\n2. reading one port's sockets among {sockets:,} (hyperfine: mean ± σ)")
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
        times = hyperfine("2-sockets", commands, runs, warmup=2)
        ours = times["tcplab sockets --port 8080"]
        row(f"({ready[1]} sockets in the namespace)", "time", "", "vs tcplab")
        for name, value in times.items():
            ratio = value["mean"] / ours["mean"]
            # A tie is a tie: within one standard deviation of either.
            tie = abs(value["mean"] - ours["mean"]) <= max(value["stddev"], ours["stddev"])
            goal = {"ss -tan sport = :8080": 1, "netstat -tan | grep :8080": 10}.get(name)
            target = f"target >= {goal}x" if goal else ""
            met = None if goal is None else (ratio >= goal or (goal == 1 and tie))
            shown = "" if value is ours else (f"{ratio:.2f}x" + (" (tie)" if tie else ""))
            row(name, spread(value), "", shown, target, met)
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
    print("\n4. tcplab all (every experiment but the slow ones; hyperfine: mean ± σ)")
    took = hyperfine("4-all", {"tcplab all": [TCPLAB, "all", "-q"]}, runs)["tcplab all"]
    row("tcplab all", spread(took), "", "", "target < 2000 ms", took["mean"] < 2.0)


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


def json_run(command):
    """tcplab's --json document of one run of `command`."""
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def sampled_run(command, peaks, every=0.05):
    """One run of `command` (ending in --json), sampling its qemu children's
    peak RSS into `peaks`; returns its document. The document goes to a
    file: it can be larger than a pipe holds while this loop samples."""
    with tempfile.TemporaryFile(mode="w+") as document:
        run = subprocess.Popen(command, stdout=document, text=True)
        while run.poll() is None:
            qemu_peaks(run.pid, peaks)
            time.sleep(every)
        if run.returncode != 0:
            raise SystemExit(f"{shlex.join(command)} exited {run.returncode}")
        document.seek(0)
        return json.loads(document.read())


def boots(runs):
    print("\n6a. boot to both agents ready: cold against restored (Debian's 6.1)")
    warm = [TCPLAB, "fin-wait2", "--lab", "microvm", "-q"]
    subprocess.run(warm, check=True, stdout=subprocess.DEVNULL)  # save the guests
    cold_boots, warm_boots = [], []
    for _ in range(runs):  # interleaved, so both see the same machine
        cold_boots.append(json_run(warm + ["--cold", "--json"])["lab"]["boot_ms"] / 1000)
        document = json_run(warm + ["--json"])
        if document["lab"].get("boot") != "restored":
            raise SystemExit(f"the warm run booted {document['lab'].get('boot')}")
        warm_boots.append(document["lab"]["boot_ms"] / 1000)
    cold, warm_boot = statistics.median(cold_boots), statistics.median(warm_boots)
    row("boot to both agents ready, restored (median)", ms(warm_boot), ms(cold),
        f"{cold / warm_boot:.0f}x", "target <= 500 ms", warm_boot <= 0.5)
    walls = hyperfine("6a-microvm-restored", {"restored": warm, "cold": warm + ["--cold"]}, runs)
    row("tcplab fin-wait2 --lab microvm, wall (hyperfine)", spread(walls["restored"]),
        spread(walls["cold"]), f"{walls['cold']['mean'] / walls['restored']['mean']:.1f}x",
        "target <= 2500 ms", walls["restored"]["mean"] <= 2.5)
    total, count = snapshot_bytes()
    if count:
        row("disk per saved guest", f"{total / count / 2**20:.0f} MiB", "", "",
            f"{count} saved guests, {total / 2**20:.0f} MiB in all")
    print("  (baseline column: the same run with --cold, in the same run)")


def microvm(runs):
    print("\n6. the microvm lab: two qemu VMs, Debian's 6.1 cloud kernel")
    command = [TCPLAB, "fin-wait2", "--lab", "microvm", "--json", "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # warm the cache
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "tcplab", "initramfs")
    before = sorted(os.listdir(cache))
    walls = hyperfine("6-microvm", {"microvm": command[:-2] + ["-q"],
                                    "netns": [TCPLAB, "fin-wait2", "-q"]}, runs)
    boots, cases, peaks, kernel, accel = [], [], {}, "", ""
    for _ in range(runs):
        document = sampled_run(command, peaks)
        boots.append(document["lab"]["boot_ms"] / 1000)
        cases.append(sum(case["duration_ms"] for case in document["cases"]) / 1000)
        kernel, accel = document["lab"]["kernel"], document["lab"]["accelerator"]
    wall, floor = walls["microvm"], walls["netns"]
    print(f"  (Linux {kernel} in the VMs, accelerator {accel}; this machine runs {os.uname().release})")
    row("tcplab fin-wait2 --lab microvm, wall", spread(wall), spread(floor),
        f"{wall['mean'] / floor['mean']:.0f}x", "target <= 8000 ms", wall["mean"] <= 8.0)
    row("  boot to both agents ready (median)", ms(statistics.median(boots)))
    row("  the four cases themselves (median)", ms(statistics.median(cases)))
    peak = max(peaks.values()) / 1024 if peaks else 0
    row("peak RSS of one qemu", f"{peak:.0f} MiB", "", "", "target <= 256 MiB", 0 < peak <= 256)
    built = sorted(os.listdir(cache)) != before
    row("second run with a warm cache builds nothing", "no" if built else "yes", "", "",
        "target: yes", not built)
    print("  (netns column: tcplab fin-wait2 on the netns lab in the same run, the floor)")


def matrix(runs):
    print("\n7. tcplab matrix fin-wait2 --kernel 5.10 --kernel 6.1 --kernel 6.12")
    kernels = ["--kernel", "5.10", "--kernel", "6.1", "--kernel", "6.12"]
    command = [TCPLAB, "matrix", "fin-wait2", *kernels, "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # warm the cache
    walls = hyperfine("7-matrix", {"tcplab's choice": command,
                                   "--jobs 1": command + ["--jobs", "1"]}, runs, warmup=0)
    document = json_run(command + ["--json"])  # each kernel's time, warm
    wall, one_at_a_time = walls["tcplab's choice"], walls["--jobs 1"]
    row(f"wall, {document['concurrency']} kernels at a time (tcplab's choice)", spread(wall),
        spread(one_at_a_time), f"{one_at_a_time['mean'] / wall['mean']:.1f}x",
        "target <= 30000 ms", wall["mean"] <= 30.0)
    for kernel in document["kernels"]:
        row(f"  kernel {kernel['name']} (boot, four cases, shutdown)", ms(kernel["duration_ms"] / 1000))
    print("  (baseline column: the same matrix with --jobs 1, one kernel at a time;")
    print("   each kernel's time from one more run's --json)")


def matrix_all(runs):
    print("\n8. tcplab matrix fin-wait2 --kernel all --kernel host")
    every = [TCPLAB, "matrix", "fin-wait2", "--kernel", "all", "--kernel", "host", "-q"]
    three = [TCPLAB, "matrix", "fin-wait2", "--kernel", "5.10", "--kernel", "6.1",
             "--kernel", "6.12", "-q"]
    peaks = {}
    subprocess.run(every, check=True, stdout=subprocess.DEVNULL)  # warm the cache
    document = sampled_run(every + ["--json"], peaks, every=0.1)
    walls = hyperfine("8-matrix-all", {"all lines and host": every, "5.10, 6.1, 6.12": three},
                      runs, warmup=0)
    wall, three_lines = walls["all lines and host"], walls["5.10, 6.1, 6.12"]
    row(f"wall, {len(document['kernels'])} columns", spread(wall), spread(three_lines),
        f"{wall['mean'] / three_lines['mean']:.1f}x", "target <= 30000 ms (warm)",
        wall["mean"] <= 30.0)
    for kernel in document["kernels"]:
        name = kernel["build"] or kernel["name"]
        row(f"  {name} (boot, four cases, shutdown)", ms(kernel["duration_ms"] / 1000))
    peak = max(peaks.values()) / 1024 if peaks else 0
    row(f"peak RSS of the largest of {len(peaks)} qemu", f"{peak:.0f} MiB", "", "",
        "target <= 256 MiB", 0 < peak <= 256)
    print("  (baseline column: fin-wait2 over 5.10, 6.1 and 6.12 alone, in the same run;")
    print("   each kernel's time and the peaks from one more warm run, sampled)")


def main():
    global EXPORTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7,
                        help="hyperfine runs per command, and runs per median (default 7)")
    parser.add_argument("--export-dir", default=EXPORTS,
                        help="where hyperfine's JSON and Markdown exports go (default target/bench)")
    parser.add_argument("--sockets", type=int, default=100_000, help="sockets for benchmark 2")
    parser.add_argument("--vms-only", action="store_true",
                        help="only the microvm lab's and the matrix's benchmarks (6 to 8)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the baseline and the socket crowd need namespaces")
    if not shutil.which("hyperfine"):
        raise SystemExit("hyperfine is not installed: apt-get install hyperfine")
    EXPORTS = os.path.abspath(args.export_dir)
    os.makedirs(EXPORTS, exist_ok=True)
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

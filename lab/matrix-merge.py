#!/usr/bin/env python3
"""Merges the `tcplab matrix --json` documents of several CI jobs (one kernel
per job) into one table: a row per experiment case, a column per kernel, the
rows where kernels disagree marked with ≠ and listed below.

    python3 lab/matrix-merge.py matrix-*.json            # Markdown, to stdout
    python3 lab/matrix-merge.py --check matrix-*.json    # exit 1 if any kernel failed

The workflow .github/workflows/kernel-matrix.yml runs one kernel per job and
this script in a last job, writing the table into the run's summary page.
Standard library only, so the last job needs nothing but Python.
"""
import argparse
import json
import sys


def case_label(case):
    """`old 0 on :: new 1 on 0.0.0.0 v6only=1`, as tcplab's own table says it."""
    def on(key):
        return f" on {case[key]}" if case.get(key) else ""
    label = (f"old {int(case['old_reuseaddr'])}{on('old_bind')} "
             f"new {int(case['new_reuseaddr'])}{on('new_bind')}")
    if case.get("old_v6only") is not None:
        label += f" old v6only={int(case['old_v6only'])}"
    if case.get("new_v6only") is not None:
        label += f" v6only={int(case['new_v6only'])}"
    if case.get("old_state"):
        held = case.get("also_held") or []
        more = f", {len(held)} more held" if held else ""
        label += f" ({case['old_state']}{more})"
    if case.get("old_reuseport") or case.get("new_reuseport"):
        label += f" (reuseport {int(case['old_reuseport'])}/{int(case['new_reuseport'])})"
    if case.get("linger2_s") is not None:
        label += f" linger2 {case['linger2_s']} s"
    return label


def seen(case):
    verdict = "pass" if case["passed"] else "FAIL"
    if case.get("old_state"):
        # A live old socket: nothing was killed, the bind is all there is.
        return f"{case['bind']} {verdict}"
    state = case["state_after_kill"] or "no socket"
    return f"{state} {case['bind']} {verdict}"


def load(paths):
    """Every kernel of every document, in the order given."""
    kernels = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                document = json.load(file)
        except (OSError, ValueError) as error:
            sys.exit(f"matrix-merge: {path}: {error}")
        if not isinstance(document, dict) or "kernels" not in document:
            sys.exit(f"matrix-merge: {path}: not a `tcplab matrix --json` document")
        kernels.extend(document["kernels"])
    return kernels


def rows(kernels):
    """(experiment, case number, label, one cell per kernel)."""
    experiments = []
    for kernel in kernels:
        for result in kernel["results"]:
            if result["experiment"] not in experiments:
                experiments.append(result["experiment"])
    table = []
    for name in experiments:
        runs = [next((r for r in k["results"] if r["experiment"] == name), None)
                for k in kernels]
        count = max((len(r["cases"]) for r in runs if r), default=0)
        for index in range(count):
            cells, label = [], None
            for run in runs:
                if run is None:
                    cells.append("not run")
                elif run.get("skipped"):
                    cells.append("skipped")
                elif index < len(run["cases"]):
                    case = run["cases"][index]
                    label = label or case_label(case)
                    cells.append(seen(case))
                else:
                    cells.append("not run")
            table.append((name, index + 1, label or "", cells))
    return table


def markdown(kernels):
    header = ["experiment", "case"] + [
        f"{k['name']} ({k.get('uname') or k['lab']})" for k in kernels]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    differences = []
    for name, number, label, cells in rows(kernels):
        # A cell's verdict aside, do the kernels see the same thing?
        # (A kernel that skipped the experiment is listed once, below.)
        observed = {" ".join(c.split()[:-1]) if c.endswith(("pass", "FAIL")) else c
                    for c in cells if c != "skipped"}
        mark = " ≠" if len(observed) > 1 else ""
        if mark:
            differences.append(f"- {name} case {number} ({label}): " + "; ".join(
                f"{k['name']}: {c}" for k, c in zip(kernels, cells)))
        lines.append("| " + " | ".join([name + mark, label] + cells) + " |")
    lines.append("")
    if differences:
        lines.append("Where the kernels differ (≠):")
        lines.extend(differences)
    else:
        lines.append("The kernels agree on every case they ran.")
    for kernel in kernels:
        for result in kernel["results"]:
            if result.get("skipped"):
                lines.append(f"- {result['experiment']} skipped on {kernel['name']}: "
                             f"{result['skipped']}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("documents", nargs="+", help="`tcplab matrix --json` outputs")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when an expectation failed on any kernel")
    args = parser.parse_args()
    kernels = load(args.documents)
    sys.stdout.write(markdown(kernels))
    failed = [k["name"] for k in kernels
              if not all(r["passed"] for r in k["results"])]
    if failed:
        print(f"\nFAIL: an expectation failed on {', '.join(failed)}")
        if args.check:
            sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Merges the --json files of several bench_kernels runs: one line per (scheme, shape, path,
threads) with each run's time, and the spread between runs (max/min - 1).

A run's time for a line is bench_kernels' estimate: the median over the calls that no other work
preempted when there were enough of them ('c'), else the minimum ('m'): on a machine shared with
other work the median of all calls measures the other work, the minimum the kernel.

    python3 bench/merge_runs.py run1.json run2.json [...] [--threads N] [--grep TEXT]
"""
import argparse
import json
import signal


def estimate(x):
    if x is None:
        return None
    return x["time_us_est"], ("c" if x.get("time_us", "").startswith("median") else "m")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, help="only lines with this thread count")
    ap.add_argument("--grep", help="only lines whose scheme/shape/path contains this")
    a = ap.parse_args()
    runs = [json.load(open(f)) for f in a.files]
    for k, r in enumerate(runs):
        bw = ", ".join("%s %d thr %.1f" % (b.get("when", ""), b["threads"], b["read_gbs"]) for b in r["bandwidth"])
        print("run %d: read GB/s %s  (load %s)" % (k + 1, bw, r["machine"].get("loadavg_start", "?")))
    rows = {}
    order = []
    for k, r in enumerate(runs):
        for x in r["results"]:
            key = (x["scheme"], x["shape"], x["path"], x["threads"])
            if key not in rows:
                rows[key] = [None] * len(runs)
                order.append(key)
            rows[key][k] = x
    print("%-16s %-11s %-28s %3s  %s  %7s %7s" % ("scheme", "shape", "path", "thr",
          "  ".join("%11s" % ("run %d us" % (k + 1)) for k in range(len(runs))), "spread", "GB/s"))
    for key in order:
        if a.threads and key[3] != a.threads:
            continue
        if a.grep and a.grep not in " ".join(map(str, key)):
            continue
        xs = rows[key]
        es = [estimate(x) for x in xs]
        ts = [e[0] for e in es if e]
        spread = (max(ts) / min(ts) - 1.0) * 100.0 if ts else float("nan")
        nbytes = next((x["weight_bytes"] for x in xs if x and x.get("weight_bytes")), None)
        gbs = nbytes / min(ts) * 1e-3 if nbytes and ts else float("nan")
        cells = "  ".join("%10.1f%s" % e if e else "%11s" % "-" for e in es)
        print("%-16s %-11s %-28s %3d  %s  %6.1f%% %7.2f" % (key + (cells, spread, gbs)))


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    main()

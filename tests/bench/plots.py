#!/usr/bin/env python3
"""Throughput, CPU per GB and small-object latency, direct against through
the gateway, by SSE mode and object size: run with kgw-bench, kept as
JSON, drawn as SVG next to docs/performance.md.

One command runs the matrix and draws the plots (about 5 minutes):

    cargo build --release -p kms-gateway -p kgw-bench
    tests/.venv/bin/python tests/bench/plots.py

`--plot-only` redraws from the kept results (docs/perf/results.json).
matplotlib is installed into the running Python when it is missing.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from conftest import UP_ACCESS, UP_SECRET, Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "perf"
RESULTS = OUT / "results.json"
BENCH = Path(os.environ.get("KMS_GATEWAY_BIN", ROOT / "target/release/kms-gateway")).with_name("kgw-bench")
MODES = ["sse-kms", "sse-s3", "sse-c"]
# (label, size, clients): throughput at 4 clients, small objects at 1
# client (latency) and 32 (rate).
CASES = [("64MiB", "64MiB", 4), ("1MiB", "1MiB", 4), ("4KiB x32", "4KiB", 32), ("4KiB x1", "4KiB", 1)]


def run_case(store, mode, size, clients, duration):
    out = subprocess.run(
        [str(BENCH), "--direct", store.endpoint, "--direct-access-key", UP_ACCESS, "--direct-secret-key", UP_SECRET,
         "--spawn-gateway", "--duration", duration, "--concurrency", str(clients), "--sizes", size,
         "--mix", "put:1,get:1", "--sse", mode, "--unsigned-payload", "--prefill", "4", "--json"],
        capture_output=True, text=True, timeout=900, check=True)
    runs = json.loads(out.stdout[out.stdout.index("\n[\n") + 1:])
    return {r["label"]: r for r in runs}


def run_matrix(duration):
    store = Store()
    results = []
    try:
        for label, size, clients in CASES:
            for mode in MODES:
                print(f"{label} {mode} ...", flush=True)
                r = run_case(store, mode, size, clients, duration)
                results.append({"case": label, "size": size, "clients": clients, "mode": mode, **r})
    finally:
        store.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def pyplot():
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "kms-gateway"  # stable ids: diffs show real changes
    import matplotlib.pyplot as plt

    return plt


def grouped_bars(plt, results, cases, value, ylabel, title, path, direct=True):
    fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 3.6))
    for ax, case in zip(axes, cases):
        rows = [r for r in results if r["case"] == case]
        xs = range(len(rows))
        if direct:
            ax.bar([x - 0.2 for x in xs], [value(r["direct"]) for r in rows], 0.4, label="direct")
            ax.bar([x + 0.2 for x in xs], [value(r["gateway"]) for r in rows], 0.4, label="gateway")
        else:
            ax.bar(list(xs), [value(r["gateway"]) for r in rows], 0.5, label="gateway", color="C1")
        ax.set_xticks(list(xs), [r["mode"] for r in rows])
        ax.set_title(case)
        ax.set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def latency_cdf(plt, results, path):
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    rows = [r for r in results if r["case"] == "4KiB x1"]
    # One direct line (the store does no SSE), one gateway line per mode.
    lines = [(rows[0]["direct"], ":", "direct")] + [(r["gateway"], "-", f"gateway {r['mode']}") for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, op in zip(axes, ["PUT", "GET"]):
        for run, style, label in lines:
            cdf = next(o for o in run["ops"] if o["op"] == op)["cdf"]
            ax.plot([m for _, m in cdf], [p for p, _ in cdf], style, label=label)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency, ms (log)")
        ax.set_title(f"4 KiB {op}, one client")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("percentile")
    axes[1].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def plot():
    plt = pyplot()
    results = json.loads(RESULTS.read_text())
    big = ["64MiB", "1MiB"]
    grouped_bars(plt, results, big, lambda r: r["mb_per_s"], "MB/s", "Throughput, PUT:GET 1:1, 4 clients",
                 OUT / "throughput.svg")
    grouped_bars(plt, results, big, lambda r: r["cpu_seconds_per_gb"], "gateway CPU-s per GB",
                 "Gateway CPU per GB moved", OUT / "cpu_per_gb.svg", direct=False)
    grouped_bars(plt, results, ["4KiB x32", "4KiB x1"], lambda r: r["ops_per_s"], "ops/s",
                 "4 KiB objects, PUT:GET 1:1", OUT / "small_ops.svg")
    latency_cdf(plt, results, OUT / "latency_cdf.svg")
    print(f"plots in {OUT.relative_to(ROOT)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", default="8s")
    ap.add_argument("--plot-only", action="store_true")
    a = ap.parse_args()
    if not a.plot_only:
        run_matrix(a.duration)
    plot()


if __name__ == "__main__":
    main()

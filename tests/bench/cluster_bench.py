#!/usr/bin/env python3
"""Cluster mode against a single node: 4 KiB PUT/GET latency (one client)
and throughput (32 clients), the same upstream (`kms-gateway store`), the
same run. kgw-bench drives each gateway and the store directly.

Build first: cargo build --release -p kms-gateway -p kgw-bench
Usage: KMS_GATEWAY_BIN=target/release/kms-gateway tests/.venv/bin/python tests/bench/cluster_bench.py [--duration 20s]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from conftest import ACCESS, SECRET, UP_ACCESS, UP_SECRET, Gateway, Store  # noqa: E402

BENCH = Path(os.environ.get("KMS_GATEWAY_BIN", "target/release/kms-gateway")).with_name("kgw-bench")


def bench(g, store, concurrency, duration):
    out = subprocess.run(
        [str(BENCH), "--endpoint", g.endpoint, "--access-key", ACCESS, "--secret-key", SECRET,
         "--direct", store.endpoint, "--direct-access-key", UP_ACCESS, "--direct-secret-key", UP_SECRET,
         "--gateway-pid", str(g.proc.pid), "--duration", duration, "--concurrency", str(concurrency),
         "--sizes", "4KiB", "--mix", "put:50,get:50", "--sse", "sse-kms", "--json"],
        capture_output=True, text=True, timeout=600, check=True)
    runs = json.loads(out.stdout[out.stdout.index("\n[\n") + 1:])
    return {r["label"]: r for r in runs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", default="20s")
    a = ap.parse_args()
    store = Store()
    key_file = Path(tempfile.mkdtemp()) / "master.key"
    key_file.write_bytes(os.urandom(32))
    single = Gateway(upstream=store, extra_args=["--audit-log", "off"])
    cluster = [Gateway(upstream=store, extra_args=["--audit-log", "off", "--state", "upstream",
                                                   "--kms-master-key-file", str(key_file)]) for _ in range(2)]
    try:
        print("| | direct p50 PUT / GET | single node p50 PUT / GET | cluster replica p50 PUT / GET |")
        print("|---|---|---|---|")
        rows = {}
        for conc in (1, 32):
            s = bench(single, store, conc, a.duration)
            c = bench(cluster[0], store, conc, a.duration)
            rows[conc] = (s, c)

            def p50(run, op):
                return next(o for o in run["ops"] if o["op"] == op)["p50_ms"]

            print(f"| {conc} client(s), ms | {p50(s['direct'], 'PUT'):.2f} / {p50(s['direct'], 'GET'):.2f} "
                  f"| {p50(s['gateway'], 'PUT'):.2f} / {p50(s['gateway'], 'GET'):.2f} "
                  f"| {p50(c['gateway'], 'PUT'):.2f} / {p50(c['gateway'], 'GET'):.2f} |")
        print()
        print("| 32 clients | direct ops/s | single node ops/s | cluster replica ops/s |")
        print("|---|---|---|---|")
        s, c = rows[32]
        print(f"| 4 KiB PUT/GET 50/50 | {s['direct']['ops_per_s']:.0f} | {s['gateway']['ops_per_s']:.0f} "
              f"| {c['gateway']['ops_per_s']:.0f} |")
    finally:
        single.close()
        for g in cluster:
            g.close()
        store.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""SSE-KMS with the vault backend: 4 KiB PUTs and GETs through the gateway
against a real OpenBao (raft storage, as the tests use), with the data-key
cache and bucket keys on, and with the cache off. Reports objects/s and
Vault calls per object (from the gateway's own kms_calls metric).

Build first: cargo build --release --bin kms-gateway
Usage: KMS_GATEWAY_BIN=target/release/kms-gateway python tests/bench/vault_bench.py [--objects 2000] [--threads 8]
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from conftest import Bao, Gateway, vault_config  # noqa: E402


def vault_calls(g):
    text = requests.get(f"{g.endpoint}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kgw_kms_calls_total{") and 'backend="vault"' in line and 'op="health"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(bao, label, cfg, n, threads):
    g = Gateway(extra_args=["--kms-not-configured", "--kms-probe-interval-seconds", "0", "--audit-log", "off"])
    try:
        s, r = g.admin("POST", "reconfigure", cfg)
        assert s == 200, r
        c = g.client(max_pool_connections=threads * 2)
        c.create_bucket(Bucket="bench")
        body = b"x" * 4096
        # Warm-up: connections, the bucket key, the metadata cache.
        for i in range(threads):
            c.put_object(Bucket="bench", Key=f"warm{i}", Body=body, ServerSideEncryption="aws:kms")
        before = vault_calls(g)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda i: c.put_object(Bucket="bench", Key=f"o{i}", Body=body, ServerSideEncryption="aws:kms"), range(n)))
        put_s = time.perf_counter() - t0
        mid = vault_calls(g)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda i: c.get_object(Bucket="bench", Key=f"o{i}")["Body"].read(), range(n)))
        get1_s = time.perf_counter() - t0
        mid2 = vault_calls(g)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda i: c.get_object(Bucket="bench", Key=f"o{i}")["Body"].read(), range(n)))
        get2_s = time.perf_counter() - t0
        after = vault_calls(g)
        print(f"{label:<26} PUT {n / put_s:7.0f} obj/s  {(mid - before) / n:5.3f} Vault calls/PUT | "
              f"GET {n / get1_s:7.0f} obj/s  {(mid2 - mid) / n:5.3f} calls/GET | "
              f"repeat GET {n / get2_s:7.0f} obj/s  {(after - mid2) / n:5.3f} calls/GET")
    finally:
        g.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    bao = Bao()
    try:
        run(bao, "cache + bucket keys", vault_config(bao, default_key_id="bench-key"), a.objects, a.threads)
        run(bao, "cache, no bucket keys", vault_config(bao, default_key_id="bench-key", bucket_keys=False), a.objects, a.threads)
        run(bao, "cache off", vault_config(bao, default_key_id="bench-key", enable_cache=False), a.objects, a.threads)
    finally:
        bao.close()


if __name__ == "__main__":
    main()

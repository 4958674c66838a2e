#!/usr/bin/env python3
"""RustFS encrypting with its own SSE-KMS versus the gateway (SSE-KMS) in
front of a plain RustFS, same client, same run (docs/performance.md,
"Side by side with RustFS's own SSE").

  A: client -> RustFS (its local KMS, SSE-KMS with its default key)
  B: client -> gateway (SSE-KMS, local KMS) -> RustFS (no SSE)

Measures 256 MiB PUT and GET (median of --reps), a 1 GiB multipart
upload and ranged download (8 MiB parts, 8 concurrent), sequential 4 KiB
PUT/GET latency, CPU seconds per GB moved of every server process, and
what a 1-byte range read of the 1 GiB object costs: bytes RustFS read
(its `rchar` in /proc, page cache included) and, for B, ciphertext bytes
the gateway fetched.

Needs the RustFS binary (tests/rustfs/install.sh) and a release gateway:
  cargo build --release --bin kms-gateway
  KGW_RUSTFS_BIN=$(tests/rustfs/install.sh) KMS_GATEWAY_BIN=target/release/kms-gateway \\
    tests/.venv/bin/python tests/bench/rustfs_side_by_side.py [--size-mib 256] [--reps 3]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ACCESS, SECRET, UP_ACCESS, UP_SECRET, Gateway, RustFS  # noqa: E402
from gateway_bench import MIB, client, p50_p99_ms, proc_cpu, proc_hwm_mib, timed  # noqa: E402


def rchar(pid):
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def metric(endpoint, name):
    import urllib.request

    text = urllib.request.urlopen(f"{endpoint}/metrics").read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


class Setup:
    """One side: the endpoint the client talks to and the server processes
    whose CPU counts."""

    def __init__(self, label, c, sse, pids, rustfs, gateway=None):
        self.label, self.c, self.sse, self.pids, self.rustfs, self.gateway = label, c, sse, pids, rustfs, gateway

    def cpu(self):
        return {name: proc_cpu(pid) for name, pid in self.pids.items()}


def latency(s, n):
    body = os.urandom(4096)
    out = {}
    for op, fn in (("PUT", lambda: s.c.put_object(Bucket="bench", Key="small", Body=body, **s.sse)),
                   ("GET", lambda: s.c.get_object(Bucket="bench", Key="small")["Body"].read())):
        out[op] = p50_p99_ms(fn, n)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--multipart-mib", type=int, default=1024)
    ap.add_argument("--small-ops", type=int, default=200)
    a = ap.parse_args()
    size = a.size_mib * MIB

    own = RustFS(kms=True)
    own.create_key("rustfs-master")
    plain = RustFS()
    gw = Gateway(upstream=plain, upstream_creds=(UP_ACCESS, UP_SECRET))
    sides = [
        Setup("RustFS own SSE-KMS", client(own.endpoint, UP_ACCESS, UP_SECRET), {"ServerSideEncryption": "aws:kms"},
              {"rustfs": own.proc.pid}, own),
        Setup("gateway SSE-KMS + plain RustFS", client(gw.endpoint, ACCESS, SECRET), {"ServerSideEncryption": "aws:kms"},
              {"gateway": gw.proc.pid, "rustfs": plain.proc.pid}, plain, gw),
    ]
    work = Path(tempfile.mkdtemp())
    src = work / "src.bin"
    with open(src, "wb") as f:
        for _ in range(a.size_mib):
            f.write(os.urandom(MIB))
    big = work / "big.bin"
    with open(big, "wb") as f:
        for _ in range(a.multipart_mib):
            f.write(os.urandom(MIB))
    from boto3.s3.transfer import TransferConfig

    tc = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=8)
    results = {}
    try:
        for s in sides:
            s.c.create_bucket(Bucket="bench")
            r = results[s.label] = {}

            def put(key):
                with open(src, "rb") as f:
                    s.c.put_object(Bucket="bench", Key=key, Body=f, ContentLength=size, **s.sse)

            def get(key):
                n = sum(len(chunk) for chunk in s.c.get_object(Bucket="bench", Key=key)["Body"].iter_chunks(MIB))
                assert n == size

            puts, gets = [], []
            c0 = s.cpu()
            for i in range(a.reps):
                puts.append(timed(lambda: put(f"o{i}"), size))
            c1 = s.cpu()
            for i in range(a.reps):
                gets.append(timed(lambda: get(f"o{i}"), size))
            c2 = s.cpu()
            gb = a.reps * size / 1e9
            r["put"], r["get"] = sorted(puts)[len(puts) // 2], sorted(gets)[len(gets) // 2]
            r["cpu_put"] = {k: (c1[k] - c0[k]) / gb for k in c0}
            r["cpu_get"] = {k: (c2[k] - c1[k]) / gb for k in c0}

            t = time.perf_counter()
            s.c.upload_file(str(big), "bench", "mp", ExtraArgs=s.sse, Config=tc)
            r["mp_up"] = big.stat().st_size / (time.perf_counter() - t) / 1e6
            out = work / "out.bin"
            t = time.perf_counter()
            s.c.download_file("bench", "mp", str(out), Config=tc)
            r["mp_down"] = big.stat().st_size / (time.perf_counter() - t) / 1e6
            assert out.stat().st_size == big.stat().st_size
            out.unlink()

            worst_read, worst_fetch = 0, 0
            for off in [0, big.stat().st_size // 2 + 12345, big.stat().st_size - 1]:
                b0 = rchar(s.rustfs.proc.pid)
                f0 = metric(s.gateway.endpoint, "kgw_upstream_ciphertext_bytes_total") if s.gateway else 0
                got = s.c.get_object(Bucket="bench", Key="mp", Range=f"bytes={off}-{off}")["Body"].read()
                assert len(got) == 1
                worst_read = max(worst_read, rchar(s.rustfs.proc.pid) - b0)
                if s.gateway:
                    worst_fetch = max(worst_fetch, metric(s.gateway.endpoint, "kgw_upstream_ciphertext_bytes_total") - f0)
            r["range_read"], r["range_fetch"] = worst_read, worst_fetch
            r["small"] = latency(s, a.small_ops)
            r["hwm"] = {k: proc_hwm_mib(pid) for k, pid in s.pids.items()}
    finally:
        gw.stop()
        own.stop()
        plain.stop()

    print(f"\n{a.size_mib} MiB single-request objects, median of {a.reps}, MB/s; CPU s per GB moved\n")
    print("| setup | PUT MB/s | GET MB/s | CPU s/GB PUT | CPU s/GB GET |")
    print("|---|---|---|---|---|")
    for label, r in results.items():
        cp = " + ".join(f"{k} {v:.2f}" for k, v in r["cpu_put"].items())
        cg = " + ".join(f"{k} {v:.2f}" for k, v in r["cpu_get"].items())
        print(f"| {label} | {r['put']:.0f} | {r['get']:.0f} | {cp} | {cg} |")
    print(f"\n{a.multipart_mib} MiB multipart (8 MiB parts, 8 concurrent), MB/s\n")
    print("| setup | upload | ranged download |")
    print("|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['mp_up']:.0f} | {r['mp_down']:.0f} |")
    print(f"\n4 KiB objects, sequential, {a.small_ops} ops (boto3), ms\n")
    print("| setup | PUT p50 | PUT p99 | GET p50 | GET p99 |")
    print("|---|---|---|---|---|")
    for label, r in results.items():
        (p50, p99), (g50, g99) = r["small"]["PUT"], r["small"]["GET"]
        print(f"| {label} | {p50:.2f} | {p99:.2f} | {g50:.2f} | {g99:.2f} |")
    print(f"\n1-byte range read of the {a.multipart_mib} MiB object (worst of 3 offsets)\n")
    print("| setup | bytes RustFS read (rchar) | ciphertext bytes the gateway fetched |")
    print("|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['range_read']} | {int(r['range_fetch']) or '-'} |")
    print("\npeak RSS (VmHWM), MiB: " + "; ".join(
        f"{label}: " + ", ".join(f"{k} {v:.0f}" for k, v in r["hwm"].items()) for label, r in results.items()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Gateway throughput, CPU and memory: 256 MiB PUT and GET through the
gateway vs straight to the same upstream, same client, same run.

The upstream is the embedded store served over HTTP on its own
(`kms-gateway store`). "direct" = client → upstream; "gateway" =
client → gateway → upstream. Also counts the ciphertext fetched for 1-byte ranges of a 1 GiB
object. Build first: cargo build --release --bin kms-gateway
Usage: KMS_GATEWAY_BIN=target/release/kms-gateway python tests/bench/gateway_bench.py [--size-mib 256] [--reps 3] [--small-only]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from conftest import ACCESS, SECRET, Gateway, Store, s3_client  # noqa: E402

MIB = 1 << 20


def PlainStore():
    """The embedded store served over HTTP without the gateway (`kms-gateway store`)."""
    return Store(root=tempfile.mkdtemp(), creds=(ACCESS, SECRET))


def proc_cpu(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def client(endpoint, ak, sk):
    return s3_client(endpoint, ak, sk, request_checksum_calculation="when_required", response_checksum_validation="when_required")


def timed(fn, size):
    t = time.perf_counter()
    fn()
    return size / (time.perf_counter() - t) / 1e6


def p50_p99_ms(fn, n, warmup=20):
    """Call `fn` sequentially `n` times after `warmup` calls: p50 and p99 in ms."""
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(n):
        a = time.perf_counter()
        fn()
        t.append((time.perf_counter() - a) * 1000)
    t.sort()
    return t[len(t) // 2], t[int(len(t) * 0.99)]


def small_latency(direct, via, n=300):
    """Sequential 4 KiB PUT, GET and HEAD: p50 and p99 in ms, direct and
    through the gateway (SSE-KMS), same client."""
    body = os.urandom(4096)

    def lat(fn):
        return p50_p99_ms(fn, n)

    ops = {
        "PUT": (lambda: direct.put_object(Bucket="bench", Key="s", Body=body),
                lambda: via.put_object(Bucket="bench", Key="s-gw", Body=body, ServerSideEncryption="aws:kms")),
        "GET": (lambda: direct.get_object(Bucket="bench", Key="s")["Body"].read(),
                lambda: via.get_object(Bucket="bench", Key="s-gw")["Body"].read()),
        "HEAD": (lambda: direct.head_object(Bucket="bench", Key="s"), lambda: via.head_object(Bucket="bench", Key="s-gw")),
    }
    print(f"\n4 KiB objects, sequential, {n} ops each (boto3), ms\n")
    print("| op | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 |")
    print("|---|---|---|---|---|---|")
    for name, (d, g) in ops.items():
        (d50, d99), (g50, g99) = lat(d), lat(g)
        print(f"| {name} | {d50:.2f} | {g50:.2f} | {g50 - d50:.2f} | {d99:.2f} | {g99:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--range-object-mib", type=int, default=1024)
    ap.add_argument("--small-only", action="store_true", help="only the 4 KiB latency table")
    a = ap.parse_args()
    size = a.size_mib * MIB

    up = PlainStore()
    gw = Gateway(upstream=up, upstream_creds=(ACCESS, SECRET))
    direct, via = client(up.endpoint, ACCESS, SECRET), client(gw.endpoint, ACCESS, SECRET)
    direct.create_bucket(Bucket="bench")
    small_latency(direct, via)
    if a.small_only:
        gw.close()
        up.stop()
        return

    src = Path(tempfile.mkdtemp()) / "src.bin"
    with open(src, "wb") as f:
        block = os.urandom(MIB)
        for _ in range(a.size_mib):
            f.write(block)

    def put(c, key, **kw):
        with open(src, "rb") as f:
            c.put_object(Bucket="bench", Key=key, Body=f, ContentLength=size, **kw)

    def get(c, key, **kw):
        body = c.get_object(Bucket="bench", Key=key, **kw)["Body"]
        n = 0
        for chunk in body.iter_chunks(1 << 20):
            n += len(chunk)
        assert n == size

    rows = []
    modes = [("SSE-KMS", {"ServerSideEncryption": "aws:kms"}), ("SSE-S3", {"ServerSideEncryption": "AES256"})]
    gw_pid = gw.proc.pid
    for label, kw in modes:
        res = {"put_direct": [], "put_gw": [], "get_direct": [], "get_gw": []}
        cpu_put = cpu_get = 0.0
        for r in range(a.reps):
            res["put_direct"].append(timed(lambda: put(direct, f"d-{r}"), size))
            c0 = proc_cpu(gw_pid)
            res["put_gw"].append(timed(lambda: put(via, f"g-{label}-{r}", **kw), size))
            cpu_put += proc_cpu(gw_pid) - c0
            res["get_direct"].append(timed(lambda: get(direct, f"d-{r}"), size))
            c0 = proc_cpu(gw_pid)
            res["get_gw"].append(timed(lambda: get(via, f"g-{label}-{r}"), size))
            cpu_get += proc_cpu(gw_pid) - c0
        med = {k: sorted(v)[len(v) // 2] for k, v in res.items()}
        gb = a.reps * size / 1e9
        rows.append((label, "PUT", med["put_direct"], med["put_gw"], cpu_put / gb))
        rows.append((label, "GET", med["get_direct"], med["get_gw"], cpu_get / gb))

    print(f"\n{a.size_mib} MiB objects, median of {a.reps}, MB/s (10^6 B/s)\n")
    print("| mode | op | direct MB/s | gateway MB/s | ratio | gateway CPU s/GB |")
    print("|---|---|---|---|---|---|")
    for label, op, d, g, cpu in rows:
        print(f"| {label} | {op} | {d:.0f} | {g:.0f} | {g / d:.2f} | {cpu:.2f} |")
    print(f"\ngateway peak RSS (VmHWM): {proc_hwm_mib(gw_pid):.1f} MiB")

    # Range reads of a large object: ciphertext fetched per 1-byte read.
    import urllib.request

    def metric(name):
        text = urllib.request.urlopen(f"{gw.endpoint}/metrics").read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))

    big = a.range_object_mib * MIB
    big_path = Path(tempfile.mkdtemp()) / "big.bin"
    with open(big_path, "wb") as f, open(src, "rb") as s_:
        block = s_.read()
        for _ in range(big // len(block)):
            f.write(block)

    with open(big_path, "rb") as f:
        via.put_object(Bucket="bench", Key="big", Body=f, ContentLength=big, ServerSideEncryption="aws:kms")
    worst = 0
    for off in [0, 1, big // 2 + 12345, big - 1]:
        b0 = metric("kgw_upstream_ciphertext_bytes_total")
        assert len(via.get_object(Bucket="bench", Key="big", Range=f"bytes={off}-{off}")["Body"].read()) == 1
        worst = max(worst, metric("kgw_upstream_ciphertext_bytes_total") - b0)
    print(f"1-byte range of a {a.range_object_mib} MiB object: at most {worst:.0f} ciphertext bytes fetched (one segment = {MIB + 16})")

    # Re-key in place (SSE-KMS -> SSE-C) of that object: metadata only.
    import base64
    import hashlib

    ck = b"k" * 32
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(ck).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(ck).digest()).decode()}
    enc0, ct0 = metric("kgw_bytes_encrypted_total"), metric("kgw_upstream_ciphertext_bytes_total")
    t = time.perf_counter()
    via.copy_object(Bucket="bench", Key="big", CopySource={"Bucket": "bench", "Key": "big"}, **ssec)
    dt = time.perf_counter() - t
    moved = metric("kgw_bytes_encrypted_total") - enc0 + metric("kgw_upstream_ciphertext_bytes_total") - ct0
    print(f"re-key in place of the {a.range_object_mib} MiB object: {dt * 1000:.0f} ms, payload bytes read or written by the gateway: {moved:.0f}")

    # Multipart: 8 MiB parts, 8 concurrent; ranged multi-stream download.
    from boto3.s3.transfer import TransferConfig

    tc = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=8)
    mp = big_path
    mp_size = mp.stat().st_size
    out = mp.with_suffix(".out")
    rows = []
    for label, c, extra in [("direct", direct, {}), ("gateway SSE-KMS", via, {"ServerSideEncryption": "aws:kms"})]:
        t = time.perf_counter()
        c.upload_file(str(mp), "bench", f"mp-{label}", ExtraArgs=extra, Config=tc)
        up_rate = mp_size / (time.perf_counter() - t) / 1e6
        t = time.perf_counter()
        c.download_file("bench", f"mp-{label}", str(out), Config=tc)
        down_rate = mp_size / (time.perf_counter() - t) / 1e6
        assert out.stat().st_size == mp_size
        rows.append((label, up_rate, down_rate))
    print(f"\n{mp_size >> 20} MiB multipart (8 MiB parts, 8 concurrent), MB/s")
    print("| path | upload | ranged download |")
    print("|---|---|---|")
    for label, u, d in rows:
        print(f"| {label} | {u:.0f} | {d:.0f} |")
    print(f"ratio gateway/direct: upload {rows[1][1] / rows[0][1]:.2f}, download {rows[1][2] / rows[0][2]:.2f}")
    gw.stop()
    up.stop()


if __name__ == "__main__":
    main()

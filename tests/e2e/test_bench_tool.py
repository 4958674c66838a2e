"""The load generator (`kgw-bench`, bench/): a short mixed run against a
gateway and, in the same invocation, straight against its upstream. It
must move data both ways without errors and report what it measured."""

import json
import subprocess

from conftest import ACCESS, ROOT, SECRET, UP_ACCESS, UP_SECRET

BENCH = ROOT / "target" / "debug" / "kgw-bench"


def test_kgw_bench_runs_direct_and_through_the_gateway(moto):
    from conftest import Gateway

    g = Gateway(upstream=moto)
    try:
        out = subprocess.run(
            [str(BENCH), "--endpoint", g.endpoint, "--access-key", ACCESS, "--secret-key", SECRET,
             "--direct", moto.endpoint, "--direct-access-key", UP_ACCESS, "--direct-secret-key", UP_SECRET,
             "--gateway-pid", str(g.proc.pid), "--duration", "2s", "--concurrency", "2", "--sizes", "4KiB:3,256KiB:1",
             "--mix", "put:2,get:2,head:1,list:1", "--sse", "sse-c", "--prefill", "2", "--json"],
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "== gateway/direct: ops/s" in out.stdout, out.stdout
        runs = json.loads(out.stdout[out.stdout.index("\n[\n") + 1:])
        assert [r["label"] for r in runs] == ["direct", "gateway"]
        assert (runs[0]["sse"], runs[1]["sse"]) == ("none", "sse-c")
        for r in runs:
            ops = {o["op"]: o for o in r["ops"]}
            assert set(ops) == {"PUT", "GET", "HEAD", "LIST"}, r
            assert all(o["errors"] == 0 and o["count"] > 0 for o in ops.values()), r
            assert ops["GET"]["mb_per_s"] > 0 and ops["PUT"]["p99_ms"] >= ops["PUT"]["p50_ms"] > 0
            # The latency CDF the plots draw: fixed percentiles, rising.
            cdf = ops["GET"]["cdf"]
            assert [p for p, _ in cdf][:2] == [1.0, 5.0] and cdf[-1][0] == 99.9
            assert all(a[1] <= b[1] for a, b in zip(cdf, cdf[1:])), cdf
            assert dict(cdf)[50.0] == ops["GET"]["p50_ms"]
        gw = runs[1]
        assert gw["cpu_seconds"] > 0 and gw["cpu_seconds_per_gb"] > 0 and gw["peak_rss_mib"] > 1
        assert runs[0]["cpu_seconds"] is None
        # The run's objects are gone from the store (not --keep).
        c = g.client()
        for b in c.list_buckets()["Buckets"]:
            if b["Name"].startswith("kgw-bench-"):
                assert c.list_objects_v2(Bucket=b["Name"]).get("KeyCount", 0) == 0
    finally:
        g.stop()

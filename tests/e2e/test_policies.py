"""WebAssembly policies end to end: upload over the admin API, bind, and
their effect on real clients; hostile components; hot swap under load;
rotation by policy on the local and vault backends."""

import json
import os
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import ROOT, Gateway, ssec

WASM = Path(os.environ.get("KMS_GATEWAY_POLICIES", ROOT / "policies" / "target" / "wasm32-wasip2" / "release"))


def component(name):
    return (WASM / f"{name.replace('-', '_')}.wasm").read_bytes()


def upload(g, name, wasm, ctype="application/wasm"):
    return g.admin("PUT", f"/rustfs/admin/v3/policies/{name}", wasm, content_type=ctype)


def bind(g, hook, policy, bucket=None, prefix=None):
    body = {"hook": hook, "policy": policy}
    if bucket:
        body["bucket"] = bucket
    if prefix:
        body["prefix"] = prefix
    return g.admin("POST", "/rustfs/admin/v3/policies/bind", body)


def unbind(g, hook, bucket=None, prefix=None):
    body = {"hook": hook, **({"bucket": bucket} if bucket else {}), **({"prefix": prefix} if prefix else {})}
    return g.admin("POST", "/rustfs/admin/v3/policies/unbind", body)


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"].get("Message", "")


@pytest.fixture
def pg():
    g = Gateway(extra_args=["--allow-insecure-sse-c", "--policy-rotation-interval-seconds", "0"])
    yield g
    g.stop()


def test_upload_validation(pg):
    g = pg
    s, r = upload(g, "dks", component("default-key-select"))
    assert s == 200 and r["policy"]["hook"] == "key-select" and r["policy"]["world"].startswith("kms-gateway:policy/key-selector@0.2.0")
    assert r["report"]["publish_us"] < 1000
    # Raw JSON spelling of an upload.
    import base64
    s, r = upload(g, "rsk", json.dumps({"wasm_base64": base64.b64encode(component("require-sse-kms")).decode()}), "application/json")
    assert s == 200 and r["policy"]["hook"] == "sse-validate"
    listed = g.admin("GET", "/rustfs/admin/v3/policies")[1]
    assert {p["name"] for p in listed["policies"]} == {"dks", "rsk"}
    got = g.admin("GET", "/rustfs/admin/v3/policies/dks")[1]["policy"]
    assert got["size"] == len(component("default-key-select")) and len(got["sha256"]) == 64
    for body, want in [(b"hello, not wasm", "not a valid component"),
                       (b"\0asm\x01\0\0\0", "not a valid component"),
                       (os.urandom(10 << 20), "not a valid component"),
                       (component("hostile-wrong-version"), "implements no world"),
                       (component("hostile-smuggled-import"), "also imports: kms-gateway:policy/net@0.2.0")]:
        s, r = upload(g, "bad", body)
        assert s == 400 and want in r["message"], r
    # Past the size cap (64 MiB), refused before compiling.
    s, r = upload(g, "big", b"\0" * ((64 << 20) + 1))
    assert s == 413, r
    assert g.admin("GET", "/rustfs/admin/v3/policies/bad")[0] == 404
    assert upload(g, "bind", component("default-key-select"))[0] == 400
    s, r = bind(g, "sse-validate", "dks")
    assert s == 400 and "implements key-select" in r["message"]
    assert bind(g, "key-select", "nope")[0] == 404
    assert bind(g, "key-select", "dks")[0] == 200
    s, r = g.admin("DELETE", "/rustfs/admin/v3/policies/dks")
    assert s == 409
    assert unbind(g, "key-select")[0] == 200
    assert unbind(g, "key-select")[0] == 404
    assert g.admin("DELETE", "/rustfs/admin/v3/policies/dks")[0] == 200
    assert g.admin("GET", "/rustfs/admin/v3/policies/dks")[0] == 404
    s, r = g.admin("POST", "/rustfs/admin/v3/policies/rsk/evaluate", {"request": {
        "operation": "PutObject", "bucket": "finance-q", "key": "k", "requested_mode": "sse-s3"}})
    assert s == 200 and r["result"]["verdict"] == "reject" and "SSE-KMS" in r["result"]["message"], r
    assert r["elapsed_us"] > 0


def test_key_selection_and_validation_with_real_clients(pg):
    g = pg
    c = g.client()
    for k in ["finance-key", "tenant-acme"]:
        assert g.admin("POST", "keys", {"key_id": k})[0] == 200
    for b in ["finance-reports", "tenants", "plain-bucket"]:
        c.create_bucket(Bucket=b)
    upload(g, "dks", component("default-key-select"))
    upload(g, "tenant", component("tenant-prefix"))
    upload(g, "rsk", component("require-sse-kms"))
    assert bind(g, "key-select", "dks")[0] == 200
    assert bind(g, "key-select", "tenant", bucket="tenants")[0] == 200
    # Global binding: finance-* objects land under finance-key without SSE headers.
    c.put_object(Bucket="finance-reports", Key="q3.csv", Body=b"numbers")
    assert c.head_object(Bucket="finance-reports", Key="q3.csv")["SSEKMSKeyId"] == "finance-key"
    assert c.get_object(Bucket="finance-reports", Key="q3.csv")["Body"].read() == b"numbers"
    c.put_object(Bucket="plain-bucket", Key="p", Body=b"x")
    assert "ServerSideEncryption" not in c.head_object(Bucket="plain-bucket", Key="p")
    # The bucket binding is more specific than the global one.
    put = c.put_object(Bucket="tenants", Key="acme/report.txt", Body=b"acme data")
    assert put["SSEKMSKeyId"] == "tenant-acme"
    assert json.loads(__import__("base64").b64decode(put["SSEKMSEncryptionContext"]))["tenant"] == "acme"
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="tenants", Key="globex/x", Body=b"y")
    assert err(e)[0] == "KMS.NotFoundException"
    # Multipart uploads and copies are subject to the same policies.
    mp = c.create_multipart_upload(Bucket="finance-reports", Key="big")
    assert mp["SSEKMSKeyId"] == "finance-key"
    c.abort_multipart_upload(Bucket="finance-reports", Key="big", UploadId=mp["UploadId"])
    c.copy_object(Bucket="finance-reports", Key="copy", CopySource={"Bucket": "plain-bucket", "Key": "p"})
    assert c.head_object(Bucket="finance-reports", Key="copy")["SSEKMSKeyId"] == "finance-key"
    # SSE validation runs first.
    assert bind(g, "sse-validate", "rsk")[0] == 200
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="plain-bucket", Key="c", Body=b"x", **ssec(b"k" * 32))
    assert err(e)[:2] == ("AccessDenied", 403) and "SSE-C is forbidden" in err(e)[2]
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="finance-reports", Key="s3", Body=b"x", ServerSideEncryption="AES256")
    assert err(e)[:2] == ("AccessDenied", 403)
    assert "s3" not in [o["Key"] for o in c.list_objects_v2(Bucket="finance-reports").get("Contents", [])]
    c.put_object(Bucket="finance-reports", Key="kms", Body=b"ok", ServerSideEncryption="aws:kms", SSEKMSKeyId="finance-key")
    metrics = __import__("requests").get(f"{g.endpoint}/metrics", timeout=10).text
    assert 'kgw_policy_calls_total{hook="sse-validate",outcome="reject",policy="rsk"} 2' in metrics
    # Latency per policy: the three calls above, each in the histogram.
    assert 'kgw_policy_call_seconds_count{hook="sse-validate",policy="rsk"} 3' in metrics
    # Bindings and policies survive a restart.
    g.restart()
    c = g.client()
    c.put_object(Bucket="finance-reports", Key="after", Body=b"z", ServerSideEncryption="aws:kms")
    assert c.head_object(Bucket="finance-reports", Key="after")["SSEKMSKeyId"] == "finance-key"
    with pytest.raises(ClientError):
        c.put_object(Bucket="plain-bucket", Key="c2", Body=b"x", **ssec(b"k" * 32))


@pytest.mark.parametrize("guest,why", [("hostile-infinite-loop", "deadline"), ("hostile-memory-hog", "limit: memory cap of"),
                                       ("hostile-panics", "trapped"), ("hostile-huge-output", "limit: answer of")])
def test_hostile_guests_fail_closed(pg, guest, why):
    g = pg
    c = g.client()
    c.create_bucket(Bucket="hostile")
    c.create_bucket(Bucket="healthy")
    # It answers the upload's test call correctly; it misbehaves on real traffic.
    s, r = upload(g, "evil", component(guest))
    assert s == 200, r
    s, r = g.admin("POST", "/rustfs/admin/v3/policies/evil/evaluate", {"request": {
        "operation": "PutObject", "bucket": "hostile", "key": "k", "requested_mode": "none"}})
    assert s == 422 and why in r["message"], r
    assert bind(g, "key-select", "evil", bucket="hostile")[0] == 200
    for _ in range(3):
        t0 = time.time()
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="hostile", Key="x", Body=b"data")
        code, status, msg = err(e)
        assert (code, status) == ("AccessDenied", 403) and "evil" in msg and why in msg, msg
        assert time.time() - t0 < 5
    assert "Contents" not in c.list_objects_v2(Bucket="hostile")
    c.put_object(Bucket="healthy", Key="y", Body=b"fine")
    assert c.get_object(Bucket="healthy", Key="y")["Body"].read() == b"fine"
    assert g.proc.poll() is None


def test_no_state_survives_between_calls(pg):
    g = pg
    c = g.client()
    c.create_bucket(Bucket="hostile-state")
    assert upload(g, "mem", component("hostile-remembers"))[0] == 200
    # The guest counts calls and keeps every key it saw in a global: each
    # call gets a fresh instance, so it never sees an earlier request.
    for key in ["tenant-a/secret", "tenant-b/other"]:
        s, r = g.admin("POST", "/rustfs/admin/v3/policies/mem/evaluate", {"request": {
            "operation": "PutObject", "bucket": "hostile-state", "key": key, "requested_mode": "none"}})
        assert s == 200 and r["result"]["message"] == "call 1 remembers []", r
    assert bind(g, "key-select", "mem", bucket="hostile-state")[0] == 200
    for key in ["a", "b", "c"]:
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="hostile-state", Key=key, Body=b"x")
        assert err(e)[:3] == ("AccessDenied", 403, "call 1 remembers []"), err(e)


def test_hot_swap_under_load(pg):
    g = pg
    c = g.client(max_pool_connections=4)
    for k in ["finance-key", "tenant-acme"]:
        g.admin("POST", "keys", {"key_id": k})
    c.create_bucket(Bucket="finance-swap")
    upload(g, "swappy", component("default-key-select"))
    bind(g, "key-select", "swappy", bucket="finance-swap")
    failures, written, stop = [], [], threading.Event()

    def writer(w):
        i = 0
        while not stop.is_set():
            key = f"acme/w{w}-{i}"
            try:
                c.put_object(Bucket="finance-swap", Key=key, Body=b"v" * 100)
                written.append(key)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{key}: {e}")
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    t0 = time.time()
    swaps = 0
    while time.time() - t0 < 20 or swaps < 10:
        src = "tenant-prefix" if swaps % 2 == 0 else "default-key-select"
        assert upload(g, "swappy", component(src))[0] == 200
        time.sleep(0.5)
        assert unbind(g, "key-select", bucket="finance-swap")[0] == 200
        time.sleep(0.3)
        assert bind(g, "key-select", "swappy", bucket="finance-swap")[0] == 200
        time.sleep(0.5)
        swaps += 1
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    kinds = {}
    for key in written:
        h = c.head_object(Bucket="finance-swap", Key=key)
        kinds[h.get("SSEKMSKeyId")] = kinds.get(h.get("SSEKMSKeyId"), 0) + 1
    assert set(kinds) <= {"finance-key", "tenant-acme", None}, kinds
    assert len(kinds) == 3, kinds


@pytest.mark.parametrize("backend", ["local", "vault"])
def test_rotation_policy_rotates_on_schedule(backend, request):
    extra = ["--policy-rotation-interval-seconds", "1"]
    if backend == "vault":
        bao = request.getfixturevalue("bao")
        extra += ["--kms-backend", "vault", "--kms-vault-address", bao.addr, "--kms-vault-token", bao.root_token,
                  "--kms-vault-key-prefix", "kgw-rotation/keys"]
    g = Gateway(extra_args=extra)
    try:
        c = g.client()
        c.create_bucket(Bucket="rotating")
        key = f"rot-{backend}-{int(time.time())}"
        assert g.admin("POST", "keys", {"key_id": key, "tags": {"rotate-after-seconds": "2"}})[0] == 200
        steady = f"steady-{backend}-{int(time.time())}"
        assert g.admin("POST", "keys", {"key_id": steady})[0] == 200
        c.put_object(Bucket="rotating", Key="v1", Body=b"first", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        s, r = upload(g, "rotator", component("rotate-after-days"))
        assert s == 200 and r["policy"]["hook"] == "rotation"
        assert bind(g, "rotation", "rotator", bucket="b")[0] == 400
        assert bind(g, "rotation", "rotator")[0] == 200
        deadline = time.time() + 20
        while g.admin("GET", f"keys/{key}")[1]["key_metadata"]["current_version"] < 2:
            assert time.time() < deadline, "the scheduler did not rotate the key"
            time.sleep(0.5)
        # A key without rotation tags (90 days) is left alone.
        assert g.admin("GET", f"keys/{steady}")[1]["key_metadata"]["current_version"] == 1
        c.put_object(Bucket="rotating", Key="v2", Body=b"second", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        assert c.get_object(Bucket="rotating", Key="v1")["Body"].read() == b"first"
        assert c.get_object(Bucket="rotating", Key="v2")["Body"].read() == b"second"
        s, r = g.admin("POST", "/rustfs/admin/v3/policies/rotation/run")
        assert s == 200 and any(x["key_id"] == steady and x["advice"]["advice"] == "later" and not x["rotated"]
                                for x in r["results"]), r
        audit = (g.data_dir / "audit.log").read_text()
        assert '"action":"kms:policy-rotation"' in audit
    finally:
        g.stop()


def test_admin_cli_manages_policies(pg, tmp_path):
    import subprocess

    from conftest import ADMIN_ACCESS, ADMIN_SECRET, BIN

    g = pg
    base = [str(BIN), "admin", "--endpoint", g.endpoint, "--access-key", ADMIN_ACCESS, "--secret-key", ADMIN_SECRET, "policies"]

    def cli(*args):
        r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=60)
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None

    wasm = WASM / "require_sse_kms.wasm"
    code, out = cli("upload", "rsk", "--file", str(wasm))
    assert code == 0 and out["policy"]["hook"] == "sse-validate"
    assert cli("bind", "rsk", "--hook", "sse-validate", "--bucket", "finance-cli")[0] == 0
    code, out = cli("list")
    assert code == 0 and out["bindings"] == [{"hook": "sse-validate", "policy": "rsk", "bucket": "finance-cli", "prefix": None}]
    sample = tmp_path / "req.json"
    sample.write_text(json.dumps({"request": {"operation": "PutObject", "bucket": "finance-cli", "key": "k",
                                              "requested_mode": "sse-kms", "requested_key_id": "x"}}))
    code, out = cli("evaluate", "rsk", "--file", str(sample))
    assert code == 0 and out["result"] == {"verdict": "accept"}
    code, out = cli("delete", "rsk")
    assert code != 0 and out["code"] == "PolicyConflict"
    assert cli("unbind", "--hook", "sse-validate", "--bucket", "finance-cli")[0] == 0
    assert cli("delete", "rsk")[0] == 0

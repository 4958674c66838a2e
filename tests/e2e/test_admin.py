"""The admin REST API over SigV4: the RustFS KMS quick start with awscurl,
every KMS endpoint's success and error cases, authentication, lifecycle."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS, ADMIN_ACCESS, ADMIN_SECRET, SECRET, Gateway, payload

AWSCURL = str(Path(sys.executable).parent / "awscurl")


def awscurl(url, method="GET", data=None, ak=ADMIN_ACCESS, sk=ADMIN_SECRET):
    cmd = [AWSCURL, "--service", "s3", "--region", "us-east-1", "--access_key", ak, "--secret_key", sk, "-X", method]
    if data is not None:
        cmd += ["-d", data]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=60)
    return out.stdout


@pytest.fixture
def fresh(tmp_path):
    g = Gateway(extra_args=["--allow-insecure-sse-c", "--kms-not-configured", "--kms-probe-interval-seconds", "1"])
    g.tmp = tmp_path
    yield g
    g.stop()


def test_quick_start_verbatim_with_awscurl(fresh):
    g = fresh
    c = g.client()
    c.create_bucket(Bucket="qstart")
    # NotConfigured: managed SSE is refused (and nothing stored), plaintext and SSE-C work.
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="qstart", Key="k", Body=b"x", ServerSideEncryption="AES256")
    assert e.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert "Contents" not in c.list_objects_v2(Bucket="qstart")
    c.put_object(Bucket="qstart", Key="plain", Body=b"p")
    status = json.loads(awscurl(f"{g.endpoint}/rustfs/admin/v3/kms/status"))
    assert status["status"] == "NotConfigured"

    key_dir = g.tmp / "kms-keys"
    configure = json.dumps({"backend_type": "local", "key_dir": str(key_dir), "default_key_id": "rustfs-master"})
    r = json.loads(awscurl(f"{g.endpoint}/rustfs/admin/v3/kms/configure", "POST", configure))
    assert r["success"] is True and r["status"] == "Configured", r
    r = json.loads(awscurl(f"{g.endpoint}/rustfs/admin/v3/kms/start", "POST"))
    assert r["success"] is True and r["status"] == "Running", r
    status = json.loads(awscurl(f"{g.endpoint}/rustfs/admin/v3/kms/status"))
    assert status["status"] == "Running" and status["backend_type"] == "local" and status["healthy"] is True
    assert status["default_key_id"] == "rustfs-master"
    # The default key was created, 0600, in the configured directory.
    kf = key_dir / "rustfs-master.key"
    assert stat.S_IMODE(kf.stat().st_mode) == 0o600
    c.put_object(Bucket="qstart", Key="k", Body=b"secret", ServerSideEncryption="AES256")
    assert c.get_object(Bucket="qstart", Key="k")["Body"].read() == b"secret"
    assert c.head_object(Bucket="qstart", Key="k")["ServerSideEncryption"] == "AES256"
    # The older /minio/admin/v3 spelling reaches the same API.
    assert json.loads(awscurl(f"{g.endpoint}/minio/admin/v3/kms/status"))["status"] == "Running"


def test_authentication(fresh):
    g = fresh
    s, body = g.admin("GET", "status", sign=False)
    assert s == 403 and body["code"] == "AccessDenied"
    s, body = g.admin("GET", "status", ak=ACCESS, sk=SECRET)
    assert s == 403 and body["code"] == "AccessDenied"
    s, body = g.admin("GET", "status", sk="wrong-secret")
    assert s == 403 and "SignatureDoesNotMatch" in str(body)
    # Admin credentials are refused on the data plane.
    from conftest import s3_client
    with pytest.raises(ClientError) as e:
        s3_client(g.endpoint, ADMIN_ACCESS, ADMIN_SECRET).list_buckets()
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    s, body = g.admin("GET", "no-such-endpoint")
    assert s == 404 and body["code"] == "UnknownEndpoint"


def v2_request(g, method, path, ak, sk, date, body=b"", headers=None):
    """A SigV2 header-signed request (`Authorization: AWS ak:sig`)."""
    import base64
    import hashlib
    import hmac

    import requests

    headers = dict(headers or {})
    ctype = headers.get("content-type", "")
    sts = f"{method}\n\n{ctype}\n{date}\n{path.split('?')[0]}"
    sig = base64.b64encode(hmac.new(sk.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    headers.update({"Date": date, "Authorization": f"AWS {ak}:{sig}"})
    return requests.request(method, g.endpoint + path, data=body, headers=headers, timeout=30)


def test_signatures_that_s3s_would_take_for_ever_are_refused(fresh):
    """SigV2 carries no expiry of its own: a request whose date is more
    than 15 minutes off is refused (s3s checked only that a date was
    there, so a captured request replayed for ever). The admin API takes a
    SigV4 Authorization header only: under SigV2 or a presigned URL the
    body's SHA-256 it relies on is signed by nothing. Presigned SigV4 URLs
    live a week at most."""
    import datetime
    from email.utils import format_datetime

    import requests

    g = fresh
    c = g.client()
    c.create_bucket(Bucket="sigv2")
    c.put_object(Bucket="sigv2", Key="k", Body=b"hello")
    now = datetime.datetime.now(datetime.timezone.utc)
    fresh_date = format_datetime(now, usegmt=True)
    old_date = format_datetime(now - datetime.timedelta(days=3650), usegmt=True)
    r = v2_request(g, "GET", "/sigv2/k", ACCESS, SECRET, fresh_date)
    assert r.status_code == 200 and r.content == b"hello", r.text
    r = v2_request(g, "GET", "/sigv2/k", ACCESS, SECRET, old_date)
    assert r.status_code == 403 and "RequestTimeTooSkewed" in r.text, r.text
    r = v2_request(g, "DELETE", "/sigv2/k", ACCESS, SECRET, old_date)
    assert r.status_code == 403
    assert c.get_object(Bucket="sigv2", Key="k")["Body"].read() == b"hello"

    # The admin API: a well-signed SigV2 request, fresh, is still refused.
    r = v2_request(g, "GET", "/rustfs/admin/v3/kms/status", ADMIN_ACCESS, ADMIN_SECRET, fresh_date)
    assert r.status_code == 403 and "SigV4" in r.text, r.text
    from conftest import s3_client

    admin = s3_client(g.endpoint, ADMIN_ACCESS, ADMIN_SECRET, signature_version="s3v4")
    url = admin.generate_presigned_url("list_objects_v2", Params={"Bucket": "sigv2"}, ExpiresIn=60)
    status_url = g.endpoint + "/rustfs/admin/v3/kms/status?" + url.split("?", 1)[1]
    assert requests.get(status_url, timeout=30).status_code == 403
    assert g.admin("GET", "status")[0] == 200

    c4 = g.client(signature_version="s3v4")
    ok = c4.generate_presigned_url("get_object", Params={"Bucket": "sigv2", "Key": "k"}, ExpiresIn=604800)
    assert requests.get(ok, timeout=30).content == b"hello"
    long = c4.generate_presigned_url("get_object", Params={"Bucket": "sigv2", "Key": "k"}, ExpiresIn=604801)
    r = requests.get(long, timeout=30)
    assert r.status_code == 400 and "AuthorizationQueryParametersError" in r.text, r.text


def test_lifecycle_errors_and_transitions(fresh):
    g = fresh
    c = g.client()
    c.create_bucket(Bucket="lcycle")
    s, b = g.admin("POST", "start")
    assert s == 409 and "no configuration" in b["message"]
    assert g.admin("GET", "status")[1]["status"] == {"Error": "Cannot start KMS: no configuration provided"}
    s, b = g.admin("POST", "configure", "")
    assert s == 400 and "body is required" in b["message"]
    s, b = g.admin("POST", "configure", {"backend_type": "local", "key_dirr": "/x"})
    assert s == 400 and "key_dirr" in b["message"]
    s, b = g.admin("POST", "configure", {"backend_type": "local", "address": "http://x"})
    assert s == 400 and "address" in b["message"]
    s, b = g.admin("POST", "configure", "{not json")
    assert s == 400
    assert g.admin("POST", "configure", {"backend_type": "local", "default_key_id": "k-main"})[0] == 200
    assert g.admin("POST", "start", {"force": False})[0] == 200
    s, b = g.admin("POST", "configure", {"backend_type": "local"})
    assert s == 409 and "reconfigure" in b["message"]
    s, b = g.admin("POST", "start")
    assert s == 409 and "force=true" in b["message"]
    s, b = g.admin("POST", "start", {"forced": True})
    assert s == 400 and "forced" in b["message"]
    gen = g.admin("GET", "status")[1]["generation"]
    assert g.admin("POST", "start", {"force": True})[0] == 200
    assert g.admin("GET", "status")[1]["generation"] > gen
    c.put_object(Bucket="lcycle", Key="o", Body=b"data", ServerSideEncryption="AES256")
    s, b = g.admin("POST", "stop")
    assert s == 200 and b["status"] == "Configured"
    for call in (lambda: c.get_object(Bucket="lcycle", Key="o"),
                 lambda: c.put_object(Bucket="lcycle", Key="o2", Body=b"x", ServerSideEncryption="aws:kms")):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "ServiceUnavailable"
    s, b = g.admin("GET", "keys")
    assert s == 503 and b["code"] == "KMSNotRunning"
    ready = __import__("requests").get(f"{g.endpoint}/health/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["kms"]["ready"] is False
    assert g.admin("POST", "start")[0] == 200
    assert c.get_object(Bucket="lcycle", Key="o")["Body"].read() == b"data"
    ready = __import__("requests").get(f"{g.endpoint}/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    # A reconfigure that fails its check leaves the running version serving.
    s, b = g.admin("POST", "reconfigure", {"backend_type": "vault", "address": "http://127.0.0.1:9",
                                          "auth_method": {"token": "s.nope"}, "timeout_seconds": 2, "retry_attempts": 1})
    assert s == 503 and b["code"] == "BackendCheckFailed", b
    st = g.admin("GET", "status")[1]
    assert st["status"] == "Running" and st["backend_type"] == "local"
    assert st["capabilities"]["rewrap"] is False and st["circuit_breaker"] == "closed"
    before = st["cache_stats"]
    assert c.get_object(Bucket="lcycle", Key="o")["Body"].read() == b"data"
    after = g.admin("GET", "status")[1]["cache_stats"]
    # One read of an object: one data-key lookup, a hit or a miss.
    assert after["hit_count"] + after["miss_count"] == before["hit_count"] + before["miss_count"] + 1, (before, after)
    assert after["entry_count"] >= 1
    cfg = g.admin("GET", "config")[1]
    assert cfg["config"]["default_key_id"] == "k-main" and cfg["config"]["backend_type"] == "local"


def test_immediate_deletion_rules(tmp_path):
    g = Gateway(extra_args=["--kms-allow-immediate-deletion"])
    try:
        assert g.admin("POST", "keys", {"key_id": "doomed"})[0] == 200
        s, b = g.admin("DELETE", "keys/delete", {"key_id": "doomed", "force_immediate": True, "confirm_key_id": "other"})
        assert s == 400 and "confirm_key_id" in b["message"]
        s, b = g.admin("DELETE", "keys/delete", {"key_id": "gateway-default", "force_immediate": True,
                                                "confirm_key_id": "gateway-default"})
        assert s == 409 and b["code"] == "KeyStillReferenced"
        # A bucket default naming the key also holds it.
        c = g.client()
        c.create_bucket(Bucket="ref")
        c.put_bucket_encryption(Bucket="ref", ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "doomed"}}]})
        s, b = g.admin("DELETE", "keys/delete", {"key_id": "doomed", "force_immediate": True, "confirm_key_id": "doomed"})
        assert s == 409 and "ref" in b["message"]
        c.delete_bucket_encryption(Bucket="ref")
        s, b = g.admin("DELETE", "keys/delete", {"key_id": "doomed", "force_immediate": True, "confirm_key_id": "doomed"})
        assert s == 200 and b["deleted"] is True
        assert g.admin("GET", "keys/doomed")[0] == 404
        assert not (g.data_dir / "kms/keys/doomed.key").exists()
    finally:
        g.stop()
    plain = Gateway()
    try:
        assert plain.admin("POST", "keys", {"key_id": "kept"})[0] == 200
        s, b = plain.admin("DELETE", "keys/delete", {"key_id": "kept", "force_immediate": True, "confirm_key_id": "kept"})
        assert s == 403 and b["code"] == "ImmediateDeletionDisabled"
        s, b = plain.admin("DELETE", "keys/delete?keyId=kept&pending_window_in_days=7")
        assert s == 200 and b["key_metadata"]["key_state"] == "PendingDeletion"
    finally:
        plain.stop()


def test_metrics_health_and_audit(fresh):
    import requests

    g = fresh
    assert requests.get(f"{g.endpoint}/health/live", timeout=10).text == "ok\n"
    g.admin("POST", "configure", {"backend_type": "local"})
    g.admin("POST", "start")
    c = g.client()
    c.create_bucket(Bucket="metrics-b")

    def metric(name, **labels):
        text = requests.get(f"{g.endpoint}/metrics", timeout=10).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(name + "{" + want + "}") or (not labels and line.startswith(name + " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    puts = metric("kgw_object_requests_total", op="put", mode="SSE-S3")
    gens = metric("kgw_kms_calls_total", backend="local", op="generate_data_key", outcome="ok")
    for i in range(5):
        c.put_object(Bucket="metrics-b", Key=f"o{i}", Body=payload(1000, i), ServerSideEncryption="AES256")
    assert metric("kgw_object_requests_total", op="put", mode="SSE-S3") == puts + 5
    # Bucket keys: one KMS call for five objects in one bucket.
    assert metric("kgw_kms_calls_total", backend="local", op="generate_data_key", outcome="ok") == gens + 1
    hits = metric("kgw_kms_cache_lookups_total", cache="data_key", result="hit")
    for i in range(5):
        assert c.get_object(Bucket="metrics-b", Key=f"o{i}")["Body"].read() == payload(1000, i)
    assert metric("kgw_kms_cache_lookups_total", cache="data_key", result="hit") == hits + 5
    admin_ok = metric("kgw_admin_requests_total", action="kms:status", status="200")
    g.admin("GET", "status")
    assert metric("kgw_admin_requests_total", action="kms:status", status="200") == admin_ok + 1
    # The response carries a request id that the log's span names.
    r = c.put_object(Bucket="metrics-b", Key="rid", Body=b"x")
    rid = r["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert len(rid) == 16
    # Audit: admin calls and key uses, no secrets.
    lines = [json.loads(l) for l in (g.data_dir / "audit.log").read_text().splitlines()]
    assert any(l["kind"] == "admin" and l["action"] == "kms:configure" and l["principal"] == ADMIN_ACCESS for l in lines)
    # Admin events name the key acted on, and an error's code as outcome.
    g.admin("POST", "keys", {"key_id": "audited-key"})
    g.admin("POST", "keys/enable", {"key_id": "no-such-key"})
    lines = [json.loads(l) for l in (g.data_dir / "audit.log").read_text().splitlines()]
    assert any(l["action"] == "kms:create-key" and l["key_id"] == "audited-key" and l["outcome"] == "ok" for l in lines)
    failed = [l for l in lines if l["action"] == "kms:enable-key" and l.get("key_id") == "no-such-key"]
    assert failed and failed[-1]["outcome"] not in ("ok", "error"), failed
    uses = [l for l in lines if l["kind"] == "key-use" and l["object"] == "o3"]
    assert {u["action"] for u in uses} >= {"generate_data_key", "decrypt_data_key"}
    assert all(u["key_id"] == "gateway-default" and u["principal"] == ACCESS for u in uses)
    assert stat.S_IMODE(os.stat(g.data_dir / "audit.log").st_mode) == 0o600


def test_admin_cli_signs_its_own_requests(fresh, tmp_path):
    from conftest import BIN

    g = fresh
    base = [str(BIN), "admin", "--endpoint", g.endpoint, "--access-key", ADMIN_ACCESS, "--secret-key", ADMIN_SECRET]

    def cli(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True, timeout=60)

    cfg = tmp_path / "local.json"
    cfg.write_text(json.dumps({"backend_type": "local", "default_key_id": "cli-default"}))
    r = cli("configure", "--file", str(cfg))
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "Configured", r.stderr
    assert cli("start").returncode == 0
    assert json.loads(cli("status").stdout)["status"] == "Running"
    r = cli("keys", "create", "--key-id", "cli-key", "--description", "from the CLI")
    assert r.returncode == 0 and json.loads(r.stdout)["key_metadata"]["description"] == "from the CLI"
    assert json.loads(cli("keys", "rotate", "cli-key").stdout)["key_metadata"]["current_version"] == 2
    ids = [k["key_id"] for k in json.loads(cli("keys", "list").stdout)["keys"]]
    assert {"cli-default", "cli-key"} <= set(ids)
    r = cli("keys", "describe", "no-such-key")
    assert r.returncode != 0 and json.loads(r.stdout)["code"] == "KeyNotFound"
    # Credentials come from the data dir of a gateway that generated them.
    gen = Gateway(admin_flags=False, s3_flags=False)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_GATEWAY_ADMIN")}
        r = subprocess.run([str(BIN), "admin", "--endpoint", gen.endpoint, "--data-dir", str(gen.data_dir), "status"],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0 and json.loads(r.stdout)["status"] == "Running", r.stderr
        # The generated S3 pair is shown at start (the user needs it); the
        # admin secret never is.
        saved = json.loads((gen.data_dir / "credentials.json").read_text())
        assert f"access key {saved['access_key']}  secret key {saved['secret_key']}" in gen.log()
        assert saved["admin_secret_key"] not in gen.log()
    finally:
        gen.stop()
    bad = subprocess.run([str(BIN), "admin", "--endpoint", g.endpoint, "--access-key", ACCESS, "--secret-key", SECRET,
                          "status"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and json.loads(bad.stdout)["code"] == "AccessDenied"


def test_audit_trail_to_stdout_for_a_log_collector(tmp_path):
    """`--audit-log stdout`: the same JSON lines on standard output (what a
    container's log collector reads), and no audit file written."""
    g = Gateway(data_dir=tmp_path / "d", extra_args=["--allow-insecure-sse-c", "--audit-log", "stdout"])
    try:
        c = g.client()
        c.create_bucket(Bucket="audited")
        c.put_object(Bucket="audited", Key="o", Body=b"x", ServerSideEncryption="aws:kms")
        assert c.get_object(Bucket="audited", Key="o")["Body"].read() == b"x"
        g.admin("GET", "status")
        events = []
        for line in g.log().splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        assert any(e["kind"] == "admin" and e["action"] == "kms:status" and e["principal"] == ADMIN_ACCESS for e in events)
        uses = {e["action"] for e in events if e["kind"] == "key-use" and e.get("object") == "o"}
        assert uses >= {"generate_data_key", "decrypt_data_key"}, events
        assert all("time" in e for e in events)
        assert not (tmp_path / "d" / "audit.log").exists()
    finally:
        g.stop()

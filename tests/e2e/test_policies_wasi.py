"""Policies written in Python (componentize-py): the contract is language
neutral. Such components embed CPython, which imports WASI; the gateway
serves it with an empty context, so the sandbox probe must find no files,
no environment and no network. Also: precompiled policy code makes
restarts cheap, and code changed on disk is recompiled, never run."""

import base64
import json
import os
import socket
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import ROOT, ssec
from test_policies import bind, component, err, pg, upload  # noqa: F401  (pg is a fixture)

PY = Path(os.environ.get("KMS_GATEWAY_PY_POLICIES", ROOT / "policies" / "target" / "python"))


def py_component(name):
    return (PY / f"{name.replace('-', '_')}.wasm").read_bytes()


def test_python_key_selection_with_real_clients(pg):
    g = pg
    c = g.client()
    for k in ["pii-key", "logs-key"]:
        assert g.admin("POST", "keys", {"key_id": k})[0] == 200
    c.create_bucket(Bucket="records")
    s, r = upload(g, "data-class", py_component("data-class"))
    assert s == 200, r
    assert r["policy"]["hook"] == "key-select" and r["policy"]["imports_wasi"] is True
    assert bind(g, "key-select", "data-class", bucket="records")[0] == 200
    # Classified prefixes land under their class's key, with the class bound
    # into the encryption context; no SSE headers needed.
    put = c.put_object(Bucket="records", Key="pii/alice.csv", Body=b"name,ssn")
    assert put["SSEKMSKeyId"] == "pii-key"
    assert json.loads(base64.b64decode(put["SSEKMSEncryptionContext"]))["data-class"] == "pii"
    assert c.head_object(Bucket="records", Key="pii/alice.csv")["SSEKMSKeyId"] == "pii-key"
    assert c.get_object(Bucket="records", Key="pii/alice.csv")["Body"].read() == b"name,ssn"
    assert c.put_object(Bucket="records", Key="logs/1", Body=b"l")["SSEKMSKeyId"] == "logs-key"
    # Unclassified: the request's own choice is kept.
    c.put_object(Bucket="records", Key="misc/x", Body=b"m")
    assert "ServerSideEncryption" not in c.head_object(Bucket="records", Key="misc/x")
    # Another key for a classified prefix is denied with the policy's error.
    assert g.admin("POST", "keys", {"key_id": "other-key"})[0] == 200
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="records", Key="pii/bob.csv", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="other-key")
    code, status, msg = err(e)
    assert (code, status) == ("AccessDenied", 403) and "must use KMS key pii-key" in msg, msg
    assert "pii/bob.csv" not in [o["Key"] for o in c.list_objects_v2(Bucket="records").get("Contents", [])]
    # SSE-C stays the client's choice.
    key = os.urandom(32)
    c.put_object(Bucket="records", Key="pii/own-key", Body=b"mine", **ssec(key))
    assert c.get_object(Bucket="records", Key="pii/own-key", **ssec(key))["Body"].read() == b"mine"
    # The compiled code is kept: a restart loads it instead of compiling.
    assert (g.data_dir / "policies" / "data-class.cwasm").stat().st_mode & 0o777 == 0o600
    g.restart()
    c = g.client()
    assert c.put_object(Bucket="records", Key="pii/carol.csv", Body=b"c")["SSEKMSKeyId"] == "pii-key"
    assert "recompiling" not in g.log()


def test_python_sandbox_is_empty(pg):
    g = pg
    c = g.client()
    c.create_bucket(Bucket="probe-bucket")
    c.create_bucket(Bucket="fine-bucket")
    s, r = upload(g, "probe", py_component("sandbox-probe"))
    assert s == 200 and r["policy"]["imports_wasi"] is True, r
    assert bind(g, "sse-validate", "probe")[0] == 200
    # A listener the guest is pointed at: it must never see a connection.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(0.5)
    target = f"127.0.0.1:{lsock.getsockname()[1]}"
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="probe-bucket", Key="k", Body=b"x", Metadata={"probe-target": target})
    code, status, msg = err(e)
    assert (code, status) == ("AccessDenied", 403), msg
    report = dict(item.split("=", 1) for item in msg.split("sandbox probe: ", 1)[1].split(" ") if "=" in item)
    for probe in ["read", "listdir", "cwd", "connect", "resolve"]:
        assert report[probe].startswith("denied:"), (probe, msg)
    assert report["env"] == "0", msg
    with pytest.raises(socket.timeout):
        lsock.accept()
    lsock.close()
    # What the guest printed is in the gateway's log, tagged with the policy.
    assert "sandbox probe: read=denied" in g.log() and "policy output" in g.log()
    # Other buckets are accepted and work.
    c.put_object(Bucket="fine-bucket", Key="k", Body=b"ok")
    assert c.get_object(Bucket="fine-bucket", Key="k")["Body"].read() == b"ok"
    assert "Contents" not in c.list_objects_v2(Bucket="probe-bucket")


def test_tampered_precompiled_code_is_recompiled_not_run(pg):
    g = pg
    c = g.client()
    assert g.admin("POST", "keys", {"key_id": "finance-key"})[0] == 200
    c.create_bucket(Bucket="finance-t")
    assert upload(g, "dks", component("default-key-select"))[0] == 200
    assert bind(g, "key-select", "dks")[0] == 200
    g.stop()
    code = g.data_dir / "policies" / "dks.cwasm"
    data = bytearray(code.read_bytes())
    data[len(data) // 2] ^= 0xFF
    code.write_bytes(bytes(data))
    g.start()
    c = g.client()
    assert c.put_object(Bucket="finance-t", Key="k", Body=b"v")["SSEKMSKeyId"] == "finance-key"
    assert "precompiled policy code changed on disk; recompiling" in g.log()
    # The recompiled code replaced the tampered file.
    assert code.read_bytes() != bytes(data)

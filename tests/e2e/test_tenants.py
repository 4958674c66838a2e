"""Tenants: three identities, each tenant's objects under its own key, and
nobody else may use it, on writes and on reads (the example policies
tenant-keys and tenant-reads, contract 0.2.0). A policy built against the
0.1.0 contract keeps loading and deciding beside them."""

import json
import os
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ROOT, Gateway, s3_client, ssec

WASM = Path(os.environ.get("KMS_GATEWAY_POLICIES", ROOT / "policies" / "target" / "wasm32-wasip2" / "release"))
POL = "/rustfs/admin/v3/policies"


def denied(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def tenants():
    g = Gateway()
    clients = {}
    for name, body in [("acme", {"attributes": {"tenant": "acme"}}), ("globex", {"attributes": {"tenant": "globex"}}),
                       ("auditor", {"groups": ["auditors"]})]:
        s, r = g.admin("POST", "/rustfs/admin/v3/identities", {"access_key": name.upper(), **body})
        assert s == 200, r
        clients[name] = s3_client(g.endpoint, name.upper(), r["secret_key"])
    for key in ["tenant-acme", "tenant-globex"]:
        assert g.admin("POST", "keys", {"key_id": key})[0] == 200
    for name in ["tenant-keys", "tenant-reads"]:
        s, r = g.admin("PUT", f"{POL}/{name}", (WASM / f"{name.replace('-', '_')}.wasm").read_bytes(),
                       content_type="application/wasm")
        assert s == 200 and r["policy"]["world"].endswith("@0.2.0"), r
    assert g.admin("POST", f"{POL}/bind", {"hook": "key-select", "policy": "tenant-keys"})[0] == 200
    assert g.admin("POST", f"{POL}/bind", {"hook": "sse-validate", "policy": "tenant-reads"})[0] == 200
    g.client().create_bucket(Bucket="shared")
    yield g, clients
    g.close()


def test_each_tenant_writes_under_its_own_key(tenants):
    g, c = tenants
    put = c["acme"].put_object(Bucket="shared", Key="acme/report", Body=b"acme data")
    assert put["SSEKMSKeyId"] == "tenant-acme"
    ctx = json.loads(__import__("base64").b64decode(put["SSEKMSEncryptionContext"]))
    assert ctx["tenant"] == "acme"
    c["globex"].put_object(Bucket="shared", Key="globex/plan", Body=b"globex data")
    assert c["globex"].head_object(Bucket="shared", Key="globex/plan")["SSEKMSKeyId"] == "tenant-globex"
    # Naming another tenant's key: refused, nothing stored.
    assert denied(lambda: c["globex"].put_object(Bucket="shared", Key="globex/sneaky", Body=b"x",
                                                  ServerSideEncryption="aws:kms", SSEKMSKeyId="tenant-acme")) == ("AccessDenied", 403)
    assert "globex/sneaky" not in [o["Key"] for o in g.client().list_objects_v2(Bucket="shared").get("Contents", [])]
    # Multipart uploads too.
    assert c["acme"].create_multipart_upload(Bucket="shared", Key="acme/big")["SSEKMSKeyId"] == "tenant-acme"
    assert denied(lambda: c["acme"].create_multipart_upload(Bucket="shared", Key="acme/x", ServerSideEncryption="aws:kms",
                                                            SSEKMSKeyId="tenant-globex"))[1] == 403


def test_nobody_else_reads_under_a_tenants_key(tenants):
    g, c = tenants
    c["acme"].put_object(Bucket="shared", Key="acme/secret", Body=b"acme only")
    assert c["acme"].get_object(Bucket="shared", Key="acme/secret")["Body"].read() == b"acme only"
    assert denied(lambda: c["globex"].get_object(Bucket="shared", Key="acme/secret")) == ("AccessDenied", 403)
    assert denied(lambda: c["globex"].get_object(Bucket="shared", Key="acme/secret", Range="bytes=0-3")) == ("AccessDenied", 403)
    assert denied(lambda: c["globex"].head_object(Bucket="shared", Key="acme/secret"))[1] == 403
    # A copy reads its source: refused as well, nothing written.
    assert denied(lambda: c["globex"].copy_object(Bucket="shared", Key="globex/stolen",
                                                  CopySource={"Bucket": "shared", "Key": "acme/secret"})) == ("AccessDenied", 403)
    assert denied(lambda: g.client().head_object(Bucket="shared", Key="globex/stolen"))[1] == 404
    # An identity without a tenant (the auditor) and the configured one read it.
    assert c["auditor"].get_object(Bucket="shared", Key="acme/secret")["Body"].read() == b"acme only"
    assert g.client().get_object(Bucket="shared", Key="acme/secret")["Body"].read() == b"acme only"
    # Refusals are counted per policy; key uses per identity.
    metrics = requests.get(f"{g.endpoint}/metrics", timeout=10).text
    assert 'kgw_policy_calls_total{hook="sse-validate",outcome="reject",policy="tenant-reads"}' in metrics
    assert 'kgw_key_uses_total{identity="ACME",key_id="tenant-acme",op="generate_data_key",outcome="ok"}' in metrics


def test_a_policy_of_the_0_1_contract_keeps_working(tenants):
    g, c = tenants
    s, r = g.admin("PUT", f"{POL}/legacy", (WASM / "legacy_v0_1.wasm").read_bytes(), content_type="application/wasm")
    assert s == 200 and r["policy"]["world"] == "kms-gateway:policy/sse-validator@0.1.0", r
    g.client().create_bucket(Bucket="legacy")
    g.client().put_object(Bucket="legacy", Key="kms", Body=b"v", ServerSideEncryption="aws:kms")
    assert g.admin("POST", f"{POL}/bind", {"hook": "sse-validate", "policy": "legacy", "bucket": "legacy"})[0] == 200
    # It decides on writes (SSE-C refused)...
    assert denied(lambda: g.client().put_object(Bucket="legacy", Key="c", Body=b"x", **ssec(b"k" * 32))) == ("AccessDenied", 403)
    # ...and is never asked about reads, which it was not written for.
    assert g.client().get_object(Bucket="legacy", Key="kms")["Body"].read() == b"v"
    assert c["globex"].get_object(Bucket="legacy", Key="kms")["Body"].read() == b"v"


def test_the_javascript_tenant_policy_guards_reads_the_same_way(tenants):
    """policies/js/tenant-reads (componentize-js), bound to one bucket."""
    g, c = tenants
    wasm = (ROOT / "policies" / "target" / "js" / "tenant_reads.wasm").read_bytes()
    s, r = g.admin("PUT", f"{POL}/tenant-reads-js", wasm, content_type="application/wasm")
    assert s == 200 and r["policy"]["world"].endswith("@0.2.0") and r["policy"]["imports_wasi"] is False, r
    g.client().create_bucket(Bucket="js-guarded")
    assert g.admin("POST", f"{POL}/bind", {"hook": "sse-validate", "policy": "tenant-reads-js", "bucket": "js-guarded"})[0] == 200
    c["acme"].put_object(Bucket="js-guarded", Key="acme/doc", Body=b"acme js")
    assert c["acme"].get_object(Bucket="js-guarded", Key="acme/doc")["Body"].read() == b"acme js"
    with pytest.raises(ClientError) as e:
        c["globex"].get_object(Bucket="js-guarded", Key="acme/doc")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "tenant globex may not read objects under key tenant-acme" in e.value.response["Error"]["Message"]

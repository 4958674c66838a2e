"""Shadow mode: a candidate policy bound with "shadow": true answers real
requests beside the live one; its decision is recorded (metrics, audit)
and never enforced, until the operator binds it live."""

import json
import os
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ROOT, Gateway

WASM = Path(os.environ.get("KMS_GATEWAY_POLICIES", ROOT / "policies" / "target" / "wasm32-wasip2" / "release"))
POL = "/rustfs/admin/v3/policies"


def upload(g, name, component):
    s, r = g.admin("PUT", f"{POL}/{name}", (WASM / f"{component}.wasm").read_bytes(), content_type="application/wasm")
    assert s == 200, r


def bind(g, **body):
    s, r = g.admin("POST", f"{POL}/bind", body)
    assert s == 200, r


def shadow_lines(g):
    return [e for e in (json.loads(x) for x in (g.data_dir / "audit.log").read_text().splitlines())
            if e["kind"] == "policy-shadow"]


def metric(g, line):
    return line in requests.get(f"{g.endpoint}/metrics", timeout=10).text


@pytest.fixture
def g():
    gw = Gateway(extra_args=["--policy-rotation-interval-seconds", "0"])
    yield gw
    gw.close()


def test_a_shadow_policy_is_recorded_never_enforced_until_bound_live(g):
    c = g.client()
    c.create_bucket(Bucket="finance-shadow")
    upload(g, "rsk", "require_sse_kms")
    bind(g, hook="sse-validate", policy="rsk", bucket="finance-shadow", shadow=True)
    bindings = g.admin("GET", f"{POL}/bindings")[1]["bindings"]
    assert bindings == [{"hook": "sse-validate", "policy": "rsk", "bucket": "finance-shadow", "prefix": None, "shadow": True}]

    # The candidate would refuse SSE-S3 here; the write goes through.
    c.put_object(Bucket="finance-shadow", Key="s3", Body=b"x", ServerSideEncryption="AES256")
    assert c.head_object(Bucket="finance-shadow", Key="s3")["ServerSideEncryption"] == "AES256"
    assert metric(g, 'kgw_policy_shadow_total{agrees="false",hook="sse-validate",outcome="refuse",policy="rsk"} 1')
    differs = [e for e in shadow_lines(g) if e["outcome"] == "differs"]
    assert len(differs) == 1 and differs[0]["detail"] == "live accept; shadow rsk: refuse:AccessDenied", differs
    assert differs[0]["bucket"] == "finance-shadow" and differs[0]["object"] == "s3"
    # Where it agrees, that is recorded too, reads included (the HEAD above,
    # the GET below: it accepts reads).
    c.put_object(Bucket="finance-shadow", Key="kms", Body=b"x", ServerSideEncryption="aws:kms")
    c.get_object(Bucket="finance-shadow", Key="kms")["Body"].read()
    assert metric(g, 'kgw_policy_shadow_total{agrees="true",hook="sse-validate",outcome="accept",policy="rsk"} 3')

    # Bound live: now enforced. The shadow binding is removed on its own.
    bind(g, hook="sse-validate", policy="rsk", bucket="finance-shadow")
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="finance-shadow", Key="s3-again", Body=b"x", ServerSideEncryption="AES256")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert g.admin("POST", f"{POL}/unbind", {"hook": "sse-validate", "bucket": "finance-shadow", "shadow": True})[0] == 200
    bindings = g.admin("GET", f"{POL}/bindings")[1]["bindings"]
    assert bindings == [{"hook": "sse-validate", "policy": "rsk", "bucket": "finance-shadow", "prefix": None}]


def test_a_shadow_key_selection_is_compared_with_what_was_used(g):
    c = g.client()
    c.create_bucket(Bucket="finance-reports")
    assert g.admin("POST", "keys", {"key_id": "finance-key"})[0] == 200
    upload(g, "dks", "default_key_select")
    bind(g, hook="key-select", policy="dks", shadow=True)
    # No live key selection: stored as asked (plaintext); the candidate
    # would have chosen finance-key.
    c.put_object(Bucket="finance-reports", Key="plain", Body=b"x")
    assert "ServerSideEncryption" not in c.head_object(Bucket="finance-reports", Key="plain")
    line = [e for e in shadow_lines(g) if e["action"] == "key-select"][-1]
    assert (line["outcome"], line["detail"]) == ("differs", "live none; shadow dks: sse-kms:finance-key"), line
    # Asked for what the candidate would choose: they agree.
    c.put_object(Bucket="finance-reports", Key="kms", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="finance-key")
    line = [e for e in shadow_lines(g) if e["action"] == "key-select"][-1]
    assert line["outcome"] == "agrees", line

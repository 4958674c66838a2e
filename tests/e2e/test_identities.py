"""S3 identities beyond the configured pair: created, used, disabled,
rotated and removed over the admin API and the CLI; their secrets never
stored or logged in clear; their key uses named in the audit trail and
the metrics."""

import json
import subprocess

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ADMIN_ACCESS, ADMIN_SECRET, BIN, Gateway, admin_call, s3_client

BASE = "/rustfs/admin/v3/identities"


@pytest.fixture
def g():
    gw = Gateway()
    yield gw
    gw.close()


def code(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_an_identity_signs_requests_through_its_lifecycle(g):
    s, r = g.admin("POST", BASE, {"access_key": "ACMEAPP", "description": "acme's app",
                                   "attributes": {"tenant": "acme"}, "groups": ["writers"]})
    assert s == 200, r
    secret = r["secret_key"]
    assert r["identity"] == {**r["identity"], "access_key": "ACMEAPP", "enabled": True, "source": "managed",
                             "attributes": {"tenant": "acme"}, "groups": ["writers"]}
    acme = s3_client(g.endpoint, "ACMEAPP", secret)
    acme.create_bucket(Bucket="acme")
    acme.put_object(Bucket="acme", Key="k", Body=b"v", ServerSideEncryption="aws:kms")
    assert acme.get_object(Bucket="acme", Key="k")["Body"].read() == b"v"
    # The default identity sees it too: identities share the buckets (the
    # store's, or a policy's, business to separate).
    assert g.client().get_object(Bucket="acme", Key="k")["Body"].read() == b"v"
    # Not an admin.
    assert admin_call(g.endpoint, "GET", "status", ak="ACMEAPP", sk=secret)[0] == 403
    # Listed without its secret; the configured identity first.
    s, r = g.admin("GET", BASE)
    assert [i["access_key"] for i in r["identities"]][1:] == ["ACMEAPP"] and r["identities"][0]["source"] == "configured"
    assert secret not in json.dumps(r)
    # Disabled: every request refused; enabled again: accepted.
    assert g.admin("POST", f"{BASE}/ACMEAPP/disable")[0] == 200
    with pytest.raises(ClientError) as e:
        acme.get_object(Bucket="acme", Key="k")
    assert code(e) == ("InvalidAccessKeyId", 403)
    assert g.admin("POST", f"{BASE}/ACMEAPP/enable")[0] == 200
    assert acme.get_object(Bucket="acme", Key="k")["Body"].read() == b"v"
    # A new secret: the old one stops working at once.
    s, r = g.admin("POST", f"{BASE}/ACMEAPP/rotate-secret")
    assert s == 200 and r["secret_key"] != secret and r["identity"]["secret_rotated_at"]
    with pytest.raises(ClientError) as e:
        acme.get_object(Bucket="acme", Key="k")
    assert code(e) == ("SignatureDoesNotMatch", 403)
    fresh = s3_client(g.endpoint, "ACMEAPP", r["secret_key"])
    assert fresh.get_object(Bucket="acme", Key="k")["Body"].read() == b"v"
    # Attributes replaced; the access key cannot change.
    s, r = g.admin("POST", f"{BASE}/ACMEAPP", {"attributes": {"tenant": "acme", "tier": "gold"}})
    assert s == 200 and r["identity"]["attributes"] == {"tenant": "acme", "tier": "gold"}
    assert g.admin("POST", f"{BASE}/ACMEAPP", {"access_key": "OTHER"})[0] == 400
    # Removed: refused.
    assert g.admin("DELETE", f"{BASE}/ACMEAPP")[0] == 200
    with pytest.raises(ClientError) as e:
        fresh.get_object(Bucket="acme", Key="k")
    assert code(e) == ("InvalidAccessKeyId", 403)
    assert g.admin("GET", f"{BASE}/ACMEAPP")[0] == 404
    # No secret in clear in the data directory, the audit trail or the log.
    for path in g.data_dir.rglob("*"):
        if path.is_file() and "store" not in path.parts:
            data = path.read_bytes()
            assert secret.encode() not in data and fresh._request_signer._credentials.secret_key.encode() not in data, path


def test_bad_requests_change_nothing(g):
    from conftest import ACCESS
    for body, want in [({"access_key": ACCESS}, (409, "IdentityConfigured")),
                       ({"access_key": ADMIN_ACCESS}, (409, "IdentityConfigured")),
                       ({"access_key": "has space"}, (400, "InvalidRequest")),
                       ({"attributes": {"k": "a\nb"}}, (400, "InvalidRequest")),
                       ({"unknown_field": 1}, (400, "InvalidRequest"))]:
        s, r = g.admin("POST", BASE, body)
        assert (s, r["code"]) == want, (body, s, r)
    assert g.admin("POST", BASE, {"access_key": "TWICE"})[0] == 200
    s, r = g.admin("POST", BASE, {"access_key": "TWICE"})
    assert (s, r["code"]) == (409, "IdentityAlreadyExists")
    assert g.admin("POST", f"{BASE}/{ACCESS}/disable")[0] == 409
    assert [i["access_key"] for i in g.admin("GET", BASE)[1]["identities"]] == [ACCESS, "TWICE"]
    # Only the admin manages identities.
    assert admin_call(g.endpoint, "POST", BASE, {"access_key": "X"}, ak=ACCESS, sk="gwtestsecret0123456789")[0] == 403


def test_key_uses_name_the_identity_in_audit_and_metrics(g):
    s, r = g.admin("POST", BASE, {"access_key": "AUDITED"})
    c = s3_client(g.endpoint, "AUDITED", r["secret_key"])
    c.create_bucket(Bucket="audited")
    c.put_object(Bucket="audited", Key="k", Body=b"v", ServerSideEncryption="aws:kms")
    c.get_object(Bucket="audited", Key="k")["Body"].read()
    events = [json.loads(x) for x in (g.data_dir / "audit.log").read_text().splitlines()]
    uses = [e for e in events if e["kind"] == "key-use" and e.get("principal") == "AUDITED"]
    assert {e["action"] for e in uses} >= {"generate_data_key"}, uses
    metrics = requests.get(f"{g.endpoint}/metrics", timeout=10).text
    assert 'kgw_key_uses_total{identity="AUDITED",key_id="gateway-default",op="generate_data_key",outcome="ok"} 1' in metrics
    assert r["secret_key"] not in (g.data_dir / "audit.log").read_text()


def test_the_cli_manages_identities(g):
    base = [str(BIN), "admin", "--endpoint", g.endpoint, "--access-key", ADMIN_ACCESS, "--secret-key", ADMIN_SECRET,
            "identities"]

    def cli(*args):
        r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=60)
        return r.returncode, json.loads(r.stdout)

    rc, out = cli("create", "--access-key", "CLIAPP", "--attribute", "tenant=globex", "--group", "readers")
    assert rc == 0 and out["identity"]["attributes"] == {"tenant": "globex"} and out["identity"]["groups"] == ["readers"]
    s3_client(g.endpoint, "CLIAPP", out["secret_key"]).list_buckets()
    rc, out = cli("disable", "CLIAPP")
    assert rc == 0 and out["identity"]["enabled"] is False
    rc, out = cli("describe", "NOPE")
    assert rc != 0 and out["code"] == "NoSuchIdentity"
    rc, out = cli("list")
    assert [i["access_key"] for i in out["identities"]][1:] == ["CLIAPP"]

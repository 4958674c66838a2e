"""The vault backend on a real OpenBao: Transit wrapping, KV metadata,
rotation, AppRole, TLS, and faults (sealed, stopped, restarted)."""

import base64
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import BAO, Gateway, eventually, free_port, payload, vault_config, vault_gateway, wait_port


def stored_dek(g, bucket, key):
    meta = g.raw_meta(bucket, key)
    return base64.b64decode(meta["kgw-kms-dek"]).decode()


def test_objects_on_vault_and_rotation_in_vault(bao):
    g = vault_gateway(bao)
    try:
        c = g.client()
        c.create_bucket(Bucket="vault-one")
        k = "vk-" + uuid.uuid4().hex[:8]
        assert g.admin("POST", "keys", {"key_id": k, "description": "vault key"})[0] == 200
        # Transit key exists, derived; KV holds the metadata.
        tk = bao.api("GET", f"transit/keys/{k}")["data"]
        assert tk["derived"] is True and tk["type"] == "aes256-gcm96"
        kv = bao.api("GET", f"secret/data/kgw-test/keys/{k}")["data"]["data"]
        assert kv["description"] == "vault key" and kv["state"] == "Enabled"
        body = payload(2 << 20, 3)
        c.put_object(Bucket="vault-one", Key="kms", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
        c.put_object(Bucket="vault-one", Key="s3", Body=b"sse-s3 on vault", ServerSideEncryption="AES256")
        assert stored_dek(g, "vault-one", "kms").startswith("vault:v1:")
        assert body[:64] not in g.raw_get("vault-one", "kms")
        # Rotate in Vault itself: old objects still read; new ones use v2.
        bao.api("POST", f"transit/keys/{k}/rotate")
        g.admin("POST", "clear-cache")
        c.put_object(Bucket="vault-one", Key="kms2", Body=b"after", ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
        assert stored_dek(g, "vault-one", "kms2").startswith("vault:v2:")
        assert c.get_object(Bucket="vault-one", Key="kms")["Body"].read() == body
        assert c.get_object(Bucket="vault-one", Key="s3")["Body"].read() == b"sse-s3 on vault"
        assert g.admin("GET", f"keys/{k}")[1]["key_metadata"]["current_version"] == 2
        # A wrapped key moved onto another object does not unwrap (context bound).
        meta_a, meta_b = g.raw_meta("vault-one", "kms"), g.raw_meta("vault-one", "kms2")
        forged = dict(meta_b, **{"kgw-kms-dek": meta_a["kgw-kms-dek"]})
        g.raw_put("vault-one", "kms2", g.raw_get("vault-one", "kms2"), forged)
        g.admin("POST", "clear-cache")
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="vault-one", Key="kms2")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    finally:
        g.stop()


def test_existing_non_derived_transit_keys_work_with_the_context_as_associated_data(bao):
    """A Transit key created the way operators (and RustFS) create them,
    `write -f transit/keys/NAME` (no derivation): objects round-trip, the
    wrapped data key is bound to its object's context as associated data,
    rotation keeps old objects readable, and re-keying works without a
    server-side rewrap."""
    k = "legacy-" + uuid.uuid4().hex[:8]
    bao.api("POST", f"transit/keys/{k}", {})
    assert bao.api("GET", f"transit/keys/{k}")["data"]["derived"] is False
    g = vault_gateway(bao)
    try:
        c = g.client()
        for b in ("legacy", "legacy2"):
            c.create_bucket(Bucket=b)
        body = payload(1 << 20, 7)
        for b, key in (("legacy", "a"), ("legacy2", "b")):
            c.put_object(Bucket=b, Key=key, Body=body + key.encode(), ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
            assert c.get_object(Bucket=b, Key=key)["Body"].read() == body + key.encode()
        wrapped = stored_dek(g, "legacy", "a")
        assert wrapped.startswith("vault:v1:")
        # Bound to the context: Transit refuses it without the associated data.
        with pytest.raises(RuntimeError, match="400"):
            bao.api("POST", f"transit/decrypt/{k}", {"ciphertext": wrapped})
        # A wrapped key moved into another bucket (another context) does not unwrap.
        meta_a, meta_b = g.raw_meta("legacy", "a"), g.raw_meta("legacy2", "b")
        g.raw_put("legacy2", "b", g.raw_get("legacy2", "b"), dict(meta_b, **{"kgw-kms-dek": meta_a["kgw-kms-dek"]}))
        g.admin("POST", "clear-cache")
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="legacy2", Key="b")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        # Rotation in Transit: the old object reads, a new one uses v2, and
        # a re-key moves the old one to v2 (client-side: no rewrap).
        bao.api("POST", f"transit/keys/{k}/rotate")
        g.admin("POST", "clear-cache")
        c.put_object(Bucket="legacy", Key="c", Body=b"after", ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
        assert stored_dek(g, "legacy", "c").startswith("vault:v2:")
        assert c.get_object(Bucket="legacy", Key="a")["Body"].read() == body + b"a"
        c.copy_object(Bucket="legacy", Key="a", CopySource={"Bucket": "legacy", "Key": "a"},
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
        assert stored_dek(g, "legacy", "a").startswith("vault:v2:")
        assert c.get_object(Bucket="legacy", Key="a")["Body"].read() == body + b"a"
    finally:
        g.stop()


def test_approle_login_and_relogin_after_revocation(bao):
    role_id, secret_id = bao.approle()
    g = Gateway(extra_args=["--kms-not-configured"])
    try:
        cfg = vault_config(bao, auth_method={"approle": {"role_id": role_id, "secret_id": secret_id}},
                           default_key_id="approle-default")
        s, r = g.admin("POST", "reconfigure", cfg)
        assert s == 200, r
        c = g.client()
        c.create_bucket(Bucket="approle")
        c.put_object(Bucket="approle", Key="o", Body=b"approle", ServerSideEncryption="aws:kms")
        # Revoke every token of the role: the gateway logs in again by itself.
        for acc in bao.api("LIST", "auth/token/accessors")["data"]["keys"]:
            info = bao.api("POST", "auth/token/lookup-accessor", {"accessor": acc})["data"]
            if info.get("path", "").startswith("auth/approle/login"):
                bao.api("POST", "auth/token/revoke-accessor", {"accessor": acc})
        g.admin("POST", "clear-cache")
        assert c.get_object(Bucket="approle", Key="o")["Body"].read() == b"approle"
        st = g.admin("GET", "config")[1]["config"]
        assert st["auth_method"]["approle"]["secret_id"] == "********"
    finally:
        g.stop()


def test_bad_credentials_namespace_and_tls(bao, tmp_path):
    g = Gateway(extra_args=["--kms-not-configured"])
    try:
        s, r = g.admin("POST", "reconfigure", vault_config(bao, auth_method={"token": "s.wrongtoken"}))
        assert s == 503 and "permission denied" in r["message"], r
        s, r = g.admin("POST", "reconfigure", vault_config(bao, namespace="no-such-ns"))
        assert s in (400, 503) and r["code"] == "BackendCheckFailed", r
        assert g.admin("GET", "status")[1]["status"] == "NotConfigured"
        # TLS: a dev-tls OpenBao with its own CA.
        certdir = tmp_path / "baotls"
        certdir.mkdir()
        port = free_port()
        proc = subprocess.Popen([BAO, "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={certdir}", "-dev-root-token-id=tlsroot",
                                 f"-dev-listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, proc)
            addr = f"https://127.0.0.1:{port}"
            ca = certdir / "vault-ca.pem"
            deadline = time.time() + 20
            while not ca.exists() and time.time() < deadline:
                time.sleep(0.1)
            import requests
            requests.post(f"{addr}/v1/sys/mounts/transit", json={"type": "transit"}, headers={"X-Vault-Token": "tlsroot"},
                          verify=str(ca), timeout=10).raise_for_status()
            base = {"backend_type": "vault", "address": addr, "auth_method": {"token": "tlsroot"},
                    "timeout_seconds": 5, "retry_attempts": 1}
            s, r = g.admin("POST", "reconfigure", base)
            assert s in (400, 503) and r["code"] == "BackendCheckFailed", r
            s, r = g.admin("POST", "reconfigure", dict(base, tls={"ca_cert_path": str(ca)}))
            assert s == 200, r
            c = g.client()
            c.create_bucket(Bucket="tls")
            c.put_object(Bucket="tls", Key="o", Body=b"over tls", ServerSideEncryption="aws:kms")
            g.admin("POST", "clear-cache")
            assert c.get_object(Bucket="tls", Key="o")["Body"].read() == b"over tls"
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        g.stop()


def test_sealed_and_stopped_vault_then_recovery(bao):
    g = Gateway(extra_args=["--kms-not-configured", "--kms-probe-interval-seconds", "1"])
    try:
        cfg = vault_config(bao, default_key_id="fault-key", cache_ttl_seconds=1, cache_offline_grace_seconds=600,
                           timeout_seconds=2, retry_attempts=2, circuit_breaker_threshold=3,
                           circuit_breaker_cooldown_seconds=1)
        assert g.admin("POST", "reconfigure", cfg)[0] == 200
        c = g.client()
        c.create_bucket(Bucket="faults")
        c.put_object(Bucket="faults", Key="before", Body=b"written before", ServerSideEncryption="aws:kms")
        assert c.get_object(Bucket="faults", Key="before")["Body"].read() == b"written before"
        time.sleep(1.5)  # past the cache TTL: reads now need the grace
        bao.seal()
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="faults", Key="while-sealed", Body=b"x", ServerSideEncryption="aws:kms")
        assert e.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert "while-sealed" not in [o["Key"] for o in c.list_objects_v2(Bucket="faults").get("Contents", [])]
        # Cached within the offline grace: still readable.
        assert c.get_object(Bucket="faults", Key="before")["Body"].read() == b"written before"
        st = g.admin("GET", "status")[1]
        assert st["healthy"] is False and st["health_error"], st
        assert "sealed" in st["health_error"] or "Vault is sealed" in g.log()
        # The status reads the running caches and backend: the read above
        # was served stale, and Vault re-wraps on its side.
        assert st["cache_stats"]["stale_served_count"] >= 1 and st["cache_stats"]["miss_count"] >= 1, st
        assert st["capabilities"]["rewrap"] is True
        bao.unseal()
        eventually(lambda: c.put_object(Bucket="faults", Key="after-unseal", Body=b"y", ServerSideEncryption="aws:kms"),
                   20, "gateway did not recover after unseal")
        # Stop OpenBao under a stream of PUTs: each fails with 503, none stored, nothing in clear.
        bao.stop()
        time.sleep(1.5)  # a bucket key made before the outage lives at most one TTL
        t0 = time.time()
        for i in range(10):
            with pytest.raises(ClientError) as e:
                c.put_object(Bucket="faults", Key=f"down-{i}", Body=b"z" * 100, ServerSideEncryption="aws:kms")
            assert e.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert time.time() - t0 < 15, "an open circuit must fail fast"
        keys = [o["Key"] for o in c.list_objects_v2(Bucket="faults").get("Contents", [])]
        assert not [k for k in keys if k.startswith("down-")]
        assert c.get_object(Bucket="faults", Key="before")["Body"].read() == b"written before"
        assert "\nkgw_kms_circuit_open 1\n" in __import__("requests").get(f"{g.endpoint}/metrics", timeout=10).text
        assert g.admin("GET", "status")[1]["circuit_breaker"] == "open"
        bao.restart()
        eventually(lambda: c.put_object(Bucket="faults", Key="after-restart", Body=b"back", ServerSideEncryption="aws:kms"),
                   30, "gateway did not recover after OpenBao restart")
        g.admin("POST", "clear-cache")
        assert c.get_object(Bucket="faults", Key="after-restart")["Body"].read() == b"back"
        assert g.admin("GET", "status")[1]["circuit_breaker"] == "closed"
        assert c.get_object(Bucket="faults", Key="before")["Body"].read() == b"written before"
    finally:
        if bao.proc.poll() is not None:
            bao.start()
            bao.unseal()
        g.stop()

"""Cluster mode: three replicas sharing one upstream (`kms-gateway store`)
and their state in its reserved bucket (`--state upstream`). Requests are
spread across replicas round-robin, down to the parts of one upload."""

import base64
import hashlib
import itertools
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import (BIN, MIB, UP_ACCESS, UP_SECRET, UPSTREAMS, Gateway, RustFS, Store, admin_call, payload, s3_client, ssec,
                      vault_config)

STATE_BUCKET = "kms-gateway-state"
POLL_MS = 200
# The documented propagation bound is the poll interval; the tests allow
# the poll plus a generous margin for a loaded CI machine.
BOUND = 5


def master_key_file():
    key_file = Path(tempfile.mkdtemp(prefix="kgw-master-")) / "master.key"
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o600)
    return key_file


@pytest.fixture(scope="module")
def cluster():
    # The shared upstream: the embedded store served on its own, or RustFS
    # in a run in front of RustFS (tests/rustfs/run.sh).
    store = RustFS() if "rustfs" in UPSTREAMS else Store()
    key_file = master_key_file()
    args = ("--allow-insecure-sse-c", "--state", "upstream", "--state-poll-ms", str(POLL_MS),
            "--kms-master-key-file", str(key_file))
    replicas = [Gateway(upstream=store, extra_args=args) for _ in range(3)]
    yield store, replicas, args
    for g in replicas:
        g.close()
    store.stop()


def raw(store):
    return s3_client(store.endpoint, UP_ACCESS, UP_SECRET)


def round_robin(replicas):
    clients = [g.client() for g in replicas]
    return itertools.cycle(clients)


def eventually_true(fn, what, timeout=BOUND):
    deadline = time.time() + timeout
    while not fn():
        assert time.time() < deadline, what
        time.sleep(0.1)


MODES = {
    "SSE-S3": lambda: {"ServerSideEncryption": "AES256"},
    "SSE-KMS": lambda: {"ServerSideEncryption": "aws:kms"},
    "SSE-C": lambda: ssec(b"k" * 32),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_round_trips_with_each_request_on_another_replica(cluster, mode):
    store, replicas, _ = cluster
    rr = round_robin(replicas)
    bucket = f"rr-{mode.lower()}"
    next(rr).create_bucket(Bucket=bucket)
    sse = MODES[mode]()
    # Reads and parts carry SSE-C's key; the other modes are named once.
    read_sse = sse if mode == "SSE-C" else {}

    small = payload(300_000, seed=3)
    next(rr).put_object(Bucket=bucket, Key="small", Body=small, **sse)
    for _ in range(3):
        assert next(rr).get_object(Bucket=bucket, Key="small", **read_sse)["Body"].read() == small
    got = next(rr).get_object(Bucket=bucket, Key="small", Range="bytes=1000-1999", **read_sse)["Body"].read()
    assert got == small[1000:2000]

    # One multipart upload, every call on the next replica.
    parts = [payload(5 * MIB, seed=10 + i) for i in range(3)] + [payload(777, seed=20)]
    up = next(rr).create_multipart_upload(Bucket=bucket, Key="big", **sse)["UploadId"]
    etags = []
    for i, body in enumerate(parts, start=1):
        etags.append(next(rr).upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=i, Body=body, **read_sse)["ETag"])
    # A retried part through yet another replica: the later attempt counts.
    parts[1] = payload(5 * MIB, seed=99)
    etags[1] = next(rr).upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=2, Body=parts[1], **read_sse)["ETag"]
    listed = next(rr).list_parts(Bucket=bucket, Key="big", UploadId=up, **read_sse)["Parts"]
    assert [p["Size"] for p in listed] == [len(p) for p in parts]
    next(rr).complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, start=1)]}, **read_sse)
    whole = b"".join(parts)
    for _ in range(3):
        got = next(rr).get_object(Bucket=bucket, Key="big", **read_sse)["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(whole).digest()
    head = next(rr).head_object(Bucket=bucket, Key="big", **read_sse)
    assert head["ContentLength"] == len(whole)

    # The store never holds a plaintext part, nor the small object.
    stored = raw(store).get_object(Bucket=bucket, Key="big")["Body"].read()
    for body in parts[:3]:
        assert body[:4096] not in stored
    assert small[:4096] not in raw(store).get_object(Bucket=bucket, Key="small")["Body"].read()


def test_admin_and_bucket_changes_reach_the_other_replicas(cluster):
    store, (a, b, c), _ = cluster
    ca, cb, cc = a.client(), b.client(), c.client()
    ca.create_bucket(Bucket="propagate")

    # A key created on A encrypts on B and decrypts on C.
    assert a.admin("POST", "keys", {"key_id": "team-key"})[0] == 200
    cb.put_object(Bucket="propagate", Key="o", Body=b"secret", ServerSideEncryption="aws:kms", SSEKMSKeyId="team-key")
    assert cc.get_object(Bucket="propagate", Key="o")["Body"].read() == b"secret"

    # Rotated on B: every replica reports version 2 and still reads v1 data.
    assert b.admin("POST", "keys/rotate", {"key_id": "team-key"})[0] == 200
    for g in (a, c):
        eventually_true(lambda g=g: g.admin("GET", "keys/team-key")[1]["key_metadata"]["current_version"] == 2,
                        "rotation seen")
    assert ca.get_object(Bucket="propagate", Key="o")["Body"].read() == b"secret"

    # Disabled on C: A and B refuse to use it within the bound.
    assert c.admin("POST", "keys/disable", {"key_id": "team-key"})[0] == 200

    def refused(client):
        try:
            client.put_object(Bucket="propagate", Key="n", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="team-key")
            return False
        except ClientError:
            return True

    eventually_true(lambda: refused(ca) and refused(cb), "a key disabled on C is refused by A and B")
    assert c.admin("POST", "keys/enable", {"key_id": "team-key"})[0] == 200

    # A bucket default set on A applies to plain writes through B and C.
    ca.put_bucket_encryption(Bucket="propagate", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "team-key"}}]})

    def encrypted_by_default(client, key):
        client.put_object(Bucket="propagate", Key=key, Body=b"plain write")
        return raw(store).head_object(Bucket="propagate", Key=key)["Metadata"].get("kgw-kms-key") == "team-key"

    eventually_true(lambda: encrypted_by_default(cb, "via-b") and encrypted_by_default(cc, "via-c"),
                    "bucket default set on A in force on B and C")
    assert cc.get_bucket_encryption(Bucket="propagate")["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == "team-key"


def test_status_lists_the_replicas_and_answers_carry_the_generation(cluster):
    _, replicas, _ = cluster
    a, b, _ = replicas
    status = a.admin("GET", "status")[1]["cluster"]
    eventually_true(lambda: len(a.admin("GET", "status")[1]["cluster"]["replicas"]) == 3, "three replicas heard from")
    status = a.admin("GET", "status")[1]["cluster"]
    assert status["replica"] in {r["replica"] for r in status["replicas"]}
    assert len({r["kms_config"] for r in status["replicas"]}) == 1 and not status["diverged"], status
    _, _, headers = admin_call(a.endpoint, "POST", "keys", {"key_id": "generation-probe"}, with_headers=True)
    made = int(headers["x-kms-gateway-generation"])
    assert made >= status["generation"] and made > 0
    # B reports at least that generation within the bound.
    eventually_true(lambda: int(admin_call(b.endpoint, "GET", "status", with_headers=True)[2]["x-kms-gateway-generation"]) >= made,
                    "B has seen the change")


def test_an_identity_made_on_one_replica_signs_on_all(cluster):
    _, (a, b, c), _ = cluster
    s, r = a.admin("POST", "/rustfs/admin/v3/identities", {"access_key": "CLUSTERAPP", "attributes": {"tenant": "t1"}})
    assert s == 200, r

    def works(g, secret):
        try:
            s3_client(g.endpoint, "CLUSTERAPP", secret).list_buckets()
            return True
        except ClientError:
            return False

    for g in (b, c):
        eventually_true(lambda g=g: works(g, r["secret_key"]), "identity known on every replica")
    assert b.admin("POST", "/rustfs/admin/v3/identities/CLUSTERAPP/disable")[0] == 200
    for g in (a, c):
        eventually_true(lambda g=g: not works(g, r["secret_key"]), "disabled on every replica")


def test_concurrent_rotations_on_different_replicas_lose_no_version(cluster):
    _, replicas, _ = cluster
    assert replicas[0].admin("POST", "keys", {"key_id": "raced"})[0] == 200
    statuses = []

    def rotate(g):
        for _ in range(4):
            statuses.append(g.admin("POST", "keys/rotate", {"key_id": "raced"})[0])

    threads = [threading.Thread(target=rotate, args=(g,)) for g in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 12
    # Twelve rotations from three replicas: version 13 everywhere.
    for g in replicas:
        eventually_true(lambda g=g: g.admin("GET", "keys/raced")[1]["key_metadata"]["current_version"] == 13,
                        "every rotation kept")


def test_conflicting_bucket_defaults_converge(cluster):
    _, replicas, _ = cluster
    replicas[0].client().create_bucket(Bucket="converge")

    def set_default(g, algo):
        g.client().put_bucket_encryption(Bucket="converge", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algo}}]})

    threads = [threading.Thread(target=set_default, args=(g, algo))
               for g, algo in zip(replicas, ["AES256", "aws:kms", "AES256"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def seen():
        return [g.client().get_bucket_encryption(Bucket="converge")["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for g in replicas]

    eventually_true(lambda: len(set(seen())) == 1, "replicas agree on one default")
    agreed = seen()[0]
    # And after a restart of every replica, still that one.
    for g in replicas:
        g.restart()
    assert seen() == [agreed] * 3


def test_a_killed_replica_leaves_its_uploads_to_the_others(cluster):
    store, replicas, args = cluster
    a, b, c = replicas
    b.client().create_bucket(Bucket="survive")
    parts = [payload(5 * MIB, seed=40 + i) for i in range(2)]
    up = b.client().create_multipart_upload(Bucket="survive", Key="k", ServerSideEncryption="aws:kms")["UploadId"]
    e1 = b.client().upload_part(Bucket="survive", Key="k", UploadId=up, PartNumber=1, Body=parts[0])["ETag"]
    b.kill()
    try:
        e2 = a.client().upload_part(Bucket="survive", Key="k", UploadId=up, PartNumber=2, Body=parts[1])["ETag"]
        c.client().complete_multipart_upload(Bucket="survive", Key="k", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        assert a.client().get_object(Bucket="survive", Key="k")["Body"].read() == b"".join(parts)
    finally:
        b.start()


def test_a_deleted_claim_does_not_make_a_replica_reuse_a_key():
    """The store operator deletes the part claims of an upload in progress;
    the client then replaces part 2 with other bytes through the same
    replica. The replacement must get a new attempt number (hence its own
    key and nonces), not the deleted claim's. (Its own store: the test
    reads the parts' files, as the store's operator could.)"""
    store = Store()
    a = Gateway(upstream=store, extra_args=("--state", "upstream", "--kms-master-key-file", str(master_key_file())))
    try:
        claims_attack(store, a)
    finally:
        a.close()
        store.stop()


def claims_attack(store, a):
    c = a.client()
    c.create_bucket(Bucket="claims")
    first, parts = payload(1000, seed=62), [payload(5 * MIB, seed=60), payload(1000, seed=61)]
    up = c.create_multipart_upload(Bucket="claims", Key="k", ServerSideEncryption="aws:kms")["UploadId"]
    e1 = c.upload_part(Bucket="claims", Key="k", UploadId=up, PartNumber=1, Body=parts[0])["ETag"]
    c.upload_part(Bucket="claims", Key="k", UploadId=up, PartNumber=2, Body=first)
    # The store keeps each part in a file of its own (s3s-fs's layout).
    part_file = store.root / f".upload_id-{up}.part-2"
    first_ct = part_file.read_bytes()
    r = raw(store)
    claims = [o["Key"] for o in r.list_objects_v2(Bucket=STATE_BUCKET, Prefix="upload-parts/")["Contents"]]
    assert claims
    for k in claims:
        r.delete_object(Bucket=STATE_BUCKET, Key=k)
    e2 = c.upload_part(Bucket="claims", Key="k", UploadId=up, PartNumber=2, Body=parts[1])["ETag"]
    second_ct = part_file.read_bytes()
    # Under one key and nonce the two ciphertexts would XOR to the two
    # plaintexts' XOR.
    assert len(first_ct) == len(second_ct) > 1000
    ct_xor = bytes(x ^ y for x, y in zip(first_ct, second_ct))
    assert bytes(x ^ y for x, y in zip(first, parts[1]))[:64] not in ct_xor
    # Part 1's claim is gone too: completion cannot match it and refuses.
    with pytest.raises(ClientError) as e:
        c.complete_multipart_upload(Bucket="claims", Key="k", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert e.value.response["Error"]["Code"] == "InvalidPart"
    e1 = c.upload_part(Bucket="claims", Key="k", UploadId=up, PartNumber=1, Body=parts[0])["ETag"]
    c.complete_multipart_upload(Bucket="claims", Key="k", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert c.get_object(Bucket="claims", Key="k")["Body"].read() == b"".join(parts)


def test_the_state_bucket_is_hidden_refused_and_sealed(cluster):
    store, (a, _, _), _ = cluster
    c = a.client()
    c.create_bucket(Bucket="visible-bucket-name")
    c.put_bucket_encryption(Bucket="visible-bucket-name", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    names = [x["Name"] for x in c.list_buckets()["Buckets"]]
    assert "visible-bucket-name" in names and STATE_BUCKET not in names
    state = [o["Key"] for o in raw(store).list_objects_v2(Bucket=STATE_BUCKET).get("Contents", [])]
    assert any(k.startswith("bucket-encryption/") for k in state), state
    for call in (
        lambda: c.list_objects_v2(Bucket=STATE_BUCKET),
        lambda: c.get_object(Bucket=STATE_BUCKET, Key=state[0]),
        lambda: c.put_object(Bucket=STATE_BUCKET, Key="bucket-encryption/x", Body=b"{}"),
        lambda: c.delete_object(Bucket=STATE_BUCKET, Key=state[0]),
        lambda: c.copy_object(Bucket="visible-bucket-name", Key="stolen", CopySource={"Bucket": STATE_BUCKET, "Key": state[0]}),
        lambda: c.get_bucket_encryption(Bucket=STATE_BUCKET),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    # What the store holds is sealed: no bucket name, no JSON.
    docs = [raw(store).get_object(Bucket=STATE_BUCKET, Key=k)["Body"].read() for k in state]
    assert all(b"visible-bucket-name" not in d and b'"doc"' not in d for d in docs)


def test_a_forged_state_document_is_refused_not_obeyed(cluster):
    """The store operator rewrites a bucket default document: the replicas
    fail closed (500) rather than follow a document they did not write."""
    store, (a, b, _), _ = cluster
    a.client().create_bucket(Bucket="forged")
    a.client().put_bucket_encryption(Bucket="forged", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    r = raw(store)
    before = {o["Key"] for o in r.list_objects_v2(Bucket=STATE_BUCKET, Prefix="bucket-encryption/")["Contents"]}
    for k in before:
        r.put_object(Bucket=STATE_BUCKET, Key=k, Body=b'{"key":"forged","doc":null}')
    # A change elsewhere makes every replica drop its caches.
    assert a.admin("POST", "keys", {"key_id": "nudge"})[0] == 200

    def refused():
        try:
            b.client().put_object(Bucket="forged", Key="x", Body=b"data")
            return False
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    eventually_true(refused, "a forged default is an error, not an instruction")
    with pytest.raises(ClientError):
        raw(store).head_object(Bucket="forged", Key="x")


def test_a_store_without_conditional_writes_is_refused_for_cluster_state(moto):
    from recording_proxy import RecordingProxy

    proxy = RecordingProxy(moto.port, drop_conditions=True)
    try:
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([str(BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", d, "--state", "upstream",
                                "--upstream", proxy.endpoint, "--upstream-access-key", UP_ACCESS,
                                "--upstream-secret-key", UP_SECRET, "--kms-master-key-file", str(master_key_file())],
                               capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert "cannot hold cluster state" in r.stderr and "If-None-Match" in r.stderr, r.stderr[-2000:]
    finally:
        proxy.stop()


def test_cluster_mode_refuses_to_start_without_shared_secrets(cluster):
    store, _, _ = cluster
    env = {**os.environ, "KMS_GATEWAY_UPSTREAM_ACCESS_KEY": UP_ACCESS, "KMS_GATEWAY_UPSTREAM_SECRET_KEY": UP_SECRET}
    base = [str(BIN), "serve", "--listen", "127.0.0.1:0", "--state", "upstream", "--upstream", store.endpoint]
    with tempfile.TemporaryDirectory() as d:
        # No master key file: each replica would generate its own.
        r = subprocess.run(base + ["--data-dir", d, "--access-key", "a" * 20, "--secret-key", "s" * 40,
                                   "--admin-access-key", "b" * 20, "--admin-secret-key", "t" * 40],
                           env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "--kms-master-key-file" in r.stderr
    with tempfile.TemporaryDirectory() as d:
        # No upstream: nothing to share.
        r = subprocess.run([str(BIN), "serve", "--data-dir", d, "--state", "upstream"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0 and "--upstream" in r.stderr


def test_a_local_key_directory_is_refused_in_cluster_mode(cluster, tmp_path):
    """A key directory is one replica's disk: each replica would create
    its own keys there, and an object written through one would not open
    on another. Refused at start and over the admin API; the local keys of
    cluster mode live in the shared state."""
    store, replicas, args = cluster
    env = {**os.environ, "KMS_GATEWAY_UPSTREAM_ACCESS_KEY": UP_ACCESS, "KMS_GATEWAY_UPSTREAM_SECRET_KEY": UP_SECRET}
    r = subprocess.run([str(BIN), "serve", "--listen", "127.0.0.1:0", "--upstream", store.endpoint, "--data-dir",
                        str(tmp_path / "d"), *args, "--kms-backend", "local", "--kms-key-dir", str(tmp_path / "keys"),
                        "--access-key", "a" * 20, "--secret-key", "s" * 40, "--admin-access-key", "b" * 20,
                        "--admin-secret-key", "t" * 40], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "key_dir" in r.stderr, r.stderr[-2000:]
    g = replicas[0]
    s, body = g.admin("POST", "reconfigure", {"backend_type": "local", "key_dir": str(tmp_path / "keys")})
    assert s == 400 and "key_dir" in str(body), (s, body)
    assert g.admin("GET", "status")[1]["status"] == "Running"
    c = g.client()
    c.create_bucket(Bucket="no-key-dir")
    c.put_object(Bucket="no-key-dir", Key="k", Body=b"shared", ServerSideEncryption="AES256")
    assert replicas[1].client().get_object(Bucket="no-key-dir", Key="k")["Body"].read() == b"shared"


def test_a_kms_reconfigured_on_one_replica_is_taken_up_by_the_others(cluster, bao):
    """Local → Vault (a real OpenBao) through replica A: B and C follow,
    write under Vault keys, and still read what the local keys wrote."""
    store, (a, b, c), _ = cluster
    a.client().create_bucket(Bucket="kms-switch")
    a.client().put_object(Bucket="kms-switch", Key="before", Body=b"local era", ServerSideEncryption="aws:kms")
    cfg = vault_config(bao, key_path_prefix="kgw-cluster/keys")
    try:
        s, body = a.admin("POST", "reconfigure", cfg)
        assert s == 200, body
        for g in (b, c):
            eventually_true(lambda g=g: g.admin("GET", "status")[1].get("backend_type") == "vault"
                            and g.admin("GET", "status")[1]["status"] == "Running", "vault taken up")
        b.client().put_object(Bucket="kms-switch", Key="after", Body=b"vault era", ServerSideEncryption="aws:kms")
        assert raw(store).head_object(Bucket="kms-switch", Key="after")["Metadata"]["kgw-kms-key"] == "gateway-default"
        assert c.client().get_object(Bucket="kms-switch", Key="after")["Body"].read() == b"vault era"
        assert c.client().get_object(Bucket="kms-switch", Key="before")["Body"].read() == b"local era"
        # The data key of "after" is Vault's: its wrapped form is a Transit ciphertext.
        dek = raw(store).head_object(Bucket="kms-switch", Key="after")["Metadata"]["kgw-kms-dek"]
        assert base64.b64decode(dek).startswith(b"vault:v"), dek[:20]
    finally:
        s, body = a.admin("POST", "reconfigure", {"backend_type": "local"})
        assert s == 200, body
    for g in (b, c):
        eventually_true(lambda g=g: g.admin("GET", "status")[1].get("backend_type") == "local", "local again")
    assert b.client().get_object(Bucket="kms-switch", Key="after")["Body"].read() == b"vault era"


WASM = Path(os.environ.get("KMS_GATEWAY_POLICIES", Path(__file__).resolve().parents[2] / "policies" / "target" / "wasm32-wasip2" / "release"))
POLICIES = "/rustfs/admin/v3/policies"


def test_a_policy_uploaded_and_bound_through_one_replica_applies_on_all(cluster):
    _, (a, b, c), _ = cluster
    a.client().create_bucket(Bucket="policed")
    a.client().create_bucket(Bucket="policed-too")
    wasm = (WASM / "require_sse_kms.wasm").read_bytes()
    s, r = a.admin("PUT", f"{POLICIES}/rsk", wasm, content_type="application/wasm")
    assert s == 200, r
    # Two bindings made at once through two other replicas: both kept.
    results = []
    threads = [threading.Thread(target=lambda g=g, bk=bk: results.append(
        g.admin("POST", f"{POLICIES}/bind", {"hook": "sse-validate", "policy": "rsk", "bucket": bk})[0]))
        for g, bk in ((b, "policed"), (c, "policed-too"))]
    eventually_true(lambda: b.admin("GET", f"{POLICIES}/rsk")[0] == 200, "policy known on B")
    eventually_true(lambda: c.admin("GET", f"{POLICIES}/rsk")[0] == 200, "policy known on C")
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200]

    def refused(g, bucket):
        try:
            g.client().put_object(Bucket=bucket, Key="c", Body=b"x", **ssec(b"k" * 32))
            return False
        except ClientError as e:
            return e.response["Error"]["Code"] == "AccessDenied" and "SSE-C is forbidden" in e.response["Error"]["Message"]

    for g in (a, b, c):
        eventually_true(lambda g=g: refused(g, "policed") and refused(g, "policed-too"), "both bindings in force")
    assert sorted(x["bucket"] for x in a.admin("GET", f"{POLICIES}/bindings")[1]["bindings"]) == ["policed", "policed-too"]
    # Unbound through C: A accepts again.
    assert c.admin("POST", f"{POLICIES}/unbind", {"hook": "sse-validate", "bucket": "policed"})[0] == 200
    eventually_true(lambda: not refused(a, "policed"), "unbinding in force on A")
    assert refused(a, "policed-too")
    assert c.admin("POST", f"{POLICIES}/unbind", {"hook": "sse-validate", "bucket": "policed-too"})[0] == 200


def rotations(g, key):
    events = [json.loads(line) for line in (g.data_dir / "audit.log").read_text().splitlines() if line.strip()]
    return [e for e in events if e["action"] == "kms:policy-rotation" and e.get("key_id") == key and e["outcome"] == "ok"]


def test_scheduled_rotation_runs_once_per_period_and_survives_its_holder():
    store = Store()
    key_file = master_key_file()
    interval = 2
    args = ("--state", "upstream", "--state-poll-ms", str(POLL_MS), "--kms-master-key-file", str(key_file),
            "--policy-rotation-interval-seconds", str(interval))
    replicas = [Gateway(upstream=store, extra_args=args) for _ in range(3)]
    try:
        a = replicas[0]
        assert a.admin("POST", "keys", {"key_id": "spinning", "tags": {"rotate-after-seconds": "1"}})[0] == 200
        assert a.admin("PUT", f"{POLICIES}/rotator", (WASM / "rotate_after_days.wasm").read_bytes(),
                       content_type="application/wasm")[0] == 200
        assert a.admin("POST", f"{POLICIES}/bind", {"hook": "rotation", "policy": "rotator"})[0] == 200
        started = time.time()
        time.sleep(5 * interval)
        elapsed = time.time() - started
        events = [e for g in replicas for e in rotations(g, "spinning")]
        # One pass per period across the three replicas (each alone would
        # make one per period: three times as many).
        periods = elapsed / interval + 1
        assert 2 <= len(events) <= periods, (len(events), periods)
        # Each event names the replica that wrote it.
        names = {e["replica"] for e in events}
        assert names <= {e["replica"] for g in replicas for e in
                         (json.loads(x) for x in (g.data_dir / "audit.log").read_text().splitlines() if x.strip())}
        # Kill the replica that ran the last pass: the others carry on.
        last = max(events, key=lambda e: e["time"])
        holder = next(g for g in replicas if any(e["time"] == last["time"] for e in rotations(g, "spinning")))
        holder.kill()
        others = [g for g in replicas if g is not holder]
        before = sum(len(rotations(g, "spinning")) for g in others)
        eventually_true(lambda: sum(len(rotations(g, "spinning")) for g in others) >= before + 2,
                        "rotation resumed on the surviving replicas", timeout=6 * interval)
        # Stop the schedule, let the last pass end, then count.
        assert others[0].admin("POST", f"{POLICIES}/unbind", {"hook": "rotation"})[0] == 200
        time.sleep(2 * interval)
        total = sum(len(rotations(g, "spinning")) for g in replicas)

        def version():
            return others[1].admin("GET", "keys/spinning")[1]["key_metadata"]["current_version"]

        # Every rotation is in the audit trail (a replica killed between
        # rotating and writing its audit line would leave one out).
        eventually_true(lambda: version() >= total + 1, "every rotation seen")
        assert version() <= total + 2, (version(), total)
    finally:
        for g in replicas:
            g.close()
        store.stop()


def test_cluster_mode_adds_no_upstream_request_per_put_or_get(moto):
    """moto_server as the shared upstream (it does conditional writes),
    behind a recording proxy: steady-state PUT, GET and HEAD cost the
    same requests in cluster mode as on a single node; the state bucket
    sees only the background poll and heartbeat."""
    from recording_proxy import RecordingProxy

    key_file = master_key_file()
    proxy = RecordingProxy(moto.port)
    single = Gateway(upstream=proxy)
    cluster_args = ("--allow-insecure-sse-c", "--state", "upstream", "--state-poll-ms", "1000",
                    "--kms-master-key-file", str(key_file))
    replicas = [Gateway(upstream=proxy, extra_args=cluster_args) for _ in range(2)]
    try:
        def per_op(g, bucket):
            c = g.client()
            c.create_bucket(Bucket=bucket)
            c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
            # Warm the caches (bucket default, KMS, sizes), and let every
            # replica take up the changes above (a reload per change, not
            # per request).
            c.put_object(Bucket=bucket, Key="warm", Body=b"w")
            c.get_object(Bucket=bucket, Key="warm")["Body"].read()
            time.sleep(2.5)
            proxy.clear()
            n = 20
            for i in range(n):
                c.put_object(Bucket=bucket, Key=f"o{i}", Body=b"x" * 4096)
                c.get_object(Bucket=bucket, Key=f"o{i}")["Body"].read()
                c.head_object(Bucket=bucket, Key=f"o{i}")
            with proxy.lock:
                reqs = [(r.method, r.path) for r in proxy.requests]
            data = [r for r in reqs if r[1].startswith(f"/{bucket}/")]
            state = [r for r in reqs if r[1].startswith(f"/{STATE_BUCKET}/")
                     and "_cluster%2Fgeneration" not in r[1] and "_cluster/generation" not in r[1]
                     and not (r[0] == "PUT" and "/replicas/" in r[1])]
            return len(data) / n, state

        single_cost, _ = per_op(single, "single-costs")
        cluster_cost, state = per_op(replicas[0], "cluster-costs")
        assert cluster_cost == single_cost == 3, (single_cost, cluster_cost)
        assert state == [], state[:5]
        # The other replica sees the same data with no extra request either.
        assert replicas[1].client().get_object(Bucket="cluster-costs", Key="o3")["Body"].read() == b"x" * 4096
    finally:
        single.close()
        for g in replicas:
            g.close()
        proxy.stop()


def test_replicas_without_credential_flags_share_generated_credentials():
    """Same upstream and master key, no credential flags: the first replica
    generates the credentials into the cluster state, the others use them."""
    import re

    store = Store()
    key_file = master_key_file()
    args = ("--state", "upstream", "--kms-master-key-file", str(key_file))
    replicas = [Gateway(upstream=store, extra_args=args, s3_flags=False, admin_flags=False) for _ in range(2)]
    try:
        def printed(g):
            deadline = time.time() + 10
            while not (m := re.search(r"S3 credentials: access key (\S+)\s+secret key (.+)", g.log())):
                assert time.time() < deadline, g.log()
                time.sleep(0.1)
            return m.group(1), m.group(2).strip()

        (ak1, sk1), (ak2, shown2) = printed(replicas[0]), printed(replicas[1])
        assert ak1 == ak2 and len(sk1) == 40
        # Shown once, by the replica that generated it; the other says where it is.
        assert "cluster state" in shown2 and sk1 not in replicas[1].log()
        c1 = s3_client(replicas[0].endpoint, ak1, sk1)
        c2 = s3_client(replicas[1].endpoint, ak1, sk1)
        c1.create_bucket(Bucket="shared-creds")
        c2.put_object(Bucket="shared-creds", Key="k", Body=b"v", ServerSideEncryption="aws:kms")
        assert c1.get_object(Bucket="shared-creds", Key="k")["Body"].read() == b"v"
        # The secret is in the state bucket only sealed.
        r = raw(store)
        for o in r.list_objects_v2(Bucket=STATE_BUCKET, Prefix="gateway/")["Contents"]:
            assert sk1.encode() not in r.get_object(Bucket=STATE_BUCKET, Key=o["Key"])["Body"].read()
    finally:
        for g in replicas:
            g.close()
        store.stop()


def test_concurrent_kms_reconfigurations_keep_every_backend_readable(bao):
    """A moves the cluster to Vault and writes under it; B, not having
    heard of it yet (a long poll), moves the cluster back to local. B's
    change lands last, yet Vault stays among the earlier backends, so what
    A wrote under it stays readable everywhere, after a restart too."""
    store = Store()
    args = ("--state", "upstream", "--state-poll-ms", "60000", "--kms-master-key-file", str(master_key_file()))
    a, b = (Gateway(upstream=store, extra_args=args) for _ in range(2))
    try:
        a.client().create_bucket(Bucket="raced-kms")
        s, body = a.admin("POST", "reconfigure", vault_config(bao, key_path_prefix="kgw-raced/keys"))
        assert s == 200, body
        a.client().put_object(Bucket="raced-kms", Key="vault-era", Body=b"under vault", ServerSideEncryption="aws:kms")
        assert base64.b64decode(raw(store).head_object(Bucket="raced-kms", Key="vault-era")["Metadata"]["kgw-kms-dek"]).startswith(b"vault:")
        assert b.admin("GET", "status")[1]["backend_type"] == "local", "B has not heard of Vault"
        s, body = b.admin("POST", "reconfigure", {"backend_type": "local"})
        assert s == 200, body
        for g in (a, b):
            g.restart()
            assert g.admin("GET", "status")[1]["backend_type"] == "local"
            assert g.client().get_object(Bucket="raced-kms", Key="vault-era")["Body"].read() == b"under vault"
    finally:
        a.close()
        b.close()
        store.stop()

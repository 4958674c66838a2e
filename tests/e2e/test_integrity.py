"""Fail-closed behaviour in front of a store the gateway does not trust:
SSE-C keys never reach the store, upload ids the gateway did not create
are refused, long store-chosen upload ids work, SSE-C part rules hold for
every part size, damaged records never fail a listing, and concurrent
bucket-default writes leave the served value equal to the stored one."""

import base64
import concurrent.futures
import hashlib

import pytest
from botocore.exceptions import ClientError

from conftest import MIB, Gateway, lists_parts, payload, ssec, vault_gateway
from recording_proxy import PAD, RecordingProxy

CKEY = b"k" * 32
OTHER = b"o" * 32


def assert_kms_round_trip(g, bucket):
    """The KMS as configured now really wraps and unwraps a data key."""
    c = g.client()
    c.create_bucket(Bucket=bucket)
    c.put_object(Bucket=bucket, Key="o", Body=b"v", ServerSideEncryption="aws:kms")
    assert c.get_object(Bucket=bucket, Key="o")["Body"].read() == b"v"


def err_of(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def err(e):
    return err_of(e.value)


@pytest.fixture
def recorded(moto):
    """A gateway whose upstream is moto behind a recording proxy that also
    lengthens upload ids past 230 characters (RustFS's are 124)."""
    proxy = RecordingProxy(moto.port, long_upload_ids=True)
    g = Gateway(upstream=proxy)
    yield g, proxy
    g.close()
    proxy.stop()


def test_customer_keys_never_reach_the_store(recorded):
    g, proxy = recorded
    c = g.client()
    c.create_bucket(Bucket="ssec-leak")
    body = payload(6 * MIB, seed=3)
    c.put_object(Bucket="ssec-leak", Key="one", Body=b"hello", **ssec(CKEY))
    assert c.get_object(Bucket="ssec-leak", Key="one", **ssec(CKEY))["Body"].read() == b"hello"
    c.head_object(Bucket="ssec-leak", Key="one", **ssec(CKEY))
    c.get_object(Bucket="ssec-leak", Key="one", Range="bytes=1-2", **ssec(CKEY))
    # Multipart, with ListParts (which AWS lets carry the key) and a part copy.
    uid = c.create_multipart_upload(Bucket="ssec-leak", Key="mp", **ssec(CKEY))["UploadId"]
    assert len(uid) > 200, "the proxy lengthened the id"
    e1 = c.upload_part(Bucket="ssec-leak", Key="mp", UploadId=uid, PartNumber=1, Body=body, **ssec(CKEY))["ETag"]
    src = {f"CopySource{k}": v for k, v in ssec(CKEY).items()}
    e2 = c.upload_part_copy(
        Bucket="ssec-leak", Key="mp", UploadId=uid, PartNumber=2, CopySource={"Bucket": "ssec-leak", "Key": "one"}, **src, **ssec(CKEY)
    )["CopyPartResult"]["ETag"]
    # ListParts may carry the key (AWS accepts it). The request must reach
    # the store without it; the answer is not checked here because moto's
    # ListParts answer does not convert through the S3 SDK layer (the
    # multipart suite checks ListParts on the embedded store).
    before = len(proxy.requests)
    try:
        c.list_parts(Bucket="ssec-leak", Key="mp", UploadId=uid, **ssec(CKEY))
    except ClientError:
        pass
    assert any(r.method == "GET" and "uploadId=" in r.path for r in proxy.requests[before:]), "ListParts reached the store"
    c.complete_multipart_upload(
        Bucket="ssec-leak", Key="mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
    )
    got = c.get_object(Bucket="ssec-leak", Key="mp", **ssec(CKEY))["Body"].read()
    assert got == body + b"hello"
    c.copy_object(Bucket="ssec-leak", Key="copy", CopySource={"Bucket": "ssec-leak", "Key": "one"}, **src, **ssec(OTHER))
    c.get_object_attributes(Bucket="ssec-leak", Key="copy", ObjectAttributes=["ObjectSize"], **ssec(OTHER))
    # An upload created with SSE-C then aborted, and a part for it.
    uid2 = c.create_multipart_upload(Bucket="ssec-leak", Key="ab", **ssec(CKEY))["UploadId"]
    c.upload_part(Bucket="ssec-leak", Key="ab", UploadId=uid2, PartNumber=1, Body=b"x", **ssec(CKEY))
    c.abort_multipart_upload(Bucket="ssec-leak", Key="ab", UploadId=uid2)

    seen = proxy.all_headers()
    assert len(seen) > 15, "the store was reached through the proxy"
    secrets = [base64.b64encode(k).decode() for k in (CKEY, OTHER)]
    secrets += [base64.b64encode(hashlib.md5(k).digest()).decode() for k in (CKEY, OTHER)]
    for method, path, name, value in seen:
        assert "server-side-encryption" not in name.lower(), (method, path, name)
        for s in secrets:
            assert s not in value and s not in path, (method, path, name)
    # Every stored byte of the objects is ciphertext.
    raw = g.raw_client()
    assert raw.get_object(Bucket="ssec-leak", Key="one")["Body"].read() != b"hello"
    stored = raw.get_object(Bucket="ssec-leak", Key="mp")["Body"].read()
    assert body[:4096] not in stored


def test_unknown_upload_ids_never_mean_plaintext(moto):
    g = Gateway(upstream=moto)
    try:
        c, raw = g.client(), g.raw_client()
        c.create_bucket(Bucket="unknown-up")
        # An upload made on the store directly (another gateway's, or one
        # whose state was lost): the gateway has no record of it.
        uid = raw.create_multipart_upload(Bucket="unknown-up", Key="k")["UploadId"]
        with pytest.raises(ClientError) as e:
            c.upload_part(Bucket="unknown-up", Key="k", UploadId=uid, PartNumber=1, Body=b"secret plaintext")
        assert err(e) == ("NoSuchUpload", 404)
        assert "no record" in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as e:
            c.upload_part_copy(Bucket="unknown-up", Key="k", UploadId=uid, PartNumber=1, CopySource={"Bucket": "unknown-up", "Key": "k"})
        assert err(e)[0] in ("NoSuchUpload", "NoSuchKey")
        assert raw.list_parts(Bucket="unknown-up", Key="k", UploadId=uid).get("Parts", []) == [], "nothing reached the store"
        # A part written to the store directly cannot be completed through the gateway.
        etag = raw.upload_part(Bucket="unknown-up", Key="k", UploadId=uid, PartNumber=1, Body=b"x")["ETag"]
        with pytest.raises(ClientError) as e:
            c.complete_multipart_upload(Bucket="unknown-up", Key="k", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        assert err(e) == ("NoSuchUpload", 404)
        with pytest.raises(ClientError):
            raw.head_object(Bucket="unknown-up", Key="k")
        # A plaintext upload made through the gateway still works, and
        # survives a restart (its record is kept with the state).
        uid2 = c.create_multipart_upload(Bucket="unknown-up", Key="p")["UploadId"]
        g.restart()
        c = g.client()
        e2 = c.upload_part(Bucket="unknown-up", Key="p", UploadId=uid2, PartNumber=1, Body=b"plain part")["ETag"]
        c.complete_multipart_upload(Bucket="unknown-up", Key="p", UploadId=uid2, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}]})
        assert c.get_object(Bucket="unknown-up", Key="p")["Body"].read() == b"plain part"
    finally:
        g.close()


@pytest.mark.parametrize("size", [0, 1, 5 * MIB])
def test_sse_c_part_rules_for_every_part_size(gw, bucket, size):
    c = gw.client()
    uid = c.create_multipart_upload(Bucket=bucket, Key="c", **ssec(CKEY))["UploadId"]
    body = payload(size, seed=size)
    with pytest.raises(ClientError) as e:
        c.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=1, Body=body)
    assert err(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        c.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=1, Body=body, **ssec(OTHER))
    assert err(e) == ("InvalidRequest", 400)
    c.put_object(Bucket=bucket, Key="src", Body=body)
    with pytest.raises(ClientError) as e:
        c.upload_part_copy(Bucket=bucket, Key="c", UploadId=uid, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"})
    assert err(e) == ("InvalidRequest", 400)
    # The right key works, and the refused calls stored nothing.
    etag = c.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=1, Body=body, **ssec(CKEY))["ETag"]
    if lists_parts(gw):  # moto's ListParts answer does not convert (see above)
        parts = c.list_parts(Bucket=bucket, Key="c", UploadId=uid, **ssec(CKEY))["Parts"]
        assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, size)]
    c.complete_multipart_upload(Bucket=bucket, Key="c", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert c.get_object(Bucket=bucket, Key="c", **ssec(CKEY))["Body"].read() == body


def test_a_damaged_record_or_a_vanished_object_never_fails_a_listing(gw, bucket):
    c = gw.client()
    for k in ("a", "b", "c"):
        c.put_object(Bucket=bucket, Key=k, Body=b"0123456789", ServerSideEncryption="AES256")
    meta = gw.raw_meta(bucket, "b")
    meta["kgw-format"] = "9"
    gw.raw_put(bucket, "b", gw.raw_get(bucket, "b"), meta)
    listed = {o["Key"]: o["Size"] for o in c.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(listed) == {"a", "b", "c"}
    assert listed["a"] == listed["c"] == 10
    listed = {o["Key"]: o["Size"] for o in c.list_objects(Bucket=bucket)["Contents"]}
    assert set(listed) == {"a", "b", "c"} and listed["a"] == 10
    # The damaged object itself still fails closed.
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="b")
    assert err(e)[1] == 500


def test_concurrent_bucket_default_writes_leave_served_equal_to_stored(moto):
    g = Gateway(upstream=moto)
    try:
        c = g.client()
        c.create_bucket(Bucket="defaults-race")
        configs = [
            {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]},
        ]

        def put(i):
            g.client().put_bucket_encryption(Bucket="defaults-race", ServerSideEncryptionConfiguration=configs[i % 2])
            return g.client().get_bucket_encryption(Bucket="defaults-race")

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(pool.map(put, range(60)))
        assert len(results) == 60, "no write failed"
        served = c.get_bucket_encryption(Bucket="defaults-race")["ServerSideEncryptionConfiguration"]["Rules"][0]
        g.restart()
        stored = g.client().get_bucket_encryption(Bucket="defaults-race")["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert served["ApplyServerSideEncryptionByDefault"] == stored["ApplyServerSideEncryptionByDefault"]
    finally:
        g.close()


def test_long_upload_ids_work_in_every_mode(recorded):
    g, _ = recorded
    c = g.client()
    c.create_bucket(Bucket="long-ids")
    body = payload(5 * MIB + 7, seed=9)
    for extra in ({"ServerSideEncryption": "AES256"}, {"ServerSideEncryption": "aws:kms"}, {}):
        uid = c.create_multipart_upload(Bucket="long-ids", Key="k", **extra)["UploadId"]
        assert uid.endswith(PAD)
        e1 = c.upload_part(Bucket="long-ids", Key="k", UploadId=uid, PartNumber=1, Body=body)["ETag"]
        e2 = c.upload_part(Bucket="long-ids", Key="k", UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
        c.complete_multipart_upload(
            Bucket="long-ids", Key="k", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
        )
        assert c.get_object(Bucket="long-ids", Key="k")["Body"].read() == body + b"tail"


def test_stored_vault_token_never_follows_a_new_address(bao):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    from conftest import vault_config

    seen = []

    class Attacker(BaseHTTPRequestHandler):
        def do_ANY(self):
            seen.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_PUT = do_LIST = do_ANY

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    g = vault_gateway(bao)
    try:
        evil = vault_config(bao, address=f"http://127.0.0.1:{srv.server_address[1]}", auth_method={"token": ""})
        s, r = g.admin("POST", "reconfigure", evil)
        assert s == 400 and "must be given again" in str(r), (s, r)
        assert not any(k.lower() == "x-vault-token" for h in seen for k in h), "the stored token never reaches another server"
        # The same Vault with a blank token keeps the stored one, and works.
        s, r = g.admin("POST", "reconfigure", vault_config(bao, auth_method={"token": ""}, timeout_seconds=7))
        assert s == 200, r
        assert_kms_round_trip(g, "inherit-ok")
    finally:
        g.close()
        srv.shutdown()


def test_required_encryption_never_stores_or_serves_plaintext(moto):
    g = Gateway(upstream=moto, extra_args=["--allow-insecure-sse-c", "--require-encryption"])
    try:
        c, raw = g.client(), g.raw_client()
        c.create_bucket(Bucket="required")
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="required", Key="plain", Body=b"plaintext")
        assert err(e) == ("AccessDenied", 403)
        with pytest.raises(ClientError) as e:
            c.create_multipart_upload(Bucket="required", Key="plain-mp")
        assert err(e) == ("AccessDenied", 403)
        assert raw.list_objects_v2(Bucket="required").get("KeyCount", 0) == 0, "nothing was stored"
        c.put_object(Bucket="required", Key="enc", Body=b"secret", ServerSideEncryption="AES256")
        assert c.get_object(Bucket="required", Key="enc")["Body"].read() == b"secret"
        # A bucket default makes header-less writes encrypted, hence allowed.
        c.put_bucket_encryption(Bucket="required", ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        c.put_object(Bucket="required", Key="by-default", Body=b"x")
        assert raw.head_object(Bucket="required", Key="by-default")["Metadata"]["kgw-format"] == "2"
        # The store substitutes plaintext (or strips the record): never served.
        raw.put_object(Bucket="required", Key="enc", Body=b"attacker text")
        raw.put_object(Bucket="required", Key="planted", Body=b"attacker text")
        for key in ("enc", "planted"):
            for kw in ({}, {"Range": "bytes=0-3"}):
                with pytest.raises(ClientError) as e:
                    c.get_object(Bucket="required", Key=key, **kw)
                assert err(e)[1] == 500, (key, kw)
            with pytest.raises(ClientError):
                c.head_object(Bucket="required", Key=key)
            with pytest.raises(ClientError):
                c.copy_object(Bucket="required", Key=key + "-copy", CopySource={"Bucket": "required", "Key": key})
    finally:
        g.close()


def test_bucket_defaults_can_require_encryption(moto):
    """`--require-encryption=bucket-defaults`: a bucket with a default
    encryption configuration never serves an object the gateway did not
    encrypt; a bucket without one still serves the store's plaintext."""
    g = Gateway(upstream=moto, extra_args=["--require-encryption=bucket-defaults"])
    try:
        c, raw = g.client(), g.raw_client()
        for b in ("enforced", "open"):
            c.create_bucket(Bucket=b)
        c.put_bucket_encryption(Bucket="enforced", ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        for b in ("enforced", "open"):
            raw.put_object(Bucket=b, Key="planted", Body=b"attacker text")
            c.put_object(Bucket=b, Key="written", Body=b"through the gateway")
        assert raw.head_object(Bucket="enforced", Key="written")["Metadata"]["kgw-mode"] == "SSE-KMS"
        assert "kgw-format" not in raw.head_object(Bucket="open", Key="written")["Metadata"], "no default, no headers: plaintext"
        assert c.get_object(Bucket="open", Key="planted")["Body"].read() == b"attacker text"
        assert c.get_object(Bucket="enforced", Key="written")["Body"].read() == b"through the gateway"
        for kw in ({}, {"Range": "bytes=0-3"}):
            with pytest.raises(ClientError) as e:
                c.get_object(Bucket="enforced", Key="planted", **kw)
            assert err(e)[1] == 500
            assert "attacker" not in str(e.value.response)
        with pytest.raises(ClientError):
            c.head_object(Bucket="enforced", Key="planted")
        # The record stripped from an encrypted object: refused too.
        body = raw.get_object(Bucket="enforced", Key="written")["Body"].read()
        raw.put_object(Bucket="enforced", Key="written", Body=body)
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="enforced", Key="written")
        assert err(e)[1] == 500
        # Removing the default lifts the requirement (an admin's choice).
        c.delete_bucket_encryption(Bucket="enforced")
        assert c.get_object(Bucket="enforced", Key="planted")["Body"].read() == b"attacker text"
    finally:
        g.close()


def test_without_required_encryption_plaintext_objects_are_served(moto):
    """The default: a store that already holds plaintext objects (before a
    migration) is served as it is; a damaged record is still refused."""
    g = Gateway(upstream=moto)
    try:
        c, raw = g.client(), g.raw_client()
        c.create_bucket(Bucket="not-required")
        raw.put_object(Bucket="not-required", Key="old", Body=b"from before the gateway")
        assert c.get_object(Bucket="not-required", Key="old")["Body"].read() == b"from before the gateway"
        c.put_object(Bucket="not-required", Key="enc", Body=b"secret", ServerSideEncryption="AES256")
        meta = raw.head_object(Bucket="not-required", Key="enc")["Metadata"]
        body = raw.get_object(Bucket="not-required", Key="enc")["Body"].read()
        partial = {k: v for k, v in meta.items() if k != "kgw-format"}
        raw.put_object(Bucket="not-required", Key="enc", Body=body, Metadata=partial)
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="not-required", Key="enc")
        assert err(e)[1] == 500
    finally:
        g.close()


@pytest.mark.parametrize("mode", ["sse-kms", "sse-c"])
def test_completion_is_repaired_after_its_second_step_fails(moto, mode):
    """Completion is two steps on the store (complete, then attach the
    record). When the second fails, or the gateway dies between them, the
    object is unreadable until the client retries Complete, which then
    finishes the job instead of answering NoSuchUpload."""
    enc = {"sse-kms": {"ServerSideEncryption": "aws:kms"}, "sse-c": ssec(CKEY)}[mode]
    part_args = ssec(CKEY) if mode == "sse-c" else {}
    proxy = RecordingProxy(moto.port)
    g = Gateway(upstream=proxy)
    try:
        c = g.client()
        c.create_bucket(Bucket=f"repair-{mode}")
        body = payload(5 * MIB + 99, seed=41)

        def upload(key):
            uid = c.create_multipart_upload(Bucket=f"repair-{mode}", Key=key, **enc)["UploadId"]
            e1 = c.upload_part(Bucket=f"repair-{mode}", Key=key, UploadId=uid, PartNumber=1, Body=body[: 5 * MIB], **part_args)["ETag"]
            e2 = c.upload_part(Bucket=f"repair-{mode}", Key=key, UploadId=uid, PartNumber=2, Body=body[5 * MIB :], **part_args)["ETag"]
            return uid, {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}

        def complete(key, uid, parts):
            return g.client().complete_multipart_upload(Bucket=f"repair-{mode}", Key=key, UploadId=uid, MultipartUpload=parts)

        # 1. The record step fails (every retry of it).
        uid, parts = upload("failed")
        # Enough failures for the gateway's retries and the SDK's own.
        proxy.fail_copies = 100
        with pytest.raises(ClientError) as e:
            complete("failed", uid, parts)
        assert err(e)[1] == 500
        proxy.fail_copies = 0
        with pytest.raises(ClientError):
            c.get_object(Bucket=f"repair-{mode}", Key="failed", **part_args)
        out = complete("failed", uid, parts)
        assert out["ETag"]
        assert c.get_object(Bucket=f"repair-{mode}", Key="failed", **part_args)["Body"].read() == body
        with pytest.raises(ClientError) as e:
            complete("failed", uid, parts)
        assert err(e)[0] == "NoSuchUpload", "a finished upload is forgotten"
        assert c.get_object(Bucket=f"repair-{mode}", Key="failed", **part_args)["Body"].read() == body

        # 2. The gateway is killed between the two steps.
        uid, parts = upload("killed")
        proxy.hold_copies = True
        import threading

        t = threading.Thread(target=lambda: pytest.raises(Exception, complete, "killed", uid, parts), daemon=True)
        t.start()
        assert proxy.held.wait(30), "the record step was reached"
        g.kill()
        proxy.hold_copies = False
        proxy.release.set()
        t.join(30)
        g.start()
        c = g.client()
        complete("killed", uid, parts)
        assert c.get_object(Bucket=f"repair-{mode}", Key="killed", **part_args)["Body"].read() == body
        # 3. A retried Complete never takes another object for its own: the
        # key was overwritten between the failure and the retry.
        uid3, parts3 = upload("other")
        proxy.fail_copies = 100
        with pytest.raises(ClientError):
            complete("other", uid3, parts3)
        proxy.fail_copies = 0
        c.put_object(Bucket=f"repair-{mode}", Key="other", Body=b"overwritten", ServerSideEncryption="AES256")
        # (S3 answers NoSuchUpload; moto, which cannot complete twice, a 500.)
        with pytest.raises(ClientError):
            complete("other", uid3, parts3)
        assert c.get_object(Bucket=f"repair-{mode}", Key="other")["Body"].read() == b"overwritten"
    finally:
        g.close()
        proxy.stop()


def test_many_writers_on_one_key_leave_one_of_their_bodies(gw, bucket):
    """Bursts of concurrent PUTs (every mode) to one key, on the embedded
    store and on moto: afterwards the key reads back as exactly one of the
    bodies written, never an unreadable object, and no writer got a 500."""
    import concurrent.futures

    modes = [{"ServerSideEncryption": "AES256"}, {"ServerSideEncryption": "aws:kms"}, {}]
    for burst in range(8):
        bodies = [payload(3000 + 997 * i, seed=100 * burst + i) for i in range(12)]

        def put(i):
            try:
                gw.client().put_object(Bucket=bucket, Key="hot", Body=bodies[i], **modes[i % 3])
                return None
            except ClientError as e:
                return e

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            failures = [e for e in pool.map(put, range(12)) if e is not None]
        if gw.upstream is None:
            assert failures == [], f"burst {burst}: {failures}"
        else:
            # moto's development server drops some of many concurrent
            # connections; a streamed write cannot be replayed, so the
            # gateway answers it 500 (clients retry). What the store keeps
            # must still be one whole write.
            assert len(failures) < 12 and all(err_of(e)[1] == 500 for e in failures), failures
        got = gw.client().get_object(Bucket=bucket, Key="hot")["Body"].read()
        assert got in bodies, f"burst {burst}: the key holds none of the bodies written"


def test_a_killed_embedded_store_keeps_one_whole_object(tmp_path):
    """The gateway (and so its embedded store) is killed while writers
    replace one key: after every restart the key reads back as exactly one
    of the bodies written to it, never an object whose data and metadata
    come from different writes."""
    import random
    import threading
    import time

    g = Gateway(data_dir=tmp_path / "gw")
    try:
        c = g.client()
        c.create_bucket(Bucket="crash")
        bodies = [payload(4096 + 131 * i, seed=7000 + i) for i in range(64)]
        c.put_object(Bucket="crash", Key="hot", Body=bodies[0], ServerSideEncryption="AES256")
        rng = random.Random(11)
        for round_ in range(12):
            stop = threading.Event()
            done = []

            def write(w):
                client = g.client()
                i = w
                while not stop.is_set():
                    try:
                        client.put_object(Bucket="crash", Key="hot", Body=bodies[i % 64], ServerSideEncryption="AES256")
                    except Exception:
                        return
                    done.append(i)
                    i += 4

            threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(4)]
            for t in threads:
                t.start()
            # Kill at a random moment once the writers are under way.
            deadline = time.monotonic() + 30
            while not done and time.monotonic() < deadline:
                time.sleep(0.01)
            assert done, "the writers wrote before the kill"
            time.sleep(rng.uniform(0.0, 0.3))
            g.kill()
            stop.set()
            for t in threads:
                t.join(30)
            g.start()
            got = g.client().get_object(Bucket="crash", Key="hot")["Body"].read()
            assert got in bodies, f"round {round_}: the key holds none of the bodies written"
    finally:
        g.close()


def test_secret_files_only_from_allowed_directories(bao, tmp_path):
    """An admin could otherwise name the master key (or any readable file)
    as an AppRole secret id file and have it sent to a Vault of their
    choosing."""
    from conftest import vault_config

    role_id, secret_id = bao.approle()
    allowed = tmp_path / "secrets"
    allowed.mkdir()
    (allowed / "secret-id").write_text(secret_id)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret-id").write_text(secret_id)
    (allowed / "to-master").symlink_to(tmp_path / "gw" / "kms" / "master.key")
    g = Gateway(data_dir=tmp_path / "gw", extra_args=["--kms-not-configured", "--kms-secret-file-dir", str(allowed),
                                                      "--kms-secret-file-vault", bao.addr])
    try:
        def approle(path, **extra):
            return vault_config(bao, auth_method={"approle": {"role_id": role_id, "secret_id_file": str(path)}}, **extra)

        # An allowed file, sent to a Vault the operator did not name (or
        # without TLS verification): refused before anything is read or
        # sent. The listener stands for the admin's own server.
        import socket
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.5)
        theirs = f"http://127.0.0.1:{listener.getsockname()[1]}"
        for op in ("configure", "reconfigure"):
            s, r = g.admin("POST", op, approle(allowed / "secret-id", address=theirs))
            assert s == 400 and "operator allowed" in str(r), (op, s, r)
            s, r = g.admin("POST", op, approle(allowed / "secret-id", skip_tls_verify=True))
            assert s == 400 and "skip_verify" in str(r), (op, s, r)
        with pytest.raises(socket.timeout):
            listener.accept()
        listener.close()

        for bad, why in [
            (tmp_path / "gw" / "kms" / "master.key", "data directory"),
            (tmp_path / "gw" / "audit.log", "data directory"),
            (allowed / "to-master", "data directory"),
            (outside / "secret-id", "--kms-secret-file-dir"),
            (allowed / "missing", "readable"),
        ]:
            for op in ("configure", "reconfigure"):
                s, r = g.admin("POST", op, approle(bad))
                assert s == 400 and why in str(r), (bad, op, s, r)
        assert g.admin("GET", "status")[1]["status"] != "Running", "nothing was started"
        s, r = g.admin("POST", "reconfigure", approle(allowed / "secret-id"))
        assert s == 200, r
        assert_kms_round_trip(g, "secret-files")
    finally:
        g.close()


def test_concurrent_vault_key_updates_lose_nothing(bao):
    """Key metadata in Vault KV is updated by check-and-set: concurrent
    admin calls (here, on one gateway; the same holds across gateways) never
    overwrite each other's changes."""
    import concurrent.futures
    import uuid

    from conftest import admin_call

    g = vault_gateway(bao)
    try:
        k = "cas-" + uuid.uuid4().hex[:8]
        assert g.admin("POST", "keys", {"key_id": k})[0] == 200

        def tag(i):
            return admin_call(g.endpoint, "POST", "keys/tag", {"key_id": k, "tags": {f"t{i}": str(i)}})[0]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(tag, range(24)))
        assert statuses == [200] * 24, statuses
        kv = bao.api("GET", f"secret/data/kgw-test/keys/{k}")["data"]["data"]
        assert {f"t{i}" for i in range(24)} <= set(kv["tags"]), sorted(kv["tags"])
    finally:
        g.close()


def test_a_plaintext_object_replaced_while_read_never_shows_ciphertext(moto):
    """A range or conditional read of a plaintext object is two requests
    (a HEAD, then the read). Should the object be replaced by an encrypted
    one in between, the second answer carries ciphertext and the gateway's
    record: the client gets an error to retry, never those."""
    proxy = RecordingProxy(moto.port)
    g = Gateway(upstream=proxy)
    try:
        c = g.client()
        c.create_bucket(Bucket="swap")
        c.put_object(Bucket="swap", Key="enc", Body=b"e" * 4096, ServerSideEncryption="aws:kms")
        c.put_object(Bucket="swap", Key="plain", Body=b"p" * 4096)
        raw = g.raw_client()

        def swap(method, path, headers):
            # The read after the HEAD: the store's copy of the encrypted
            # object (record included) now sits at the plaintext key.
            if method in ("GET", "HEAD") and path.startswith("/swap/plain") and "range" in {k.lower() for k in headers}:
                raw.copy_object(Bucket="swap", Key="plain", CopySource={"Bucket": "swap", "Key": "enc"})

        proxy.before = swap
        for read in (lambda: c.get_object(Bucket="swap", Key="plain", Range="bytes=0-99"),
                     lambda: c.head_object(Bucket="swap", Key="plain", Range="bytes=0-99")):
            raw.put_object(Bucket="swap", Key="plain", Body=b"p" * 4096)
            with pytest.raises(ClientError) as e:
                read()
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert "kgw" not in str(e.value.response).lower()
        proxy.before = None
        # Read again, it is what a moved record makes it: refused (the
        # record names another key), never served.
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="swap", Key="plain", Range="bytes=0-99")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    finally:
        g.close()
        proxy.stop()


def test_a_copy_reads_the_source_its_conditions_held_for(moto):
    """The read half of a streaming copy: with source conditions it is
    pinned to the version they were checked on (a source replaced in
    between fails the copy with 412); without, it copies the source as it
    is when read, as S3 does, and never fails for a condition nobody set."""
    proxy = RecordingProxy(moto.port)
    g = Gateway(upstream=proxy)
    try:
        c = g.client()
        c.create_bucket(Bucket="pin")
        writer = g.client()
        state = {"n": 0}

        def replace_source(method, path, headers):
            # The copy's GET of its source (after its HEAD): a writer wins.
            if method == "GET" and path.startswith("/pin/src") and state["n"] == 0:
                state["n"] += 1
                writer.put_object(Bucket="pin", Key="src", Body=b"newer", ServerSideEncryption="aws:kms")

        for conditions, expect in (({}, b"newer"), ({"CopySourceIfMatch": None}, None)):
            c.put_object(Bucket="pin", Key="src", Body=b"older", ServerSideEncryption="aws:kms")
            if "CopySourceIfMatch" in conditions:
                conditions = {"CopySourceIfMatch": c.head_object(Bucket="pin", Key="src")["ETag"]}
            state["n"] = 0
            proxy.before = replace_source
            if expect is None:
                with pytest.raises(ClientError) as e:
                    c.copy_object(Bucket="pin", Key="dst", CopySource={"Bucket": "pin", "Key": "src"},
                                  ServerSideEncryption="AES256", **conditions)
                assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
            else:
                c.copy_object(Bucket="pin", Key="dst", CopySource={"Bucket": "pin", "Key": "src"},
                              ServerSideEncryption="AES256", **conditions)
                assert c.get_object(Bucket="pin", Key="dst")["Body"].read() == expect
            proxy.before = None
            assert state["n"] == 1, "the source was replaced between the copy's HEAD and its read"
    finally:
        g.close()
        proxy.stop()

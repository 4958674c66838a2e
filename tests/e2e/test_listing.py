"""Listings in plaintext terms: each listed object shows the size and the
ETag that HEAD answers with (for SSE-S3, the plaintext MD5), in front of
every upstream, and a listing of objects the gateway knows costs no
upstream HEAD."""

import hashlib

import pytest

import os
from pathlib import Path

from botocore.exceptions import ClientError

from conftest import MIB, ROOT, Gateway, Store, empty_bucket, payload, s3_client, ssec
from recording_proxy import RecordingProxy

CKEY = bytes(range(32))


def write_mixed(c, bucket):
    """One object per way of writing; returns {key: (body, extra HEAD args)}."""
    objects = {
        "s3-small": (payload(5000, seed=1), {"ServerSideEncryption": "AES256"}, {}),
        # Larger than a segment, no Content-MD5: the ETag is attached after
        # the upload.
        "s3-large": (payload(2 * MIB + 1, seed=2), {"ServerSideEncryption": "AES256"}, {}),
        "kms": (payload(3000, seed=3), {"ServerSideEncryption": "aws:kms"}, {}),
        "ssec": (payload(7000, seed=4), ssec(CKEY), ssec(CKEY)),
        "plain": (payload(100, seed=5), {}, {}),
    }
    for key, (body, put_args, _) in objects.items():
        c.put_object(Bucket=bucket, Key=key, Body=body, **put_args)
    # SSE-S3 re-keyed in place to SSE-KMS: the store keeps its ETag, the
    # listing must not keep showing the plaintext MD5.
    body = payload(4000, seed=8)
    c.put_object(Bucket=bucket, Key="s3-to-kms", Body=body, ServerSideEncryption="AES256")
    c.copy_object(Bucket=bucket, Key="s3-to-kms", CopySource={"Bucket": bucket, "Key": "s3-to-kms"}, ServerSideEncryption="aws:kms")
    objects["s3-to-kms"] = (body, {}, {})
    # A multipart object: its ETag is the store's (`…-2`), as on AWS.
    parts = [payload(5 * MIB, seed=6), payload(1000, seed=7)]
    uid = c.create_multipart_upload(Bucket=bucket, Key="multi", ServerSideEncryption="aws:kms")["UploadId"]
    done = [{"PartNumber": n, "ETag": c.upload_part(Bucket=bucket, Key="multi", UploadId=uid, PartNumber=n, Body=p)["ETag"]}
            for n, p in enumerate(parts, 1)]
    c.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=uid, MultipartUpload={"Parts": done})
    objects["multi"] = (b"".join(parts), {}, {})
    return {k: (body, head_args) for k, (body, _, head_args) in objects.items()}


def check_listed(c, bucket, objects):
    heads = {k: c.head_object(Bucket=bucket, Key=k, **args)["ETag"] for k, (_, args) in objects.items()}
    for k in ("s3-small", "s3-large"):
        assert heads[k].strip('"') == hashlib.md5(objects[k][0]).hexdigest(), k
    assert heads["s3-to-kms"].strip('"') != hashlib.md5(objects["s3-to-kms"][0]).hexdigest()
    want = {k: (len(body), heads[k]) for k, (body, _) in objects.items()}
    v2 = {o["Key"]: (o["Size"], o["ETag"]) for o in c.list_objects_v2(Bucket=bucket)["Contents"]}
    v1 = {o["Key"]: (o["Size"], o["ETag"]) for o in c.list_objects(Bucket=bucket)["Contents"]}
    assert v2 == want
    assert v1 == want


def test_listings_show_the_sizes_and_etags_heads_answer_with(gw, bucket):
    c = gw.client()
    objects = write_mixed(c, bucket)
    check_listed(c, bucket, objects)


@pytest.mark.parametrize("upstream", ["embedded", "moto"])
def test_a_listing_of_known_objects_costs_no_upstream_head(tmp_path, request, upstream):
    """Counted by a recording proxy in front of the embedded store served
    on its own, or moto."""
    store = Store(root=tmp_path / "store") if upstream == "embedded" else request.getfixturevalue("moto")
    proxy = RecordingProxy(store.port, keep_host=upstream == "embedded")
    g = Gateway(upstream=proxy, data_dir=tmp_path / "gw")
    try:
        c = g.client()
        c.create_bucket(Bucket="listed")
        objects = write_mixed(c, "listed")
        # Re-keyed in place (metadata only): still listed right.
        for key, sse in (("s3-large", "AES256"), ("kms", "aws:kms"), ("multi", "AES256")):
            c.copy_object(Bucket="listed", Key=key, CopySource={"Bucket": "listed", "Key": key}, ServerSideEncryption=sse)
        heads = lambda: sum(1 for r in proxy.requests if r.method == "HEAD")  # noqa: E731
        proxy.clear()
        check_listed(c, "listed", objects)
        assert heads() == len(objects), "only the test's own HEADs: the listings used what the writes left"
        # A new process knows nothing: each object is looked up once (the
        # SSE-S3 ETags by opening their keys), then known.
        g.restart()
        c = g.client()
        proxy.clear()
        listed = {o["Key"]: o["ETag"] for o in c.list_objects_v2(Bucket="listed")["Contents"]}
        assert heads() == len(objects)
        assert listed["s3-large"].strip('"') == hashlib.md5(objects["s3-large"][0]).hexdigest()
        proxy.clear()
        check_listed(c, "listed", objects)
        assert heads() == len(objects), "the second listings cost nothing"
    finally:
        g.close()
        proxy.stop()
        if upstream == "embedded":
            store.stop()
        else:  # the session's moto
            empty_bucket(s3_client(store.endpoint), "listed")


def test_without_the_kms_a_listing_still_shows_plaintext_sizes(tmp_path):
    """A gateway that knows nothing yet, its KMS stopped: sizes need no key
    and stay right; an SSE-S3 ETag does, so the store's shows until the
    KMS is back (the failure is not remembered)."""
    g = Gateway(data_dir=tmp_path / "gw")
    try:
        c = g.client()
        c.create_bucket(Bucket="nokms")
        objects = write_mixed(c, "nokms")
        g.restart()
        c = g.client()
        assert g.admin("POST", "stop")[0] == 200
        listed = {o["Key"]: (o["Size"], o["ETag"]) for o in c.list_objects_v2(Bucket="nokms")["Contents"]}
        assert {k: size for k, (size, _) in listed.items()} == {k: len(body) for k, (body, _) in objects.items()}
        md5 = hashlib.md5(objects["s3-small"][0]).hexdigest()
        assert listed["s3-small"][1].strip('"') != md5, "the store's ETag: the key could not be opened"
        assert g.admin("POST", "start")[0] == 200
        check_listed(c, "nokms", objects)
    finally:
        g.close()


def test_a_signer_refused_reads_sees_no_plaintext_md5_in_a_listing(tmp_path):
    """An SSE-S3 ETag is the plaintext MD5: a listing shows it only to a
    signer the bound read policy lets HEAD the object (example policy
    write-only), whoever filled the shared cache first; and a refused
    signer's listings cost no HEAD per object either, once looked up."""
    wasm = Path(os.environ.get("KMS_GATEWAY_POLICIES", ROOT / "policies" / "target" / "wasm32-wasip2" / "release"))
    store = Store(root=tmp_path / "store")
    proxy = RecordingProxy(store.port, keep_host=True)
    g = Gateway(upstream=proxy, data_dir=tmp_path / "gw")
    heads = lambda: sum(1 for r in proxy.requests if r.method == "HEAD")  # noqa: E731
    try:
        s, r = g.admin("POST", "/rustfs/admin/v3/identities", {"access_key": "INGEST", "groups": ["write-only"]})
        assert s == 200, r
        secret = r["secret_key"]
        ingest = s3_client(g.endpoint, "INGEST", secret)
        pol = "/rustfs/admin/v3/policies"
        s, r = g.admin("PUT", f"{pol}/write-only", (wasm / "write_only.wasm").read_bytes(), content_type="application/wasm")
        assert s == 200, r
        assert g.admin("POST", f"{pol}/bind", {"hook": "sse-validate", "policy": "write-only"})[0] == 200
        c = g.client()
        c.create_bucket(Bucket="ingest")
        data = payload(5000, seed=8)
        ingest.put_object(Bucket="ingest", Key="batch", Body=data, ServerSideEncryption="AES256")
        with pytest.raises(ClientError) as e:
            ingest.head_object(Bucket="ingest", Key="batch")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        md5 = hashlib.md5(data).hexdigest()

        def listed(client):
            (o,) = client.list_objects_v2(Bucket="ingest")["Contents"]
            assert o["Size"] == len(data)
            return o["ETag"].strip('"')

        # The cache filled by the write.
        assert listed(ingest) != md5 and listed(c) == md5
        # A new process: the refused signer looks the object up first.
        g.restart()
        c, ingest = g.client(), s3_client(g.endpoint, "INGEST", secret)
        proxy.clear()
        assert listed(ingest) != md5 and heads() == 1
        assert listed(ingest) != md5 and heads() == 1, "its size is cached too"
        assert listed(c) == md5 and heads() == 2, "a reader looks the MD5 up once"
        assert listed(c) == md5 and listed(ingest) != md5 and heads() == 2
    finally:
        g.close()
        proxy.stop()
        store.stop()

"""CopyObject across every source x destination mode, metadata directives,
and the metadata-only re-key of an object onto itself."""

import pytest
from botocore.exceptions import ClientError

from conftest import MIB, payload, ssec

K1, K2 = b"1" * 32, b"2" * 32
MODES = ["plain", "sse-s3", "sse-kms", "sse-c"]


def write_args(mode, key=K1):
    return {"plain": {}, "sse-s3": {"ServerSideEncryption": "AES256"},
            "sse-kms": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "gateway-default"}, "sse-c": ssec(key)}[mode]


def read_args(mode, key=K1):
    return ssec(key) if mode == "sse-c" else {}


def source_args(mode, key=K1):
    return {f"CopySource{k}": v for k, v in ssec(key).items()} if mode == "sse-c" else {}


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize("size", [1, 1024, MIB, 8 * MIB])
def test_copy_matrix(gw, bucket, size):
    c = gw.client()
    data = payload(size, seed=size)
    for src in MODES:
        c.put_object(Bucket=bucket, Key=f"src-{src}", Body=data, Metadata={"origin": src}, ContentType="text/x-test", **write_args(src))
        for dst in MODES:
            key = f"dst-{src}-{dst}"
            c.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": f"src-{src}"}, **source_args(src), **write_args(dst, K2))
            got = c.get_object(Bucket=bucket, Key=key, **read_args(dst, K2))
            assert got["Body"].read() == data, (src, dst)
            assert got["Metadata"] == {"origin": src}, "COPY directive keeps metadata"
            assert got["ContentType"] == "text/x-test"
            expect = {"plain": None, "sse-s3": "AES256", "sse-kms": "aws:kms", "sse-c": None}[dst]
            assert got.get("ServerSideEncryption") == expect, (src, dst)
            if dst != "plain" and size >= 16:
                assert data[:16] not in gw.raw_get(bucket, key), (src, dst)


def test_metadata_replace_and_illegal_self_copy(gw, bucket):
    c = gw.client()
    c.put_object(Bucket=bucket, Key="m", Body=b"hello", Metadata={"a": "1"}, ServerSideEncryption="AES256")
    c.copy_object(Bucket=bucket, Key="m2", CopySource={"Bucket": bucket, "Key": "m"}, MetadataDirective="REPLACE", Metadata={"b": "2"},
                  ServerSideEncryption="aws:kms")
    h = c.head_object(Bucket=bucket, Key="m2")
    assert h["Metadata"] == {"b": "2"} and h["ServerSideEncryption"] == "aws:kms"
    with pytest.raises(ClientError) as e:
        c.copy_object(Bucket=bucket, Key="m", CopySource={"Bucket": bucket, "Key": "m"})
    assert err(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        c.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "m"}, CopySourceIfMatch='"nope"')
    assert err(e)[1] == 412


def test_rekey_in_place_moves_no_payload(gw, bucket):
    c = gw.client()
    data = payload(3 * MIB + 5, seed=77)
    c.put_object(Bucket=bucket, Key="r", Body=data, Metadata={"keep": "me"}, ServerSideEncryption="AES256")
    before = gw.raw_get(bucket, "r")
    etag = c.head_object(Bucket=bucket, Key="r")["ETag"]
    # (copy-source SSE-C args, destination SSE args, read args afterwards)
    steps = [
        ({}, write_args("sse-kms"), {}),
        ({}, ssec(K1), ssec(K1)),
        (source_args("sse-c", K1), ssec(K2), ssec(K2)),
        (source_args("sse-c", K2), write_args("sse-s3"), {}),
    ]
    for src, dst, read in steps:
        c.copy_object(Bucket=bucket, Key="r", CopySource={"Bucket": bucket, "Key": "r"}, **src, **dst)
        assert gw.raw_get(bucket, "r") == before, f"payload re-encrypted for {dst}"
        got = c.get_object(Bucket=bucket, Key="r", **read)
        assert got["Body"].read() == data
        assert got["Metadata"] == {"keep": "me"}
    # After SSE-C K1 -> K2, K1 was refused; back on SSE-S3 the MD5 ETag is intact.
    assert c.head_object(Bucket=bucket, Key="r")["ETag"] == etag
    c.copy_object(Bucket=bucket, Key="r", CopySource={"Bucket": bucket, "Key": "r"}, **ssec(K1))
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="r", **ssec(K2))
    assert err(e)[1] == 403
    assert c.get_object(Bucket=bucket, Key="r", **ssec(K1))["Body"].read() == data


def test_rekey_is_not_revocation_unless_a_fresh_key_is_asked_for(gw, bucket):
    """A re-key in place re-seals the same object key: whoever restores the
    old record (a backup, the store's operator) reads the data again.
    `x-kgw-fresh-key: true` rewrites the data under a new object key, so the
    old record opens nothing."""
    c = gw.client()
    data = payload(2 * MIB + 3, seed=78)
    c.put_object(Bucket=bucket, Key="v", Body=data, ServerSideEncryption="aws:kms")
    old_meta, old_raw = gw.raw_meta(bucket, "v"), gw.raw_get(bucket, "v")
    c.copy_object(Bucket=bucket, Key="v", CopySource={"Bucket": bucket, "Key": "v"}, **ssec(K1))
    assert gw.raw_get(bucket, "v") == old_raw, "metadata-only"
    gw.raw_put(bucket, "v", old_raw, old_meta)
    assert c.get_object(Bucket=bucket, Key="v")["Body"].read() == data, "the old record still opens the data"

    fresh = gw.client()
    fresh.meta.events.register("before-sign.s3.CopyObject", lambda request, **kw: request.headers.add_header("x-kgw-fresh-key", "true"))
    fresh.copy_object(Bucket=bucket, Key="v", CopySource={"Bucket": bucket, "Key": "v"}, **ssec(K1))
    new_raw = gw.raw_get(bucket, "v")
    assert new_raw != old_raw, "the data was rewritten"
    assert c.get_object(Bucket=bucket, Key="v", **ssec(K1))["Body"].read() == data
    gw.raw_put(bucket, "v", new_raw, old_meta)
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="v")
    assert err(e)[1] == 500, "the old record opens nothing"


@pytest.mark.parametrize("src_mode", ["plain", "sse-kms"])
@pytest.mark.parametrize("dst_mode", ["plain", "sse-s3", "sse-kms"])
def test_copy_honours_the_destination_conditions(gw, bucket, src_mode, dst_mode):
    """If-None-Match: * and If-Match on CopyObject's destination, compared
    with the ETag clients see (for SSE-S3 the plaintext MD5); a refused
    copy leaves the destination as it was."""
    c = gw.client()
    src, dst = f"cs-{src_mode}-{dst_mode}", f"cd-{src_mode}-{dst_mode}"
    c.put_object(Bucket=bucket, Key=src, Body=b"new bytes", **write_args(src_mode))
    c.put_object(Bucket=bucket, Key=dst, Body=b"old bytes", **write_args(dst_mode))
    source = {"Bucket": bucket, "Key": src}
    for cond in ({"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'}):
        with pytest.raises(ClientError) as e:
            c.copy_object(Bucket=bucket, Key=dst, CopySource=source, **cond, **write_args(dst_mode))
        assert err(e) == ("PreconditionFailed", 412), cond
    assert c.get_object(Bucket=bucket, Key=dst)["Body"].read() == b"old bytes"
    etag = c.head_object(Bucket=bucket, Key=dst)["ETag"]
    c.copy_object(Bucket=bucket, Key=dst, CopySource=source, IfMatch=etag, **write_args(dst_mode))
    assert c.get_object(Bucket=bucket, Key=dst)["Body"].read() == b"new bytes"
    c.copy_object(Bucket=bucket, Key=dst + "-new", CopySource=source, IfNoneMatch="*", **write_args(dst_mode))
    assert c.get_object(Bucket=bucket, Key=dst + "-new")["Body"].read() == b"new bytes"


def test_rekey_in_place_honours_the_destination_conditions(gw, bucket):
    """A copy onto itself re-keys without moving data; its destination
    exists, so If-None-Match fails, and If-Match is the visible ETag."""
    c = gw.client()
    c.put_object(Bucket=bucket, Key="rk-cond", Body=b"x", ServerSideEncryption="AES256")
    etag = c.head_object(Bucket=bucket, Key="rk-cond")["ETag"]
    assert etag.strip('"') == "9dd4e461268c8034f5c8564e155c67a6", "SSE-S3 shows the plaintext MD5"
    source = {"Bucket": bucket, "Key": "rk-cond"}
    for cond in ({"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'}):
        with pytest.raises(ClientError) as e:
            c.copy_object(Bucket=bucket, Key="rk-cond", CopySource=source, ServerSideEncryption="aws:kms", **cond)
        assert err(e) == ("PreconditionFailed", 412), cond
        assert c.head_object(Bucket=bucket, Key="rk-cond")["ServerSideEncryption"] == "AES256"
    c.copy_object(Bucket=bucket, Key="rk-cond", CopySource=source, ServerSideEncryption="aws:kms", IfMatch=etag)
    assert c.head_object(Bucket=bucket, Key="rk-cond")["ServerSideEncryption"] == "aws:kms"
    assert c.get_object(Bucket=bucket, Key="rk-cond")["Body"].read() == b"x"

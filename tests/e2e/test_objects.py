"""SSE on PutObject / GetObject / HeadObject through the real gateway,
against both upstreams; the upstream only ever holds ciphertext."""

import base64
import json
import hashlib

import pytest
from botocore.exceptions import ClientError

from conftest import MIB, Gateway, payload, ssec

SIZES = [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 17]
MODES = ["plain", "sse-s3", "sse-kms", "sse-c"]
CKEY = bytes(range(32))


def put_args(mode):
    return {
        "plain": {},
        "sse-s3": {"ServerSideEncryption": "AES256"},
        "sse-kms": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "gateway-default"},
        "sse-c": ssec(CKEY),
    }[mode]


def get_args(mode):
    return ssec(CKEY) if mode == "sse-c" else {}


def ct_len(n, seg=MIB):
    return n + 16 * max(1, -(-n // seg))


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize("mode", MODES)
def test_roundtrip_sizes_and_ciphertext_at_rest(gw, bucket, mode):
    c = gw.client()
    for n in SIZES:
        data = payload(n, seed=n)
        key = f"obj-{mode}-{n}"
        put = c.put_object(Bucket=bucket, Key=key, Body=data, Metadata={"owner": "alice"}, **put_args(mode))
        got = c.get_object(Bucket=bucket, Key=key, **get_args(mode))
        assert got["Body"].read() == data, f"round trip {n}"
        assert got["ContentLength"] == n
        head = c.head_object(Bucket=bucket, Key=key, **get_args(mode))
        assert head["ContentLength"] == n
        assert head["Metadata"] == {"owner": "alice"}, "reserved metadata must be invisible"
        raw = gw.raw_get(bucket, key)
        if mode == "plain":
            assert raw == data
            continue
        assert len(raw) == ct_len(n)
        # Tiny payloads may occur in ciphertext by chance; 16+ bytes may not.
        assert len(data) < 16 or data[:64] not in raw, "upstream holds plaintext"
        assert any(k.startswith("kgw-") for k in gw.raw_meta(bucket, key))
        if mode == "sse-s3":
            assert put["ETag"].strip('"') == hashlib.md5(data).hexdigest()
            assert head["ETag"] == put["ETag"] == got["ETag"]
            assert head["ServerSideEncryption"] == "AES256"
        if mode == "sse-kms":
            assert head["ServerSideEncryption"] == "aws:kms"
            assert head["SSEKMSKeyId"] == "gateway-default"
            assert put["SSEKMSKeyId"] == "gateway-default"
        if mode == "sse-c":
            assert head["SSECustomerAlgorithm"] == "AES256"
            assert head["SSECustomerKeyMD5"] == ssec(CKEY)["SSECustomerKeyMD5"]


def test_large_object_streams(gw, bucket):
    data = payload(64 * MIB, seed=64)
    c = gw.client()
    put = c.put_object(Bucket=bucket, Key="big", Body=data, ServerSideEncryption="AES256")
    assert put["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert c.head_object(Bucket=bucket, Key="big")["ETag"] == put["ETag"]
    got = c.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    r = c.get_object(Bucket=bucket, Key="big", Range="bytes=40000000-40000099")
    assert r["Body"].read() == data[40000000:40000100]


@pytest.mark.parametrize("mode", ["sse-s3", "sse-kms", "sse-c", "plain"])
def test_ranges(gw, bucket, mode):
    c = gw.client()
    n = 3 * MIB + 17
    data = payload(n, seed=7)
    c.put_object(Bucket=bucket, Key="r", Body=data, **put_args(mode))
    cases = [(0, 0), (MIB - 1, MIB - 1), (MIB - 1, MIB), (MIB, MIB), (MIB - 10, 2 * MIB + 10), (3 * MIB, n - 1), (0, n - 1), (5, n + 1000)]
    for a, b in cases:
        r = c.get_object(Bucket=bucket, Key="r", Range=f"bytes={a}-{b}", **get_args(mode))
        assert r["Body"].read() == data[a : b + 1], (a, b)
        end = min(b, n - 1)
        assert r["ContentRange"] == f"bytes {a}-{end}/{n}"
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    for suffix in [1, 17, MIB + 5, n + 5]:
        r = c.get_object(Bucket=bucket, Key="r", Range=f"bytes=-{suffix}", **get_args(mode))
        assert r["Body"].read() == data[-suffix:]
    r = c.get_object(Bucket=bucket, Key="r", Range=f"bytes={2 * MIB}-", **get_args(mode))
    assert r["Body"].read() == data[2 * MIB :]
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="r", Range=f"bytes={n}-{n + 5}", **get_args(mode))
    assert err(e) == ("InvalidRange", 416)


@pytest.mark.parametrize("mode", ["sse-kms", "plain"])
def test_no_range_of_an_empty_object_is_satisfiable(gw, bucket, mode):
    """A suffix range of an empty object asks for bytes that do not exist:
    416, not a 500 from the layout nor a wrapped range sent upstream."""
    c = gw.client()
    c.put_object(Bucket=bucket, Key="empty-r", Body=b"", **put_args(mode))
    for rng in ("bytes=-5", "bytes=0-0"):
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket=bucket, Key="empty-r", Range=rng, **get_args(mode))
        assert err(e) == ("InvalidRange", 416), rng
    if mode != "plain":
        with pytest.raises(ClientError) as e:
            c.head_object(Bucket=bucket, Key="empty-r", Range="bytes=-5")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    assert c.get_object(Bucket=bucket, Key="empty-r", **get_args(mode))["Body"].read() == b""


@pytest.mark.parametrize("mode", ["sse-kms", "plain"])
def test_part_numbers_are_checked(gw, bucket, mode):
    """Part numbers run from 1 (part 0 must not name a single PUT's only
    part), and a part and a range are not asked for together."""
    c = gw.client()
    c.put_object(Bucket=bucket, Key="pn", Body=b"abc", **put_args(mode))
    for bad in (0, 10001):
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket=bucket, Key="pn", PartNumber=bad, **get_args(mode))
        assert err(e) == ("InvalidArgument", 400), bad
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="pn", PartNumber=1, Range="bytes=0-1", **get_args(mode))
    assert err(e) == ("InvalidRequest", 400)
    if mode != "plain":
        assert c.get_object(Bucket=bucket, Key="pn", PartNumber=1)["Body"].read() == b"abc"


def test_conditional_reads(gw, bucket):
    c = gw.client()
    etag = c.put_object(Bucket=bucket, Key="cond", Body=b"hello", ServerSideEncryption="AES256")["ETag"]
    assert c.get_object(Bucket=bucket, Key="cond", IfMatch=etag)["Body"].read() == b"hello"
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="cond", IfMatch='"0123"')
    assert err(e)[1] == 412
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="cond", IfNoneMatch=etag)
    assert err(e)[1] == 304
    with pytest.raises(ClientError) as e:
        c.head_object(Bucket=bucket, Key="cond", IfNoneMatch=etag)
    assert err(e)[1] == 304
    r = c.get_object(Bucket=bucket, Key="cond", IfNoneMatch='"other"', Range="bytes=1-2")
    assert r["Body"].read() == b"el"


def test_kms_context_and_key_ids(gw, bucket):
    c = gw.client()
    ctx = base64.b64encode(b'{"team":"blue"}').decode()
    put = c.put_object(Bucket=bucket, Key="ctx", Body=b"x" * 100, ServerSideEncryption="aws:kms", SSEKMSEncryptionContext=ctx)
    echoed = json.loads(base64.b64decode(put["SSEKMSEncryptionContext"]))
    # Bucket keys (the default), as on AWS: the KMS context names the bucket.
    assert echoed == {"team": "blue", "aws:s3:arn": f"arn:aws:s3:::{bucket}"}
    assert put["BucketKeyEnabled"] is True
    got = c.get_object(Bucket=bucket, Key="ctx")
    assert got["Body"].read() == b"x" * 100 and got["BucketKeyEnabled"] is True
    arn = "arn:aws:kms:us-east-1:123456789012:key/gateway-default"
    c.put_object(Bucket=bucket, Key="arn", Body=b"y", ServerSideEncryption="aws:kms", SSEKMSKeyId=arn)
    assert c.head_object(Bucket=bucket, Key="arn")["SSEKMSKeyId"] == "gateway-default"


def test_delete_and_plain_passthrough(gw, bucket):
    c = gw.client()
    c.put_object(Bucket=bucket, Key="d", Body=b"bye", ServerSideEncryption="AES256")
    c.delete_object(Bucket=bucket, Key="d")
    with pytest.raises(ClientError) as e:
        c.head_object(Bucket=bucket, Key="d")
    assert err(e)[1] == 404
    listed = c.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert "d" not in [o["Key"] for o in listed]


def test_presigned_urls(gw, bucket):
    import urllib.request

    c = gw.client(signature_version="s3v4")
    data = payload(5000, seed=3)
    c.put_object(Bucket=bucket, Key="p", Body=data, ServerSideEncryption="AES256")
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    assert urllib.request.urlopen(url).read() == data
    put_url = c.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pp"}, ExpiresIn=60)
    # (An explicit type: moto's web framework would swallow a form-encoded body.)
    req = urllib.request.Request(put_url, data=b"via presigned", method="PUT", headers={"Content-Type": "application/octet-stream"})
    assert urllib.request.urlopen(req).status == 200
    assert c.get_object(Bucket=bucket, Key="pp")["Body"].read() == b"via presigned"


def test_checksums_are_verified_over_plaintext(gw, bucket):
    c = gw.client()
    data = payload(2 * MIB + 3, seed=9)
    for alg in ["CRC32", "SHA1", "SHA256"]:
        r = c.put_object(Bucket=bucket, Key=f"ck-{alg}", Body=data, ChecksumAlgorithm=alg, ServerSideEncryption="aws:kms")
        assert f"Checksum{alg}" in r
        assert c.get_object(Bucket=bucket, Key=f"ck-{alg}", ChecksumMode="ENABLED")["Body"].read() == data
    good_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    c.put_object(Bucket=bucket, Key="md5ok", Body=data, ContentMD5=good_md5, ServerSideEncryption="AES256")
    assert c.head_object(Bucket=bucket, Key="md5ok")["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    bad_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    for mode in ["sse-s3", "plain"]:
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket=bucket, Key=f"md5bad-{mode}", Body=data, ContentMD5=bad_md5, **put_args(mode))
        assert err(e) == ("BadDigest", 400)
        with pytest.raises(ClientError):
            c.head_object(Bucket=bucket, Key=f"md5bad-{mode}")
    bad_sha = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket=bucket, Key="shabad", Body=data, ChecksumSHA256=bad_sha, ServerSideEncryption="AES256")
    assert err(e) == ("BadDigest", 400)
    with pytest.raises(ClientError):
        c.head_object(Bucket=bucket, Key="shabad")


@pytest.mark.parametrize("mode", ["sse-s3", "sse-kms", "sse-c"])
def test_part_numbers_of_a_single_put_object(gw, bucket, mode):
    """A single-PUT object has one part: partNumber=1 is the whole object,
    a larger one is 400 InvalidPart (GET and HEAD), as S3."""
    args = {"sse-s3": {"ServerSideEncryption": "AES256"}, "sse-kms": {"ServerSideEncryption": "aws:kms"},
            "sse-c": ssec(b"p" * 32)}[mode]
    read_args = args if mode == "sse-c" else {}
    c = gw.client()
    body = payload(300_000, 5)
    c.put_object(Bucket=bucket, Key="one", Body=body, **args)
    assert c.get_object(Bucket=bucket, Key="one", PartNumber=1, **read_args)["Body"].read() == body
    assert c.head_object(Bucket=bucket, Key="one", PartNumber=1, **read_args)["ContentLength"] == len(body)
    for call in (c.get_object, c.head_object):
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="one", PartNumber=2, **read_args)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        if call is c.get_object:
            assert e.value.response["Error"]["Code"] == "InvalidPart"


def test_part_numbers_of_plaintext_objects_on_the_embedded_store():
    """The embedded store answers partNumber reads of objects the gateway
    did not encrypt: part 1 of a single PUT is the object, part 2 is 400
    InvalidPart, and a multipart object (whose part boundaries it does not
    keep) is refused with 501 rather than answered with the wrong bytes."""
    g = Gateway()
    try:
        _plaintext_part_numbers(g.client(), "parts")
    finally:
        g.close()


def _plaintext_part_numbers(c, bucket):
    c.create_bucket(Bucket=bucket)
    c.put_object(Bucket=bucket, Key="plain", Body=b"plain bytes")
    assert c.get_object(Bucket=bucket, Key="plain", PartNumber=1)["Body"].read() == b"plain bytes"
    assert c.head_object(Bucket=bucket, Key="plain", PartNumber=1)["ContentLength"] == len(b"plain bytes")
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="plain", PartNumber=2)
    assert (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidPart", 400)
    uid = c.create_multipart_upload(Bucket=bucket, Key="plain-mp")["UploadId"]
    etag = c.upload_part(Bucket=bucket, Key="plain-mp", UploadId=uid, PartNumber=1, Body=b"x" * 100)["ETag"]
    c.complete_multipart_upload(Bucket=bucket, Key="plain-mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="plain-mp", PartNumber=1)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


@pytest.mark.parametrize("mode", ["none", "AES256", "aws:kms", "SSE-C"])
def test_conditional_writes_compare_the_etag_the_client_sees(gw, bucket, mode):
    """If-None-Match and If-Match on PutObject and CompleteMultipartUpload
    against the ETag the gateway reports (for SSE-S3 the plaintext MD5,
    not the store's): a matching one writes, any other changes nothing."""
    c = gw.client()
    sse = {"none": {}, "AES256": {"ServerSideEncryption": "AES256"}, "aws:kms": {"ServerSideEncryption": "aws:kms"},
           "SSE-C": ssec(b"c" * 32)}[mode]
    get_sse = sse if mode == "SSE-C" else {}
    etag = c.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*", **sse)["ETag"]
    assert c.head_object(Bucket=bucket, Key="k", **get_sse)["ETag"] == etag
    for cond in [{"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'}]:
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket=bucket, Key="k", Body=b"lost", **cond, **sse)
        assert e.value.response["Error"]["Code"] == "PreconditionFailed", cond
    assert c.get_object(Bucket=bucket, Key="k", **get_sse)["Body"].read() == b"one"
    etag2 = c.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=etag, **sse)["ETag"]
    assert c.get_object(Bucket=bucket, Key="k", **get_sse)["Body"].read() == b"two"
    # The first ETag no longer holds; a completion on the current one does.
    uid = c.create_multipart_upload(Bucket=bucket, Key="k", **sse)["UploadId"]
    p = c.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"three", **get_sse)
    parts = {"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]}
    # The store decides a completion's condition (atomically); moto does not
    # evaluate If-Match there, so on moto only SSE-S3's (compared by the
    # gateway, against the visible ETag) is refused.
    if gw.upstream is None or mode == "AES256":
        with pytest.raises(ClientError) as e:
            c.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload=parts, IfMatch=etag)
        assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    c.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload=parts, IfMatch=etag2)
    assert c.get_object(Bucket=bucket, Key="k", **get_sse)["Body"].read() == b"three"


def test_a_versioned_store_answers_the_readable_version(moto):
    """On a versioned store each copy the gateway makes of an object onto
    itself (the part table attached at completion, the SSE-S3 ETag after a
    PUT of more than one segment, a re-key) is a version of its own. The
    VersionId a client gets is that version, the one that reads."""
    g = Gateway(upstream=moto)
    try:
        c = g.client()
        c.create_bucket(Bucket="versioned")
        c.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        data = payload(5 * MIB + 10, seed=21)
        up = c.create_multipart_upload(Bucket="versioned", Key="mp", ServerSideEncryption="aws:kms")["UploadId"]
        parts = [{"PartNumber": n, "ETag": c.upload_part(Bucket="versioned", Key="mp", UploadId=up, PartNumber=n, Body=b)["ETag"]}
                 for n, b in ((1, data[:5 * MIB]), (2, data[5 * MIB:]))]
        vid = c.complete_multipart_upload(Bucket="versioned", Key="mp", UploadId=up,
                                          MultipartUpload={"Parts": parts})["VersionId"]
        assert c.get_object(Bucket="versioned", Key="mp", VersionId=vid)["Body"].read() == data

        big = payload(2 * MIB + 3, seed=22)
        vid = c.put_object(Bucket="versioned", Key="big", Body=big, ServerSideEncryption="AES256")["VersionId"]
        got = c.get_object(Bucket="versioned", Key="big", VersionId=vid)
        assert got["Body"].read() == big and got["ETag"].strip('"') == hashlib.md5(big).hexdigest()

        vid = c.copy_object(Bucket="versioned", Key="big", CopySource={"Bucket": "versioned", "Key": "big"},
                            ServerSideEncryption="aws:kms")["VersionId"]
        h = c.head_object(Bucket="versioned", Key="big", VersionId=vid)
        assert h["ServerSideEncryption"] == "aws:kms"
    finally:
        g.close()


def test_the_gateways_own_copies_keep_storage_class_and_expires(moto):
    """The copies the gateway makes of an object onto itself replace its
    metadata; a store resets what such a copy does not carry (AWS: storage
    class to STANDARD, no Expires). They carry both."""
    import datetime

    g = Gateway(upstream=moto)
    try:
        c = g.client()
        c.create_bucket(Bucket="classes")
        expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        data = payload(5 * MIB + 10, seed=23)
        up = c.create_multipart_upload(Bucket="classes", Key="mp", ServerSideEncryption="aws:kms",
                                       StorageClass="STANDARD_IA", Expires=expires)["UploadId"]
        parts = [{"PartNumber": n, "ETag": c.upload_part(Bucket="classes", Key="mp", UploadId=up, PartNumber=n, Body=b)["ETag"]}
                 for n, b in ((1, data[:5 * MIB]), (2, data[5 * MIB:]))]
        c.complete_multipart_upload(Bucket="classes", Key="mp", UploadId=up, MultipartUpload={"Parts": parts})
        c.put_object(Bucket="classes", Key="big", Body=payload(2 * MIB, seed=24), ServerSideEncryption="AES256",
                     StorageClass="STANDARD_IA", Expires=expires)
        c.copy_object(Bucket="classes", Key="big", CopySource={"Bucket": "classes", "Key": "big"},
                      ServerSideEncryption="aws:kms")
        for key in ("mp", "big"):
            h = c.head_object(Bucket="classes", Key=key)
            assert h.get("StorageClass") == "STANDARD_IA", (key, h.get("StorageClass"))
            assert h.get("Expires") == expires, (key, h.get("Expires"))
        assert c.get_object(Bucket="classes", Key="mp")["Body"].read() == data
        # A re-key that asks for a storage class gets it.
        c.copy_object(Bucket="classes", Key="big", CopySource={"Bucket": "classes", "Key": "big"},
                      ServerSideEncryption="AES256", StorageClass="ONEZONE_IA")
        assert c.head_object(Bucket="classes", Key="big").get("StorageClass") == "ONEZONE_IA"
    finally:
        g.close()


@pytest.mark.parametrize("mode", ["sse-s3", "sse-kms", "plain"])
def test_conditional_delete_uses_what_the_client_sees(gw, bucket, mode):
    """DeleteObject's If-Match is the ETag the client was shown (SSE-S3:
    the plaintext MD5) and x-amz-if-match-size the plaintext size: a
    mismatch deletes nothing, a match deletes."""
    c = gw.client()
    data = payload(3000, seed=25)
    c.put_object(Bucket=bucket, Key="del", Body=data, **put_args(mode))
    etag = c.head_object(Bucket=bucket, Key="del")["ETag"]
    if mode == "sse-s3":
        assert etag.strip('"') == hashlib.md5(data).hexdigest()
    for cond in ({"IfMatch": '"0123456789abcdef0123456789abcdef"'}, {"IfMatchSize": len(data) + 16}):
        with pytest.raises(ClientError) as e:
            c.delete_object(Bucket=bucket, Key="del", **cond)
        assert err(e) == ("PreconditionFailed", 412), cond
    assert c.get_object(Bucket=bucket, Key="del", **get_args(mode))["Body"].read() == data
    c.delete_object(Bucket=bucket, Key="del", IfMatch=etag, IfMatchSize=len(data))
    with pytest.raises(ClientError) as e:
        c.head_object(Bucket=bucket, Key="del")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

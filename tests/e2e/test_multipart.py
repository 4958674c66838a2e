"""Encrypted multipart uploads: parts, ranges across parts, partNumber
reads, ListParts and GetObjectAttributes in plaintext terms, part copies,
and the SSE-C rules of parts."""

import hashlib

import pytest
from botocore.exceptions import ClientError

from conftest import MIB, lists_parts, payload, ssec

CKEY = b"m" * 32
PART_SIZES = [5 * MIB + 1, 5 * MIB, 1234]
MODES = {
    "sse-s3": {"ServerSideEncryption": "AES256"},
    "sse-kms": {"ServerSideEncryption": "aws:kms"},
    "sse-c": ssec(CKEY),
    "plain": {},
}


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def part_args(mode):
    return ssec(CKEY) if mode == "sse-c" else {}


def upload(c, bucket, key, mode, parts, list_parts=True):
    up = c.create_multipart_upload(Bucket=bucket, Key=key, **MODES[mode])
    uid = up["UploadId"]
    etags = []
    for n, data in enumerate(parts, start=1):
        r = c.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data, **part_args(mode))
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    if list_parts:
        listed = c.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]
        assert [p["Size"] for p in listed] == [len(p) for p in parts], "ListParts shows plaintext sizes"
    c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": etags})
    return up


@pytest.mark.parametrize("mode", list(MODES))
def test_multipart_roundtrip_ranges_and_parts(gw, bucket, mode):
    c = gw.client()
    parts = [payload(n, seed=i) for i, n in enumerate(PART_SIZES)]
    data = b"".join(parts)
    # moto answers ListParts with a <ListPartsResponse> root that AWS SDKs
    # reject, so ListParts is checked on every other upstream.
    up = upload(c, bucket, "mp", mode, parts, list_parts=lists_parts(gw))
    if mode == "sse-kms":
        assert up["ServerSideEncryption"] == "aws:kms"
    got = c.get_object(Bucket=bucket, Key="mp", **part_args(mode))
    assert got["ContentLength"] == len(data)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()
    head = c.head_object(Bucket=bucket, Key="mp", **part_args(mode))
    assert head["ContentLength"] == len(data)
    b1, b2 = PART_SIZES[0], PART_SIZES[0] + PART_SIZES[1]
    for a, b in [(b1 - 1, b1), (b1 - 100, b2 + 100), (0, len(data) - 1), (b2, b2), (b2 - 1, len(data) - 1), (MIB - 3, MIB + 3)]:
        r = c.get_object(Bucket=bucket, Key="mp", Range=f"bytes={a}-{b}", **part_args(mode))
        assert r["Body"].read() == data[a : b + 1], (a, b)
    # Plaintext partNumber reads of multipart objects are the upstream's
    # job (neither the embedded store nor moto keeps part boundaries; see
    # test_objects.py for single-PUT objects), so only encrypted ones.
    for n, p in enumerate(parts if mode != "plain" else [], start=1):
        r = c.get_object(Bucket=bucket, Key="mp", PartNumber=n, **part_args(mode))
        assert r["Body"].read() == p
        assert r["PartsCount"] == 3
        h = c.head_object(Bucket=bucket, Key="mp", PartNumber=n, **part_args(mode))
        assert h["ContentLength"] == len(p)
    if mode != "plain":
        # A part the object does not have: 400 InvalidPart, as S3.
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket=bucket, Key="mp", PartNumber=len(parts) + 1, **part_args(mode))
        assert (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidPart", 400)
        with pytest.raises(ClientError) as e:
            c.head_object(Bucket=bucket, Key="mp", PartNumber=len(parts) + 1, **part_args(mode))
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    listed = {o["Key"]: o["Size"] for o in c.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed["mp"] == len(data)
    if mode != "plain":
        raw = gw.raw_get(bucket, "mp")
        assert len(raw) > len(data) and parts[0][:64] not in raw
        attrs = c.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectSize", "ObjectParts", "ETag"], **part_args(mode))
        assert attrs["ObjectSize"] == len(data)
        assert [p["Size"] for p in attrs["ObjectParts"]["Parts"]] == PART_SIZES
        assert attrs["ObjectParts"]["TotalPartsCount"] == 3
        # Unquoted here, as AWS answers GetObjectAttributes.
        assert attrs["ETag"] == head["ETag"].strip('"') and '"' not in attrs["ETag"]


def test_sse_c_part_rules(gw, bucket):
    c = gw.client()
    uid = c.create_multipart_upload(Bucket=bucket, Key="c", **ssec(CKEY))["UploadId"]
    with pytest.raises(ClientError) as e:
        c.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=1, Body=b"x" * 100)
    assert err(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        c.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=1, Body=b"x" * 100, **ssec(b"o" * 32))
    assert err(e) == ("InvalidRequest", 400)
    c.abort_multipart_upload(Bucket=bucket, Key="c", UploadId=uid)
    uid = c.create_multipart_upload(Bucket=bucket, Key="k", ServerSideEncryption="aws:kms")["UploadId"]
    with pytest.raises(ClientError) as e:
        c.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"x" * 100, **ssec(CKEY))
    assert err(e) == ("InvalidRequest", 400)
    c.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)
    with pytest.raises(ClientError):
        c.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"x")


def test_upload_part_copy_from_encrypted_sources(gw, bucket):
    c = gw.client()
    src_c = payload(6 * MIB, seed=31)
    src_kms = payload(3 * MIB, seed=32)
    c.put_object(Bucket=bucket, Key="src-c", Body=src_c, **ssec(CKEY))
    c.put_object(Bucket=bucket, Key="src-kms", Body=src_kms, ServerSideEncryption="aws:kms")
    uid = c.create_multipart_upload(Bucket=bucket, Key="dst", ServerSideEncryption="AES256")["UploadId"]
    cs3 = {f"CopySource{k}": v for k, v in ssec(CKEY).items()}
    p1 = c.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src-c"},
                            CopySourceRange=f"bytes=0-{5 * MIB}", **cs3)
    p2 = c.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2, CopySource={"Bucket": bucket, "Key": "src-kms"})
    c.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    want = src_c[: 5 * MIB + 1] + src_kms
    assert c.get_object(Bucket=bucket, Key="dst")["Body"].read() == want
    with pytest.raises(ClientError) as e:
        uid2 = c.create_multipart_upload(Bucket=bucket, Key="dst2")["UploadId"]
        c.upload_part_copy(Bucket=bucket, Key="dst2", UploadId=uid2, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src-c"})
    assert err(e) == ("InvalidRequest", 400), "SSE-C source without its key"


def test_list_multipart_uploads(gw, bucket):
    """Uploads in progress are listed (the embedded store too): prefix,
    delimiter, pages; completed and aborted ones are gone."""
    c = gw.client()
    ids = {}
    for key in ("logs/a", "logs/b", "logs/b", "top"):
        ids.setdefault(key, []).append(c.create_multipart_upload(Bucket=bucket, Key=key, ServerSideEncryption="AES256")["UploadId"])
    done = c.create_multipart_upload(Bucket=bucket, Key="done")["UploadId"]
    etag = c.upload_part(Bucket=bucket, Key="done", UploadId=done, PartNumber=1, Body=b"x")["ETag"]
    c.complete_multipart_upload(Bucket=bucket, Key="done", UploadId=done, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    gone = c.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    c.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=gone)

    listed = c.list_multipart_uploads(Bucket=bucket)
    assert sorted((u["Key"], u["UploadId"]) for u in listed["Uploads"]) == sorted((k, i) for k, v in ids.items() for i in v)
    assert [u["Key"] for u in c.list_multipart_uploads(Bucket=bucket, Prefix="logs/")["Uploads"]] == ["logs/a", "logs/b", "logs/b"]
    if gw.upstream is None:
        # (moto's ListMultipartUploads ignores the delimiter.)
        rolled = c.list_multipart_uploads(Bucket=bucket, Delimiter="/")
        assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["logs/"]
        assert [u["Key"] for u in rolled["Uploads"]] == ["top"]
    # Pages of one.
    seen, kw = [], {}
    while True:
        page = c.list_multipart_uploads(Bucket=bucket, MaxUploads=1, **kw)
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert sorted(seen) == sorted((u["Key"], u["UploadId"]) for u in listed["Uploads"])
    assert len(seen) == 4
    for key, uids in ids.items():
        for uid in uids:
            c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    assert c.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

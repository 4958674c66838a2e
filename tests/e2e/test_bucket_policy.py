"""Bucket policies that require encryption, with the policies AWS's own
documentation shows, enforced by the gateway (the store never sees the SSE
headers) on PutObject, POST object, CopyObject, CreateMultipartUpload and
UploadPart; the other statements go to the store."""

import json
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS, Gateway, lists_parts, payload, ssec

KEY_ARN = "arn:aws:kms:us-east-2:111122223333:key/gateway-default"


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def deny(bucket, condition, sid="Sse", principal="*", action="s3:PutObject"):
    return {"Sid": sid, "Effect": "Deny", "Principal": principal, "Action": action,
            "Resource": f"arn:aws:s3:::{bucket}/*", "Condition": condition}


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def require_kms(bucket):
    """AWS's two-statement "require SSE-KMS" policy."""
    return policy(deny(bucket, {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}, "DenyIncorrectEncryptionHeader"),
                  deny(bucket, {"Null": {"s3:x-amz-server-side-encryption": "true"}}, "DenyUnEncryptedObjectUploads"))


def denied(fn, **kw):
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert err(e) == ("AccessDenied", 403), e.value.response


def absent(c, bucket, key):
    with pytest.raises(ClientError) as e:
        c.head_object(Bucket=bucket, Key=key)
    assert err(e)[1] == 404


def post_object(c, bucket, key, data, fields):
    post = c.generate_presigned_post(bucket, key, Fields=fields, Conditions=[{k: v} for k, v in fields.items()], ExpiresIn=60)
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in post["fields"].items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    req = urllib.request.Request(post["url"], data=b"".join(parts), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code


def test_require_sse_kms_on_every_write_path(gw, bucket):
    c = gw.client(signature_version="s3v4")
    data = payload(9000, seed=61)
    with pytest.raises(ClientError) as e:
        c.get_bucket_policy(Bucket=bucket)
    assert err(e) == ("NoSuchBucketPolicy", 404)
    text = require_kms(bucket)
    c.put_bucket_policy(Bucket=bucket, Policy=text)
    assert json.loads(c.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(text)

    # PutObject: without headers, or with SSE-S3 or SSE-C, nothing is stored.
    denied(c.put_object, Bucket=bucket, Key="plain", Body=data)
    denied(c.put_object, Bucket=bucket, Key="s3", Body=data, ServerSideEncryption="AES256")
    denied(c.put_object, Bucket=bucket, Key="c", Body=data, **ssec(b"k" * 32))
    for k in ("plain", "s3", "c"):
        absent(c, bucket, k)
    c.put_object(Bucket=bucket, Key="kms", Body=data, ServerSideEncryption="aws:kms")
    assert c.get_object(Bucket=bucket, Key="kms")["Body"].read() == data

    # A bucket default does not count (AWS evaluates the policy first).
    c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    denied(c.put_object, Bucket=bucket, Key="by-default", Body=data)
    c.delete_bucket_encryption(Bucket=bucket)

    # POST object.
    assert post_object(c, bucket, "posted-plain", data, {"key": "posted-plain"}) == 403
    absent(c, bucket, "posted-plain")
    assert post_object(c, bucket, "posted", data, {"x-amz-server-side-encryption": "aws:kms"}) in (200, 204)
    assert c.get_object(Bucket=bucket, Key="posted")["Body"].read() == data

    # CopyObject: the destination's headers decide.
    denied(c.copy_object, Bucket=bucket, Key="copy-plain", CopySource={"Bucket": bucket, "Key": "kms"})
    absent(c, bucket, "copy-plain")
    c.copy_object(Bucket=bucket, Key="copy-kms", CopySource={"Bucket": bucket, "Key": "kms"}, ServerSideEncryption="aws:kms")

    # Multipart: the upload's creation decides, and its parts (which carry
    # no SSE headers) are evaluated with the upload's.
    denied(c.create_multipart_upload, Bucket=bucket, Key="mpu-plain")
    uid = c.create_multipart_upload(Bucket=bucket, Key="mpu", ServerSideEncryption="aws:kms")["UploadId"]
    big = payload(5 << 20, seed=64)
    p1 = c.upload_part(Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=1, Body=big)
    p2 = c.upload_part_copy(Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=2, CopySource={"Bucket": bucket, "Key": "kms"})
    c.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert c.get_object(Bucket=bucket, Key="mpu")["Body"].read() == big + data

    c.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        c.get_bucket_policy(Bucket=bucket)
    assert err(e)[1] == 404
    c.put_object(Bucket=bucket, Key="plain", Body=data)


def test_policy_set_during_an_upload_applies_to_its_parts(gw, bucket):
    c = gw.client()
    uid = c.create_multipart_upload(Bucket=bucket, Key="mpu", ServerSideEncryption="AES256")["UploadId"]
    c.put_bucket_policy(Bucket=bucket, Policy=require_kms(bucket))
    denied(c.upload_part, Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=1, Body=b"x" * 100)
    # (In front of moto, through moto's own answer: its ListParts root
    # element is one the gateway's S3 client does not parse.)
    lister = c if lists_parts(gw) else gw.raw_client()
    assert lister.list_parts(Bucket=bucket, Key="mpu", UploadId=uid).get("Parts", []) == []
    c.abort_multipart_upload(Bucket=bucket, Key="mpu", UploadId=uid)


def test_aws_require_kms_key_header_and_specific_key(gw, bucket):
    c = gw.client()
    data = payload(3000, seed=62)
    # AWS's "require SSE-KMS" example: the key id header must be sent.
    c.put_bucket_policy(Bucket=bucket, Policy=policy(deny(bucket, {"Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "true"}})))
    denied(c.put_object, Bucket=bucket, Key="no-key", Body=data, ServerSideEncryption="aws:kms")
    c.put_object(Bucket=bucket, Key="key", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId="gateway-default")
    # AWS's "require a specific key" example: with IfExists, an absent key
    # header makes the condition true, so it is denied too.
    c.put_bucket_policy(Bucket=bucket, Policy=policy(deny(
        bucket, {"StringNotLikeIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY_ARN}})))
    c.put_object(Bucket=bucket, Key="arn", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId=KEY_ARN)
    assert c.head_object(Bucket=bucket, Key="arn")["ServerSideEncryption"] == "aws:kms"
    assert c.get_object(Bucket=bucket, Key="arn")["Body"].read() == data
    denied(c.put_object, Bucket=bucket, Key="bare", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId="gateway-default")
    denied(c.put_object, Bucket=bucket, Key="none", Body=data, ServerSideEncryption="aws:kms")
    denied(c.put_object, Bucket=bucket, Key="plain", Body=data)
    uid = c.create_multipart_upload(Bucket=bucket, Key="mpu", ServerSideEncryption="aws:kms", SSEKMSKeyId=KEY_ARN)["UploadId"]
    p = c.upload_part(Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=1, Body=data)
    c.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert c.get_object(Bucket=bucket, Key="mpu")["Body"].read() == data


def test_aws_require_and_deny_sse_c(gw, bucket):
    c = gw.client()
    data = payload(5000, seed=63)
    key = ssec(b"q" * 32)
    c.put_bucket_policy(Bucket=bucket, Policy=policy(deny(bucket, {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "true"}})))
    denied(c.put_object, Bucket=bucket, Key="kms", Body=data, ServerSideEncryption="aws:kms")
    c.put_object(Bucket=bucket, Key="c", Body=data, **key)
    uid = c.create_multipart_upload(Bucket=bucket, Key="mpu", **key)["UploadId"]
    # A part without the SSE-C headers is denied by the policy first.
    denied(c.upload_part, Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=1, Body=data)
    p = c.upload_part(Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=1, Body=data, **key)
    c.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert c.get_object(Bucket=bucket, Key="mpu", **key)["Body"].read() == data

    c.put_bucket_policy(Bucket=bucket, Policy=policy(deny(bucket, {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}})))
    denied(c.put_object, Bucket=bucket, Key="c2", Body=data, **key)
    absent(c, bucket, "c2")
    denied(c.create_multipart_upload, Bucket=bucket, Key="mpu2", **key)
    c.put_object(Bucket=bucket, Key="s3", Body=data, ServerSideEncryption="AES256")
    # Reads are not writes: the SSE-C object stays readable.
    assert c.get_object(Bucket=bucket, Key="c", **key)["Body"].read() == data


def test_principals_and_resources_scope_statements(gw, bucket):
    c = gw.client()
    me = f"arn:aws:iam::000000000000:user/{ACCESS}"
    c.put_bucket_policy(Bucket=bucket, Policy=policy(
        deny(bucket, {"Null": {"s3:x-amz-server-side-encryption": "true"}}, "Others", principal={"AWS": "arn:aws:iam::000000000000:user/someone-else"})))
    c.put_object(Bucket=bucket, Key="a", Body=b"1")
    c.put_bucket_policy(Bucket=bucket, Policy=policy(
        deny(bucket, {"Null": {"s3:x-amz-server-side-encryption": "true"}}, "Me", principal={"AWS": [me]})))
    denied(c.put_object, Bucket=bucket, Key="a", Body=b"1")
    st = deny(bucket, {"Null": {"s3:x-amz-server-side-encryption": "true"}})
    st["Resource"] = f"arn:aws:s3:::{bucket}/secret/*"
    c.put_bucket_policy(Bucket=bucket, Policy=policy(st))
    c.put_object(Bucket=bucket, Key="public/a", Body=b"1")
    denied(c.put_object, Bucket=bucket, Key="secret/a", Body=b"1")


def test_malformed_policies_and_missing_buckets(gw, bucket):
    c = gw.client()
    bad = [
        "{not json",
        json.dumps({"Version": "2012-10-17", "Statement": []}),
        policy({"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}),
        policy(deny("someone-elses-bucket", {"Null": {"s3:x-amz-server-side-encryption": "true"}})),
        policy(deny(bucket, {"Null": {"s3:x-amz-server-side-encryption": "true"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
    ]
    for text in bad:
        with pytest.raises(ClientError) as e:
            c.put_bucket_policy(Bucket=bucket, Policy=text)
        assert err(e) == ("MalformedPolicy", 400), text
    with pytest.raises(ClientError) as e:
        c.get_bucket_policy(Bucket=bucket)
    assert err(e)[1] == 404
    c.put_object(Bucket=bucket, Key="still-open", Body=b"1")
    with pytest.raises(ClientError) as e:
        c.put_bucket_policy(Bucket="no-such-bucket-kgw", Policy=require_kms("no-such-bucket-kgw"))
    assert err(e) == ("NoSuchBucket", 404)


def test_other_statements_go_to_the_store(gw, bucket):
    c = gw.client()
    other = {"Sid": "Read", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    text = policy(deny(bucket, {"Null": {"s3:x-amz-server-side-encryption": "true"}}), other)
    if gw.upstream is None:
        # The embedded store enforces no policy: a statement nobody would
        # enforce is refused, not silently kept.
        with pytest.raises(ClientError) as e:
            c.put_bucket_policy(Bucket=bucket, Policy=text)
        assert err(e) == ("NotImplemented", 501)
        with pytest.raises(ClientError):
            c.get_bucket_policy(Bucket=bucket)
        c.put_object(Bucket=bucket, Key="open", Body=b"1")
        return
    c.put_bucket_policy(Bucket=bucket, Policy=text)
    assert json.loads(c.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(text)
    stored = json.loads(gw.raw_client().get_bucket_policy(Bucket=bucket)["Policy"])
    assert [s["Sid"] for s in stored["Statement"]] == ["Read"]
    denied(c.put_object, Bucket=bucket, Key="plain", Body=b"1")
    # Only the gateway's statements left: the store's share is removed.
    c.put_bucket_policy(Bucket=bucket, Policy=require_kms(bucket))
    with pytest.raises(ClientError) as e:
        gw.raw_client().get_bucket_policy(Bucket=bucket)
    assert err(e)[1] == 404


def test_policy_survives_restart_and_dies_with_its_bucket():
    g = Gateway()
    try:
        c = g.client()
        c.create_bucket(Bucket="pol")
        c.put_bucket_policy(Bucket="pol", Policy=require_kms("pol"))
        g.restart()
        c = g.client()
        denied(c.put_object, Bucket="pol", Key="a", Body=b"1")
        c.delete_bucket(Bucket="pol")
        c.create_bucket(Bucket="pol")
        with pytest.raises(ClientError) as e:
            c.get_bucket_policy(Bucket="pol")
        assert err(e)[1] == 404
        c.put_object(Bucket="pol", Key="a", Body=b"1")
    finally:
        g.close()

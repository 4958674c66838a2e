"""Bucket default encryption (kept by the gateway), BlockedEncryptionTypes,
and the gateway-wide default."""

import pytest
from botocore.exceptions import ClientError

from conftest import Gateway, payload, ssec


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def put_raw_encryption(c, bucket, xml):
    """PutBucketEncryption with a hand-written body (for fields boto3 may not know)."""

    def swap(request, **_):
        request.data = xml.encode()
        request.headers["Content-Length"] = str(len(xml))
        if "Content-MD5" in request.headers:
            del request.headers["Content-MD5"]

    c.meta.events.register_first("before-sign.s3.PutBucketEncryption", swap)
    try:
        c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    finally:
        c.meta.events.unregister("before-sign.s3.PutBucketEncryption", swap)


def test_bucket_default_applies_and_headers_win(gw, bucket):
    c = gw.client()
    with pytest.raises(ClientError) as e:
        c.get_bucket_encryption(Bucket=bucket)
    assert err(e) == ("ServerSideEncryptionConfigurationNotFoundError", 404)
    c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "gateway-default"}, "BucketKeyEnabled": True}]})
    got = c.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert got["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "gateway-default"}
    data = payload(4000, seed=4)
    c.put_object(Bucket=bucket, Key="default", Body=data)
    h = c.head_object(Bucket=bucket, Key="default")
    assert h["ServerSideEncryption"] == "aws:kms" and h["SSEKMSKeyId"] == "gateway-default"
    assert data[:32] not in gw.raw_get(bucket, "default")
    c.put_object(Bucket=bucket, Key="explicit", Body=data, ServerSideEncryption="AES256")
    assert c.head_object(Bucket=bucket, Key="explicit")["ServerSideEncryption"] == "AES256"
    uid = c.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    p = c.upload_part(Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=1, Body=data)
    c.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert c.head_object(Bucket=bucket, Key="mpu")["ServerSideEncryption"] == "aws:kms"
    c.put_object(Bucket=bucket, Key="plain-src", Body=data, ServerSideEncryption="AES256")
    c.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "plain-src"})
    assert c.head_object(Bucket=bucket, Key="copied")["ServerSideEncryption"] == "aws:kms"
    c.delete_bucket_encryption(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        c.get_bucket_encryption(Bucket=bucket)
    assert err(e)[1] == 404
    c.put_object(Bucket=bucket, Key="after", Body=data)
    assert "ServerSideEncryption" not in c.head_object(Bucket=bucket, Key="after")
    assert gw.raw_get(bucket, "after") == data


def test_blocked_sse_c_and_bad_configs(gw, bucket):
    c = gw.client()
    blocked = ('<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule>'
               '<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>'
               '<BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType></BlockedEncryptionTypes></Rule></ServerSideEncryptionConfiguration>')
    put_raw_encryption(c, bucket, blocked)
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket=bucket, Key="c", Body=b"x", **ssec(b"c" * 32))
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError):
        c.head_object(Bucket=bucket, Key="c")
    c.put_object(Bucket=bucket, Key="ok", Body=b"x")
    assert c.head_object(Bucket=bucket, Key="ok")["ServerSideEncryption"] == "AES256"
    with pytest.raises(ClientError) as e:
        c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": "k"}}]})
    assert err(e) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        put_raw_encryption(c, bucket, "<ServerSideEncryptionConfiguration></ServerSideEncryptionConfiguration>")
    assert err(e) == ("MalformedXML", 400)
    with pytest.raises(ClientError) as e:
        c.get_bucket_encryption(Bucket="no-such-bucket-here")
    assert err(e)[1] == 404


def test_gateway_wide_default_and_persistence(tmp_path):
    g = Gateway(data_dir=tmp_path / "gw", extra_args=["--allow-insecure-sse-c", "--default-encryption", "sse-s3"])
    try:
        c = g.client()
        c.create_bucket(Bucket="gwdef")
        c.put_object(Bucket="gwdef", Key="a", Body=b"secret data here!")
        assert c.head_object(Bucket="gwdef", Key="a")["ServerSideEncryption"] == "AES256"
        assert b"secret data" not in g.raw_get("gwdef", "a")
        c.put_bucket_encryption(Bucket="gwdef", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        g.restart()
        c = g.client()
        assert c.get_bucket_encryption(Bucket="gwdef")["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        c.put_object(Bucket="gwdef", Key="b", Body=b"y")
        assert c.head_object(Bucket="gwdef", Key="b")["ServerSideEncryption"] == "aws:kms"
    finally:
        g.stop()

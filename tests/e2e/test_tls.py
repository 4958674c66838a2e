"""The TLS listener, the rule that SSE-C needs HTTPS, the configurable
wrong-key status, and POST object (browser form upload) with SSE fields."""

import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import Gateway, payload, ssec

KEY = b"t" * 32


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_sse_c_needs_tls(tmp_path, tls_files):
    cert, key = tls_files
    plain = Gateway(data_dir=tmp_path / "plain", extra_args=[])
    secure = Gateway(data_dir=tmp_path / "tls", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        c = plain.client()
        c.create_bucket(Bucket="tlsb")
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="tlsb", Key="k", Body=b"x", **ssec(KEY))
        assert err(e) == ("InvalidRequest", 400)
        c.put_object(Bucket="tlsb", Key="k", Body=b"x", ServerSideEncryption="AES256")
        s = secure.client(verify=str(cert))
        s.create_bucket(Bucket="tlsb")
        data = payload(3 << 20, seed=99)
        s.put_object(Bucket="tlsb", Key="k", Body=data, **ssec(KEY))
        assert s.get_object(Bucket="tlsb", Key="k", **ssec(KEY))["Body"].read() == data
        with pytest.raises(ClientError) as e:
            s.get_object(Bucket="tlsb", Key="k", **ssec(b"w" * 32))
        assert err(e) == ("AccessDenied", 403)
    finally:
        plain.stop()
        secure.stop()


def test_wrong_key_status_400(tmp_path):
    g = Gateway(data_dir=tmp_path / "g", extra_args=["--allow-insecure-sse-c", "--sse-c-wrong-key-status", "400"])
    try:
        c = g.client()
        c.create_bucket(Bucket="wrongkey")
        c.put_object(Bucket="wrongkey", Key="k", Body=b"x", **ssec(KEY))
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="wrongkey", Key="k", **ssec(b"w" * 32))
        assert err(e)[1] == 400
    finally:
        g.stop()


def test_post_object_with_sse(gw, bucket):
    c = gw.client(signature_version="s3v4")
    data = payload(70000, seed=5)
    post = c.generate_presigned_post(bucket, "posted", Fields={"x-amz-server-side-encryption": "aws:kms"},
                                     Conditions=[{"x-amz-server-side-encryption": "aws:kms"}], ExpiresIn=60)
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in post["fields"].items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    req = urllib.request.Request(post["url"], data=b"".join(parts), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert urllib.request.urlopen(req).status in (200, 204)
    h = c.head_object(Bucket=bucket, Key="posted")
    assert h["ServerSideEncryption"] == "aws:kms" and h["ContentLength"] == len(data)
    assert c.get_object(Bucket=bucket, Key="posted")["Body"].read() == data
    assert data[:32] not in gw.raw_get(bucket, "posted")


def test_presigned_put_and_get_with_sse_c(gw, bucket):
    c = gw.client(signature_version="s3v4")
    keyp = ssec(KEY)
    headers = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
               "x-amz-server-side-encryption-customer-key": keyp["SSECustomerKey"],
               "x-amz-server-side-encryption-customer-key-MD5": keyp["SSECustomerKeyMD5"]}
    data = payload(200000, seed=8)
    url = c.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre-c", **keyp}, ExpiresIn=60)
    req = urllib.request.Request(url, data=data, method="PUT", headers={**headers, "Content-Type": "application/octet-stream"})
    assert urllib.request.urlopen(req).status == 200
    assert data[:32] not in gw.raw_get(bucket, "pre-c")
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre-c", **keyp}, ExpiresIn=60)
    assert urllib.request.urlopen(urllib.request.Request(url, headers=headers)).read() == data
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url)
    assert e.value.code in (400, 403), "the presigned GET still needs the key headers"

"""aws-chunked uploads with trailing checksums (what SDKs send over HTTPS),
built by hand so the trailer can also be wrong; plus the operations routes
and the segment-count promise of range reads."""

import base64
import hashlib
import select
import socket
import time
import urllib.error
import urllib.request
import zlib

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS, MIB, SECRET, payload, signed_request


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def chunked_put(gw, bucket, key, data, trailer_value, sse=True, chunk=64 * 1024, decoded_len=None):
    body = b""
    for i in range(0, len(data), chunk):
        part = data[i : i + chunk]
        body += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    body += b"0\r\n" + f"x-amz-checksum-crc32:{trailer_value}\r\n\r\n".encode()
    url = f"{gw.endpoint}/{bucket}/{key}"
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data) if decoded_len is None else decoded_len),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
        "Content-Length": str(len(body)),
        "Content-Type": "application/octet-stream",
    }
    if sse:
        headers["x-amz-server-side-encryption"] = "aws:kms"
    req = AWSRequest(method="PUT", url=url, data=body, headers=headers)
    # Tell the signer the checksum travels in a trailer, so it signs the
    # STREAMING-UNSIGNED-PAYLOAD-TRAILER payload mode.
    req.context["checksum"] = {"request_algorithm": {"in": "trailer", "algorithm": "crc32", "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "us-east-1").add_auth(req)
    r = urllib.request.Request(url, data=body, method="PUT", headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("sse", [True, False])
def test_trailing_checksum_verified(gw, bucket, sse):
    c = gw.client()
    data = payload(MIB + 333, seed=5)
    status, body = chunked_put(gw, bucket, f"trail-{sse}", data, crc32_b64(data), sse=sse)
    assert status == 200, body
    got = c.get_object(Bucket=bucket, Key=f"trail-{sse}")
    assert got["Body"].read() == data
    assert got.get("ContentEncoding") in (None, ""), "aws-chunked must not be stored"
    raw = gw.raw_get(bucket, f"trail-{sse}")
    assert (raw == data) != sse

    status, body = chunked_put(gw, bucket, f"trail-bad-{sse}", data, crc32_b64(b"something else"), sse=sse)
    assert status == 400 and b"BadDigest" in body
    with pytest.raises(Exception):
        c.head_object(Bucket=bucket, Key=f"trail-bad-{sse}")


@pytest.mark.parametrize("sse", [True, False])
@pytest.mark.parametrize("delta", [-10, 10])
def test_a_body_unlike_its_declared_length_stores_nothing(gw, bucket, sse, delta):
    """The decoded length an aws-chunked upload declares is what the
    gateway encrypts to (and what the store is told): a body longer or
    shorter is the client's error, answered as such, and nothing is kept."""
    data = payload(MIB + 77, seed=6)
    key = f"len-{sse}-{delta}"
    status, body = chunked_put(gw, bucket, key, data, crc32_b64(data), sse=sse, decoded_len=len(data) + delta)
    assert status == 400 and b"IncompleteBody" in body, (status, body)
    with pytest.raises(Exception):
        gw.client().head_object(Bucket=bucket, Key=key)


@pytest.mark.parametrize("sse", [None, "AES256", "aws:kms"])
def test_a_body_past_its_declared_length_is_refused_as_it_arrives(gw, bucket, sse):
    """An aws-chunked upload declaring a 1-byte body and sending on: the
    gateway refuses it once the body passes the declared length, not after
    reading it all (SSE-S3 reads a body of at most one segment whole, for
    its ETag: that read used to take whatever came, into memory)."""
    key = f"endless-{sse}"
    limit = 256 * MIB
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": "1",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "Content-Length": str(limit + 64 * 1024),
    }
    if sse:
        headers["x-amz-server-side-encryption"] = sse
    url = f"{gw.endpoint}/{bucket}/{key}"
    req = AWSRequest(method="PUT", url=url, data=b"", headers=headers)
    req.context["checksum"] = {"request_algorithm": {"in": "trailer", "algorithm": "crc32", "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "us-east-1").add_auth(req)
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    head = f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host") + "\r\n"
    sock.sendall(head.encode())
    piece = payload(MIB, seed=9)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent, answered = 0, b""
    try:
        while sent < limit:
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the gateway closed the connection: it stopped reading
    try:
        answered = sock.recv(4096)
    except OSError:
        pass
    sock.close()
    assert sent < 64 * MIB, f"the gateway read {sent} bytes of a body declared as 1"
    if answered:
        assert answered.startswith(b"HTTP/1.1 400") and b"IncompleteBody" in answered, answered[:300]
    with pytest.raises(Exception):
        gw.client().head_object(Bucket=bucket, Key=key)


@pytest.mark.parametrize("sse", [True, False])
def test_s3s_body_error_names_are_pinned(gw, bucket, sse):
    """A signed payload whose body does not match its signed SHA-256: the
    S3 layer reports it only through its error's name, which the gateway
    maps to AWS's code; nothing is stored."""
    data = payload(300_000, seed=7)
    url = f"{gw.endpoint}/{bucket}/sha-{sse}"
    headers = {"x-amz-server-side-encryption": "AES256"} if sse else {}
    # Signed over other bytes (their SHA-256 in x-amz-content-sha256), sent
    # with these.
    req = AWSRequest(method="PUT", url=url, data=b"other bytes", headers=headers)
    S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "us-east-1").add_auth(req)
    assert req.headers["X-Amz-Content-SHA256"] == hashlib.sha256(b"other bytes").hexdigest()
    sent = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
    r = urllib.request.Request(url, data=data, method="PUT", headers=sent)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r)
    assert e.value.code == 400 and b"XAmzContentSHA256Mismatch" in e.value.read()
    with pytest.raises(Exception):
        gw.client().head_object(Bucket=bucket, Key=f"sha-{sse}")


def metric(gw, name):
    text = urllib.request.urlopen(f"{gw.endpoint}/metrics").read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_and_metrics_routes(gw):
    assert urllib.request.urlopen(f"{gw.endpoint}/health/live").read() == b"ok\n"
    assert "kgw_object_requests_total" in urllib.request.urlopen(f"{gw.endpoint}/metrics").read().decode()


def test_one_byte_range_fetches_one_segment(gw, bucket):
    c = gw.client()
    n = 5 * MIB + 99
    data = payload(n, seed=8)
    c.put_object(Bucket=bucket, Key="seg", Body=data, ServerSideEncryption="AES256")
    for offset in [0, MIB - 1, MIB, 3 * MIB + 5, n - 1]:
        before = metric(gw, "kgw_upstream_ciphertext_bytes_total")
        got = c.get_object(Bucket=bucket, Key="seg", Range=f"bytes={offset}-{offset}")["Body"].read()
        assert got == data[offset : offset + 1]
        fetched = metric(gw, "kgw_upstream_ciphertext_bytes_total") - before
        assert 0 < fetched <= MIB + 16, (offset, fetched)


def test_one_byte_range_of_a_multipart_object_fetches_one_segment(gw, bucket):
    c = gw.client()
    parts = [payload(5 * MIB + 7, seed=1), payload(5 * MIB, seed=2), payload(999, seed=3)]
    data = b"".join(parts)
    uid = c.create_multipart_upload(Bucket=bucket, Key="mp1", ServerSideEncryption="aws:kms")["UploadId"]
    done = []
    for n, p in enumerate(parts, start=1):
        done.append({"PartNumber": n, "ETag": c.upload_part(Bucket=bucket, Key="mp1", UploadId=uid, PartNumber=n, Body=p)["ETag"]})
    c.complete_multipart_upload(Bucket=bucket, Key="mp1", UploadId=uid, MultipartUpload={"Parts": done})
    for offset in [0, 5 * MIB + 6, 5 * MIB + 7, 10 * MIB + 7, len(data) - 1, 7 * MIB]:
        before = metric(gw, "kgw_upstream_ciphertext_bytes_total")
        got = c.get_object(Bucket=bucket, Key="mp1", Range=f"bytes={offset}-{offset}")["Body"].read()
        assert got == data[offset : offset + 1]
        fetched = metric(gw, "kgw_upstream_ciphertext_bytes_total") - before
        assert 0 < fetched <= MIB + 16, (offset, fetched)


def test_a_client_that_pauses_mid_upload_is_not_cut_off(gw, bucket):
    """A client may pause mid-body (a slow link, a busy machine): the
    gateway's upstream upload waits with it. The upstream client's stall
    detector used to cut any upload whose body paused for 5 s, and the
    client got InternalError (64 concurrent uploads on two cores did it)."""
    data = payload(3 * MIB, seed=9)
    key = "paused-upload"
    headers = {"x-amz-server-side-encryption": "aws:kms", "Content-Length": str(len(data))}
    conn = signed_request(gw, "PUT", f"/{bucket}/{key}", headers, data, timeout=60)
    half = len(data) // 2
    conn.send(data[:half])
    time.sleep(7)
    conn.send(data[half:])
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, body
    got = gw.client().get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ServerSideEncryption"] == "aws:kms"


def test_a_client_that_pauses_mid_download_gets_the_whole_object(gw, bucket):
    """The same on the way out: a reader that stops for a while (its
    socket full, the gateway no longer reading the upstream) is not a
    stalled upstream, and the rest of the object still arrives intact."""
    data = payload(24 * MIB, seed=10)
    c = gw.client()
    c.put_object(Bucket=bucket, Key="paused-read", Body=data, ServerSideEncryption="aws:kms")
    body = c.get_object(Bucket=bucket, Key="paused-read")["Body"]
    first = body.read(MIB)
    time.sleep(7)
    rest = body.read()
    assert first + rest == data

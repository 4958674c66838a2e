"""Every bad input gets AWS's error code and changes nothing; tampered or
truncated ciphertext never yields plaintext."""

import base64
import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from conftest import MIB, SECRET, Gateway, payload, ssec

CKEY = b"k" * 32


def err(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def raw_put(c, bucket, key, headers, body=b"data"):
    """PUT with hand-set SSE headers (boto3 validates some of them)."""

    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v

    ev = c.meta.events
    ev.register_first("before-sign.s3.PutObject", add)
    try:
        return c.put_object(Bucket=bucket, Key=key, Body=body)
    finally:
        ev.unregister("before-sign.s3.PutObject", add)


def assert_absent(c, bucket, key):
    with pytest.raises(ClientError) as e:
        c.head_object(Bucket=bucket, Key=key)
    assert err(e)[1] == 404


def test_header_validation(gw, bucket):
    c = gw.client()
    k = base64.b64encode(CKEY).decode()
    m = base64.b64encode(hashlib.md5(CKEY).digest()).decode()
    short = base64.b64encode(b"s" * 16).decode()
    cases = [
        ({"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-customer-algorithm": "AES256",
          "x-amz-server-side-encryption-customer-key": k, "x-amz-server-side-encryption-customer-key-MD5": m}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption-customer-algorithm": "AES128", "x-amz-server-side-encryption-customer-key": k,
          "x-amz-server-side-encryption-customer-key-MD5": m}, ("InvalidEncryptionAlgorithmError", 400)),
        ({"x-amz-server-side-encryption-customer-key": k, "x-amz-server-side-encryption-customer-key-MD5": m}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption-customer-algorithm": "AES256"}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key": k,
          "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(b"0" * 16).decode()}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key": short,
          "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(b"s" * 16).digest()).decode()}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption-aws-kms-key-id": "gateway-default"}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-aws-kms-key-id": "gateway-default"}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption": "aes:kms"}, ("InvalidArgument", 400)),
        # Dual-layer SSE-KMS: refused with the answer S3 gives any value it does not accept.
        ({"x-amz-server-side-encryption": "aws:kms:dsse"}, ("InvalidArgument", 400)),
        ({"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "no-such-key"}, ("KMS.NotFoundException", 400)),
        ({"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-context": "!!notbase64"}, ("InvalidArgument", 400)),
        ({"x-amz-meta-kgw-mode": "SSE-S3"}, ("InvalidArgument", 400)),
    ]
    for i, (headers, expected) in enumerate(cases):
        with pytest.raises(ClientError) as e:
            raw_put(c, bucket, f"bad-{i}", headers)
        assert err(e) == expected, headers
        assert_absent(c, bucket, f"bad-{i}")


def test_read_side_sse_rules(gw, bucket):
    c = gw.client()
    c.put_object(Bucket=bucket, Key="c", Body=b"secret", **ssec(CKEY))
    c.put_object(Bucket=bucket, Key="s3", Body=b"managed", ServerSideEncryption="AES256")
    c.put_object(Bucket=bucket, Key="plain", Body=b"plain")
    for op in (c.get_object, c.head_object):
        with pytest.raises(ClientError) as e:
            op(Bucket=bucket, Key="c")
        assert err(e)[1] == 400, "SSE-C object without key"
        with pytest.raises(ClientError) as e:
            op(Bucket=bucket, Key="c", **ssec(b"w" * 32))
        assert err(e)[1] == 403, "wrong SSE-C key"
        for other in ("s3", "plain"):
            with pytest.raises(ClientError) as e:
                op(Bucket=bucket, Key=other, **ssec(CKEY))
            assert err(e)[1] == 400, "SSE-C headers on a non-SSE-C object"
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=bucket, Key="c", Range="bytes=0-1", **ssec(b"w" * 32))
    assert err(e) == ("AccessDenied", 403)
    assert c.get_object(Bucket=bucket, Key="c", **ssec(CKEY))["Body"].read() == b"secret"


def fails(c, bucket, key, **kw):
    """A GET must fail: an error status, or a body that breaks off short."""
    try:
        r = c.get_object(Bucket=bucket, Key=key, **kw)
        r["Body"].read()
    except Exception:
        return True
    return False


def test_tampering_fails_every_get(gw, bucket):
    c = gw.client()
    n = 3 * MIB + 17
    data = payload(n, seed=11)
    seg = MIB + 16
    for key in ("t1", "t2"):
        c.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="aws:kms")
    raw, meta = gw.raw_get(bucket, "t1"), gw.raw_meta(bucket, "t1")

    flipped = bytearray(raw)
    flipped[seg + 100] ^= 1
    gw.raw_put(bucket, "t1", bytes(flipped), meta)
    assert fails(c, bucket, "t1"), "bit flip"
    assert fails(c, bucket, "t1", Range=f"bytes={MIB}-{MIB + 200}"), "bit flip in range"
    assert c.get_object(Bucket=bucket, Key="t1", Range="bytes=0-99")["Body"].read() == data[:100], "intact segment stays readable"

    gw.raw_put(bucket, "t1", raw[: 3 * seg], meta)
    assert fails(c, bucket, "t1"), "truncated last segment"
    short_meta = dict(meta, **{"kgw-size": str(3 * MIB)})
    gw.raw_put(bucket, "t1", raw[: 3 * seg], short_meta)
    assert fails(c, bucket, "t1"), "truncated and size forged"

    swapped = raw[seg : 2 * seg] + raw[:seg] + raw[2 * seg :]
    gw.raw_put(bucket, "t1", swapped, meta)
    assert fails(c, bucket, "t1"), "segments swapped"

    gw.raw_put(bucket, "t1", raw + raw[:seg], meta)
    assert fails(c, bucket, "t1"), "appended segment"

    gw.raw_put(bucket, "t1", raw, meta)
    assert c.get_object(Bucket=bucket, Key="t1")["Body"].read() == data, "restored original reads again"

    meta2 = gw.raw_meta(bucket, "t2")
    gw.raw_put(bucket, "t1", raw, dict(meta, **{"kgw-oek": meta2["kgw-oek"], "kgw-kms-dek": meta2["kgw-kms-dek"]}))
    assert fails(c, bucket, "t1"), "sealed key from another object"


def test_empty_object_tamper(gw, bucket):
    c = gw.client()
    c.put_object(Bucket=bucket, Key="e", Body=b"", ServerSideEncryption="AES256")
    raw, meta = gw.raw_get(bucket, "e"), gw.raw_meta(bucket, "e")
    assert len(raw) == 16
    gw.raw_put(bucket, "e", bytes([raw[0] ^ 1]) + raw[1:], meta)
    assert fails(c, bucket, "e")
    gw.raw_put(bucket, "e", b"", meta)
    assert fails(c, bucket, "e")


def test_disabled_key_is_refused(tmp_path):
    g = Gateway(data_dir=tmp_path / "gw")
    try:
        c = g.client()
        c.create_bucket(Bucket="dkey")
        c.put_object(Bucket="dkey", Key="o", Body=b"before", ServerSideEncryption="aws:kms")
        g.stop()
        key_file = g.data_dir / "kms" / "keys" / "gateway-default.key"
        doc = json.loads(key_file.read_text())
        doc["state"] = "Disabled"
        key_file.write_text(json.dumps(doc))
        g.start()
        c = g.client()
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="dkey", Key="o2", Body=b"x", ServerSideEncryption="aws:kms")
        assert err(e) == ("KMS.DisabledException", 400)
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="dkey", Key="o")
        assert err(e) == ("KMS.DisabledException", 400)
        assert_absent(c, "dkey", "o2")
    finally:
        g.stop()


def test_secrets_stay_out_of_logs_and_files(gw, bucket):
    c = gw.client()
    c.put_object(Bucket=bucket, Key="sec", Body=b"z", **ssec(CKEY))
    b64 = base64.b64encode(CKEY).decode()
    assert b64 not in gw.log()
    # A configured S3 secret is not echoed at start.
    assert SECRET not in gw.log() and "secret key (as configured)" in gw.log()
    assert all(b64 not in v for v in gw.raw_meta(bucket, "sec").values())

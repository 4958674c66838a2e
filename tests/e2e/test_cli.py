"""The aws CLI against the gateway (single-PUT sizes)."""

import json
import os
import subprocess

from conftest import ACCESS, SECRET, payload


def aws(gw, *args):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run(["aws", "--endpoint-url", gw.endpoint, *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_aws_cli_tour(gw, bucket, tmp_path):
    src = tmp_path / "in.bin"
    data = payload(3 * 1024 * 1024 + 5, seed=21)
    src.write_bytes(data)
    aws(gw, "s3", "cp", str(src), f"s3://{bucket}/cli/kms.bin", "--sse", "aws:kms")
    aws(gw, "s3", "cp", str(src), f"s3://{bucket}/cli/s3.bin", "--sse", "AES256")
    for name in ("kms", "s3"):
        dst = tmp_path / f"out-{name}.bin"
        aws(gw, "s3", "cp", f"s3://{bucket}/cli/{name}.bin", str(dst))
        assert dst.read_bytes() == data
    head = json.loads(aws(gw, "s3api", "head-object", "--bucket", bucket, "--key", "cli/kms.bin"))
    assert head["ServerSideEncryption"] == "aws:kms" and head["ContentLength"] == len(data)
    part = tmp_path / "part.bin"
    aws(gw, "s3api", "get-object", "--bucket", bucket, "--key", "cli/s3.bin", "--range", "bytes=1048570-1048580", str(part))
    assert part.read_bytes() == data[1048570:1048581]
    key = "0123456789abcdef0123456789abcdef"
    aws(gw, "s3api", "put-object", "--bucket", bucket, "--key", "cli/c.bin", "--body", str(src),
        "--sse-customer-algorithm", "AES256", "--sse-customer-key", key)
    out = tmp_path / "c.out"
    aws(gw, "s3api", "get-object", "--bucket", bucket, "--key", "cli/c.bin", "--sse-customer-algorithm", "AES256",
        "--sse-customer-key", key, str(out))
    assert out.read_bytes() == data

"""The aws CLI against the gateway (single-PUT sizes)."""

import hashlib
import json
import os
import subprocess

import pytest

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


def ls_sizes(gw, bucket, prefix):
    out = aws(gw, "s3", "ls", "--recursive", f"s3://{bucket}/{prefix}")
    return {line.split()[3]: int(line.split()[2]) for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("sse", [["--sse", "AES256"], ["--sse", "aws:kms"], ["--sse-c", "AES256", "--sse-c-key", "K" * 32]])
def test_aws_cli_multipart_100mib(gw, bucket, tmp_path, sse):
    src = tmp_path / "big.bin"
    data = payload(100 * 1024 * 1024, seed=100)
    src.write_bytes(data)
    aws(gw, "s3", "cp", str(src), f"s3://{bucket}/big.bin", *sse)
    dst = tmp_path / "back.bin"
    down = sse if sse[0] == "--sse-c" else []
    aws(gw, "s3", "cp", f"s3://{bucket}/big.bin", str(dst), *down)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert ls_sizes(gw, bucket, "big.bin")["big.bin"] == len(data)
    raw = gw.raw_get(bucket, "big.bin")
    assert len(raw) > len(data) and data[: 1 << 16] not in raw


def test_aws_cli_sync_200_files(gw, bucket, tmp_path):
    tree = tmp_path / "tree"
    sizes = {}
    for i in range(200):
        p = tree / f"d{i % 7}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(payload(i * 37 + 1, seed=i))
        # Older than any LastModified (moto keeps whole seconds only).
        os.utime(p, (1_700_000_000, 1_700_000_000))
        sizes[f"tree/d{i % 7}/f{i}.txt"] = i * 37 + 1
    aws(gw, "s3", "sync", str(tree), f"s3://{bucket}/tree", "--sse", "aws:kms")
    assert ls_sizes(gw, bucket, "tree/") == sizes
    back = tmp_path / "back"
    aws(gw, "s3", "sync", f"s3://{bucket}/tree", str(back))
    for rel, n in sizes.items():
        assert (back / rel.removeprefix("tree/")).read_bytes() == payload(n, seed=int(rel.rsplit("f", 1)[1].split(".")[0]))
    # A second sync finds nothing to do: sizes and times line up.
    assert aws(gw, "s3", "sync", str(tree), f"s3://{bucket}/tree", "--sse", "aws:kms").strip() == ""

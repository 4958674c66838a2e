"""rclone (Debian package) as an S3 remote with SSE-C and with SSE-KMS over
HTTPS (rclone refuses SSE-C keys over HTTP): copy up, check, copy down,
byte-exact."""

import base64
import os
import subprocess

import pytest

from conftest import ACCESS, SECRET, payload


def rclone(gw, remote_opts, *args):
    env = {**os.environ, "RCLONE_CONFIG_GW_TYPE": "s3", "RCLONE_CONFIG_GW_PROVIDER": "Other", "RCLONE_CONFIG_GW_ENDPOINT": gw.endpoint,
           "RCLONE_CONFIG_GW_ACCESS_KEY_ID": ACCESS, "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": SECRET, "RCLONE_CONFIG_GW_REGION": "us-east-1",
           "RCLONE_CONFIG_GW_FORCE_PATH_STYLE": "true", **remote_opts}
    # rclone's AWS SDK cannot apply a custom CA bundle to its transport.
    env.pop("AWS_CA_BUNDLE", None)
    out = subprocess.run(["rclone", "--config", "/dev/null", "--ca-cert", str(gw.ca), "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", *args],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("opts", [
    {"RCLONE_CONFIG_GW_SSE_CUSTOMER_ALGORITHM": "AES256", "RCLONE_CONFIG_GW_SSE_CUSTOMER_KEY_BASE64": base64.b64encode(b"r" * 32).decode()},
    {"RCLONE_CONFIG_GW_SERVER_SIDE_ENCRYPTION": "aws:kms"},
], ids=["sse-c", "sse-kms"])
def test_rclone_roundtrip(tls_gw, tmp_path, opts):
    gw = tls_gw
    bucket = "rclone-" + opts.get("RCLONE_CONFIG_GW_SERVER_SIDE_ENCRYPTION", "ssec").replace(":", "-")
    gw.client(verify=str(gw.ca)).create_bucket(Bucket=bucket)
    src = tmp_path / "src"
    for i, n in enumerate([0, 1, 1000, 3 * 1024 * 1024 + 7, 12 * 1024 * 1024 + 3]):
        (src / f"dir{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"dir{i % 2}" / f"file{i}.bin").write_bytes(payload(n, seed=i + 50))
    rclone(gw, opts, "copy", str(src), f"gw:{bucket}/rc")
    rclone(gw, opts, "check", str(src), f"gw:{bucket}/rc")
    dst = tmp_path / "dst"
    rclone(gw, opts, "copy", f"gw:{bucket}/rc", str(dst))
    for f in src.rglob("*.bin"):
        assert (dst / f.relative_to(src)).read_bytes() == f.read_bytes(), f
        if f.stat().st_size >= 64:
            assert f.read_bytes()[:64] not in gw.raw_get(bucket, f"rc/{f.relative_to(src)}")

"""Migration from RustFS's own server-side encryption to the gateway's
(docs/compatibility.md#migrating-from-rustfss-own-sse), in front of a
real RustFS that runs its own local KMS. Collected only in a run in front
of RustFS (tests/rustfs/run.sh): it needs the RustFS binary.

1. Objects written to RustFS with its SSE-S3, SSE-KMS (default and named
   key) and bucket default encryption stay readable through the gateway:
   RustFS decrypts them for the gateway's credentials.
2. New writes through the gateway are encrypted by the gateway; RustFS
   stores its ciphertext as is.
3. The documented procedure (an in-place copy with the aws CLI through
   the gateway) moves every old object under the gateway's encryption.
4. Proof that nothing depends on RustFS's KMS any more: RustFS restarted
   without its KMS still serves every object, and only through the
   gateway as plaintext."""

import os
import subprocess

from conftest import ACCESS, MIB, SECRET, UP_ACCESS, UP_SECRET, Gateway, RustFS, payload, s3_client

MARK = b"legacy-plaintext-marker-"


def body(n, seed):
    # A marker that must never be found on RustFS's disk once encrypted.
    return MARK + payload(n, seed)


def on_disk(root, needle):
    hits = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                if needle in fh.read():
                    hits.append(os.path.join(dirpath, f))
    return hits


def aws(endpoint, *args):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run(["aws", "--endpoint-url", endpoint, *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_objects_encrypted_by_rustfs_move_under_the_gateway():
    r = RustFS(kms=True)
    g = None
    try:
        r.create_key("rustfs-master")
        r.create_key("team-key")
        direct = s3_client(r.endpoint, UP_ACCESS, UP_SECRET)
        direct.create_bucket(Bucket="legacy")
        direct.create_bucket(Bucket="legacy-default")
        direct.put_bucket_encryption(Bucket="legacy-default", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "team-key"}}]})
        old = {
            ("legacy", "sse-s3"): (body(1000, 1), {"ServerSideEncryption": "AES256"}),
            ("legacy", "sse-kms"): (body(2 * MIB + 5, 2), {"ServerSideEncryption": "aws:kms"}),
            ("legacy", "sse-kms-named"): (body(300, 3), {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "team-key"}),
            # Larger than the aws CLI's multipart threshold: migrated by
            # a multipart copy (UploadPartCopy with ranges).
            ("legacy", "dir/large"): (body(9 * MIB + 7, 4), {"ServerSideEncryption": "AES256"}),
            ("legacy-default", "by-default"): (body(4096, 5), {}),
        }
        for (b, k), (data, sse) in old.items():
            direct.put_object(Bucket=b, Key=k, Body=data, **sse)
            assert direct.head_object(Bucket=b, Key=k)["ServerSideEncryption"] in ("AES256", "aws:kms")
        assert on_disk(r.dir / "data", MARK) == []

        # 1. Readable through the gateway, whole and ranged.
        g = Gateway(upstream=r)
        c = g.client()
        for (b, k), (data, _) in old.items():
            assert c.get_object(Bucket=b, Key=k)["Body"].read() == data, k
        rng = c.get_object(Bucket="legacy", Key="sse-kms", Range="bytes=1048570-1048600")["Body"].read()
        assert rng == old[("legacy", "sse-kms")][0][1048570:1048601]

        # 2. A new write is the gateway's ciphertext, which RustFS does not
        # encrypt again (the gateway sends it no SSE header).
        new = body(5000, 6)
        c.put_object(Bucket="legacy", Key="new", Body=new, ServerSideEncryption="aws:kms")
        assert "ServerSideEncryption" not in direct.head_object(Bucket="legacy", Key="new")
        assert MARK not in direct.get_object(Bucket="legacy", Key="new")["Body"].read()
        assert c.get_object(Bucket="legacy", Key="new")["Body"].read() == new

        # 3. The procedure. First the bucket defaults move from RustFS to
        # the gateway: a default left on RustFS would encrypt the gateway's
        # ciphertext a second time, under RustFS's KMS, which then could
        # not be retired.
        rules = direct.get_bucket_encryption(Bucket="legacy-default")["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        c.put_bucket_encryption(Bucket="legacy-default", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        direct.delete_bucket_encryption(Bucket="legacy-default")
        c.put_object(Bucket="legacy-default", Key="new-by-default", Body=new)
        assert c.head_object(Bucket="legacy-default", Key="new-by-default")["ServerSideEncryption"] == "aws:kms"
        assert "ServerSideEncryption" not in direct.head_object(Bucket="legacy-default", Key="new-by-default")
        # Then every object is copied onto itself through the gateway,
        # asking for the gateway's encryption.
        for b in ("legacy", "legacy-default"):
            aws(g.endpoint, "s3", "cp", f"s3://{b}/", f"s3://{b}/", "--recursive", "--sse", "aws:kms")
        for (b, k), (data, _) in old.items():
            head = c.head_object(Bucket=b, Key=k)
            assert head["ServerSideEncryption"] == "aws:kms", k
            assert "ServerSideEncryption" not in direct.head_object(Bucket=b, Key=k), k
            assert MARK not in direct.get_object(Bucket=b, Key=k)["Body"].read(), k

        # 4. RustFS without its KMS: everything still reads through the
        # gateway; nothing is in plaintext on RustFS's disk.
        r.restart(kms=False)
        for (b, k), (data, _) in {**old, ("legacy", "new"): (new, {}), ("legacy-default", "new-by-default"): (new, {})}.items():
            assert c.get_object(Bucket=b, Key=k)["Body"].read() == data, k
        assert on_disk(r.dir / "data", MARK) == []
    finally:
        if g is not None:
            g.stop()
        r.stop()

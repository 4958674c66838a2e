"""One set of key-management tests run against every KMS backend (local and
vault on a real OpenBao), through the admin API and real S3 clients, so the
backends behave the same."""

import base64
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import Gateway, payload


@pytest.fixture(scope="module", params=["local", "vault"])
def kgw(request):
    if request.param == "local":
        g = Gateway()
    else:
        bao = request.getfixturevalue("bao")
        g = Gateway(extra_args=["--allow-insecure-sse-c", "--kms-backend", "vault", "--kms-vault-address", bao.addr,
                                "--kms-vault-token", bao.root_token, "--kms-vault-key-prefix", "kgw-contract/keys"])
    g.backend = request.param
    c = g.client()
    c.create_bucket(Bucket="contract")
    yield g
    g.stop()


def kid():
    return "k-" + uuid.uuid4().hex[:10]


def test_create_describe_list(kgw):
    a, b = kid(), kid()
    s, r = kgw.admin("POST", "keys", {"key_id": a, "description": "first", "tags": {"team": "x"}})
    assert s == 200 and r["key_metadata"]["key_state"] == "Enabled" and r["key_metadata"]["backend"] == kgw.backend
    # The older PascalCase body; the key is named by its `name` tag.
    s, r = kgw.admin("POST", "keys", {"KeyUsage": "EncryptDecrypt", "Description": "second", "Tags": {"name": b}})
    assert s == 200 and r["key_id"] == b
    s, r = kgw.admin("POST", "keys", {"key_id": a})
    assert s == 409 and r["code"] == "KeyAlreadyExists"
    s, r = kgw.admin("POST", "keys", {"key_id": "../etc"})
    assert s == 400 and r["code"] == "InvalidKeyId"
    s, r = kgw.admin("POST", "keys", {"key_usage": "SignVerify"})
    assert s == 400 and "key_usage" in r["message"]
    s, r = kgw.admin("GET", f"keys/{a}")
    assert s == 200 and r["key_metadata"]["description"] == "first" and r["key_metadata"]["tags"] == {"team": "x"}
    assert kgw.admin("GET", f"keys/{kid()}")[0] == 404
    # Legacy aliases.
    assert kgw.admin("GET", f"describe-key?keyId={a}")[1]["key_metadata"]["key_id"] == a
    assert kgw.admin("GET", f"key/status?keyId={a}")[0] == 200
    listed = [k["key_id"] for k in kgw.admin("GET", "list-keys?limit=1000")[1]["keys"]]
    assert a in listed
    # The Vault backend's health probe key is its own: never listed.
    assert "kms-gateway-probe" not in listed
    # Paging: limit + marker walk the whole list without repeats.
    seen, marker = [], None
    while True:
        s, r = kgw.admin("GET", "keys?limit=1" + (f"&marker={marker}" if marker else ""))
        assert s == 200 and len(r["keys"]) <= 1
        seen += [k["key_id"] for k in r["keys"]]
        if not r["truncated"]:
            break
        marker = r["next_marker"]
    assert len(seen) == len(set(seen)) and {a, b} <= set(seen)
    assert kgw.admin("GET", "keys?limit=0")[0] == 400
    assert kgw.admin("GET", "keys?status=Weird")[0] == 400


def test_state_changes_follow_the_rules(kgw):
    c = kgw.client()
    k = kid()
    kgw.admin("POST", "keys", {"key_id": k})
    c.put_object(Bucket="contract", Key="disabled-obj", Body=b"v1", ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
    s, r = kgw.admin("POST", "keys/disable", {"key_id": k})
    assert s == 200 and r["key_metadata"]["key_state"] == "Disabled"
    for call in (lambda: c.put_object(Bucket="contract", Key="x", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=k),
                 lambda: c.get_object(Bucket="contract", Key="disabled-obj")):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "KMS.DisabledException"
    assert kgw.admin("GET", "keys?status=Disabled&limit=1000")[1]["keys"][0]["status"] == "Disabled"
    assert kgw.admin("POST", f"keys/enable?keyId={k}")[0] == 200
    assert c.get_object(Bucket="contract", Key="disabled-obj")["Body"].read() == b"v1"
    s, r = kgw.admin("POST", "keys/update-description", {"key_id": k, "description": "new text"})
    assert s == 200 and r["key_metadata"]["description"] == "new text"
    s, r = kgw.admin("POST", "keys/tag", {"key_id": k, "tags": {"env": "prod", "name": "other"}})
    assert s == 409 and "name" in r["message"]
    assert kgw.admin("POST", "keys/tag", {"key_id": k, "tags": {"env": "prod"}})[1]["key_metadata"]["tags"] == {"env": "prod"}
    assert kgw.admin("POST", "keys/untag", {"key_id": k, "tag_keys": ["env"]})[1]["key_metadata"]["tags"] == {}
    assert kgw.admin("POST", "keys/tag", {"key_id": k})[0] == 400
    # Deletion: a 7-30 day window, then only cancellation is allowed.
    assert kgw.admin("DELETE", "keys/delete", {"key_id": k, "pending_window_in_days": 3})[0] == 400
    s, r = kgw.admin("DELETE", "keys/delete", {"key_id": k, "pending_window_in_days": 7})
    assert s == 200 and r["key_metadata"]["key_state"] == "PendingDeletion" and r["deletion_date"]
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="contract", Key="disabled-obj")
    assert e.value.response["Error"]["Code"] == "KMS.KMSInvalidStateException"
    s, r = kgw.admin("POST", "keys/enable", {"key_id": k})
    assert s == 409 and r["code"] == "InvalidKeyState"
    assert kgw.admin("POST", "keys/rotate", {"key_id": k})[0] == 409
    s, r = kgw.admin("POST", "keys/cancel-deletion", {"key_id": k})
    assert s == 200 and r["key_metadata"]["key_state"] == "Disabled"
    assert kgw.admin("POST", "keys/cancel-deletion", {"key_id": k})[0] == 409
    assert kgw.admin("POST", "keys/enable", {"key_id": k})[0] == 200
    assert c.get_object(Bucket="contract", Key="disabled-obj")["Body"].read() == b"v1"
    assert kgw.admin("POST", "keys/disable", {"key_id": kid()})[0] == 404


def test_rotation_keeps_old_objects_readable(kgw):
    c = kgw.client()
    k = kid()
    kgw.admin("POST", "keys", {"key_id": k})
    old = payload(3 << 20, 7)
    c.put_object(Bucket="contract", Key="rot-old", Body=old, ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
    s, r = kgw.admin("POST", "keys/rotate", {"key_id": k})
    assert s == 200 and r["key_metadata"]["current_version"] == 2 and r["key_metadata"]["rotated_at"]
    c.put_object(Bucket="contract", Key="rot-new", Body=b"after rotation", ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
    assert c.get_object(Bucket="contract", Key="rot-old")["Body"].read() == old
    assert c.get_object(Bucket="contract", Key="rot-new")["Body"].read() == b"after rotation"
    assert c.head_object(Bucket="contract", Key="rot-new")["SSEKMSKeyId"] == k
    # Re-key the old object in place: it moves to the newest version without
    # re-encrypting its payload.
    c.copy_object(Bucket="contract", Key="rot-old", CopySource={"Bucket": "contract", "Key": "rot-old"},
                  ServerSideEncryption="aws:kms", SSEKMSKeyId=k)
    assert c.get_object(Bucket="contract", Key="rot-old")["Body"].read() == old


def test_generate_data_key(kgw):
    s, r = kgw.admin("POST", "generate-data-key", {"key_id": "gateway-default", "key_spec": "Aes256"})
    assert s == 200 and len(base64.b64decode(r["plaintext_key"])) == 32 and r["ciphertext_blob"]
    s, r = kgw.admin("POST", "generate-data-key", {"key_id": "gateway-default", "key_spec": "AES_256",
                                                  "encryption_context": {"app": "x"}})
    assert s == 200
    assert kgw.admin("POST", "generate-data-key", {"key_id": "gateway-default", "key_spec": "ChaCha20"})[0] == 400
    assert kgw.admin("POST", "generate-data-key", {"key_id": kid()})[0] == 404


def test_without_bucket_keys_the_context_names_the_object(tmp_path):
    import json

    g = Gateway(extra_args=["--kms-backend", "local", "--kms-bucket-keys", "false"])
    try:
        c = g.client()
        c.create_bucket(Bucket="per-object")
        ctx = base64.b64encode(b'{"team":"blue"}').decode()
        put = c.put_object(Bucket="per-object", Key="o", Body=b"z", ServerSideEncryption="aws:kms", SSEKMSEncryptionContext=ctx)
        assert json.loads(base64.b64decode(put["SSEKMSEncryptionContext"])) == {
            "team": "blue", "aws:s3:arn": "arn:aws:s3:::per-object/o"}
        assert "BucketKeyEnabled" not in put
        c.put_object(Bucket="per-object", Key="o2", Body=b"z", ServerSideEncryption="aws:kms")
        # One data key per object: the wrapped keys differ.
        assert g.raw_meta("per-object", "o")["kgw-kms-dek"] != g.raw_meta("per-object", "o2")["kgw-kms-dek"]
        assert "kgw-kms-bk" not in g.raw_meta("per-object", "o")
        assert c.get_object(Bucket="per-object", Key="o")["Body"].read() == b"z"
    finally:
        g.stop()

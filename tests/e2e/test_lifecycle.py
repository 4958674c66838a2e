"""Live reconfiguration under load, and restart after SIGKILL."""

import threading
import time

from conftest import Gateway, payload, vault_config


def test_configure_without_a_key_id_uses_the_gateways_default_key(tmp_path):
    """`--kms-not-configured --kms-default-key-id X`: a later configure that
    names no default key gets X (it once got `gateway-default`)."""
    g = Gateway(extra_args=["--kms-not-configured", "--kms-default-key-id", "team-x"])
    try:
        s, r = g.admin("POST", "configure", {"backend_type": "local", "key_dir": str(tmp_path / "keys")})
        assert s == 200, r
        assert g.admin("POST", "start")[0] == 200
        s, status = g.admin("GET", "status")
        assert status["default_key_id"] == "team-x", status
    finally:
        g.close()


def test_swap_backends_under_load(bao, tmp_path):
    g = Gateway(extra_args=["--kms-not-configured"])
    try:
        local = {"backend_type": "local", "key_dir": str(tmp_path / "keys"), "default_key_id": "swap-local"}
        vault = vault_config(bao, default_key_id="swap-vault")
        assert g.admin("POST", "reconfigure", local)[0] == 200
        assert g.admin("POST", "keys", {"key_id": "swap-kms"})[0] == 200
        c = g.client(max_pool_connections=4)
        c.create_bucket(Bucket="swap")
        written, failures, stop = {}, [], threading.Event()

        def load(worker):
            i = 0
            while not stop.is_set():
                key = f"w{worker}-{i}"
                body = payload([10, 70_000, 1_100_000][i % 3], seed=worker * 100_000 + i)
                extra = {"ServerSideEncryption": "AES256"} if i % 2 else {"ServerSideEncryption": "aws:kms"}
                try:
                    c.put_object(Bucket="swap", Key=key, Body=body, **extra)
                    written[key] = body
                    got = c.get_object(Bucket="swap", Key=key)["Body"].read()
                    if got != body:
                        failures.append(f"{key}: content differs")
                except Exception as e:  # noqa: BLE001 - every failure counts
                    failures.append(f"{key}: {e}")
                i += 1

        threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        t0 = time.time()
        steps = 0
        while time.time() - t0 < 30:
            cfg = vault if steps % 2 == 0 else local
            s, r = g.admin("POST", "reconfigure", cfg)
            assert s == 200, r
            time.sleep(1)
            s, r = g.admin("POST", "keys/rotate", {"key_id": cfg["default_key_id"]})
            assert s == 200, r
            time.sleep(1.5)
            steps += 1
        stop.set()
        for t in threads:
            t.join()
        assert steps >= 6
        assert not failures, failures[:5]
        assert len(written) > 30
        # Every object, written under whichever backend, reads back byte-exact.
        for key, body in written.items():
            assert c.get_object(Bucket="swap", Key=key)["Body"].read() == body, key
        kinds = {g.raw_meta("swap", k).get("kgw-kms-dek", "")[:8] for k in written}
        assert len(kinds) >= 2, "objects should exist under both backends"
    finally:
        g.stop()


def test_restart_after_sigkill_keeps_state_without_secrets(bao):
    g = Gateway(extra_args=["--kms-not-configured"])
    try:
        cfg = vault_config(bao, default_key_id="restart-key")
        assert g.admin("POST", "configure", cfg)[0] == 200
        assert g.admin("POST", "start")[0] == 200
        c = g.client()
        c.create_bucket(Bucket="restart")
        c.put_bucket_encryption(Bucket="restart", ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        c.put_object(Bucket="restart", Key="o", Body=b"survives")
        g.kill()
        g.start()
        st = g.admin("GET", "status")[1]
        assert st["status"] == "Running" and st["backend_type"] == "vault", st
        c = g.client()
        assert c.get_object(Bucket="restart", Key="o")["Body"].read() == b"survives"
        assert c.head_object(Bucket="restart", Key="o")["ServerSideEncryption"] == "aws:kms"
        enc = c.get_bucket_encryption(Bucket="restart")["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        # No secret in clear anywhere in the state directory or the audit log.
        for f in list((g.data_dir / "state").rglob("*")) + [g.data_dir / "audit.log"]:
            if f.is_file():
                assert bao.root_token not in f.read_text(errors="replace"), f
        # A stopped KMS stays stopped across a restart.
        assert g.admin("POST", "stop")[0] == 200
        g.kill()
        g.start()
        assert g.admin("GET", "status")[1]["status"] == "Configured"
    finally:
        g.stop()


def test_objects_stay_readable_after_stop_configure_start_on_another_backend(bao, tmp_path):
    g = Gateway(extra_args=["--kms-not-configured"])
    try:
        local = {"backend_type": "local", "key_dir": str(tmp_path / "keys"), "default_key_id": "first-local"}
        assert g.admin("POST", "configure", local)[0] == 200
        assert g.admin("POST", "start")[0] == 200
        c = g.client()
        c.create_bucket(Bucket="switch")
        c.put_object(Bucket="switch", Key="old", Body=b"under local", ServerSideEncryption="aws:kms")
        assert g.admin("POST", "stop")[0] == 200
        assert g.admin("POST", "configure", vault_config(bao, default_key_id="then-vault"))[0] == 200
        assert g.admin("POST", "start")[0] == 200
        assert g.admin("GET", "status")[1]["backend_type"] == "vault"
        assert c.get_object(Bucket="switch", Key="old")["Body"].read() == b"under local"
        c.put_object(Bucket="switch", Key="new", Body=b"under vault", ServerSideEncryption="aws:kms")
        assert c.get_object(Bucket="switch", Key="new")["Body"].read() == b"under vault"
    finally:
        g.stop()

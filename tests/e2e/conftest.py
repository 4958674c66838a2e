"""Fixtures for end-to-end tests: the real kms-gateway binary on loopback,
a real upstream (the embedded store or moto_server), real S3 clients."""

import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("KMS_GATEWAY_BIN", ROOT / "target" / "debug" / "kms-gateway"))
ACCESS, SECRET = "gwtestaccess", "gwtestsecret0123456789"
ADMIN_ACCESS, ADMIN_SECRET = "gwadminaccess", "gwadminsecret0123456789"
UP_ACCESS, UP_SECRET = "upstreamak", "upstreamsk"
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def terminate(proc, timeout=15):
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout)


def eventually(fn, timeout, what):
    """Call `fn` until it stops raising a ClientError; fail after `timeout` s."""
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except ClientError:
            assert time.time() < deadline, what
            time.sleep(0.5)


def s3_client(endpoint, ak=ACCESS, sk=SECRET, verify=None, **cfg):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=verify,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **cfg),
    )


class Moto:
    def __init__(self):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        os.unlink(self.log.name)


class Store:
    """The embedded store served on its own (`kms-gateway store`): a plain
    S3 upstream with conditional writes, shareable by several gateways."""

    def __init__(self, root=None, creds=(UP_ACCESS, UP_SECRET)):
        self.port = free_port()
        self.root = Path(root or tempfile.mkdtemp(prefix="kgw-store-"))
        args = [str(BIN), "store", "--root", str(self.root), "--listen", f"127.0.0.1:{self.port}"]
        env = {**os.environ, "KMS_GATEWAY_STORE_ACCESS_KEY": creds[0], "KMS_GATEWAY_STORE_SECRET_KEY": creds[1]}
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_port(self.port, self.proc)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        terminate(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)


class Gateway:
    """One kms-gateway process with its own data dir.

    Every gateway is remembered in `Gateway.started` so that the test run
    can clean up after it (see `_tidy_gateways`) and show its log when a
    test fails."""

    started = []

    def __init__(self, upstream=None, extra_args=("--allow-insecure-sse-c",), env=None, data_dir=None, upstream_creds=(UP_ACCESS, UP_SECRET),
                 admin_flags=True, s3_flags=True):
        self.admin_flags = admin_flags
        self.s3_flags = s3_flags
        # A data dir the caller did not choose is ours to delete.
        self.owns_dir = data_dir is None
        # The test that started it (the one its log tail is shown for).
        self.test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kgw-"))
        self.upstream = upstream
        self.upstream_creds = upstream_creds
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.start()

    def start(self, port=None):
        """Start (again); `port` keeps the address a load balancer knows."""
        self.port = port or free_port()
        args = [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir), *self.extra_args]
        if self.s3_flags:
            args += ["--access-key", ACCESS, "--secret-key", SECRET]
        if self.admin_flags:
            args += ["--admin-access-key", ADMIN_ACCESS, "--admin-secret-key", ADMIN_SECRET]
        if self.upstream is not None:
            ak, sk = self.upstream_creds
            args += ["--upstream", self.upstream.endpoint, "--upstream-access-key", ak, "--upstream-secret-key", sk]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"gateway-{self.port}.log"
        env = {**os.environ, "RUST_LOG": "info", **self.env}
        self.proc = subprocess.Popen(args, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, env=env)
        if self not in Gateway.started:
            Gateway.started.append(self)
        wait_port(self.port, self.proc)
        scheme = "https" if "--tls-cert" in self.extra_args else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self.port}"

    def stop(self):
        terminate(self.proc)

    def close(self):
        """Stop and delete the data dir (if it is ours): the suite's upload
        sizes add up to gigabytes, and a CI machine's disk is finite."""
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self in Gateway.started:
            Gateway.started.remove(self)

    def log_tail(self, lines=25):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """SIGKILL: no shutdown path runs."""
        self.proc.kill()
        self.proc.wait(10)

    def admin(self, method, path, body=None, ak=ADMIN_ACCESS, sk=ADMIN_SECRET, sign=True, content_type=None):
        """A SigV4-signed admin API call; returns (status, parsed JSON or text)."""
        return admin_call(self.endpoint, method, path, body, ak, sk, sign, content_type)

    def log(self):
        return self.log_path.read_text()

    def client(self, **cfg):
        return s3_client(self.endpoint, **cfg)

    # --- raw access to what the upstream stores ---------------------------
    def raw_client(self):
        assert self.upstream is not None
        return s3_client(self.upstream.endpoint, *self.upstream_creds)

    def raw_get(self, bucket, key):
        if self.upstream is None:
            return (self.data_dir / "store" / bucket / key).read_bytes()
        return self.raw_client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def raw_meta(self, bucket, key):
        if self.upstream is None:
            enc = lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("=")
            meta = self.data_dir / "store" / f".bucket-{enc(bucket)}.object-{enc(key)}.metadata.json"
            doc = json.loads(meta.read_text())
            return {k.lower(): v for k, v in (doc.get("user_metadata") or {}).items()}
        return self.raw_client().head_object(Bucket=bucket, Key=key)["Metadata"]

    def raw_put(self, bucket, key, data, metadata):
        """Overwrite the stored ciphertext, keeping the given metadata."""
        if self.upstream is None:
            (self.data_dir / "store" / bucket / key).write_bytes(data)
            enc = lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("=")
            path = self.data_dir / "store" / f".bucket-{enc(bucket)}.object-{enc(key)}.metadata.json"
            doc = json.loads(path.read_text())
            doc["user_metadata"] = metadata
            path.write_text(json.dumps(doc))
        else:
            self.raw_client().put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata)


class RustFS:
    """A single-node RustFS (tests/rustfs/install.sh builds it), for runs
    with KGW_E2E_UPSTREAMS=rustfs (tests/rustfs/run.sh). With `kms=True`
    RustFS runs its own local KMS (its own SSE-S3 and SSE-KMS), as in its
    KMS quick start; `start(kms=False)` restarts it on the same data
    without."""

    MASTER = "rustfs-test-master-passphrase"

    def __init__(self, kms=False):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rustfs-"))
        (self.dir / "data").mkdir()
        self.log = open(self.dir / "rustfs.log", "w")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.start(kms)

    def start(self, kms=False):
        env = {**os.environ, "RUSTFS_ADDRESS": f"127.0.0.1:{self.port}", "RUSTFS_ACCESS_KEY": UP_ACCESS,
               "RUSTFS_SECRET_KEY": UP_SECRET, "RUSTFS_VOLUMES": str(self.dir / "data"), "RUSTFS_CONSOLE_ENABLE": "false"}
        if kms:
            # Its key directory is under the temp directory, which RustFS
            # accepts only with its development flag.
            env.update({"RUSTFS_KMS_ENABLE": "true", "RUSTFS_KMS_BACKEND": "local",
                        "RUSTFS_KMS_KEY_DIR": str(self.dir / "kms-keys"), "RUSTFS_KMS_LOCAL_MASTER_KEY": self.MASTER,
                        "RUSTFS_KMS_DEFAULT_KEY_ID": "rustfs-master", "RUSTFS_KMS_ALLOW_INSECURE_DEV_DEFAULTS": "true"})
        self.proc = subprocess.Popen([os.environ["KGW_RUSTFS_BIN"], str(self.dir / "data")], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, self.proc, timeout=120)
        if kms:
            # The port opens before the KMS is checked: wait for it to run.
            deadline = time.time() + 60
            while "Running" not in self.admin("GET", "kms/service-status"):
                assert self.proc.poll() is None and time.time() < deadline, (self.dir / "rustfs.log").read_text()[-2000:]
                time.sleep(0.2)

    def admin(self, method, path):
        """A call to RustFS's own admin API, signed with its root credentials."""
        import requests
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        url = f"{self.endpoint}/rustfs/admin/v3/{path}"
        req = AWSRequest(method=method, url=url, data=b"")
        S3SigV4Auth(Credentials(UP_ACCESS, UP_SECRET), "s3", "us-east-1").add_auth(req)
        return requests.request(method, url, headers=dict(req.headers), data=b"", timeout=30).text

    def create_key(self, key_id):
        out = self.admin("POST", f"kms/key/create?key-id={key_id}")
        assert "Enabled" in out, out

    def restart(self, kms=False):
        terminate(self.proc)
        self.start(kms)

    def stop(self):
        terminate(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def lists_parts(gw):
    """Whether ListParts works through `gw`: moto answers it with a
    <ListPartsResponse> root that the gateway's S3 client rejects."""
    return not isinstance(gw.upstream, Moto)


# The upstreams the session gateways run in front of: the embedded store
# and moto by default; `KGW_E2E_UPSTREAMS=rustfs` for a run in front of RustFS.
UPSTREAMS = os.environ.get("KGW_E2E_UPSTREAMS", "embedded,moto").split(",")
# Modules about RustFS itself, collected only in a run in front of RustFS.
collect_ignore = [] if "rustfs" in UPSTREAMS else ["test_rustfs_migration.py"]


def upstream_of(request):
    return None if request.param == "embedded" else request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def moto():
    m = Moto()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def rustfs():
    r = RustFS()
    yield r
    r.stop()


@pytest.fixture(scope="session", params=UPSTREAMS)
def gw(request):
    upstream = upstream_of(request)
    g = Gateway(upstream=upstream)
    yield g
    g.close()


def empty_bucket(client, name):
    """Delete every object and open upload of `name`, then the bucket."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            r = client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
            assert not r.get("Errors"), r["Errors"]
    try:
        uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
    except ClientError as e:
        # The embedded store does not list uploads.
        if e.response["Error"]["Code"] != "NotImplemented":
            raise
        uploads = []
    for up in uploads:
        client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(gw, request):
    """A bucket of the session gateway for one test, emptied and deleted
    after it (the session's store would otherwise hold every upload)."""
    name = "b-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    c = gw.client()
    try:
        c.create_bucket(Bucket=name)
    except c.exceptions.BucketAlreadyOwnedByYou:
        pass
    yield name
    empty_bucket(c, name)


@pytest.fixture(autouse=True)
def _tidy_gateways(request):
    """After a test, delete the data dirs of the gateways it stopped. A
    failed test keeps them: their logs are what explains the failure."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        return
    for g in list(Gateway.started):
        if g.proc.poll() is not None:
            g.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep the call's report on the item (for `_tidy_gateways`), and add
    the tail of each gateway's log to a failure: on a CI machine the log
    files are gone once the run ends."""
    report = yield
    if report.when == "call":
        item.rep_call = report
    if report.failed:
        used = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Gateway)]
        mine = [g for g in Gateway.started if g.test == item.nodeid and g not in used]
        for g in used + mine:
            state = "running" if g.proc.poll() is None else f"exited with {g.proc.returncode}"
            report.sections.append((f"gateway on port {g.port} ({state}): log tail", g.log_tail()))
    return report


def ssec(key_bytes):
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(key_bytes).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key_bytes).digest()).decode(),
    }


def signed_request(g, method, path, headers, data=b"", timeout=30):
    """An http.client connection to gateway `g` with `method path` and its
    headers, signed for `data`, sent; sending the body (in pieces, with
    pauses) is left to the caller."""
    req = AWSRequest(method=method, url=f"{g.endpoint}{path}", data=data, headers=headers)
    S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=timeout)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in req.headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn


def payload(n, seed=1):
    """Deterministic, incompressible-looking bytes."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="session", params=UPSTREAMS)
def tls_gw(request, tls_files):
    """A gateway serving HTTPS (SSE-C without --allow-insecure-sse-c)."""
    cert, key = tls_files
    upstream = upstream_of(request)
    g = Gateway(upstream=upstream, extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
    g.ca = cert
    yield g
    g.close()


def admin_call(endpoint, method, path, body=None, ak=ADMIN_ACCESS, sk=ADMIN_SECRET, sign=True, content_type=None,
               with_headers=False):
    """A SigV4-signed admin call: (status, JSON or text), and the answer's
    headers with `with_headers`."""
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = endpoint + (path if path.startswith("/") else "/rustfs/admin/v3/kms/" + path)
    data = b"" if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    if isinstance(data, str):
        data = data.encode()
    headers = {"content-type": content_type or "application/json"} if data else {}
    if sign:
        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        req.headers["x-amz-content-sha256"] = hashlib.sha256(data).hexdigest()
        SigV4Auth(Credentials(ak, sk), "s3", "us-east-1").add_auth(req)
        headers = dict(req.headers.items())
    r = requests.request(method, url, data=data, headers=headers, timeout=60)
    try:
        out = r.status_code, r.json()
    except ValueError:
        out = r.status_code, r.text
    return (*out, r.headers) if with_headers else out


BAO = shutil.which("bao") or str(Path(sys.executable).parent / "bao")


class Bao:
    """A real OpenBao server with raft storage (survives restarts; can be
    sealed, stopped and started again), initialised with one unseal key."""

    def __init__(self):
        import requests

        self.dir = Path(tempfile.mkdtemp(prefix="bao-"))
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        (self.dir / "data").mkdir()
        cluster = free_port()
        (self.dir / "config.hcl").write_text(
            f'storage "raft" {{\n path = "{self.dir}/data"\n node_id = "kgw-test"\n}}\n'
            f'listener "tcp" {{\n address = "127.0.0.1:{self.port}"\n cluster_address = "127.0.0.1:{cluster}"\n tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{cluster}"\n'
        )
        self.start()
        r = requests.put(f"{self.addr}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=30).json()
        self.unseal_key, self.root_token = r["keys_base64"][0], r["root_token"]
        self.unseal()
        self.api("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        self.api("POST", "sys/mounts/transit", {"type": "transit"})

    def start(self):
        self.log = open(self.dir / "bao.log", "a")
        self.proc = subprocess.Popen([BAO, "server", f"-config={self.dir}/config.hcl"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)

    def stop(self):
        terminate(self.proc)

    def restart(self):
        self.stop()
        self.start()
        self.unseal()

    def unseal(self):
        import requests

        deadline = time.time() + 30
        while time.time() < deadline:
            r = requests.put(f"{self.addr}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=10).json()
            if not r.get("sealed", True):
                # Wait until the server serves requests (standby → active).
                if requests.get(f"{self.addr}/v1/sys/health", timeout=10).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("OpenBao did not unseal")

    def seal(self):
        self.api("PUT", "sys/seal")

    def api(self, method, path, body=None, token=None):
        import requests

        r = requests.request(method, f"{self.addr}/v1/{path}", json=body,
                             headers={"X-Vault-Token": token or self.root_token}, timeout=30)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json() if r.text else None

    def approle(self, name="kgw"):
        """Enable AppRole with a policy for the gateway; return (role_id, secret_id)."""
        try:
            self.api("POST", "sys/auth/approle", {"type": "approle"})
        except RuntimeError as e:
            if "already in use" not in str(e):
                raise
        policy = """
path "transit/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/data/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/metadata/*" { capabilities = ["read", "delete", "list"] }
"""
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": policy})
        self.api("POST", f"auth/approle/role/{name}", {"token_policies": [name], "token_ttl": "1h"})
        role_id = self.api("GET", f"auth/approle/role/{name}/role-id")["data"]["role_id"]
        secret_id = self.api("POST", f"auth/approle/role/{name}/secret-id")["data"]["secret_id"]
        return role_id, secret_id

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def bao():
    b = Bao()
    yield b
    b.close()


def vault_gateway(bao, *extra):
    """A gateway started on the vault backend of `bao` with its root token."""
    return Gateway(extra_args=["--allow-insecure-sse-c", "--kms-backend", "vault", "--kms-vault-address", bao.addr,
                               "--kms-vault-token", bao.root_token, "--kms-vault-key-prefix", "kgw-test/keys", *extra])


def vault_config(bao, **extra):
    """The admin API body that configures the vault backend on `bao`."""
    cfg = {"backend_type": "vault", "address": bao.addr, "auth_method": {"token": bao.root_token},
           "mount_path": "transit", "kv_mount": "secret", "key_path_prefix": "kgw-test/keys"}
    cfg.update(extra)
    return cfg

"""A rolling restart of a cluster behind a real load balancer (HAProxy,
from the Debian package) under a bounded load of mixed PUT and GET: no
request fails and no object comes back wrong."""

import hashlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from conftest import Gateway, Store, free_port, s3_client, terminate, wait_port

# Installed by tests/run.sh (Debian package); missing is a failure, not a skip.
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class HAProxy:
    def __init__(self, servers):
        self.dir = Path(tempfile.mkdtemp(prefix="kgw-haproxy-"))
        self.port = free_port()
        self.sock = self.dir / "admin.sock"
        lines = "\n".join(f"  server g{i} 127.0.0.1:{p} check" for i, p in enumerate(servers))
        (self.dir / "haproxy.cfg").write_text(f"""
global
  stats socket {self.sock} mode 600 level admin
  maxconn 512
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # A request that meets a replica going away is sent to another.
  retries 3
  option redispatch
  retry-on conn-failure empty-response response-timeout 503
frontend s3
  bind 127.0.0.1:{self.port}
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET /health/ready
  http-check expect status 200
  default-server inter 200ms fall 2 rise 2
{lines}
""")
        self.proc = subprocess.Popen([HAPROXY, "-f", str(self.dir / "haproxy.cfg"), "-db"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "haproxy.log", "w"))
        wait_port(self.port, self.proc)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def command(self, line):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.sock))
            s.sendall(line.encode() + b"\n")
            return s.recv(65536).decode()

    def server_state(self, name):
        """HAProxy's operational state of a server (2 = up)."""
        for row in self.command("show servers state gateways").splitlines():
            f = row.split()
            if len(f) > 5 and f[3] == name:
                return int(f[5])
        return None

    def close(self):
        terminate(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def no_retry_client(endpoint):
    """A client that never retries: the balancer alone must hide restarts."""
    import boto3
    from botocore.config import Config

    from conftest import ACCESS, SECRET
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))


def test_rolling_restart_behind_haproxy_loses_no_request():
    store = Store()
    key_file = Path(tempfile.mkdtemp(prefix="kgw-master-")) / "master.key"
    key_file.write_bytes(os.urandom(32))
    args = ("--state", "upstream", "--state-poll-ms", "200", "--kms-master-key-file", str(key_file))
    replicas = [Gateway(upstream=store, extra_args=args) for _ in range(3)]
    lb = HAProxy([g.port for g in replicas])
    stop = threading.Event()
    failures, corrupt, done = [], [], []
    try:
        s3_client(lb.endpoint).create_bucket(Bucket="rolling")
        for i in range(3):
            deadline = time.time() + 10
            while lb.server_state(f"g{i}") != 2:
                assert time.time() < deadline, lb.command("show servers state gateways")
                time.sleep(0.1)

        def worker(seed):
            rnd = random.Random(seed)
            c = no_retry_client(lb.endpoint)
            written = {}
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if written and rnd.random() < 0.5:
                        key, digest = rnd.choice(list(written.items()))
                        body = c.get_object(Bucket="rolling", Key=key)["Body"].read()
                        if hashlib.sha256(body).hexdigest() != digest:
                            corrupt.append(key)
                    else:
                        key = f"w{seed}/{n}"
                        body = rnd.randbytes(rnd.choice([1, 4096, 60_000, 1 << 20]))
                        sse = rnd.choice([{}, {"ServerSideEncryption": "AES256"}, {"ServerSideEncryption": "aws:kms"}])
                        c.put_object(Bucket="rolling", Key=key, Body=body, **sse)
                        written[key] = hashlib.sha256(body).hexdigest()
                    done.append(1)
                except (ClientError, BotoCoreError) as e:
                    failures.append(repr(e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        # The documented procedure: drain in the balancer, stop, start on
        # the same address, wait until the balancer sees it ready, undrain.
        for i, g in enumerate(replicas):
            lb.command(f"set server gateways/g{i} state drain")
            time.sleep(0.5)
            g.stop()
            g.start(port=g.port)
            lb.command(f"set server gateways/g{i} state ready")
            deadline = time.time() + 15
            while lb.server_state(f"g{i}") != 2:
                assert time.time() < deadline, f"g{i} did not come back"
                time.sleep(0.1)
            time.sleep(0.5)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(done) > 100, len(done)
        assert failures == [], failures[:5]
        assert corrupt == [], corrupt[:5]
    finally:
        stop.set()
        lb.close()
        for g in replicas:
            g.close()
        store.stop()

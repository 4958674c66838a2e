"""Hardening: admin keys stay off the data plane (bucket encryption
included), slow and idle connections are closed and their number capped,
readiness requests cannot flood the upstream, and credentials.json is never
silently replaced nor its secrets shown again."""

import http.client
import json
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.exceptions import ClientError

from recording_proxy import RecordingProxy
from conftest import ADMIN_ACCESS, ADMIN_SECRET, BIN, MIB, Gateway, Moto, free_port, payload, s3_client, signed_request

KMS_RULE = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]}
AES_RULE = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
AES_XML = ('<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>'
           '<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>'
           '</ServerSideEncryptionConfiguration>')


def denied(call):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    return err["Code"], err.get("Message"), e.value.response["ResponseMetadata"]["HTTPStatusCode"]


# --- 1. the bucket-encryption route is data plane ---------------------------

def test_admin_credentials_refused_on_bucket_encryption(gw, bucket):
    c = gw.client()
    c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=KMS_RULE)
    admin = s3_client(gw.endpoint, ADMIN_ACCESS, ADMIN_SECRET)
    refused = ("AccessDenied", "Admin credentials cannot be used for S3 requests.", 403)
    assert denied(lambda: admin.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=AES_RULE)) == refused
    assert denied(lambda: admin.get_bucket_encryption(Bucket=bucket)) == refused
    assert denied(lambda: admin.delete_bucket_encryption(Bucket=bucket)) == refused
    # Unsigned requests are refused as well.
    url = f"{gw.endpoint}/{bucket}?encryption"
    for method in ("PUT", "GET", "DELETE"):
        r = requests.request(method, url, data=AES_XML if method == "PUT" else None, timeout=10)
        assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text, (method, r.status_code, r.text)
    # Nothing changed: the data credentials still see the KMS default.
    rule = c.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    # And the data credentials keep working on the route.
    c.delete_bucket_encryption(Bucket=bucket)
    assert denied(lambda: c.get_bucket_encryption(Bucket=bucket))[0] == "ServerSideEncryptionConfigurationNotFoundError"


# --- 2. connection hygiene ---------------------------------------------------

def connect(g, timeout=10):
    s = socket.create_connection(("127.0.0.1", g.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def closed_after(s, limit):
    """Seconds until the peer closes `s` (reading whatever it sends);
    fails if it is still open after `limit` seconds."""
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        pytest.fail(f"connection still open after {limit} s")
    return time.monotonic() - t0


def trickle_until_closed(s, data, interval):
    """Send `data` a byte per `interval` until the peer closes; seconds taken."""
    s.settimeout(None)  # MSG_DONTWAIT polls only on a socket without a timeout
    t0 = time.monotonic()
    for b in data:
        try:
            s.sendall(bytes([b]))
            time.sleep(interval)
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                return time.monotonic() - t0
        except BlockingIOError:
            continue  # open, nothing to read
        except OSError:  # reset or broken pipe: closed
            return time.monotonic() - t0
    pytest.fail(f"connection still open after {time.monotonic() - t0:.1f} s of trickling")


def read_response(s):
    """One HTTP/1.1 response with a content-length: (status line, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, f"connection closed mid-response: {buf!r}"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    length = int(next(v for k, _, v in (l.partition(":") for l in lines[1:]) if k.strip().lower() == "content-length"))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return lines[0], body


LIVE = b"GET /health/live HTTP/1.1\r\nHost: gw\r\n\r\n"


def test_slow_request_heads_are_cut_at_the_header_read_timeout():
    g = Gateway(extra_args=["--header-read-timeout-seconds", "2", "--idle-timeout-seconds", "60"])
    try:
        # Half a request head, then nothing.
        s = connect(g)
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: gw\r\n")
        assert 1.5 < closed_after(s, 8) < 5
        # A head trickled in a byte at a time: bytes do not restart the clock.
        assert 1.5 < trickle_until_closed(connect(g), LIVE[:-2], 0.25) < 5
        # A connection that sends nothing at all.
        assert 1.5 < closed_after(connect(g), 8) < 5
        # A prompt client is served.
        s = connect(g)
        s.sendall(LIVE)
        assert read_response(s) == ("HTTP/1.1 200 OK", b"ok\n")
    finally:
        g.stop()


def test_idle_keep_alive_connections_close_at_the_idle_timeout():
    g = Gateway(extra_args=["--header-read-timeout-seconds", "1", "--idle-timeout-seconds", "3"])
    try:
        s = connect(g)
        s.sendall(LIVE)
        assert read_response(s)[0] == "HTTP/1.1 200 OK"
        # Idle longer than the header-read timeout: still open, and served.
        time.sleep(2)
        s.sendall(LIVE)
        assert read_response(s)[0] == "HTTP/1.1 200 OK"
        assert 2.5 < closed_after(s, 8) < 6
    finally:
        g.stop()


def test_a_slow_reader_of_a_long_response_is_not_cut():
    """A response still being sent keeps its request in flight: neither
    timeout applies while the client reads slowly."""
    g = Gateway(extra_args=["--header-read-timeout-seconds", "1", "--idle-timeout-seconds", "1"])
    try:
        c = g.client()
        c.create_bucket(Bucket="slow")
        data = payload(48 * MIB, seed=7)
        c.put_object(Bucket="slow", Key="big", Body=data, ServerSideEncryption="AES256")
        body = c.get_object(Bucket="slow", Key="big")["Body"]
        first = body.read(64 * 1024)
        # Far more than the socket buffers hold is still to come.
        time.sleep(3.5)
        assert first + body.read() == data
    finally:
        g.stop()


@pytest.mark.parametrize("sse", [True, False])
def test_a_client_that_stops_sending_its_body_is_cut(sse):
    """Part of a body, then silence: after the stall timeout the request
    fails with RequestTimeout (an upload, or an XML body the S3 layer
    reads whole), its connection is closed, nothing is stored, and the
    connection slots are free again."""
    g = Gateway(extra_args=["--stall-timeout-seconds", "2", "--max-connections", "3"])
    try:
        c = g.client()
        c.create_bucket(Bucket="stalled")
        data = payload(3 * MIB, seed=11)
        headers = {"Content-Length": str(len(data))}
        if sse:
            headers["x-amz-server-side-encryption"] = "aws:kms"
        conns = [signed_request(g, "PUT", f"/stalled/k{i}", headers, data) for i in range(2)]
        for conn in conns:
            conn.send(data[: MIB // 2])
        # A request whose XML body the S3 layer reads whole (DeleteObjects).
        xml = b"<Delete><Object><Key>k0</Key></Object></Delete>"
        conns.append(signed_request(g, "POST", "/stalled?delete", {"Content-Length": str(len(xml))}, xml))
        conns[-1].send(xml[:10])
        t0 = time.monotonic()
        for conn in conns:
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 400 and b"<Code>RequestTimeout</Code>" in body, (resp.status, body)
            assert resp.getheader("Connection") == "close"
            conn.close()
        assert 1.5 < time.monotonic() - t0 < 15
        for i in range(2):
            with pytest.raises(ClientError) as e:
                c.head_object(Bucket="stalled", Key=f"k{i}")
            assert e.value.response["Error"]["Code"] in ("404", "NoSuchKey")
        # A client that pauses for less than the timeout is served.
        conn = signed_request(g, "PUT", "/stalled/paused", headers, data)
        conn.send(data[: len(data) // 2])
        time.sleep(1)
        conn.send(data[len(data) // 2 :])
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        conn.close()
        assert c.get_object(Bucket="stalled", Key="paused")["Body"].read() == data
    finally:
        g.stop()


def test_a_client_that_stops_reading_a_response_is_cut():
    """A GET whose client takes nothing more: after the stall timeout the
    connection is closed (the status is long sent: the client sees a short
    body, never a wrong one). Reading slowly before that is not stalling."""
    g = Gateway(extra_args=["--stall-timeout-seconds", "2"])
    try:
        c = g.client()
        c.create_bucket(Bucket="unread")
        data = payload(48 * MIB, seed=12)
        c.put_object(Bucket="unread", Key="big", Body=data, ServerSideEncryption="aws:kms")
        conn = signed_request(g, "GET", "/unread/big", {})
        resp = conn.getresponse()
        assert resp.status == 200
        # A slow reader (16 KiB every 0.25 s, for twice the timeout) is not
        # a silent one.
        first = b""
        for _ in range(16):
            first += resp.read(16 * 1024)
            time.sleep(0.25)
        # Far more than the socket buffers hold is still to come.
        time.sleep(6)
        with pytest.raises(http.client.IncompleteRead) as e:
            resp.read()
        got = first + e.value.partial
        assert len(first) < len(got) < len(data) and got == data[: len(got)]
        conn.close()
    finally:
        g.stop()


def test_http2_is_not_spoken():
    """HTTP/1.1 only, as TLS advertises: over HTTP/2 a client could hold a
    response without ever filling the socket, out of the stall timeout's
    sight. The HTTP/2 preface gets an HTTP/1.1 error or a close."""
    g = Gateway()
    try:
        s = connect(g)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        first = s.recv(64)
        assert first == b"" or first.startswith(b"HTTP/1.1 4"), first
    finally:
        g.stop()


def test_connections_beyond_the_cap_wait_until_a_slot_frees():
    g = Gateway(extra_args=["--max-connections", "3", "--header-read-timeout-seconds", "30"])
    try:
        stalled = [connect(g) for _ in range(3)]
        for s in stalled:
            s.sendall(b"GET /health/live HTTP/1.1\r\n")
        time.sleep(0.5)
        fourth = connect(g)  # the listen backlog takes it
        fourth.sendall(LIVE)
        fourth.settimeout(2)
        with pytest.raises(socket.timeout):
            fourth.recv(1)
        stalled.pop().close()
        fourth.settimeout(10)
        assert read_response(fourth) == ("HTTP/1.1 200 OK", b"ok\n")
        # The two others still hold their slots.
        for s in stalled:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
    finally:
        g.stop()


def test_connection_limits_must_be_sane(tmp_path):
    for flags, word in ((["--max-connections", "0"], "--max-connections"),
                        (["--header-read-timeout-seconds", "0"], "--header-read-timeout-seconds")):
        r = subprocess.run([str(BIN), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path), *flags],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and word in r.stderr, r.stderr


# --- 3. the readiness probe's cost -----------------------------------------

def test_readiness_probes_the_upstream_at_most_once_per_second():
    moto = Moto()
    g = Gateway(upstream=moto)
    try:
        url = f"{g.endpoint}/health/ready"

        def probes():
            time.sleep(0.3)  # let moto's log catch up
            return open(moto.log.name).read().count('"GET /?x-id=ListBuckets ')

        assert requests.get(url, timeout=10).status_code == 200
        time.sleep(1.2)
        before = probes()
        with ThreadPoolExecutor(25) as pool:
            answers = list(pool.map(lambda _: requests.get(url, timeout=10), range(50)))
        assert all(r.status_code == 200 and r.json()["ready"] is True for r in answers)
        flood = probes() - before
        assert 1 <= flood <= 2, flood
        # The result expires: a request after the TTL probes again ...
        time.sleep(1.2)
        assert requests.get(url, timeout=10).status_code == 200
        assert probes() - before == flood + 1
        # ... so an upstream outage shows within it.
        moto.stop()
        time.sleep(1.2)
        r = requests.get(url, timeout=10)
        assert r.status_code == 503 and r.json()["upstream"]["ready"] is False, r.text
    finally:
        g.stop()
        if moto.proc.poll() is None:
            moto.stop()


# --- 4. credentials.json ---------------------------------------------------

def serve_once(data_dir, timeout=60):
    """Start `serve` on `data_dir`; it must exit (non-zero) by itself."""
    p = subprocess.Popen([str(BIN), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data_dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the gateway started on a damaged credentials.json")
    return p.returncode, out


@pytest.mark.parametrize("content", [
    b"garbage",
    b'{"access_key": "AKIAEXAMPLE", "secret_key": ',
    # Valid JSON with a mistyped field: the value must not be echoed.
    b'{"access_key": "AKIAEXAMPLE", "secret_key": 918273645546372819, "admin_access_key": "x", "admin_secret_key": "y"}',
])
def test_damaged_credentials_file_stops_the_start(tmp_path, content):
    (tmp_path / "credentials.json").write_bytes(content)
    code, out = serve_once(tmp_path)
    assert code != 0 and "credentials.json" in out and "damaged" in out, out
    assert "918273645546372819" not in out and "AKIAEXAMPLE" not in out
    assert (tmp_path / "credentials.json").read_bytes() == content


def test_generated_secret_is_printed_once(tmp_path):
    g = Gateway(data_dir=tmp_path / "d", admin_flags=False, s3_flags=False)
    try:
        saved = json.loads((g.data_dir / "credentials.json").read_text())
        first = g.log()
        assert f"access key {saved['access_key']}  secret key {saved['secret_key']}" in first
        assert f"admin credentials: access key {saved['admin_access_key']}" in first
        assert saved["admin_secret_key"] not in first
        g.restart()
        s3 = s3_client(g.endpoint, saved["access_key"], saved["secret_key"])
        s3.create_bucket(Bucket="again")  # the stored pair still works
        second = g.log()
        assert f"access key {saved['access_key']}  secret key in " in second and "credentials.json" in second
        assert saved["secret_key"] not in second and saved["admin_secret_key"] not in second
        assert json.loads((g.data_dir / "credentials.json").read_text()) == saved
    finally:
        g.close()


def test_a_second_gateway_on_one_data_dir_refuses_to_start(tmp_path):
    """Two processes on one data directory would cache the same state and
    write over each other's documents: the second one refuses to start,
    naming the first, and the first keeps serving. Once it stops, the
    directory is free again."""
    first = Gateway(data_dir=tmp_path / "d")
    try:
        r = subprocess.run([str(BIN), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "in use by another gateway process" in r.stderr, r.stderr
        assert f"pid {first.proc.pid}" in r.stderr, r.stderr
        c = first.client()
        c.create_bucket(Bucket="still")
        c.put_object(Bucket="still", Key="k", Body=b"served")
    finally:
        first.stop()
    again = Gateway(data_dir=tmp_path / "d")
    try:
        assert again.client().get_object(Bucket="still", Key="k")["Body"].read() == b"served"
    finally:
        again.stop()


def test_the_stores_own_routes_are_never_forwarded(moto):
    """RustFS (and MinIO) serve their admin API, internode RPC and table
    catalog under paths that parse as S3 bucket and key (`/rustfs/...`,
    `/minio/admin/...`, `/iceberg/v1/...`). The gateway signs what it
    forwards with its own upstream credentials, often the store's root: it
    refuses those paths (as an object, a bucket or a copy source) before
    anything reaches the store, so an S3 client cannot use the store's
    admin API as the gateway."""
    proxy = RecordingProxy(moto.port)
    g = Gateway(upstream=proxy)
    try:
        c = g.client()
        c.create_bucket(Bucket="data")
        proxy.clear()
        enc = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
        calls = {
            "admin object": lambda: c.get_object(Bucket="rustfs", Key="admin/v2/info"),
            "rpc object": lambda: c.put_object(Bucket="rustfs", Key="rpc/write_file", Body=b"x"),
            "minio admin": lambda: c.get_object(Bucket="minio", Key="admin/v2/info"),
            "catalog head": lambda: c.head_object(Bucket="iceberg", Key="v1/config"),
            "listing": lambda: c.list_objects_v2(Bucket="rustfs"),
            "bucket": lambda: c.create_bucket(Bucket="rustfs"),
            "encryption": lambda: c.put_bucket_encryption(Bucket="rustfs", ServerSideEncryptionConfiguration=enc),
            "copy source": lambda: c.copy_object(Bucket="data", Key="stolen", CopySource={"Bucket": "rustfs", "Key": "admin/v2/info"}),
            "delete": lambda: c.delete_object(Bucket="minio", Key="admin/v2/remove-user"),
            "dot segments": lambda: c.get_object(Bucket="data", Key="../rustfs/admin/v2/info"),
            "dot segments in a key": lambda: c.get_object(Bucket="minio", Key="x/../admin/v2/info"),
        }
        for name, call in calls.items():
            with pytest.raises(ClientError) as e:
                call()
            r = e.value.response
            assert r["ResponseMetadata"]["HTTPStatusCode"] == 403, name
            assert r["Error"]["Code"] in ("AccessDenied", "403"), (name, r["Error"])
        assert proxy.requests == [], [(r.method, r.path) for r in proxy.requests]
        # The same names elsewhere are ordinary keys and buckets.
        c.put_object(Bucket="data", Key="rustfs/admin/v2/info", Body=b"fine")
        assert c.get_object(Bucket="data", Key="rustfs/admin/v2/info")["Body"].read() == b"fine"
        c.create_bucket(Bucket="minio")
        c.put_object(Bucket="minio", Key="administration.txt", Body=b"fine")
    finally:
        g.stop()
        proxy.stop()

"""Virtual-host-style addressing (`bucket.DOMAIN`) with --domain."""

import http.client

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS, SECRET, Gateway


def signed(method, port, host, path, body=b"", headers=None):
    req = AWSRequest(method=method, url=f"http://{host}:{port}{path}", data=body, headers=headers or {})
    S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers={"Host": f"{host}:{port}", **dict(req.headers.items())})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def test_virtual_host_style(tmp_path):
    g = Gateway(data_dir=tmp_path / "g", extra_args=["--domain", "s3.example.test"])
    try:
        g.client().create_bucket(Bucket="vhost")
        host = "vhost.s3.example.test"
        status, _, body = signed("PUT", g.port, host, "/dir/obj.txt", b"virtual hosted", {"x-amz-server-side-encryption": "AES256"})
        assert status == 200, body
        status, headers, body = signed("GET", g.port, host, "/dir/obj.txt")
        assert status == 200 and body == b"virtual hosted"
        assert {k.lower(): v for k, v in headers.items()}["x-amz-server-side-encryption"] == "AES256"
        # The same object by path style.
        assert g.client().get_object(Bucket="vhost", Key="dir/obj.txt")["Body"].read() == b"virtual hosted"
        assert b"virtual hosted" not in g.raw_get("vhost", "dir/obj.txt")
    finally:
        g.stop()

"""An HTTP proxy put between the gateway and a real upstream (moto_server)
that records every request it forwards, so a test can prove what the
store received. Optionally it lengthens upload ids the way RustFS does
(124 characters and more), to prove the gateway copes with long ids.

moto_server does not check signatures, so forwarding a request signed for
the proxy's address is fine; an upstream that checks them gets the Host
header it was signed with (`keep_host`)."""

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

# Appended to every upload id the store returns; removed on the way back.
PAD = "-" + "x" * 230


class Recorded:
    def __init__(self, method, path, headers, body, keep_body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body_len = len(body)
        # What a store operator sees of an upload (kept only when asked).
        self.body = body if keep_body else b""


class RecordingProxy:
    def __init__(self, upstream_port, long_upload_ids=False, keep_bodies=False, drop_conditions=False, keep_host=False):
        self.upstream_port = upstream_port
        # Forward the Host header as signed for the proxy, for an upstream
        # that checks signatures (the embedded store served on its own).
        self.keep_host = keep_host
        # Play a store without conditional writes: If-Match and
        # If-None-Match never reach the upstream.
        self.drop_conditions = drop_conditions
        self.long_upload_ids = long_upload_ids
        self.keep_bodies = keep_bodies
        # Fault injection for copies (the gateway's metadata self-copies):
        # fail the next `fail_copies`, or hold each until `release` is set
        # and then fail it without forwarding (as if the caller had died).
        self.fail_copies = 0
        self.hold_copies = False
        self.held = threading.Event()
        self.release = threading.Event()
        self.requests = []
        self.lock = threading.Lock()
        # Called with (method, path, headers) before a request is
        # forwarded: a test may change the store in between two requests.
        self.before = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                with proxy.lock:
                    proxy.requests.append(Recorded(self.command, self.path, dict(headers), body, proxy.keep_bodies))
                if any(k.lower() == "x-amz-copy-source" for k in headers) and proxy._copy_fault():
                    err = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(err)))
                    self.end_headers()
                    self.wfile.write(err)
                    return
                if proxy.before is not None:
                    proxy.before(self.command, self.path, headers)
                path = proxy._shorten(self.path)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                dropped = ("host", "if-match", "if-none-match") if proxy.drop_conditions else ("host",)
                headers = {k: v for k, v in headers.items() if k.lower() not in dropped}
                headers["Host"] = self.headers["Host"] if proxy.keep_host else f"127.0.0.1:{proxy.upstream_port}"
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if proxy.long_upload_ids:
                    data = re.sub(rb"<UploadId>([^<]+)</UploadId>", lambda m: b"<UploadId>" + m.group(1) + PAD.encode() + b"</UploadId>", data)
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                # A HEAD answer has no body but the length of the object.
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _copy_fault(self):
        if self.hold_copies:
            self.held.set()
            self.release.wait(60)
            return True
        with self.lock:
            if self.fail_copies > 0:
                self.fail_copies -= 1
                return True
        return False

    def _shorten(self, path):
        if not self.long_upload_ids or "uploadId=" not in path:
            return path
        parts = urlsplit(path)
        query = [(k, v[: -len(PAD)] if k == "uploadId" and v.endswith(PAD) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        return parts.path + "?" + urlencode(query, quote_via=quote)

    def all_headers(self):
        with self.lock:
            return [(r.method, r.path, h, v) for r in self.requests for h, v in r.headers.items()]

    def clear(self):
        with self.lock:
            self.requests.clear()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

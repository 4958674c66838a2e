"""A test policy that tries to leave its sandbox (the end-to-end tests load
it; it is not an example to copy).

On buckets named `probe*` it tries to read files, list directories, read
the environment and open network connections, prints what it found (the
gateway captures stdout into its log) and rejects the request with a
one-line report. The gateway serves WASI with an empty context, so every
attempt must come back empty or denied. Other buckets are accepted.
"""

import os
import socket

from wit_world import exports
from wit_world.exports.sse_validate import Verdict, Verdict_Accept, Verdict_Reject
from wit_world.imports.types import Request, S3Error


def attempt(f):
    try:
        return f"ok:{f()!r}"[:80]
    except Exception as e:  # the sandbox answers with an error: that is the point
        return f"denied:{type(e).__name__}"


def probe(req: Request) -> str:
    # The test names a loopback port it listens on (as object metadata).
    target = dict(req.headers).get("x-amz-meta-probe-target", "127.0.0.1:9")
    host, port = target.rsplit(":", 1)

    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect((host, int(port)))
        s.close()

    results = {
        "read": attempt(lambda: open("/etc/passwd").read(10)),
        "listdir": attempt(lambda: os.listdir("/")),
        "cwd": attempt(lambda: os.listdir(".")),
        "env": f"{len(os.environ)} vars",
        "connect": attempt(connect),
        "resolve": attempt(lambda: socket.getaddrinfo("localhost", 80)),
    }
    return " ".join(f"{k}={v}" for k, v in results.items())


class SseValidate(exports.SseValidate):
    def validate(self, req: Request) -> Verdict:
        # Writes to probe* buckets only (reads are asked about too).
        if not req.bucket.startswith("probe") or req.operation in ("GetObject", "HeadObject", "GetObjectAttributes", "CopySource"):
            return Verdict_Accept()
        report = probe(req)
        print(f"sandbox probe: {report}")
        return Verdict_Reject(S3Error("AccessDenied", f"sandbox probe: {report}"))

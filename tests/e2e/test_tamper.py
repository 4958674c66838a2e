"""The tamper suite: a store operator with write access changes ciphertext,
metadata or whole parts, and every GET, range GET and partNumber GET
fails. No answer ever carries a byte that is not the object's own: a
failure found mid-stream ends the body, and whatever came before it is a
prefix of the true plaintext (authenticated segments only). Layout
manipulations (whole parts) fail before the first byte.

Objects use 4 KiB segments so that a small object has many segments and
every boundary and tag can be tried. Positions: every byte of a small
object; for larger ones every segment boundary (±1), every tag byte of
a sample of segments, and a fixed random sample (seeded, so a failure
names the position it found)."""

import random

import pytest
from botocore.exceptions import ClientError

from conftest import MIB, Gateway, payload, ssec
from recording_proxy import RecordingProxy

SEG = 4096
CKEY = b"t" * 32
MODES = {
    "sse-s3": {"ServerSideEncryption": "AES256"},
    "sse-kms": {"ServerSideEncryption": "aws:kms"},
    "sse-c": ssec(CKEY),
}


def read_args(mode):
    return ssec(CKEY) if mode == "sse-c" else {}


def sealed_len(n):
    segs = max(1, -(-n // SEG))
    return n + 16 * segs


def answer(c, bucket, key, **kw):
    """(status, bytes received, completed): never raises."""
    try:
        r = c.get_object(Bucket=bucket, Key=key, **kw)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], b"", False
    except Exception:
        # The connection closed before a response head: nothing was sent.
        return 0, b"", False
    body = r["Body"]
    got = bytearray()
    try:
        while chunk := body.read(65536):
            got += chunk
    except Exception:
        return r["ResponseMetadata"]["HTTPStatusCode"], bytes(got), False
    return r["ResponseMetadata"]["HTTPStatusCode"], bytes(got), len(got) == int(r["ContentLength"])


def assert_fails_closed(c, bucket, key, truth, what, before_first_byte=False, **kw):
    status, got, completed = answer(c, bucket, key, **kw)
    assert not (status < 300 and completed), f"{what}: answered {status} and completed"
    assert truth.startswith(got), f"{what}: {len(got)} bytes that are not the object's own"
    if before_first_byte:
        assert status >= 400 and got == b"", f"{what}: expected an error status before any byte, got {status} with {len(got)} bytes"


@pytest.fixture(scope="module")
def tgw():
    g = Gateway(extra_args=["--allow-insecure-sse-c", "--segment-size", str(SEG)])
    c = g.client()
    c.create_bucket(Bucket="tamper")
    yield g
    g.close()


@pytest.mark.parametrize("mode", list(MODES))
def test_every_byte_of_a_small_object_and_its_record(tgw, mode):
    c = tgw.client()
    data = payload(300, seed=5)
    key = f"small-{mode}"
    c.put_object(Bucket="tamper", Key=key, Body=data, **MODES[mode])
    raw, meta = tgw.raw_get("tamper", key), tgw.raw_meta("tamper", key)
    assert len(raw) == sealed_len(len(data))
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        tgw.raw_put("tamper", key, bytes(flipped), meta)
        assert_fails_closed(c, "tamper", key, data, f"{mode} ciphertext byte {i}", **read_args(mode))
    tgw.raw_put("tamper", key, raw, meta)
    for name, value in sorted(meta.items()):
        if not name.startswith("kgw-"):
            continue
        for i in range(len(value)):
            changed = value[:i] + chr(ord(value[i]) ^ 0x01) + value[i + 1 :]
            tgw.raw_put("tamper", key, raw, dict(meta, **{name: changed}))
            assert_fails_closed(c, "tamper", key, data, f"{mode} {name}[{i}]", **read_args(mode))
        rest = {k: v for k, v in meta.items() if k != name}
        tgw.raw_put("tamper", key, raw, rest)
        if name == "kgw-etag":
            # Optional: without it the store's ETag is shown; the data is
            # still authenticated in full.
            assert c.get_object(Bucket="tamper", Key=key, **read_args(mode))["Body"].read() == data
            continue
        assert_fails_closed(c, "tamper", key, data, f"{mode}: record without {name}", **read_args(mode))
    tgw.raw_put("tamper", key, raw, meta)
    assert c.get_object(Bucket="tamper", Key=key, **read_args(mode))["Body"].read() == data, "restored original reads again"


def positions(n_segments, total, seed):
    """Every segment boundary ±1, every tag byte of a few segments, and a sample."""
    seg_ct = SEG + 16
    pos = set()
    for s in range(n_segments + 1):
        for d in (-1, 0, 1):
            if 0 <= s * seg_ct + d < total:
                pos.add(s * seg_ct + d)
    for s in {0, n_segments // 2, n_segments - 1}:
        end = min((s + 1) * seg_ct, total)
        pos.update(range(end - 16, end))
    rng = random.Random(seed)
    pos.update(rng.randrange(total) for _ in range(40))
    return sorted(pos)


@pytest.mark.parametrize("mode", list(MODES))
def test_multi_segment_objects_under_full_and_range_reads(tgw, mode):
    c = tgw.client()
    n = 6 * SEG + 123
    data = payload(n, seed=6)
    key = f"multi-{mode}"
    c.put_object(Bucket="tamper", Key=key, Body=data, **MODES[mode])
    raw, meta = tgw.raw_get("tamper", key), tgw.raw_meta("tamper", key)
    for i in positions(7, len(raw), seed=len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x80
        tgw.raw_put("tamper", key, bytes(flipped), meta)
        seg = i // (SEG + 16)
        assert_fails_closed(c, "tamper", key, data, f"{mode} byte {i}", **read_args(mode))
        # A range inside the damaged segment fails before any byte.
        lo = seg * SEG
        hi = min(lo + 10, n - 1)
        assert_fails_closed(
            c, "tamper", key, data[lo : hi + 1], f"{mode} range in segment {seg}", before_first_byte=True,
            Range=f"bytes={lo}-{hi}", **read_args(mode)
        )
    tgw.raw_put("tamper", key, raw, meta)
    assert c.get_object(Bucket="tamper", Key=key, **read_args(mode))["Body"].read() == data


# ---- whole parts (multipart objects on a store the test can write) -------------


@pytest.fixture(scope="module")
def store(moto):
    """A gateway in front of moto through a proxy that keeps what the store
    receives, as a store operator would."""
    proxy = RecordingProxy(moto.port, keep_bodies=True)
    g = Gateway(upstream=proxy, extra_args=["--allow-insecure-sse-c", "--segment-size", str(SEG)])
    g.client().create_bucket(Bucket="parts")
    yield g, proxy
    g.close()
    proxy.stop()


PART = 5 * MIB


def upload_parts(c, key, mode, parts, redo=None):
    """Upload `parts`; `redo` = (n, data) uploads part n once more and uses that."""
    uid = c.create_multipart_upload(Bucket="parts", Key=key, **MODES[mode])["UploadId"]
    etags = {}
    for n, data in enumerate(parts, start=1):
        etags[n] = c.upload_part(Bucket="parts", Key=key, UploadId=uid, PartNumber=n, Body=data, **read_args(mode))["ETag"]
    if redo:
        n, data = redo
        etags[n] = c.upload_part(Bucket="parts", Key=key, UploadId=uid, PartNumber=n, Body=data, **read_args(mode))["ETag"]
    c.complete_multipart_upload(
        Bucket="parts", Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in sorted(etags.items())]}
    )
    return uid


def part_slices(sizes):
    out, at = [], 0
    for s in sizes:
        out.append((at, at + sealed_len(s)))
        at += sealed_len(s)
    return out


def table(entries):
    """The compact part table of docs/format.md: runs of consecutive
    numbers with one size and attempt."""
    runs = []
    for n, size, attempt in entries:
        last = runs[-1] if runs else None
        if last and last[1] + 1 == n and last[2] == size and last[3] == attempt:
            last[1] = n
        else:
            runs.append([n, n, size, attempt])
    return ",".join(
        (f"{a}x{s}" if a == b else f"{a}-{b}x{s}") + (f"@{t}" if t else "") for a, b, s, t in runs
    )


def every_read_fails(c, key, truth, what, mode, parts_count):
    """A layout or record manipulation: every read fails before any byte."""
    assert_fails_closed(c, "parts", key, truth, f"{what}: GET", before_first_byte=True, **read_args(mode))
    assert_fails_closed(c, "parts", key, truth[:10], f"{what}: range", before_first_byte=True, Range="bytes=0-9", **read_args(mode))
    for n in range(1, parts_count + 1):
        assert_fails_closed(c, "parts", key, truth, f"{what}: part {n}", before_first_byte=True, PartNumber=n, **read_args(mode))
    with pytest.raises(ClientError):
        c.head_object(Bucket="parts", Key=key, **read_args(mode))


def damaged_parts_fail(c, key, parts, damaged, what, mode):
    """Stored bytes changed under an intact record: a read that touches a
    damaged part fails before its first byte; intact parts read true."""
    truth = b"".join(parts)
    first_damaged = 1 in damaged
    assert_fails_closed(c, "parts", key, truth, f"{what}: GET", before_first_byte=first_damaged, **read_args(mode))
    for n, data in enumerate(parts, start=1):
        if n in damaged:
            assert_fails_closed(c, "parts", key, data, f"{what}: part {n}", before_first_byte=True, PartNumber=n, **read_args(mode))
        else:
            got = c.get_object(Bucket="parts", Key=key, PartNumber=n, **read_args(mode))["Body"].read()
            assert got == data, f"{what}: intact part {n}"


@pytest.mark.parametrize("mode", list(MODES))
def test_whole_part_manipulations_fail_before_the_first_byte(store, mode):
    g, proxy = store
    c, raw_c = g.client(), g.raw_client()
    parts = [payload(PART, seed=10), payload(PART, seed=11), payload(1000, seed=12)]
    truth = b"".join(parts)
    upload_parts(c, f"a-{mode}", mode, parts)
    upload_parts(c, f"b-{mode}", mode, [payload(PART, seed=20), payload(PART, seed=21), payload(1000, seed=22)])
    assert c.get_object(Bucket="parts", Key=f"a-{mode}", **read_args(mode))["Body"].read() == truth
    raw = raw_c.get_object(Bucket="parts", Key=f"a-{mode}")["Body"].read()
    other = raw_c.get_object(Bucket="parts", Key=f"b-{mode}")["Body"].read()
    meta = raw_c.head_object(Bucket="parts", Key=f"a-{mode}")["Metadata"]
    assert meta["kgw-format"] == "2" and meta["kgw-parts"] == table([(1, PART, 0), (2, PART, 0), (3, 1000, 0)])
    (a1, b1), (a2, b2), (a3, b3) = part_slices([PART, PART, 1000])
    key = f"a-{mode}"

    def stored(data, **changes):
        raw_c.put_object(Bucket="parts", Key=key, Body=data, Metadata=dict(meta, **changes))

    layout_cases = [
        ("middle part dropped, table and size edited", raw[a1:b1] + raw[a3:b3],
         {"kgw-parts": table([(1, PART, 0), (3, 1000, 0)]), "kgw-size": str(PART + 1000)}),
        ("middle part dropped, record unchanged", raw[a1:b1] + raw[a3:b3], {}),
        ("part duplicated, table edited", raw[a1:b1] + raw[a2:b2] + raw[a2:b2] + raw[a3:b3],
         {"kgw-parts": table([(1, PART, 0), (2, PART, 0), (3, PART, 0), (4, 1000, 0)]), "kgw-size": str(3 * PART + 1000)}),
        ("last part dropped, table and size edited", raw[a1:b2],
         {"kgw-parts": table([(1, PART, 0), (2, PART, 0)]), "kgw-size": str(2 * PART)}),
        ("an attempt claimed in the table", raw, {"kgw-parts": table([(1, PART, 0), (2, PART, 1), (3, 1000, 0)])}),
        ("downgraded to format 1", raw, {"kgw-format": "1"}),
        ("mode changed", raw, {"kgw-mode": "SSE-KMS" if mode == "sse-s3" else "SSE-S3"}),
    ]
    for what, data, changes in layout_cases:
        stored(data, **changes)
        every_read_fails(c, key, truth, what, mode, 3)
    raw_c.put_object(Bucket="parts", Key=key, Body=raw, Metadata={k: v for k, v in meta.items() if k != "kgw-layout"})
    every_read_fails(c, key, truth, "layout tag removed", mode, 3)

    data_cases = [
        ("parts 1 and 2 reordered", raw[a2:b2] + raw[a1:b1] + raw[a3:b3], {1, 2}),
        ("part 2 swapped in from another object", raw[a1:b1] + other[a2:b2] + raw[a3:b3], {2}),
        ("part 3 swapped in from another object", raw[a1:b2] + other[a3:b3], {3}),
    ]
    for what, data, damaged in data_cases:
        stored(data)
        damaged_parts_fail(c, key, parts, damaged, what, mode)
    stored(raw)
    assert c.get_object(Bucket="parts", Key=key, **read_args(mode))["Body"].read() == truth, "restored original reads again"


def test_a_superseded_upload_of_a_part_cannot_be_substituted(store):
    """A client uploads part 2 twice (a retry with other bytes); the store
    operator kept the first upload's bytes and puts them back."""
    g, proxy = store
    c, raw_c = g.client(), g.raw_client()
    p1, old2, new2, p3 = (payload(PART, seed=s) for s in (30, 31, 32, 33))
    p3 = p3[:777]
    proxy.clear()
    upload_parts(c, "retried", "sse-kms", [p1, old2, p3], redo=(2, new2))
    bodies = [r.body for r in proxy.requests if r.method == "PUT" and "partNumber=2" in r.path]
    assert len(bodies) == 2 and len(bodies[0]) == len(bodies[1]) == sealed_len(PART), [len(b) for b in bodies]
    first, second = bodies
    assert first != second
    raw = raw_c.get_object(Bucket="parts", Key="retried")["Body"].read()
    meta = raw_c.head_object(Bucket="parts", Key="retried")["Metadata"]
    assert meta["kgw-parts"] == table([(1, PART, 0), (2, PART, 1), (3, 777, 0)]), "the retry is attempt 1"
    truth = p1 + new2 + p3
    assert c.get_object(Bucket="parts", Key="retried")["Body"].read() == truth
    (a1, b1), (a2, b2), (a3, b3) = part_slices([PART, PART, 777])
    assert raw[a2:b2] == second
    # Two uploads of one part number never share a key: their XOR is not
    # the XOR of the plaintexts (a reused key and nonce would make it so).
    x_ct = bytes(a ^ b for a, b in zip(first[:4096], second[:4096]))
    x_pt = bytes(a ^ b for a, b in zip(old2[:4096], new2[:4096]))
    assert x_ct != x_pt
    raw_c.put_object(Bucket="parts", Key="retried", Body=raw[a1:b1] + first + raw[a3:b3], Metadata=meta)
    damaged_parts_fail(c, "retried", [p1, new2, p3], {2}, "stale part 2", "sse-kms")
    status, got, _ = answer(c, "parts", "retried", Range=f"bytes={PART}-{PART + 99}")
    assert status >= 400 and got == b"", "a range inside the stale part fails before any byte"
    # The table edited to name the first attempt: the layout tag refuses it.
    edited = dict(meta, **{"kgw-parts": table([(1, PART, 0), (2, PART, 0), (3, 777, 0)])})
    raw_c.put_object(Bucket="parts", Key="retried", Body=raw[a1:b1] + first + raw[a3:b3], Metadata=edited)
    every_read_fails(c, "retried", p1 + old2 + p3, "stale part with the table edited", "sse-kms", 3)


def test_concurrent_uploads_of_one_part_number_get_distinct_attempts(tgw):
    """Six clients upload part 1 of one upload at once (on the embedded
    store: moto itself fails racing uploads of one part)."""
    import concurrent.futures

    c = tgw.client()
    uid = c.create_multipart_upload(Bucket="tamper", Key="race", ServerSideEncryption="AES256")["UploadId"]
    bodies = [payload(PART, seed=40 + i) for i in range(6)]

    def up(b):
        return tgw.client().upload_part(Bucket="tamper", Key="race", UploadId=uid, PartNumber=1, Body=b)["ETag"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        etags = list(pool.map(up, bodies))
    assert len(set(etags)) == 6, "six different ciphertexts"
    attempts = sorted(p.name for p in (tgw.data_dir / "state" / "upload-parts").rglob("*.doc"))
    assert len(attempts) == 6, "six attempts claimed, one each"
    # The embedded store lists no part ETags and does not check them on
    # completion, so the named upload may not be the one it kept: the read
    # is then either exactly the named body or a failure before any byte,
    # never another upload's bytes.
    named = 3
    c.complete_multipart_upload(
        Bucket="tamper", Key="race", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etags[named]}]}
    )
    status, got, completed = answer(c, "tamper", "race")
    if status == 200 and completed:
        assert got == bodies[named]
    else:
        assert got == b"" and status >= 400, (status, len(got))
    # An ETag the store does not hold cannot complete an upload.
    uid2 = c.create_multipart_upload(Bucket="tamper", Key="race2", ServerSideEncryption="AES256")["UploadId"]
    c.upload_part(Bucket="tamper", Key="race2", UploadId=uid2, PartNumber=1, Body=b"x")
    with pytest.raises(ClientError) as e:
        c.complete_multipart_upload(
            Bucket="tamper", Key="race2", UploadId=uid2, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]}
        )
    assert e.value.response["Error"]["Code"] == "InvalidPart"

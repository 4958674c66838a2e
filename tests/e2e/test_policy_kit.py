"""The policy authors' test kit, offline: `kms-gateway policy check` says
what the upload endpoint would say of a component, `kms-gateway policy
test` runs it against fixture cases. The example policies ship their
fixtures (policies/fixtures/), run here."""

import json
import subprocess

import pytest

from conftest import BIN, ROOT

WASM = ROOT / "policies" / "target" / "wasm32-wasip2" / "release"
FIXTURES = ROOT / "policies" / "fixtures"


def kit(*args):
    return subprocess.run([str(BIN), "policy", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("policy", ["default-key-select", "require-sse-kms", "rotate-after-days", "tenant-prefix", "tenant-keys",
                                    "tenant-reads", "write-only", "python/data-class", "js/tenant-reads"])
def test_example_policies_pass_their_fixtures(policy):
    # python/data-class embeds CPython (WASI imports); js/tenant-reads embeds
    # a JavaScript engine (no imports) and passes the Rust one's fixtures.
    lang, _, policy = policy.rpartition("/")
    built = ROOT / "policies" / "target" / lang if lang else WASM
    wasm = built / (policy.replace("-", "_") + ".wasm")
    out = kit("test", wasm, FIXTURES / f"{policy}.json")
    assert out.returncode == 0, out.stdout + out.stderr
    cases = len(json.loads((FIXTURES / f"{policy}.json").read_text())["cases"])
    assert f"{cases} passed, 0 failed" in out.stdout, out.stdout


def test_check_reports_what_an_upload_would_and_refuses_what_it_would():
    out = kit("check", WASM / "rotate_after_days.wasm")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["hook"] == "rotation" and r["world"].startswith("kms-gateway:policy/") and r["world"].endswith("@0.2.0")
    assert r["imports_wasi"] is False and r["limits"]["deadline_ms"] == 50 and r["limits"]["memory_mib"] == 16
    assert r["golden_answer"]["advice"] in ("rotate", "later")
    for hostile, word in (("hostile_smuggled_import", "imports"), ("hostile_wrong_version", "world")):
        out = kit("check", WASM / f"{hostile}.wasm")
        assert out.returncode != 0 and word in out.stderr, out.stderr


def test_a_mismatch_fails_the_run_and_a_hostile_policy_is_timed_out(tmp_path):
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"cases": [
        {"name": "expects the wrong key", "request": {"operation": "PutObject", "bucket": "finance-x", "key": "k",
                                                      "requested_mode": "none"},
         "expect": {"decision": "select", "key_id": "logs-key"}},
        {"name": "no request for a key-select policy", "key": {"key_id": "k", "backend": "local", "version": 1,
                                                                "created_at": 1, "state": "Enabled"}, "now": 2,
         "expect": {"decision": "keep"}},
    ]}))
    out = kit("test", WASM / "default_key_select.wasm", wrong, "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    results = json.loads(out.stdout)
    assert [r["passed"] for r in results] == [False, False]
    assert results[0]["got"]["key_id"] == "finance-key"
    assert results[1]["got"]["error"] == "fixture" and "`request`" in results[1]["got"]["message"]
    loop = tmp_path / "loop.json"
    loop.write_text(json.dumps({"cases": [
        {"name": "spins on the hostile bucket", "request": {"operation": "PutObject", "bucket": "hostile", "key": "k",
                                                            "requested_mode": "none"}, "expect": {"error": "timeout"}}]}))
    out = kit("--timeout-ms", "20", "test", WASM / "hostile_infinite_loop.wasm", loop, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    [r] = json.loads(out.stdout)
    assert r["passed"] and 20_000 <= r["micros"] < 2_000_000, r

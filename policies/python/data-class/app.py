"""Key selection by data class, written in Python.

Objects under a classified prefix are encrypted with SSE-KMS under that
class's key, with the class bound into the encryption context; SSE-C stays
the client's choice, and everything else keeps what the request (or the
bucket default) asked for. Build with componentize-py (see ../README.md).
"""

from wit_world import exports
from wit_world.exports.key_select import Decision, Decision_Deny, Decision_Keep, Decision_Select, Selection
from wit_world.imports.types import Request, S3Error, SseMode

# (key prefix, KMS key id, data class)
CLASSES = [
    ("pii/", "pii-key", "pii"),
    ("logs/", "logs-key", "logs"),
]


class KeySelect(exports.KeySelect):
    def select(self, req: Request) -> Decision:
        if req.requested_mode == SseMode.SSE_C:
            return Decision_Keep()
        for prefix, key_id, label in CLASSES:
            if req.key.startswith(prefix):
                if req.requested_key_id not in (None, key_id):
                    return Decision_Deny(S3Error(
                        "AccessDenied", f"objects under {prefix} must use KMS key {key_id}"))
                return Decision_Select(Selection(
                    mode=SseMode.SSE_KMS, key_id=key_id, extra_context=[("data-class", label)]))
        return Decision_Keep()

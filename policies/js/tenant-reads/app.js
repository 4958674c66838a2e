// `tenant-reads` in JavaScript (the Rust one is ../../tenant-reads): an
// identity with the attribute `tenant` = `T` may neither read objects
// under, nor name, an SSE-KMS key outside `tenant-T` (or `tenant-T-…`).
// Identities without the attribute are not restricted.

const READS = new Set(["GetObject", "HeadObject", "GetObjectAttributes", "CopySource"]);

export const sseValidate = {
  validate(req) {
    const attrs = req.identity ? req.identity.attributes : [];
    const found = attrs.find(([name]) => name === "tenant");
    if (!found) return { tag: "accept" };
    const tenant = found[1];
    const own = `tenant-${tenant}`;
    const key = req.requestedKeyId;
    if (req.requestedMode === "sse-kms" && key && key !== own && !key.startsWith(`${own}-`)) {
      const what = READS.has(req.operation) ? "read objects under" : "use";
      return { tag: "reject", val: { code: "AccessDenied", message: `tenant ${tenant} may not ${what} key ${key}` } };
    }
    return { tag: "accept" };
  },
};

use super::*;
use crate::sse::CustomerKey;

const BUCKET: &str = "amzn-s3-demo-bucket";

/// AWS's "require SSE-KMS" example (UsingKMSEncryption): deny uploads
/// without a KMS key id header.
const REQUIRE_KMS_KEY_HEADER: &str = r#"{
  "Version": "2012-10-17",
  "Id": "PutObjectPolicy",
  "Statement": [{
    "Sid": "DenyObjectsThatAreNotSSEKMS",
    "Principal": "*",
    "Effect": "Deny",
    "Action": "s3:PutObject",
    "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
    "Condition": {"Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "true"}}
  }]
}"#;

/// The two-statement form most policies in the field use.
const REQUIRE_KMS_TWO_STATEMENTS: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
     "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
     "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
    {"Sid": "DenyUnEncryptedObjectUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
     "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
     "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}}
  ]
}"#;

/// AWS's "require a specific KMS key" example.
const REQUIRE_SPECIFIC_KEY: &str = r#"{
  "Version": "2012-10-17",
  "Id": "PutObjectPolicy",
  "Statement": [{
    "Sid": "RequireKMSEncryption",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:PutObject",
    "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
    "Condition": {"StringNotLikeIfExists": {
      "s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-2:111122223333:key/01234567-89ab-cdef-0123-456789abcdef"
    }}
  }]
}"#;

/// AWS's "require SSE-C" and "restrict SSE-C" examples (ServerSideEncryptionCustomerKeys).
const REQUIRE_SSE_C: &str = r#"{"Version": "2012-10-17", "Id": "PutObjectPolicy", "Statement": [{
  "Sid": "RequireSSECObjectUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
  "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
  "Condition": {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "true"}}}]}"#;
const DENY_SSE_C: &str = r#"{"Version": "2012-10-17", "Statement": [{
  "Sid": "RestrictSSECObjectUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
  "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
  "Condition": {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}}]}"#;

const ARN: &str = "arn:aws:kms:us-east-2:111122223333:key/01234567-89ab-cdef-0123-456789abcdef";

fn kms(key: Option<&str>) -> SseRequest {
    SseRequest::Kms { key_id: key.map(str::to_owned), context: Default::default() }
}

fn sse_c() -> SseRequest {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = [7u8; 32];
    let md5 = <md5::Md5 as md5::Digest>::digest(key);
    let c = CustomerKey::parse(Some("AES256"), Some(&b64.encode(key)), Some(&b64.encode(md5)), true).unwrap().unwrap();
    SseRequest::Customer(c)
}

fn verdict(policy: &str, sse: &SseRequest) -> Verdict {
    let p = BucketPolicy::parse(BUCKET, policy).unwrap();
    let sse = SseConditions::from(sse);
    p.evaluate_write(&WriteContext {
        principal: Some("AKIA1"),
        bucket: BUCKET,
        key: "a/b.txt",
        sse: &sse,
        secure_transport: false,
    })
}

use Verdict::{Allowed, Denied};

#[test]
fn aws_require_kms_key_header() {
    assert_eq!(verdict(REQUIRE_KMS_KEY_HEADER, &kms(Some("k1"))), Allowed);
    assert_eq!(verdict(REQUIRE_KMS_KEY_HEADER, &kms(None)), Denied);
    assert_eq!(verdict(REQUIRE_KMS_KEY_HEADER, &SseRequest::S3), Denied);
    assert_eq!(verdict(REQUIRE_KMS_KEY_HEADER, &SseRequest::None), Denied);
}

#[test]
fn aws_require_kms_two_statements() {
    assert_eq!(verdict(REQUIRE_KMS_TWO_STATEMENTS, &kms(None)), Allowed);
    assert_eq!(verdict(REQUIRE_KMS_TWO_STATEMENTS, &kms(Some("k1"))), Allowed);
    assert_eq!(verdict(REQUIRE_KMS_TWO_STATEMENTS, &SseRequest::S3), Denied);
    assert_eq!(verdict(REQUIRE_KMS_TWO_STATEMENTS, &SseRequest::None), Denied);
    assert_eq!(verdict(REQUIRE_KMS_TWO_STATEMENTS, &sse_c()), Denied);
}

#[test]
fn aws_require_specific_key() {
    assert_eq!(verdict(REQUIRE_SPECIFIC_KEY, &kms(Some(ARN))), Allowed);
    assert_eq!(verdict(REQUIRE_SPECIFIC_KEY, &kms(Some("other"))), Denied);
    // IfExists: an absent key makes the condition true (AWS), so uploads
    // that name no key are denied too.
    assert_eq!(verdict(REQUIRE_SPECIFIC_KEY, &kms(None)), Denied);
    assert_eq!(verdict(REQUIRE_SPECIFIC_KEY, &SseRequest::None), Denied);
}

#[test]
fn aws_require_and_deny_sse_c() {
    assert_eq!(verdict(REQUIRE_SSE_C, &sse_c()), Allowed);
    assert_eq!(verdict(REQUIRE_SSE_C, &kms(None)), Denied);
    assert_eq!(verdict(REQUIRE_SSE_C, &SseRequest::None), Denied);
    assert_eq!(verdict(DENY_SSE_C, &sse_c()), Denied);
    assert_eq!(verdict(DENY_SSE_C, &SseRequest::S3), Allowed);
    assert_eq!(verdict(DENY_SSE_C, &SseRequest::None), Allowed);
}

#[test]
fn like_set_operators_and_key_case() {
    let p = |cond: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Deny","Principal":{{"AWS":"*"}},"Action":["s3:PutObject"],"Resource":["arn:aws:s3:::{BUCKET}/*"],"Condition":{cond}}}}}"#
        )
    };
    let like = p(r#"{"StringNotLike":{"S3:X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id":"tenant-a-*"}}"#);
    assert_eq!(verdict(&like, &kms(Some("tenant-a-1"))), Allowed);
    assert_eq!(verdict(&like, &kms(Some("tenant-b-1"))), Denied);
    // Absent key: a negated operator matches (AWS), so the Deny applies.
    assert_eq!(verdict(&like, &kms(None)), Denied);
    let any = p(r#"{"ForAnyValue:StringEquals":{"s3:x-amz-server-side-encryption":["AES256"]}}"#);
    assert_eq!(verdict(&any, &SseRequest::S3), Denied);
    assert_eq!(verdict(&any, &kms(None)), Allowed);
    let equals = p(r#"{"StringEquals":{"s3:x-amz-server-side-encryption":"AES256"}}"#);
    assert_eq!(verdict(&equals, &SseRequest::None), Allowed);
    assert_eq!(verdict(&equals, &SseRequest::S3), Denied);
}

#[test]
fn principals_resources_and_actions_scope_statements() {
    let p = |principal: &str, resource: &str, action: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{principal},"Action":"{action}","Resource":"{resource}","Condition":{{"Null":{{"s3:x-amz-server-side-encryption":"true"}}}}}}]}}"#
        )
    };
    let all = format!("arn:aws:s3:::{BUCKET}/*");
    assert_eq!(verdict(&p(r#"{"AWS":"arn:aws:iam::000000000000:user/AKIA1"}"#, &all, "s3:PutObject"), &SseRequest::None), Denied);
    assert_eq!(
        verdict(&p(r#"{"AWS":["arn:aws:iam::000000000000:user/AKIA2"]}"#, &all, "s3:PutObject"), &SseRequest::None),
        Allowed
    );
    assert_eq!(verdict(&p(r#"{"AWS":"arn:aws:iam::*:user/AKIA*"}"#, &all, "s3:PutObject"), &SseRequest::None), Denied);
    assert_eq!(verdict(&p(r#""*""#, &format!("arn:aws:s3:::{BUCKET}/a/*"), "s3:PutObject"), &SseRequest::None), Denied);
    assert_eq!(verdict(&p(r#""*""#, &format!("arn:aws:s3:::{BUCKET}/z/*"), "s3:PutObject"), &SseRequest::None), Allowed);
    assert_eq!(verdict(&p(r#""*""#, &all, "s3:*"), &SseRequest::None), Denied);
    assert_eq!(verdict(&p(r#""*""#, &all, "s3:GetObject"), &SseRequest::None), Allowed);
}

#[test]
fn statements_are_split_between_gateway_and_store() {
    let text = r#"{"Version":"2012-10-17","Statement":[
      {"Sid":"Sse","Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/*",
       "Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}},
      {"Sid":"Read","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/*"}]}"#;
    let p = BucketPolicy::parse(BUCKET, text).unwrap();
    assert!(p.has_gateway_statements());
    assert_eq!(p.text(), text);
    let up: Value = serde_json::from_str(p.upstream_document().unwrap()).unwrap();
    assert_eq!(up["Statement"].as_array().unwrap().len(), 1);
    assert_eq!(up["Statement"][0]["Sid"], "Read");
    assert_eq!(up["Version"], "2012-10-17");
    assert!(BucketPolicy::parse(BUCKET, REQUIRE_SSE_C).unwrap().upstream_document().is_none());
    // Stored as bucket and text; read back through the same validation.
    let stored = serde_json::to_string(&p).unwrap();
    let back: BucketPolicy = serde_json::from_str(&stored).unwrap();
    assert_eq!(back.text(), text);
    assert_eq!(back.upstream_document(), p.upstream_document());
    let damaged = stored.replace("amzn-s3-demo-bucket\",", "other\",");
    assert!(serde_json::from_str::<BucketPolicy>(&damaged).is_err());
}

#[test]
fn malformed_policies_are_refused() {
    let bad = [
        "not json",
        "[]",
        r#"{"Version":"2012-10-17"}"#,
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        // No principal.
        r#"{"Statement":[{"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/*"}]}"#,
        // Another bucket's resource.
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::other/*"}]}"#,
        // An effect that does not exist.
        r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/*"}]}"#,
        // A key the gateway cannot evaluate beside an SSE key.
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/*",
            "Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    ];
    for b in bad {
        assert!(BucketPolicy::parse(BUCKET, b).is_err(), "accepted: {b}");
    }
    let huge = format!(r#"{{"Statement":[],"Pad":"{}"}}"#, "x".repeat(MAX_POLICY_BYTES));
    assert!(BucketPolicy::parse(BUCKET, &huge).unwrap_err().0.contains("exceed"));
}

#[test]
fn secure_transport_beside_sse_keys() {
    let text = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/*",
        "Condition":{"Null":{"s3:x-amz-server-side-encryption-customer-algorithm":"false"},"Bool":{"aws:SecureTransport":"false"}}}]}"#;
    let p = BucketPolicy::parse(BUCKET, text).unwrap();
    let sse = SseConditions::from(&sse_c());
    let w = |tls| WriteContext { principal: None, bucket: BUCKET, key: "k", sse: &sse, secure_transport: tls };
    assert_eq!(p.evaluate_write(&w(false)), Denied);
    assert_eq!(p.evaluate_write(&w(true)), Allowed);
}

//! What the gateway adds to s3s's signature checks, as AWS enforces them:
//!
//! - a SigV2 header signature must carry a `Date` (or `x-amz-date`) within
//!   15 minutes of now: s3s checks only that one is present, so a captured
//!   request could otherwise be replayed for ever;
//! - a presigned SigV4 URL lives at most 7 days (`X-Amz-Expires`);
//! - the admin API takes SigV4 header signatures only: under SigV2 or a
//!   presigned URL its `x-amz-content-sha256` is covered by nothing, and
//!   the admin API relies on it to authenticate the body.

use std::time::{Duration, SystemTime};

use hyper::{HeaderMap, Uri};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

/// How far a SigV2 request's date may be from the gateway's clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest `X-Amz-Expires` AWS accepts: a week.
const MAX_PRESIGNED_SECS: u64 = 604_800;

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// `Authorization: AWS <access key>:<signature>` (SigV2), not `AWS4-…`.
fn is_v2_header(headers: &HeaderMap) -> bool {
    authorization(headers).is_some_and(|a| a.starts_with("AWS "))
}

/// The request date of a SigV2 request: `x-amz-date` wins over `Date`, as
/// in SigV2's string to sign. Clients write it as an HTTP-date (`GMT`), as
/// RFC 2822 (`+0000`, s3cmd), as RFC 1123 with `UTC` (Go), or in ISO 8601
/// basic form; AWS takes them all.
fn v2_date(headers: &HeaderMap) -> Option<SystemTime> {
    let raw = headers.get("x-amz-date").or_else(|| headers.get(hyper::header::DATE))?.to_str().ok()?.trim();
    let gmt = raw.strip_suffix(" UTC").map(|d| format!("{d} GMT"));
    if let Ok(t) = httpdate::parse_http_date(gmt.as_deref().unwrap_or(raw)) {
        return Some(t);
    }
    let t = match time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc2822) {
        Ok(t) => t,
        Err(_) => {
            let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
            time::PrimitiveDateTime::parse(raw, fmt).ok()?.assume_utc()
        }
    };
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).ok()?))
}

/// Refuse a SigV2 header signature whose date is missing, unreadable or
/// more than 15 minutes away, and a presigned SigV4 URL valid for more
/// than a week.
pub fn check_freshness(uri: &Uri, headers: &HeaderMap, now: SystemTime) -> S3Result<()> {
    if is_v2_header(headers) {
        let Some(date) = v2_date(headers) else {
            return Err(s3_error!(AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"));
        };
        let skew = date.duration_since(now).or_else(|_| now.duration_since(date)).unwrap_or_default();
        if skew > MAX_SKEW {
            return Err(s3_error!(
                RequestTimeTooSkewed,
                "The difference between the request time and the current time is too large."
            ));
        }
    }
    let expires =
        uri.query().into_iter().flat_map(|q| url::form_urlencoded::parse(q.as_bytes())).find(|(k, _)| k == "X-Amz-Expires");
    if let Some((_, v)) = expires
        && v.parse::<u64>().map_or(true, |s| s > MAX_PRESIGNED_SECS)
    {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("AuthorizationQueryParametersError".into()),
            "X-Amz-Expires must be less than a week (in seconds) that is; 604800",
        );
        e.set_status_code(hyper::StatusCode::BAD_REQUEST);
        return Err(e);
    }
    Ok(())
}

/// The admin API's own rule: a SigV4 `Authorization` header.
pub fn is_v4_header(headers: &HeaderMap) -> bool {
    authorization(headers).is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn v2_needs_a_date_within_fifteen_minutes() {
        let now = httpdate::parse_http_date("Tue, 01 Dec 2026 05:00:00 GMT").unwrap();
        let uri: Uri = "/b/k".parse().unwrap();
        let v2 = |date: &str| headers(&[("authorization", "AWS ak:c2ln"), ("date", date)]);
        assert!(check_freshness(&uri, &v2("Tue, 01 Dec 2026 05:14:00 GMT"), now).is_ok());
        assert!(check_freshness(&uri, &v2("Tue, 01 Dec 2026 04:46:00 GMT"), now).is_ok());
        let old = check_freshness(&uri, &v2("Tue, 01 Dec 2015 05:00:00 GMT"), now).unwrap_err();
        assert_eq!(old.code(), &S3ErrorCode::RequestTimeTooSkewed);
        assert!(check_freshness(&uri, &v2("Tue, 01 Dec 2026 05:16:00 GMT"), now).is_err());
        assert!(check_freshness(&uri, &v2("yesterday"), now).is_err());
        assert!(check_freshness(&uri, &headers(&[("authorization", "AWS ak:c2ln")]), now).is_err());
        // x-amz-date wins over Date, in either format.
        let both = headers(&[
            ("authorization", "AWS ak:c2ln"),
            ("date", "Tue, 01 Dec 2026 05:00:00 GMT"),
            ("x-amz-date", "20151201T050000Z"),
        ]);
        assert!(check_freshness(&uri, &both, now).is_err());
        let iso = headers(&[("authorization", "AWS ak:c2ln"), ("x-amz-date", "20261201T050500Z")]);
        assert!(check_freshness(&uri, &iso, now).is_ok());
        // What s3cmd (RFC 2822, +0000) and Go (RFC 1123, UTC) send.
        for d in ["Tue, 01 Dec 2026 05:05:00 +0000", "Tue, 01 Dec 2026 05:05:00 UTC", "Tue, 01 Dec 2026 06:05:00 +0100"] {
            assert!(check_freshness(&uri, &v2(d), now).is_ok(), "{d}");
        }
        assert!(check_freshness(&uri, &v2("Tue, 01 Dec 2015 05:05:00 +0000"), now).is_err());
        // SigV4 dates are s3s's to check.
        let v4 = headers(&[("authorization", "AWS4-HMAC-SHA256 Credential=ak/20151201/us-east-1/s3/aws4_request")]);
        assert!(check_freshness(&uri, &v4, now).is_ok());
    }

    #[test]
    fn presigned_urls_live_at_most_a_week() {
        let now = SystemTime::now();
        let h = HeaderMap::new();
        let url = |e: &str| format!("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={e}").parse::<Uri>().unwrap();
        assert!(check_freshness(&url("604800"), &h, now).is_ok());
        assert!(check_freshness(&url("604801"), &h, now).is_err());
        assert!(check_freshness(&url("4294967295"), &h, now).is_err());
        assert!(check_freshness(&url("-1"), &h, now).is_err());
    }

    #[test]
    fn only_a_v4_header_is_a_v4_header() {
        assert!(is_v4_header(&headers(&[("authorization", "AWS4-HMAC-SHA256 Credential=x")])));
        assert!(!is_v4_header(&headers(&[("authorization", "AWS ak:sig")])));
        assert!(!is_v4_header(&HeaderMap::new()));
    }
}

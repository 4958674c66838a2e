//! Parse the SSE headers of a write into an [`SseRequest`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{CustomerKey, SseError};
use crate::ids::EncryptionContext;

/// The raw SSE header values of a request, independent of the S3 DTO types.
#[derive(Debug, Default, Clone, Copy)]
pub struct SseHeaders<'a> {
    pub sse: Option<&'a str>,
    pub kms_key_id: Option<&'a str>,
    pub context: Option<&'a str>,
    pub customer_algorithm: Option<&'a str>,
    pub customer_key: Option<&'a str>,
    pub customer_key_md5: Option<&'a str>,
}

/// What a write asked for.
#[derive(Debug)]
pub enum SseRequest {
    None,
    S3,
    /// SSE-KMS; `key_id` as the client sent it (bare id, alias or ARN).
    Kms {
        key_id: Option<String>,
        context: EncryptionContext,
    },
    Customer(CustomerKey),
}

impl SseRequest {
    /// The mode asked for (`None`: no encryption).
    pub fn mode(&self) -> Option<super::SseMode> {
        match self {
            Self::None => None,
            Self::S3 => Some(super::SseMode::S3),
            Self::Kms { .. } => Some(super::SseMode::Kms),
            Self::Customer(_) => Some(super::SseMode::Customer),
        }
    }

    /// Parse with AWS's precedence and error codes.
    pub fn parse(h: &SseHeaders<'_>) -> Result<Self, SseError> {
        let customer = CustomerKey::parse(h.customer_algorithm, h.customer_key, h.customer_key_md5, true)?;
        if let Some(c) = customer {
            if h.sse.is_some() || h.kms_key_id.is_some() || h.context.is_some() {
                return Err(SseError::InvalidArgument(
                    "Server Side Encryption with Customer provided key is incompatible with the encryption method specified",
                ));
            }
            return Ok(Self::Customer(c));
        }
        match h.sse {
            None => {
                if h.kms_key_id.is_some() || h.context.is_some() {
                    return Err(kms_header_without_kms());
                }
                Ok(Self::None)
            }
            Some("AES256") => {
                if h.kms_key_id.is_some() || h.context.is_some() {
                    return Err(kms_header_without_kms());
                }
                Ok(Self::S3)
            }
            Some("aws:kms") => Ok(Self::Kms {
                key_id: h.kms_key_id.map(str::to_owned).filter(|k| !k.is_empty()),
                context: h.context.map(parse_context).transpose()?.unwrap_or_default(),
            }),
            // `aws:kms:dsse` (dual-layer) included: one layer, the gateway's,
            // is all a client can ask of it; AWS's answer to values it does
            // not accept.
            Some(_) => Err(SseError::InvalidArgument(
                "The SSE algorithm specified is not supported. The valid values are AES256 or aws:kms.",
            )),
        }
    }
}

fn kms_header_without_kms() -> SseError {
    SseError::InvalidArgument(
        "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms",
    )
}

/// Decode `x-amz-server-side-encryption-context`: base64 of a JSON object
/// whose values are strings. Keys starting with `aws:` are reserved.
pub fn parse_context(b64: &str) -> Result<EncryptionContext, SseError> {
    const BAD: SseError =
        SseError::InvalidArgument("The encryption context must be a base64-encoded JSON object of string pairs.");
    let raw = B64.decode(b64.trim()).map_err(|_| BAD)?;
    let ctx: EncryptionContext = serde_json::from_slice(&raw).map_err(|_| BAD)?;
    if ctx.keys().any(|k| k.starts_with("aws:")) {
        return Err(SseError::InvalidArgument("Encryption context keys starting with aws: are reserved."));
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(sse: Option<&'a str>, kid: Option<&'a str>, ctx: Option<&'a str>) -> SseHeaders<'a> {
        SseHeaders { sse, kms_key_id: kid, context: ctx, ..Default::default() }
    }

    #[test]
    fn modes_and_conflicts() {
        assert!(matches!(SseRequest::parse(&h(None, None, None)), Ok(SseRequest::None)));
        assert!(matches!(SseRequest::parse(&h(Some("AES256"), None, None)), Ok(SseRequest::S3)));
        let ctx = B64.encode(r#"{"team":"a"}"#);
        match SseRequest::parse(&h(Some("aws:kms"), Some("k1"), Some(&ctx))).unwrap() {
            SseRequest::Kms { key_id, context } => {
                assert_eq!(key_id.as_deref(), Some("k1"));
                assert_eq!(context["team"], "a");
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            h(None, Some("k"), None),
            h(Some("AES256"), Some("k"), None),
            h(Some("aes:kms"), None, None),
            h(Some(""), None, None),
        ] {
            assert!(matches!(SseRequest::parse(&bad), Err(SseError::InvalidArgument(_))), "{bad:?}");
        }
        assert!(SseRequest::parse(&h(Some("aws:kms"), None, Some("not base64!"))).is_err());
        assert!(SseRequest::parse(&h(Some("aws:kms"), None, Some(&B64.encode(r#"{"a":1}"#)))).is_err());
        assert!(SseRequest::parse(&h(Some("aws:kms"), None, Some(&B64.encode(r#"{"aws:x":"1"}"#)))).is_err());
    }

    #[test]
    fn customer_with_managed_headers_conflicts() {
        let key = B64.encode([2u8; 32]);
        let md5 = B64.encode(<md5::Md5 as md5::Digest>::digest([2u8; 32]));
        let mut hh = h(Some("AES256"), None, None);
        hh.customer_algorithm = Some("AES256");
        hh.customer_key = Some(&key);
        hh.customer_key_md5 = Some(&md5);
        assert!(matches!(SseRequest::parse(&hh), Err(SseError::InvalidArgument(s)) if s.contains("incompatible")));
        hh.sse = None;
        assert!(matches!(SseRequest::parse(&hh), Ok(SseRequest::Customer(_))));
    }
}

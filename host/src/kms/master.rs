//! The local backend's master key: from a file, from the environment, or
//! generated once under the data directory (mode 0600).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::KmsError;
use crate::crypto::{SealingKey, random_bytes};
use crate::fsutil::write_private_atomic;

/// Where the master key comes from, in order of precedence.
pub enum MasterKeySource<'a> {
    /// Base64 or hex text given directly (environment variable).
    Inline(&'a str),
    /// A file holding base64 or hex text, or 32 raw bytes.
    File(&'a Path),
    /// The gateway's own file, generated on first use.
    Generated(&'a Path),
}

/// Load the master key from `source`.
pub fn load_master_key(source: MasterKeySource<'_>) -> Result<SealingKey, KmsError> {
    match source {
        MasterKeySource::Inline(text) => parse_key(text.as_bytes()),
        MasterKeySource::File(path) => read_key_file(path),
        MasterKeySource::Generated(path) => {
            if path.exists() {
                return read_key_file(path);
            }
            let mut key = Zeroizing::new([0u8; 32]);
            random_bytes(key.as_mut()).map_err(|_| KmsError::MasterKey("random source failed".into()))?;
            let text = Zeroizing::new(B64.encode(key.as_ref()));
            write_private_atomic(path, text.as_bytes())
                .map_err(|source| KmsError::Io { path: path.display().to_string(), source })?;
            Ok(SealingKey::from_bytes(*key))
        }
    }
}

fn read_key_file(path: &Path) -> Result<SealingKey, KmsError> {
    let raw = Zeroizing::new(std::fs::read(path).map_err(|source| KmsError::Io { path: path.display().to_string(), source })?);
    if raw.len() == 32 {
        let bytes: [u8; 32] = raw.as_slice().try_into().expect("length checked");
        return Ok(SealingKey::from_bytes(bytes));
    }
    parse_key(&raw)
        .map_err(|_| KmsError::MasterKey(format!("{} holds neither 32 raw bytes nor a base64/hex 256-bit key", path.display())))
}

fn parse_key(text: &[u8]) -> Result<SealingKey, KmsError> {
    let text = std::str::from_utf8(text).map_err(|_| KmsError::MasterKey("not text".into()))?.trim();
    let bytes = Zeroizing::new(if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| KmsError::MasterKey("bad hex".into()))?
    } else {
        B64.decode(text).map_err(|_| KmsError::MasterKey("expected base64 or hex of 32 bytes".into()))?
    });
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KmsError::MasterKey("master key must be 32 bytes".into()))?;
    Ok(SealingKey::from_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_then_reloaded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kms/master.key");
        let a = load_master_key(MasterKeySource::Generated(&p)).unwrap();
        let b = load_master_key(MasterKeySource::Generated(&p)).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn accepts_hex_base64_and_raw() {
        let k = [0xabu8; 32];
        assert_eq!(load_master_key(MasterKeySource::Inline(&hex::encode(k))).unwrap().as_bytes(), &k);
        assert_eq!(load_master_key(MasterKeySource::Inline(&B64.encode(k))).unwrap().as_bytes(), &k);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("raw");
        std::fs::write(&p, k).unwrap();
        assert_eq!(load_master_key(MasterKeySource::File(&p)).unwrap().as_bytes(), &k);
        assert!(load_master_key(MasterKeySource::Inline("c2hvcnQ=")).is_err());
    }
}

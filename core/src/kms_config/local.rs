//! The local backend's configuration: JSON key files in a directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, bad};

#[derive(Debug, Clone, Default)]
pub struct LocalConfig {
    /// `None`: the gateway's own key directory under its data dir.
    pub key_dir: Option<PathBuf>,
}

/// The local backend's own fields on the wire.
#[derive(Serialize, Deserialize)]
pub(super) struct Wire {
    #[serde(skip_serializing_if = "Option::is_none")]
    key_dir: Option<PathBuf>,
}

impl Wire {
    pub(super) fn validate(self) -> Result<LocalConfig, ConfigError> {
        if let Some(d) = &self.key_dir
            && !d.is_absolute()
        {
            return Err(bad("field `key_dir` must be an absolute path"));
        }
        Ok(LocalConfig { key_dir: self.key_dir })
    }

    pub(super) fn of(c: &LocalConfig) -> Self {
        Self { key_dir: c.key_dir.clone() }
    }
}

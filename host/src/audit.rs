//! The audit trail: one JSON line per admin call and per use of a KMS key
//! (who, what, which key and version, outcome). Never key material, never
//! a secret: events carry only ids, names and outcomes.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

/// One audit event.
#[derive(Debug, Serialize)]
pub struct AuditEvent<'a> {
    /// `admin` or `key-use`.
    pub kind: &'static str,
    /// The access key that made the request, when known.
    pub principal: Option<&'a str>,
    /// The admin action or KMS operation.
    pub action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<&'a str>,
    /// `ok`, `cached`, or the error class.
    pub outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

/// Where audit events go.
pub struct AuditLog {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
    /// The replica that writes the trail (cluster mode: several write one
    /// log collector's stream).
    replica: Option<String>,
}

impl AuditLog {
    /// Append to `path` (created 0600).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(parent) = path.parent() {
            crate::fsutil::create_private_dir(parent)?;
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        Ok(Self { sink: Some(Mutex::new(Box::new(std::io::BufWriter::new(f)))), replica: None })
    }

    /// Standard output, for a log collector (containers, journald): one
    /// JSON line per event, beside the few plain start-up lines.
    pub fn stdout() -> Self {
        Self { sink: Some(Mutex::new(Box::new(std::io::stdout()))), replica: None }
    }

    /// Audit disabled.
    pub fn disabled() -> Self {
        Self { sink: None, replica: None }
    }

    /// Name the replica in every event.
    pub fn with_replica(mut self, replica: String) -> Self {
        self.replica = Some(replica);
        self
    }

    /// Write one event. Audit failures are logged, never fatal to the request.
    pub fn record(&self, ev: &AuditEvent<'_>) {
        let Some(sink) = &self.sink else { return };
        #[derive(Serialize)]
        struct Line<'a> {
            #[serde(with = "time::serde::rfc3339")]
            time: OffsetDateTime,
            #[serde(skip_serializing_if = "Option::is_none")]
            replica: Option<&'a str>,
            #[serde(flatten)]
            ev: &'a AuditEvent<'a>,
        }
        let line = Line { time: OffsetDateTime::now_utc(), replica: self.replica.as_deref(), ev };
        let mut line = match serde_json::to_vec(&line) {
            Ok(l) => l,
            Err(e) => return tracing::error!(error = %e, "audit event did not serialise"),
        };
        line.push(b'\n');
        let mut w = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Flushed per line: an audit trail that loses its tail on a crash
        // is not one.
        if let Err(e) = w.write_all(&line).and_then(|()| w.flush()) {
            tracing::error!(error = %e, "audit log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit/audit.log");
        let log = AuditLog::open(&p).unwrap();
        for outcome in ["ok", "KMS.NotFoundException"] {
            log.record(&AuditEvent {
                kind: "key-use",
                principal: Some("AKIA"),
                action: "decrypt_data_key",
                key_id: Some("k1"),
                key_version: Some(2),
                bucket: Some("b"),
                object: Some("o"),
                outcome,
                detail: None,
                request_id: None,
            });
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["outcome"], "KMS.NotFoundException");
        assert_eq!(lines[0]["key_version"], 2);
        assert!(lines[0]["time"].is_string());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

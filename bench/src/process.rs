//! A server process seen from `/proc`: CPU time used and peak resident
//! memory, so a run can report CPU seconds per GB moved.

use std::path::PathBuf;
use std::time::Duration;

/// CPU seconds (user + system, all threads) of `pid` so far.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // In USER_HZ, which Linux fixes at 100 for user space on every
    // architecture it runs on.
    Some(ticks as f64 / 100.0)
}

/// Peak resident set (`VmHWM`) of `pid`, in bytes.
pub(crate) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// A gateway this run started (`kms-gateway serve` of this executable), in
/// front of `upstream`, on a data directory of its own; stopped on drop.
pub(crate) struct SpawnedGateway {
    child: std::process::Child,
    pub(crate) endpoint: String,
    _dir: tempfile::TempDir,
}

pub(crate) struct SpawnSpec<'a> {
    pub(crate) exe: PathBuf,
    pub(crate) upstream: &'a str,
    pub(crate) upstream_access_key: &'a str,
    pub(crate) upstream_secret_key: &'a str,
    pub(crate) access_key: &'a str,
    pub(crate) secret_key: &'a str,
    pub(crate) extra_args: &'a [String],
}

impl SpawnedGateway {
    pub(crate) async fn start(spec: SpawnSpec<'_>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let dir = tempfile::tempdir().context("data directory for the gateway")?;
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new(&spec.exe)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path())
            .args(["--upstream", spec.upstream, "--upstream-access-key", spec.upstream_access_key])
            .args(["--access-key", spec.access_key, "--audit-log", "off", "--allow-insecure-sse-c"])
            // Secrets by environment, not on a command line others can list.
            .env("KMS_GATEWAY_UPSTREAM_SECRET_KEY", spec.upstream_secret_key)
            .env("KMS_GATEWAY_SECRET_KEY", spec.secret_key)
            .args(spec.extra_args)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", spec.exe.display()))?;
        let mut me = Self { child, endpoint: format!("http://127.0.0.1:{port}"), _dir: dir };
        for _ in 0..300 {
            if let Some(status) = me.child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                anyhow::bail!("the gateway exited at start ({status}): {}", log.trim());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the gateway did not listen within 30 s")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SpawnedGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_visible() {
        let pid = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        assert!(super::cpu_seconds(pid).is_some_and(|s| s > 0.0));
        assert!(super::peak_rss(pid).is_some_and(|b| b > 1 << 20));
        assert!(super::cpu_seconds(u32::MAX).is_none());
    }
}
